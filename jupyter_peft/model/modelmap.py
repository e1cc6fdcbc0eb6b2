"""`ModelMap`: a model's adaptable modules grouped by role, and what a target pattern selects.

Groups come from the module tree: `model.layers.7.self_attn.q_proj` belongs to the group
whose template is `model.layers.*.self_attn.q_proj` and whose role is `self_attn.q_proj`
(the path inside the layer; longer where that alone would be ambiguous, e.g. a vision
tower's `self_attn.q_proj`). Matching uses peft's own functions, so a preview shows exactly
what `get_peft_model` will adapt.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .._compat import (
    base_model,
    convert_for_transformers,
    expand_all_linear,
    targets,
    tuner_defaults,
    unwrap_layer,
    with_task_saves,
)
from .._errors import PlanError
from ..plan.methods import can_target
from ..plan.plan import Plan
from ..session import session

# Where in a multimodal model a module lives, by a word in its path.
_SECTIONS = (
    ("vision", re.compile(r"(^|\.)(vision\w*|visual\w*|image\w*|vit|patch_embed\w*|img\w*)(\.|$)")),
    ("audio", re.compile(r"(^|\.)(audio\w*|speech\w*|whisper\w*)(\.|$)")),
    ("projector", re.compile(r"(^|\.)(\w*projector\w*|connector|mm_proj\w*)(\.|$)")),
)
_HEAD_NAMES = ("lm_head", "score", "classifier", "qa_outputs", "cls", "pooler")
_NORM = re.compile(r"norm", re.IGNORECASE)
# Classes peft's all-linear picks (besides adapter layers named like "Linear...")
_LINEAR_KINDS = ("Linear", "Conv1D", "Linear4bit", "Linear8bitLt", "NonDynamicallyQuantizableLinear")
METHODS_SHOWN = ("lora", "dora", "ia3", "loha", "lokr", "adalora", "vera", "oft", "boft", "ln_tuning")


@dataclass
class Group:
    """Modules that play one role in every layer (e.g. `self_attn.q_proj` x 32)."""
    role: str
    """Unique name of the group; a rank or target key (`self_attn.q_proj`)."""
    name: str
    """The last path part (`q_proj`): what `target_modules: [q_proj]` names."""
    template: str
    """The full path with layer indices as `*` (`model.layers.*.self_attn.q_proj`)."""
    kind: str
    """Module class name (`Linear`, `Conv1D`, `Linear4bit`, `MixtralExperts`...)."""
    section: str
    """language | vision | audio | projector | embedding | head | norm."""
    paths: list[str] = field(default_factory=list)
    """Full module paths; for fused expert tensors, parameter paths (`...experts.gate_up_proj`)."""
    layers: list[int | None] = field(default_factory=list)
    shape: tuple[int, ...] = ()
    """Logical weight shape, (out, in) for linear layers (same for every member, see `shapes`)."""
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    dtype: str = ""
    """Storage dtype: float32, bfloat16, nf4, fp4, int8..."""
    params: int = 0
    """Logical parameter count over the whole group."""
    nbytes: int = 0
    """Bytes the group's weights take in memory as stored (packed for 4-bit)."""
    linear: bool = False
    """Whether peft's `all-linear` includes this group."""
    parameter: str | None = None
    """For fused expert tensors: the parameter name (targeted with `target_parameters`)."""
    adapted: bool = False
    """Whether the modules already carry an adapter layer."""
    shared: bool = False
    """Whether the weights are tied to an earlier group's (e.g. lm_head to the embeddings)."""
    @property
    def count(self) -> int:
        return len(self.paths)

    @property
    def pattern(self) -> str:
        """A regex that peft-fullmatches exactly this group's module paths."""
        return role_pattern(self.template)

    @property
    def methods(self) -> list[str]:
        """Methods that can adapt this group, asked of peft (see `methods.can_target`)."""
        if self.parameter is not None:
            return ["lora", "dora"]
        return [m for m in METHODS_SHOWN if can_target(m, self.kind)]

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "name": self.name,
            "template": self.template,
            "kind": self.kind,
            "section": self.section,
            "count": self.count,
            "layers": self.layers,
            "shape": list(self.shape),
            "uniform": len(set(self.shapes)) <= 1,
            "dtype": self.dtype,
            "params": self.params,
            "nbytes": self.nbytes,
            "linear": self.linear,
            "parameter": self.parameter,
            "adapted": self.adapted,
            "shared": self.shared,
        }


def role_pattern(role_or_template: str) -> str:
    """The regex for a role or template: dots literal, a `*` part is a layer index."""
    return r"\.".join(r"\d+" if part == "*" else re.escape(part) for part in role_or_template.split("."))


class ModelMap:
    """The adaptable modules of `model`, grouped by role. Build with `jp.inspect(model)`."""
    def __init__(self, model: Any, groups: list[Group], total_params: int, task_type: str | None) -> None:
        self.model = model
        self.groups = groups
        self.total_params = total_params
        self.task_type = task_type
        self._by_role = {g.role: g for g in groups}
        self._by_path = {p: g for g in groups for p in g.paths}
        # a ModelMap is a snapshot: what a pattern matches is kept (the studio asks the same
        # questions on every click, and a 70B model has a thousand modules to walk)
        self._matched: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        kinds = sorted({g.kind for g in self.groups})
        return (
            f"ModelMap({type(self.model).__name__}: {len(self.groups)} groups, "
            f"{sum(g.count for g in self.groups)} modules, {self.total_params:,} params; kinds: {', '.join(kinds)})"
        )

    def __iter__(self) -> Iterator[Group]:
        return iter(self.groups)

    def __getitem__(self, role: str) -> Group:
        return self._by_role[role]

    @property
    def roles(self) -> list[str]:
        return [g.role for g in self.groups]

    def group_of(self, path: str) -> Group | None:
        """The group a full module path belongs to (or a parameter path such as
        `...mlp.gate.weight`, which peft wraps through `target_parameters`)."""
        found = self._by_path.get(path)
        if found is None and "." in path:
            found = self._by_path.get(path.rsplit(".", 1)[0])
        return found

    def match(self, targets: Any, **config: Any) -> list[str]:
        """The full paths `targets` selects, by peft's own rules, in model order.

        `targets` is a `target_modules` value (names, a regex string, "all-linear"), or a Plan
        (its method's config decides, with exclude_modules, layers_to_transform, ...). Extra
        keyword arguments are peft config fields (exclude_modules=..., target_parameters=...).
        Fused expert tensors that peft adapts through `target_parameters` (which peft also
        derives from module names on MoE models) appear as parameter paths
        (`...mlp.experts.gate_up_proj`).
        """
        from peft import LoraConfig

        if isinstance(targets, Plan):
            return self.match_config(targets.peft_config(task_type=self.task_type))
        key = json.dumps([targets, config], sort_keys=True, default=repr)
        if key not in self._matched and isinstance(targets, str) and targets.lower() != "all-linear":
            from ..plan.plan import check_pattern

            check_pattern(targets, "target_modules")  # a catastrophic regex must not hang the kernel
        if key not in self._matched:
            task_type = config.pop("task_type", self.task_type)
            self._matched[key] = self.match_config(LoraConfig(target_modules=targets, task_type=task_type, **config))
        return list(self._matched[key])

    def match_config(self, peft_config: Any) -> list[str]:
        """What `get_peft_model(model, peft_config)` wraps, in model order: peft's own preparation
        first (the transformers-5 MoE conversion, the tuner's default targets for this model type,
        `all-linear`, the heads a task type saves whole), then the tuner's own check per module
        and the `target_parameters`. A config peft would refuse is a PlanError saying why."""
        try:
            return _peft_matches(copy.deepcopy(peft_config), self.base_model)
        except ValueError as err:  # peft's refusals: no default targets, a partly fused MoE target...
            if isinstance(err, PlanError):
                raise
            raise self._refusal(peft_config, err) from None

    def _refusal(self, peft_config: Any, err: ValueError) -> PlanError:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if peft_config.target_modules is None:
            model_type = getattr(getattr(self.base_model, "config", None), "model_type", None)
            return PlanError(
                f"peft has no default targets for {model_type or type(self.base_model).__name__}: "
                "set target_modules (or target_parameters)",
                key="target_modules",
                choices=self.group_choices(),
            )
        return PlanError(
            f"peft cannot adapt this selection of {type(self.base_model).__name__}: {text}",
            key="target_modules",
            value=peft_config.target_modules,
            choices=self.group_choices(),
        )

    def group_choices(self) -> list[str]:
        """What `target_modules` can name here: all-linear, then the linear groups' names and roles."""
        linear = [g for g in self.groups if g.linear]
        names = list(dict.fromkeys(g.name for g in linear))
        return ["all-linear", *names, *[g.role for g in linear if g.role not in names]]

    def resolve(self, targets: Any, **config: Any) -> dict[str, list[str]]:
        """Matched paths by group role (paths outside any group under "")."""
        out: dict[str, list[str]] = {}
        for path in self.match(targets, **config):
            group = self.group_of(path)
            out.setdefault(group.role if group else "", []).append(path)
        return out

    def targets_for(self, paths: Iterable[str]) -> list[str] | str:
        """The shortest readable `target_modules` value that selects exactly `paths`.

        Module names (`[q_proj, v_proj]`) when they select nothing else; else roles that are
        plain path suffixes; else a short regex, one part per layer choice with the groups in it
        (`model\\.layers\\.\\d+\\.self_attn\\.(q_proj|v_proj)|model\\.layers\\.[1-5]\\.mlp\\.down_proj`:
        peft fullmatches a string); else the full paths. (The studio also tries names with
        `layers_to_transform` before the regex: ui/studio/draft.py.)
        """
        wanted = list(dict.fromkeys(paths))
        if not wanted:
            raise PlanError("no modules selected: tick at least one group or layer", key="target_modules")
        want = set(wanted)
        names = sorted({p.rsplit(".", 1)[-1] for p in wanted})
        if set(self.match(names)) == want:
            return names
        groups = [self.group_of(p) for p in wanted]
        roles = sorted({g.role for g in groups if g is not None})
        if all(g is not None for g in groups) and "*" not in "".join(roles) and set(self.match(roles)) == want:
            return roles
        regex = _short_regex(wanted, self)
        if regex is not None and set(self.match(regex)) == want:
            return regex
        return sorted(wanted)  # full paths: on MoE models peft widens a regex to module names

    @property
    def base_model(self) -> Any:
        """The model peft's tuner walks (the base of a PeftModel, else the model)."""
        return base_model(self.model)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": type(self.model).__name__,
            "total_params": self.total_params,
            "task_type": self.task_type,
            "groups": [g.to_json() for g in self.groups],
        }


def _peft_matches(peft_config: Any, model: Any) -> list[str]:
    """What peft's inject_adapter would wrap: the same config rewrites, in the same order
    (get_peft_model's task heads, the transformers-5 conversion, the tuner's defaults,
    all-linear), then the same checks."""
    if getattr(peft_config, "is_prompt_learning", False) or not hasattr(peft_config, "target_modules"):
        return []
    with_task_saves(peft_config)
    convert_like_peft(peft_config, model)
    peft_config = tuner_defaults(peft_config, model)
    if peft_config.target_modules is None and not getattr(peft_config, "target_parameters", None):
        return []
    peft_config = expand_all_linear(peft_config, model)
    wanted_params = sorted(getattr(peft_config, "target_parameters", None) or [])
    found: list[str] = []
    for path, module in walk_layers(model):
        if path and peft_config.target_modules is not None and targets(peft_config, path):
            found.append(path)
        for pname in module._parameters if wanted_params else ():
            key = f"{path}.{pname}"
            if key in wanted_params or any(key.endswith(f".{t}") for t in wanted_params):
                found.append(key)
    return found


def convert_like_peft(peft_config: Any, model: Any) -> None:
    """peft's first step on transformers 5, on `peft_config` in place: on MoE models whose layout
    changed from v4 (Mixtral, Qwen2-MoE), module names become `target_parameters` and a regex
    target is resolved to leaf names (so a one-layer regex then adapts every layer)."""
    if not hasattr(getattr(model, "config", None), "model_type"):
        return

    convert_for_transformers(peft_config, model, session().conversions)


def _short_regex(paths: list[str], model_map: ModelMap) -> str | None:
    """One short regex (fullmatch) for exactly `paths`, or None: per layer choice (every layer,
    or some: `[1-5]`, `(2|7|11)`) the groups' paths after it, shared parts written once; it must
    pass the plan's own pattern checks (length, open-ended repeats)."""
    from ..plan.plan import check_pattern

    pieces: dict[tuple[str, str], list[list[str]]] = {}  # (head, layers) -> the tails' parts
    by_group: dict[str, list[str]] = {}
    for p in paths:
        g = model_map.group_of(p)
        if g is None or p not in g.paths:
            return None
        by_group.setdefault(g.role, []).append(p)
    for role, members in by_group.items():
        g = model_map[role]
        if "*" not in g.template.split("."):
            head, layers, tail = re.escape(g.template), "", []
        else:
            before, after = g.template.split("*", 1)
            head, tail = role_pattern(before.rstrip(".")), [role_pattern(t) for t in after.strip(".").split(".") if t]
            if set(members) == set(g.paths):
                layers = r"\d+"
            else:
                found = [i for i in layer_indices(members) if i is not None]
                if len(found) != len(members):
                    return None
                layers = _layers_regex(sorted(set(found)))
        pieces.setdefault((head, layers), []).append(tail)
    parts = []
    for (head, layers), tails in pieces.items():
        body = _trie_regex(tails)
        if body is None:
            return None
        parts.append(r"\.".join(filter(None, [head, layers, body])))
    regex = "|".join(parts)
    try:
        check_pattern(regex, "target_modules")
    except PlanError:
        return None
    return regex


def _layers_regex(layers: list[int]) -> str:
    """Layer indices as a regex: [1-5] for a run of one-digit layers, else (2|7|11)."""
    if len(layers) == 1:
        return str(layers[0])
    if layers[-1] < 10 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"[{layers[0]}-{layers[-1]}]"
    return "(" + "|".join(map(str, layers)) + ")"


def _trie_regex(tails: list[list[str]]) -> str | None:
    r"""Dotted paths (each a list of escaped parts) as one regex, shared leading parts once:
    [[self_attn, q_proj], [self_attn, v_proj], [mlp, up_proj]] -> (self_attn\.(q_proj|v_proj)|mlp\.up_proj).
    None where one path is a prefix of another (no short form)."""
    if all(not t for t in tails):
        return ""
    if any(not t for t in tails):
        return None
    heads: dict[str, list[list[str]]] = {}
    for t in tails:
        heads.setdefault(t[0], []).append(t[1:])
    branches = []
    for head, rest in heads.items():
        sub = _trie_regex(rest)
        if sub is None:
            return None
        branches.append(head + (r"\." + sub if sub else ""))
    return branches[0] if len(branches) == 1 else "(" + "|".join(branches) + ")"


_INDEX = re.compile(r"\.(\d+)(?=\.|$)")


def layer_indices(paths: Iterable[str]) -> list[int | None]:
    """The layer index of each path: its first numbered part, as peft's layers_to_transform."""
    out: list[int | None] = []
    for p in paths:
        m = _INDEX.search("." + p)
        out.append(int(m.group(1)) if m else None)
    return out


def walk_layers(model: Any) -> Iterator[tuple[str, Any]]:
    """named_modules(), treating an adapter layer or wrapper as one module (innards skipped)."""
    skip: str | None = None
    for name, module in model.named_modules():
        if skip is not None and name.startswith(skip):
            continue
        skip = None
        yield name, module
        if unwrap_layer(module) is not module:
            skip = name + "."


def inspect(model: Any) -> ModelMap:
    """The ModelMap of `model` (any torch module; a PeftModel is inspected through its base)."""
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        raise PlanError(f"expected a torch model (nn.Module), got {type(model).__name__}")
    base = base_model(model)
    output_emb = _output_embedding(base)
    input_emb = _input_embedding(base)
    by_template: dict[str, Group] = {}
    seen: set[int] = set()  # parameter ids already counted: tied weights are stored once
    for path, module in walk_layers(base):
        if not path:
            continue
        layer = unwrap_layer(module)
        adapted = layer is not module
        own = {k: v for k, v in layer._parameters.items() if v is not None}
        if not own:
            continue
        shared = any(id(v) in seen for v in own.values())
        seen.update(id(v) for v in own.values())
        template = _INDEX.sub(".*", "." + path)[1:]
        experts = {k: v for k, v in own.items() if v.dim() >= 3} if "Expert" in type(layer).__name__ else {}
        if experts:  # fused expert tensors: one group per parameter
            for pname, tensor in experts.items():
                _add(by_template, f"{template}.{pname}", f"{path}.{pname}", layer, "experts", tensor, pname)
            continue
        section = _section(path, module, output_emb, input_emb)
        _add(by_template, template, path, layer, section, None, None, adapted=adapted, shared=shared)
    groups = list(by_template.values())
    _name_roles(groups)
    total = sum(p.numel() for p in model.parameters())
    return ModelMap(model, groups, total, _task_type(base))


def _add(
    by_template: dict[str, Group],
    template: str,
    path: str,
    layer: Any,
    section: str,
    tensor: Any,
    parameter: str | None,
    adapted: bool = False,
    shared: bool = False,
) -> None:
    kind = type(layer).__name__
    if tensor is not None:
        shape, params, nbytes, dtype = tuple(tensor.shape), tensor.numel(), tensor_bytes(tensor), _dtype(layer, tensor)
    else:
        shape, params, nbytes, dtype = _weight_facts(layer)
    group = by_template.get(template)
    if group is None:
        group = by_template[template] = Group(
            role=template,
            name=template.rsplit(".", 1)[-1],
            template=template,
            kind=kind,
            section=section,
            shape=shape,
            dtype=dtype,
            linear=(kind in _LINEAR_KINDS or _is_linear(layer)) and section != "head",
            parameter=parameter,
            adapted=adapted,
            shared=shared,
        )
    group.paths.append(path)
    group.layers.append(layer_indices([path])[0])
    group.shapes.append(shape)
    group.params += params
    group.nbytes += nbytes


def _is_linear(layer: Any) -> bool:
    """A subclass of nn.Linear (FalconLinear...) is linear to peft's all-linear too."""
    import torch.nn as nn

    return isinstance(layer, nn.Linear)


def _weight_facts(layer: Any) -> tuple[tuple[int, ...], int, int, str]:
    """(logical shape, logical params, stored bytes, storage dtype) of one module."""
    own = [v for v in layer._parameters.values() if v is not None]
    weight = layer._parameters.get("weight")
    nbytes = sum(tensor_bytes(p) for p in own)
    quant_state = getattr(weight, "quant_state", None)
    if quant_state is not None:  # 4-bit: absmax (and its own quantization) stored beside
        nbytes += quant_state_bytes(quant_state)
    if hasattr(layer, "in_features") and hasattr(layer, "out_features"):
        shape: tuple[int, ...] = (layer.out_features, layer.in_features)
        params = layer.out_features * layer.in_features
        bias = layer._parameters.get("bias")
        params += bias.numel() if bias is not None else 0
    else:
        shape = tuple(weight.shape) if weight is not None else tuple(own[0].shape)
        if type(layer).__name__ == "Conv1D":  # GPT-2 stores (in, out)
            shape = (shape[1], shape[0])
        params = sum(p.numel() for p in own)
    return shape, params, nbytes, _dtype(layer, weight if weight is not None else own[0])


def quant_state_bytes(qs: Any) -> int:
    total = 0
    for attr in ("absmax", "code"):
        t = getattr(qs, attr, None)
        total += tensor_bytes(t) if t is not None else 0
    nested = getattr(qs, "state2", None)
    return total + (quant_state_bytes(nested) if nested is not None else 0)


def tensor_bytes(t: Any) -> int:
    return int(t.numel() * t.element_size())


def _dtype(layer: Any, weight: Any) -> str:
    kind = type(layer).__name__
    if kind == "Linear4bit" or type(weight).__name__ == "Params4bit":
        return str(
            getattr(weight, "quant_type", None) or getattr(getattr(weight, "quant_state", None), "quant_type", "nf4")
        )
    if kind == "Linear8bitLt" or type(weight).__name__ == "Int8Params":
        return "int8"
    return str(weight.dtype).replace("torch.", "")


def _section(path: str, module: Any, output_emb: Any, input_emb: Any) -> str:
    if module is output_emb or path.split(".", 1)[0] in _HEAD_NAMES:
        return "head"
    for section, pattern in _SECTIONS:
        if pattern.search(path):
            return section
    kind = type(module).__name__
    if module is input_emb or "Embedding" in kind:
        return "embedding"
    if _NORM.search(kind):
        return "norm"
    return "language"


def _output_embedding(model: Any) -> Any:
    getter = getattr(model, "get_output_embeddings", None)
    try:
        return getter() if getter else None
    except (NotImplementedError, AttributeError):
        return None


def _input_embedding(model: Any) -> Any:
    getter = getattr(model, "get_input_embeddings", None)
    try:
        return getter() if getter else None
    except (NotImplementedError, AttributeError):
        return None


def _name_roles(groups: list[Group]) -> None:
    """Role = the path inside the layer (after the last index), lengthened until unique."""
    def suffix(template: str, n: int) -> str:
        return ".".join(template.split(".")[-n:])

    def initial(template: str) -> int:
        parts = template.split(".")
        if "*" not in parts:
            return len(parts)  # not inside a layer stack: the full path
        return max(len(parts) - 1 - max(i for i, p in enumerate(parts) if p == "*"), 1)

    sizes = {g.template: initial(g.template) for g in groups}
    while True:
        seen: dict[str, list[Group]] = {}
        for g in groups:
            seen.setdefault(suffix(g.template, sizes[g.template]), []).append(g)
        clashes = [gs for gs in seen.values() if len(gs) > 1]
        if not clashes:
            break
        for gs in clashes:
            for g in gs:
                sizes[g.template] = min(sizes[g.template] + 1, len(g.template.split(".")))
        if all(sizes[g.template] == len(g.template.split(".")) for gs in clashes for g in gs):
            break  # full templates are unique by construction
    for g in groups:
        g.role = suffix(g.template, sizes[g.template])


def _task_type(model: Any) -> str | None:
    """peft's task type for a transformers model, from its class name."""
    name = type(model).__name__
    config = getattr(model, "config", None)
    table = (
        ("ForCausalLM", "CAUSAL_LM"),
        ("LMHeadModel", "CAUSAL_LM"),
        ("ForSequenceClassification", "SEQ_CLS"),
        ("ForTokenClassification", "TOKEN_CLS"),
        ("ForQuestionAnswering", "QUESTION_ANS"),
        ("ForSeq2SeqLM", "SEQ_2_SEQ_LM"),
    )
    for suffix, task in table:
        if name.endswith(suffix):
            return task
    if name.endswith("ForConditionalGeneration"):
        return "SEQ_2_SEQ_LM" if getattr(config, "is_encoder_decoder", False) else "CAUSAL_LM"
    if name.endswith("Model") and config is not None:
        return "FEATURE_EXTRACTION"
    return None
