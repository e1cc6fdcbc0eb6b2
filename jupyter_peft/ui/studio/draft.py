"""`Draft`: the studio's editable plan, as the user builds it click by click.

A Draft holds what the studio's controls show: the method, the options the user set, which
members of which group are ticked, and a rank and alpha per group. It turns into a `Plan`
(`draft.plan()`) and back (`Draft.from_plan`), so the widget, `%%peft` text and the Python
API all speak the same value. Every edit is checked before it is kept: a bad value raises a
PlanError naming the key, and the draft stays as it was.

Module groups become the shortest readable `target_modules`: names where they select exactly
the ticks; else names with `layers_to_transform` (and `layers_pattern` where peft needs it)
when every ticked group has the same layers ticked; else `ModelMap.targets_for` (roles, a short
regex per layer choice, full paths). Groups of fused expert tensors become LoRA's
`target_parameters`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

from ..._errors import PlanError, unknown
from ...model.adapt import default_targets, match_options
from ...model.modelmap import Group, ModelMap
from ...plan import methods
from ...plan.plan import Plan

PRESETS = ("attention", "mlp", "all-linear", "none")
# which part of a transformer block a group belongs to, by the words in its path
_ATTENTION = re.compile(r"(^|\.)(\w*attn\w*|\w*attention\w*)(\.|$)", re.IGNORECASE)
_MLP = re.compile(
    r"(^|\.)(mlp|ffn|feed_?forward|densereludense|intermediate|experts?|moe|block_sparse_moe|shared_experts?|"
    r"c_fc|fc\d|dense_h_to_4h|dense_4h_to_h|gate_proj|up_proj|down_proj|gate_up_proj)(\.|$)",
    re.IGNORECASE,
)
_PLAN_CARRIED = ("quantization", "base", "adapter_name", "train")
_LAYER_KEYS = ("layers_to_transform", "layers_pattern")  # written from the ticks (see the docstring)
_QUANT_PREFIXES = ("bnb_", "llm_int8_")  # bitsandbytes options, flat in the plan's keys


def block_of(group: Group) -> str:
    """attention | mlp | other: the part of a transformer block the group sits in."""
    if _ATTENTION.search(group.template):
        return "attention"
    if _MLP.search(group.template) or group.role == "output.dense":  # BERT's MLP output
        return "mlp"
    return "other"


class Draft:
    """The studio's state for one model. Edit with the methods below; read with `plan()`."""
    def __init__(self, model_map: ModelMap, method: str = "lora") -> None:
        self.model_map = model_map
        self.method = methods.get(method).name
        self.options: dict[str, Any] = {}
        """Options the user set (by peft's names); unset ones keep peft's defaults."""
        self.picked: dict[str, set[int]] = {}
        """Group role -> indices into `group.paths` that are ticked."""
        self.ranks: dict[str, int] = {}
        self.alphas: dict[str, float] = {}
        self.patterns: dict[str, dict[str, Any]] = {"ranks": {}, "alphas": {}}
        """Rank and alpha keys of a loaded plan that are patterns, not groups: kept as written."""
        self.carried: dict[str, Any] = {}
        """Plan keys the studio does not edit (train, base, quantization...): kept as loaded."""
        # a loaded plan's own target_modules / target_parameters / layer options, with the ticks
        # they made: written back as they were while the ticks are unchanged (exact round trip)
        self._written: dict[str, tuple[frozenset[str], Any]] = {}
        self._derived: dict[frozenset[str], tuple[Any, dict[str, Any]]] = {}

    # ---- reading ---------------------------------------------------------------------------

    @property
    def spec(self) -> methods.Method:
        return methods.get(self.method)

    def paths(self) -> list[str]:
        """Ticked module paths, in model order (expert tensors excluded)."""
        return [p for g in self.model_map.groups if g.parameter is None for p in self._picked_paths(g)]

    def parameter_keys(self) -> list[str]:
        """Ticked expert tensors as peft's target_parameters entries."""
        keys: list[str] = []
        for g in self.model_map.groups:
            if g.parameter is None or not self.picked.get(g.role):
                continue
            if len(self.picked[g.role]) == g.count and self._suffix_is_exact(g):
                keys.append(g.role)  # peft matches entries as suffixes: every layer's tensor
            else:
                keys += self._picked_paths(g)  # expert groups' paths are parameter paths
        return keys

    def _suffix_is_exact(self, group: Group) -> bool:
        """Whether the role, as a target_parameters suffix, selects this group's tensors only."""
        if "*" in group.role:
            return False
        others = (p for g in self.model_map.groups if g.parameter and g is not group for p in g.paths)
        return not any(p == group.role or p.endswith(f".{group.role}") for p in others)

    def target_modules(self) -> list[str] | str | None:
        """The target_modules for the ticks: the loaded plan's own while they still hold
        (None: peft's default for the model); else the simplest value that selects them."""
        paths = self.paths()
        if not paths and self.parameter_keys():
            return None
        return self._targets_and_layers(paths)[0]

    def layer_options(self) -> dict[str, Any]:
        """`layers_to_transform` / `layers_pattern` the ticks are written with ({} where names
        or a pattern say it all, or the user set them as options)."""
        paths = self.paths()
        return self._targets_and_layers(paths)[1] if paths else {}

    def _targets_and_layers(self, paths: list[str]) -> tuple[Any, dict[str, Any]]:
        ticks = frozenset(paths)
        written = self._written.get("target_modules")
        if written is not None and written[0] == ticks:  # the loaded plan's (or the all-linear preset's)
            kept = self._written.get("layers")
            return copy.deepcopy(written[1]), copy.deepcopy(kept[1]) if kept and kept[0] == ticks else {}
        if ticks not in self._derived:
            self._derived = {ticks: self._derive(paths)}  # the last one: the ticks change click by click
        targets, layers = self._derived[ticks]
        return copy.deepcopy(targets), dict(layers)

    def _derive(self, paths: list[str]) -> tuple[Any, dict[str, Any]]:
        """names; else names + layers_to_transform (+ layers_pattern); else targets_for."""
        names = sorted({p.rsplit(".", 1)[-1] for p in paths})
        want = set(paths)
        if set(self.model_map.match(names)) == want:
            return names, {}
        if "layers_to_transform" in self.spec.options and not any(k in self.options for k in _LAYER_KEYS):
            for layers in _layer_forms(self.model_map, paths):
                if set(self.model_map.match(names, **layers)) == want:
                    return names, layers
        return self.model_map.targets_for(paths), {}

    def target_parameters(self) -> list[str] | None:
        keys = self.parameter_keys()
        return self._as_written("target_parameters", self._parameter_ticks(), lambda: keys or None)

    def plan(self) -> Plan:
        """The Plan these settings make; PlanError when they make none (nothing ticked...)."""
        spec = self.spec
        if spec.is_prompt_learning and self.options.get("num_virtual_tokens") is None:
            # peft would fail deep inside with a TypeError; it has no default for this one
            raise PlanError(
                f"{self.method} needs num_virtual_tokens: how many virtual tokens to learn (e.g. 20)",
                key="num_virtual_tokens",
            )
        data: dict[str, Any] = {"method": self.method, **self.options, **copy.deepcopy(self.carried)}
        if spec.targets_modules:
            for key, value in (
                ("target_parameters", self.target_parameters()),
                ("target_modules", self.target_modules()),
            ):
                if value is not None:
                    data[key] = value
            data.update(self.layer_options())
        ranks = {**self.patterns["ranks"], **{k: v for k, v in self.ranks.items() if self._is_picked(k)}}
        alphas = {**self.patterns["alphas"], **{k: v for k, v in self.alphas.items() if self._is_picked(k)}}
        if ranks and spec.has_rank_pattern:
            data["ranks"] = ranks
        if alphas and spec.has_alpha_pattern:
            data["alphas"] = alphas
        return Plan.from_dict(data)

    # ---- edits -----------------------------------------------------------------------------

    def pick(self, role: str, members: Iterable[int] | None = None, on: bool = True) -> None:
        """Tick (on) or untick the members of group `role` (all of them when None)."""
        group = self._group(role)
        chosen = set(range(group.count)) if members is None else set(members)
        bad = [i for i in chosen if not isinstance(i, int) or not 0 <= i < group.count]
        if bad:
            raise PlanError(f"group {role!r} has members 0..{group.count - 1}, not {bad[0]!r}", key=role)
        current = self.picked.get(role, set())
        self.picked[role] = (current | chosen) if on else (current - chosen)
        if not self.picked[role]:
            del self.picked[role]

    def pick_paths(self, paths: Iterable[str]) -> None:
        """Tick exactly the module paths `paths` (everything else unticked)."""
        self.picked = {}
        for path in paths:
            group = self.model_map.group_of(path)
            if group is not None and path in group.paths:  # not a router's `gate.weight` (no box)
                self.picked.setdefault(group.role, set()).add(group.paths.index(path))

    def preset(self, name: str) -> None:
        """attention, mlp: those linear groups of the language model; all-linear: what peft's
        all-linear adapts; none: nothing."""
        if name not in PRESETS:
            raise unknown("preset", name, PRESETS, key="preset")
        if name == "all-linear":
            self.pick_paths(self.model_map.match("all-linear"))
            self._written["target_modules"] = (frozenset(self.paths()), "all-linear")
            return
        self.picked = {}
        for g in self.model_map.groups:
            if name != "none" and g.linear and g.section == "language" and block_of(g) == name:
                self.pick(g.role)

    def set_method(self, name: str) -> None:
        """Switch method; options the new method lacks are dropped, ticks and ranks kept."""
        spec = methods.get(name, key="method")
        self.options = {k: v for k, v in self.options.items() if k in spec.options}
        self.method = spec.name

    def set_option(self, name: str, value: Any) -> None:
        """Set an option of the current method (None: back to peft's default)."""
        if value is None:
            self.options.pop(name, None)
            return
        value = methods.check_option(self.spec, name, value)
        trial = {**self.options, name: value}
        methods.build_config(self.spec, trial)  # peft's own cross-field checks, before keeping it
        self.options = trial

    def set_rank(self, role: str, value: Any) -> None:
        self._set_per_group(self.ranks, "ranks", role, value, int)

    def set_alpha(self, role: str, value: Any) -> None:
        self._set_per_group(self.alphas, "alphas", role, value, float)

    # ---- from a plan -----------------------------------------------------------------------

    @classmethod
    def from_plan(cls, model_map: ModelMap, plan: Plan) -> Draft:
        """The draft that shows `plan` on this model: its method and options, the modules it
        selects (by peft's matching), its ranks by group; what the studio does not edit is kept."""
        draft = cls(model_map, plan.method)
        options = dict(plan.options)
        params = options.pop("target_parameters", None)
        draft.options = options
        if plan.method_spec.targets_modules:
            # module paths and expert tensors, as peft resolves them (defaults, MoE renaming)
            targets = _targets_or_default(plan, model_map, bool(params))
            extra = {"target_parameters": params} if params else {}
            draft.pick_paths(model_map.match(targets, **extra, **match_options(options)))
            # layers_to_transform / layers_pattern beside target_modules say which ticks: the
            # tree's from now on (kept as written while the ticks are unchanged)
            layers = {k: options.pop(k) for k in _LAYER_KEYS if k in options and plan.target_modules is not None}
            draft._written = {
                "target_modules": (frozenset(draft.paths()), copy.deepcopy(plan.target_modules)),
                "target_parameters": (draft._parameter_ticks(), copy.deepcopy(params)),
                "layers": (frozenset(draft.paths()), layers),
            }
        for key, target in (("ranks", draft.ranks), ("alphas", draft.alphas)):
            for name, value in getattr(plan, key).items():
                (target if name in model_map.roles else draft.patterns[key])[name] = value
        every = plan.to_dict()
        draft.carried = {
            k: v for k, v in every.items() if k in _PLAN_CARRIED or k.startswith(_QUANT_PREFIXES)
        }
        return draft

    # ---- helpers ---------------------------------------------------------------------------

    def _group(self, role: str) -> Group:
        if role not in self.model_map.roles:
            raise unknown("group", role, self.model_map.roles, key=role)
        return self.model_map[role]

    def _picked_paths(self, group: Group) -> list[str]:
        return [group.paths[i] for i in sorted(self.picked.get(group.role, ()))]

    def _parameter_ticks(self) -> frozenset[str]:
        return frozenset(
            p for g in self.model_map.groups if g.parameter for p in self._picked_paths(g)
        )

    def _as_written(self, key: str, ticks: Any, make: Any) -> Any:
        written = self._written.get(key)
        if written is not None and written[0] == frozenset(ticks):
            return copy.deepcopy(written[1])
        return make()

    def _is_picked(self, role: str) -> bool:
        return bool(self.picked.get(role))

    def _set_per_group(self, table: dict[str, Any], key: str, role: str, value: Any, kind: type) -> None:
        self._group(role)
        if value is None or value == "":
            table.pop(role, None)
            return
        where = {"key": f"{key}.{role}", "value": value}
        if isinstance(value, str):
            try:
                value = kind(value)
            except ValueError:
                raise PlanError(f"{value!r} is not a number", **where) from None
        ok = isinstance(value, int) if kind is int else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or value <= 0:
            raise PlanError(
                f"{value!r} is not valid: expected a positive {'integer' if kind is int else 'number'}",
                **where,
            )
        table[role] = kind(value)


def _layer_forms(model_map: ModelMap, paths: list[str]) -> list[dict[str, Any]]:
    """`layers_to_transform` (alone, then with `layers_pattern`) for ticks that are the same
    layers of every ticked group; [] when the groups' layers differ or a group has none."""
    found: dict[str, set[int]] = {}
    patterns: set[str] = set()
    for path in paths:
        group = model_map.group_of(path)
        if group is None or "*" not in group.template.split("."):
            return []
        layer = group.layers[group.paths.index(path)] if path in group.paths else None
        if layer is None:
            return []
        found.setdefault(group.role, set()).add(layer)
        patterns.add(group.template.split(".*", 1)[0].rsplit(".", 1)[-1])  # model.layers.* -> layers
    chosen = {frozenset(v) for v in found.values()}
    if len(chosen) != 1:
        return []
    layers = sorted(next(iter(chosen)))
    forms: list[dict[str, Any]] = [{"layers_to_transform": layers}]
    if len(patterns) == 1:
        forms.append({"layers_to_transform": layers, "layers_pattern": next(iter(patterns))})
    return forms


def _targets_or_default(plan: Plan, model_map: ModelMap, has_parameters: bool) -> Any:
    """The plan's target_modules, else peft's default for the model (which peft adds even
    beside target_parameters); None where there is no default but expert tensors are named."""
    if plan.target_modules is not None:
        return plan.target_modules
    try:
        return default_targets(plan.method_spec, model_map, plan.options)
    except PlanError:
        if has_parameters:
            return None
        raise
