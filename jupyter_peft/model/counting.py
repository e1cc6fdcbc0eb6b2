"""Exact trainable and total parameter counts of a checked plan, without touching the model.

The studio shows, after every click, the numbers `get_peft_model` would give. Two ways to
get them were measured on a Llama-3-70B skeleton on the `meta` device (bench/studio_bench.py):

- build the whole PeftModel on `meta` and count: exact for anything peft does, but 0.7 to
  1.7 s per click on 70B (attention to all-linear), far over a 100 ms click;
- a formula per method (r * (in + out) for LoRA, ...): fast, but retypes peft for each of
  its ~30 methods and drifts with every release.

So this room lets peft build its own layers, but only where the numbers can differ: one
meta copy of a module per (group, shape, rank, alpha) under the plan's config, cached; each
targeted module then costs a dictionary lookup. What does not depend on which modules are
targeted (virtual tokens of prompt learning, `modules_to_save` copies such as a classifier
head, all biases with `bias="all"`, a vector bank shared by all layers) comes from one
`get_peft_model` on a meta twin of the model per config. Tests check the sum against peft's
own `get_nb_trainable_parameters()` after `jp.apply`, exactly, on several architectures.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .._compat import pattern_key, peft_on_meta, tuner_defaults, unwrap_layer
from .modelmap import ModelMap, convert_like_peft, walk_layers

# config fields that only decide *which* modules are adapted; the rest shapes each layer
_SELECTION_FIELDS = (
    "target_modules",
    "layers_to_transform",
    "layers_pattern",
    "exclude_modules",
    "rank_pattern",
    "alpha_pattern",
)
_QUANTIZED_LINEAR = ("Linear4bit", "Linear8bitLt")
_COPY, _FREE = "jp_copy", "jp_free"
_COPY_LIMIT = 500_000_000  # parameters: a model this small may be copied to count a weight-built tuner
# options that add parameters outside the targeted modules: counted on the twin, once
_MODEL_WIDE = ("modules_to_save", "trainable_token_indices", "layer_replication")


@dataclass(frozen=True)
class Cost:
    """Parameters peft adds to the model: trainable, all (incl. frozen ones) and their bytes."""
    trainable: int = 0
    total: int = 0
    nbytes: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.trainable + other.trainable, self.total + other.total, self.nbytes + other.nbytes)

    def __sub__(self, other: Cost) -> Cost:
        return Cost(self.trainable - other.trainable, self.total - other.total, self.nbytes - other.nbytes)


@dataclass
class Count:
    """What a config adds to a model: the numbers peft's `get_nb_trainable_parameters` gives."""
    trainable: int
    """Trainable parameters of the PeftModel (peft's own count)."""
    total: int
    """All parameters of the PeftModel, adapters included (peft's count: 4-bit weights x2)."""
    added_bytes: int
    """Bytes of the parameters peft adds (adapters are fp32 by default, even on a bf16 base)."""
    per_group: dict[str, Cost] = field(default_factory=dict)
    """Adapter parameters by group role."""
    targeted: dict[str, int] = field(default_factory=dict)
    """Number of adapted modules by group role."""
    other: Cost = Cost()
    """What does not belong to one targeted module: virtual tokens, modules_to_save, shared banks."""
    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0


class ParamCounter:
    """Counts for one model; keeps its caches between clicks. Build once per ModelMap."""
    def __init__(self, model_map: ModelMap) -> None:
        self.model_map = model_map
        self.base_total = _peft_param_total(model_map.base_model)
        self._costs: dict[tuple[Any, ...], Cost] = {}
        self._sites: dict[str, tuple[Any, tuple[Any, ...]]] = {}
        self._modules: set[str] | None = None
        self._other: dict[str, Cost] = {}

    def rebind(self, model_map: ModelMap) -> None:
        """Follow a new snapshot of the same model (after Apply); per-shape costs stay valid."""
        self.model_map = model_map
        self.base_total = _peft_param_total(model_map.base_model)
        self._sites.clear()
        self._modules = None

    def count(self, config: Any, targets: list[str]) -> Count:
        """The Count for `config` (a peft config, rank/alpha patterns as peft patterns, as
        `adapt.check` gives it) adapting the paths `targets` (as `check` found them). Expert
        tensors come from the config's target_parameters, as peft resolves them."""
        config = prepared_config(config, self.model_map.base_model)
        fingerprint = _fingerprint(config)
        modules = self._module_paths()
        sites: list[tuple[str, str | None]] = [(path, None) for path in targets if path in modules]
        sites += self._parameter_targets(config)
        try:
            if self._additive(config, fingerprint, sites):
                return self._composed(config, fingerprint, sites)
        except (NotImplementedError, RuntimeError, AttributeError, TypeError, ValueError):
            pass  # a tuner that cannot be built on meta copies: count it whole (below)
        return self._whole(config, sites)

    def _composed(self, config: Any, fingerprint: str, sites: list[tuple[str, str | None]]) -> Count:
        """The count as a sum of cached per-module costs and the model-wide part."""
        per_group: dict[str, Cost] = {}
        targeted: dict[str, int] = {}
        for path, parameter in sites:
            role = self._role(path if parameter is None else f"{path}.{parameter}")
            per_group[role] = per_group.get(role, Cost()) + self._cost(config, fingerprint, path, parameter)
            targeted[role] = targeted.get(role, 0) + 1
        other = self._other_cost(config, fingerprint, sites[:1])
        added = sum(per_group.values(), Cost()) + other
        return Count(
            trainable=added.trainable,
            total=self.base_total + added.total,
            added_bytes=added.nbytes,
            per_group=per_group,
            targeted=targeted,
            other=other,
        )

    def _additive(self, config: Any, fingerprint: str, sites: list[tuple[str, str | None]]) -> bool:
        """Whether this config's cost is a sum over targeted modules: peft on a twin with two
        targets must add exactly the second one's probe to the twin with the first. Not so for
        tuners that share weights across layers or size them by the whole selection (LiLy's
        shared projections, TinyLoRA's global vector): those are counted whole. Cached per config."""
        if len(sites) < 2:
            return True
        key = f"{fingerprint}|additive"
        if key not in self._other:
            first, second = sites[0], sites[-1]
            one = self._twin_added(config, [first])
            two = self._twin_added(config, [first, second])
            self._other[key] = Cost(int(two - one == self._cost(config, fingerprint, *second)))
        return bool(self._other[key].trainable)

    def _twin_added(self, config: Any, sites: list[tuple[str, str | None]]) -> Cost:
        """What peft adds to a meta twin of the model with exactly `sites` targeted."""
        twin = meta_twin(self.model_map.base_model)
        peft_model, before = self._build(twin, _retarget_sites(copy.deepcopy(config), sites))
        trainable, total = peft_model.get_nb_trainable_parameters()
        return Cost(trainable, total - _peft_param_total_of(before.values()), _new_bytes(peft_model, before))

    def _whole(self, config: Any, sites: list[tuple[str, str | None]]) -> Count:
        """The count from peft on the whole model with every target: on a meta twin, or, for a
        tuner that initialises from the weights (FRoD, Shadow), on a real copy of a model small
        enough to copy. Per group: the new parameters under each group's modules."""
        from .._errors import PlanError

        wanted = _retarget_sites(copy.deepcopy(config), sites) if sites else copy.deepcopy(config)
        base = self.model_map.base_model
        try:
            peft_model, before = self._build(meta_twin(base), wanted)
        except (NotImplementedError, RuntimeError, AttributeError, TypeError, ValueError) as err:
            on_meta = any(p.is_meta for p in base.parameters())
            if on_meta or sum(p.numel() for p in base.parameters()) > _COPY_LIMIT:
                raise PlanError(
                    f"cannot count {config.peft_type.value.lower()} without its weights: peft builds it from "
                    f"them ({type(err).__name__}: {str(err)[:120]})"
                ) from None
            with _quiet():
                from peft import get_peft_model

                clone = copy.deepcopy(base)
                before = _param_ids(clone)
                peft_model = get_peft_model(clone, wanted)
        trainable, total = peft_model.get_nb_trainable_parameters()
        new = {n: p for n, p in peft_model.get_base_model().named_parameters(remove_duplicate=False)
               if id(p) not in before}
        per_group: dict[str, Cost] = {}
        targeted: dict[str, int] = {}
        for path, parameter in sites:
            role = self._role(path if parameter is None else f"{path}.{parameter}")
            targeted[role] = targeted.get(role, 0) + 1
            mine = [p for n, p in new.items() if n.startswith(path + ".")]
            per_group[role] = per_group.get(role, Cost()) + Cost(
                sum(_numel(p) for p in mine if p.requires_grad), sum(_numel(p) for p in mine),
                sum(_nbytes(p) for p in mine))
        added_total = total - _peft_param_total_of(before.values())
        grouped = sum(per_group.values(), Cost())
        other = Cost(trainable - grouped.trainable, added_total - grouped.total,
                     _new_bytes(peft_model, before) - grouped.nbytes)
        return Count(trainable=trainable, total=self.base_total + added_total,
                     added_bytes=_new_bytes(peft_model, before), per_group=per_group, targeted=targeted, other=other)

    @staticmethod
    def _build(twin: Any, config: Any) -> tuple[Any, dict[int, Any]]:
        before = _param_ids(twin)
        with _quiet():
            return peft_on_meta(twin, config), before

    def _role(self, site: str) -> str:
        group = self.model_map.group_of(site)
        return group.role if group is not None else site

    def _module_paths(self) -> set[str]:
        if self._modules is None:
            self._modules = {path for path, _ in self.model_map.base_model.named_modules()}
        return self._modules

    def _parameter_targets(self, config: Any) -> list[tuple[str, str]]:
        """(module path, parameter) pairs `target_parameters` selects, by peft's rule: the key
        `path.parameter` equals an entry or ends with `.entry`."""
        names = set(getattr(config, "target_parameters", None) or ())
        if not names:
            return []
        out = []
        for path, module in self.model_map.base_model.named_modules():
            for pname, _ in unwrap_layer(module).named_parameters(recurse=False):
                key = f"{path}.{pname}"
                if key in names or any(key.endswith(f".{n}") for n in names):
                    out.append((path, pname))
        return out

    # ---- one module or parameter -----------------------------------------------------------

    def _cost(self, config: Any, fingerprint: str, path: str, parameter: str | None) -> Cost:
        module, shape = self._site(path)
        site = path if parameter is None else f"{path}.{parameter}"
        key = (fingerprint, shape, parameter, *_pattern_values(config, site))
        cost = self._costs.get(key)
        if cost is None:
            cost = self._costs[key] = _probe(config, path, module, parameter)
        return cost

    def _site(self, path: str) -> tuple[Any, tuple[Any, ...]]:
        """The module at `path` and its class and parameter shapes (kept: asked on every click)."""
        site = self._sites.get(path)
        if site is None:
            module = unwrap_layer(self.model_map.base_model.get_submodule(path))
            site = self._sites[path] = (module, (type(module).__name__, *_shape_key(module)))
        return site

    # ---- what is not one module ------------------------------------------------------------

    def _other_cost(self, config: Any, fingerprint: str, sample: list[tuple[str, str | None]]) -> Cost:
        """Model-wide additions: peft on a meta twin of the model with at most one target,
        minus that target's own cost. Depends on the config only, so cached by it."""
        key = f"{fingerprint}|{bool(sample)}"
        cost = self._other.get(key)
        if cost is None:
            cost = self._other[key] = self._twin_cost(config, fingerprint, sample)
        return cost

    def _twin_cost(self, config: Any, fingerprint: str, sample: list[tuple[str, str | None]]) -> Cost:
        if not config.is_prompt_learning and not sample:
            return Cost()  # nothing targeted: nothing is applied, nothing added
        twin = meta_twin(self.model_map.base_model)
        twin_config = copy.deepcopy(config)  # peft edits the configs it is given (modules_to_save)
        if sample:
            path, parameter = sample[0]
            if parameter is None:
                _retarget(twin_config, path)
            else:
                _retarget(twin_config, None, [f"{path}.{parameter}"])
        before = _param_ids(twin)
        with _quiet():
            peft_model = peft_on_meta(twin, twin_config)
        trainable, total = peft_model.get_nb_trainable_parameters()
        added = Cost(trainable, total - _peft_param_total_of(before.values()), _new_bytes(peft_model, before))
        if sample:
            added = added - self._cost(config, fingerprint, *sample[0])
        return added


def _probe(config: Any, path: str, module: Any, parameter: str | None = None) -> Cost:
    """What peft adds to `module` at `path` (or to its `parameter`) under `config`, measured
    on meta copies.

    Three copies sit in one holder: at `path` and at `jp_copy.<path>`, both targeted, and at
    `jp_free`, not targeted. Path-dependent options (rank and alpha patterns, IA3's
    feedforward_modules) resolve as on the model; a parameter reachable from both targeted
    copies is shared by all adapted layers (a vector bank) and belongs to the model-wide
    part; a base parameter that is trainable in the untargeted copy too (`bias="all"`) is
    trainable whatever is targeted, and belongs there as well.
    """
    import torch.nn as nn

    holder = nn.Module()
    names = (path, f"{_COPY}.{path}", _FREE)
    copies = [_meta_module(module) for _ in names]
    for name, clone in zip(names, copies):
        _place(holder, name, clone)
    originals = [dict(c.named_parameters()) for c in copies]
    probe_config = copy.deepcopy(config)
    probe_config.task_type = None  # a bare holder: no task head, hence no classifier to save
    for name in _MODEL_WIDE:  # the twin counts these, once
        if hasattr(probe_config, name):
            setattr(probe_config, name, None)
    if parameter is None:  # a regex: as a list, `path` would also match `jp_copy.<path>` by suffix
        _retarget(probe_config, "(?:" + "|".join(re.escape(n) for n in names[:2]) + ")")
    else:
        _retarget(probe_config, None, [f"{n}.{parameter}" for n in names[:2]])
    with _quiet():
        peft_model = peft_on_meta(holder, probe_config)
    base = peft_model.get_base_model()
    mine = {id(p): p for p in base.get_submodule(path).parameters()}
    shared = {id(p) for p in base.get_submodule(names[1]).parameters()}
    free_trainable = {n for n, p in originals[2].items() if p.requires_grad}
    base_ids = {id(p) for p in originals[0].values()}
    new = [p for i, p in mine.items() if i not in shared and i not in base_ids]
    unfrozen = [p for n, p in originals[0].items() if p.requires_grad and n not in free_trainable]
    trainable = sum(_numel(p) for p in new if p.requires_grad) + sum(_numel(p) for p in unfrozen)
    return Cost(trainable, sum(_numel(p) for p in new), sum(_nbytes(p) for p in new))


def _retarget_sites(config: Any, sites: list[tuple[str, str | None]]) -> Any:
    """`config` adapting exactly these (module path, parameter) sites."""
    paths = [re.escape(p) for p, parameter in sites if parameter is None]
    parameters = [f"{p}.{parameter}" for p, parameter in sites if parameter is not None]
    _retarget(config, "(?:" + "|".join(paths) + ")" if paths else None, parameters or None)
    if not paths and hasattr(config, "target_modules"):
        config.target_modules = []
    return config


def _retarget(config: Any, modules: str | None, parameters: list[str] | None = None) -> Any:
    """`config` (a copy) adapting exactly the module path `modules` (a path, or a regex when it
    starts with "(?:") or the parameter keys `parameters`, whatever its selection fields said.
    A plain path goes in as a one-entry list: peft widens a regex to names on MoE models."""
    if modules is not None:
        config.target_modules = modules if modules.startswith("(?:") else [modules]
    else:
        config.target_modules = None
    if hasattr(config, "target_parameters"):
        config.target_parameters = parameters
    for name in ("layers_to_transform", "layers_pattern", "exclude_modules"):
        if hasattr(config, name):
            setattr(config, name, None)
    return config


def prepared_config(config: Any, model: Any) -> Any:
    """A copy of `config` as get_peft_model will see it on `model`: peft's transformers-5 MoE
    conversion, then the tuner's own defaults for the model type (IA3's feedforward_modules...)."""
    if getattr(config, "is_prompt_learning", False):
        return config
    config = copy.deepcopy(config)
    convert_like_peft(config, model)
    return tuner_defaults(config, model)


def _place(holder: Any, path: str, module: Any) -> None:
    """Put `module` at dotted `path` inside `holder`, creating empty parents on the way."""
    import torch.nn as nn

    *parents, leaf = path.split(".")
    node = holder
    for name in parents:
        if name not in node._modules:
            node.add_module(name, nn.Module())
        node = node._modules[name]
    node.add_module(leaf, module)


# ---- meta copies --------------------------------------------------------------------------


def _meta_module(module: Any) -> Any:
    """A copy of `module` with every tensor on `meta`; quantized linears become nn.Linear of
    the same logical shape (peft adds the same parameters; a meta Params4bit cannot be built)."""
    import torch.nn as nn

    module = unwrap_layer(module)
    if type(module).__name__ in _QUANTIZED_LINEAR:
        return nn.Linear(module.in_features, module.out_features, bias=module.bias is not None, device="meta")
    return meta_twin(module)


def meta_twin(model: Any) -> Any:
    """A structural copy of `model` on the `meta` device: same classes, paths, shapes and
    dtypes, shared tensors still shared, adapter layers replaced by their base layers. Costs no
    memory; the model itself is not touched (hook and child tables are copied, not shared)."""
    return _twin(model, {})


def _twin(module: Any, memo: dict[int, Any]) -> Any:
    import torch.nn as nn

    module = unwrap_layer(module)  # the layer under an adapter or modules_to_save wrapper
    if id(module) in memo:
        return memo[id(module)]
    if type(module).__name__ in _QUANTIZED_LINEAR:
        clone = nn.Linear(
            module.in_features, module.out_features, bias=module.bias is not None, device="meta"
        )
        memo[id(module)] = clone
        return clone
    clone = copy.copy(module)
    memo[id(module)] = clone
    for key, value in list(clone.__dict__.items()):
        if isinstance(value, (dict, list, set)):  # hooks, tables: never share mutable state
            clone.__dict__[key] = copy.copy(value)
    clone._parameters = {k: _meta_param(v, memo) for k, v in module._parameters.items()}
    clone._buffers = {k: (v.to("meta") if v is not None else None) for k, v in module._buffers.items()}
    clone._modules = {k: (_twin(v, memo) if v is not None else None) for k, v in module._modules.items()}
    if "config" in clone.__dict__ and hasattr(clone.config, "to_dict"):
        clone.__dict__["config"] = copy.deepcopy(clone.config)  # peft may set fields on it
    return clone


def _meta_param(param: Any, memo: dict[int, Any]) -> Any:
    import torch
    import torch.nn as nn

    if param is None:
        return None
    if id(param) not in memo:
        dtype = param.dtype if param.is_floating_point() else torch.float32
        memo[id(param)] = nn.Parameter(
            torch.empty(param.shape, dtype=dtype, device="meta"), param.requires_grad
        )
    return memo[id(param)]


# ---- small helpers ------------------------------------------------------------------------


def _fingerprint(config: Any) -> str:
    """The config's fields that shape one adapter layer, as a stable string."""
    data = {k: v for k, v in config.to_dict().items() if k not in _SELECTION_FIELDS}
    return json.dumps(
        data, sort_keys=True, default=lambda v: sorted(map(str, v)) if isinstance(v, set) else str(v)
    )


def _pattern_values(config: Any, path: str) -> tuple[str, ...]:
    """The rank and alpha pattern keys `path` falls under (peft's own lookup), as a cache key."""
    out = []
    for name in ("rank_pattern", "alpha_pattern"):
        pattern = getattr(config, name, None)
        if not pattern:
            out.append(f"{name}=-")
            continue
        key = pattern_key(list(pattern), path)
        out.append(f"{name}={pattern[key]!r}" if key in pattern else f"{name}=-")
    return tuple(out)


def _shape_key(module: Any) -> tuple[Any, ...]:
    return tuple((k, tuple(p.shape), str(p.dtype)) for k, p in module.named_parameters())


def _param_ids(model: Any) -> dict[int, Any]:
    return {id(p): p for p in model.parameters()}


def _numel(p: Any) -> int:
    return int(p.numel())


def _nbytes(p: Any) -> int:
    return int(p.numel() * p.element_size())


def _new_bytes(model: Any, before: dict[int, Any]) -> int:
    return sum(_nbytes(p) for p in model.parameters() if id(p) not in before)


def _peft_param_total(model: Any) -> int:
    """The model's own parameters as peft counts them (`get_nb_trainable_parameters`: a 4-bit
    weight packs two values per byte of its storage dtype, so numel * 2 * itemsize), without
    the adapters it may carry already (re-planning an applied model replaces them)."""
    own: dict[int, Any] = {}
    for _, module in walk_layers(model):  # adapter layers and wrappers as their original layer
        for p in unwrap_layer(module)._parameters.values():
            if p is not None:
                own[id(p)] = p
    return _peft_param_total_of(own.values())


def _peft_param_total_of(params: Any) -> int:
    total = 0
    for p in params:
        n = p.numel()
        if p.__class__.__name__ == "Params4bit":
            quant_storage = getattr(p, "quant_storage", None)
            itemsize = (
                p.element_size()
                if hasattr(p, "element_size")
                else (quant_storage.itemsize if quant_storage else 1)
            )
            n *= 2 * itemsize
        total += n
    return total


class _quiet:
    """peft warns about meta devices and re-wrapping; the probes are ours, not the user's."""
    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)
