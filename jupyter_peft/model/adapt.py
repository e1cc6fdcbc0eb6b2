"""`apply(plan, model)`: check the plan against the model, then wrap the model with peft.

Everything is checked before the model is touched: the targets exist and the method can
adapt them, the rank keys select targeted modules, the quantization matches. Applying
again replaces the adapters the model carries (no nesting, no doubled trainable count);
a plan with `adapter_name` adds or replaces only that adapter. A quantized base is
prepared for k-bit training before its first adapter (`kbit.prepare`, once). If peft still
fails, the model's modules and trainable flags are put back as they were.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .._compat import adapter_layer_types, base_model, silence_library_noise
from .._errors import PlanError
from ..plan import methods
from ..plan.plan import Plan
from ..quant import kbit
from ..session import session
from .counting import prepared_config
from .modelmap import ModelMap, inspect, role_pattern
from .widths import check_widths

_WRAPPER = "_jupyter_peft_model"  # where a base keeps the PeftModel made of it


@dataclass
class Checked:
    """What `check` learned: everything apply needs, computed without touching the model."""
    plan: Plan
    model_map: ModelMap
    peft_model: Any  # the PeftModel the model already belongs to, or None
    targets: list[str]  # full module paths the adapter will wrap ([] for prompt learning)
    config: Any  # peft config, ready for get_peft_model


def as_plan(plan: Any) -> Plan:
    """A Plan from a Plan, YAML text or a mapping."""
    if isinstance(plan, Plan):
        return plan
    if isinstance(plan, str):
        return Plan.from_yaml(plan)
    if isinstance(plan, dict):
        return Plan.from_dict(plan)
    raise PlanError(f"expected a Plan, YAML text or a mapping, got {type(plan).__name__}")


def check(plan: Any, model: Any, model_map: ModelMap | None = None) -> Checked:
    """Check `plan` against `model` without changing anything; PlanError says what is wrong.

    `model_map`: the model's current ModelMap when the caller keeps one (the studio checks
    on every click and saves the walk over the model); inspected here otherwise."""
    import torch.nn as nn

    plan = as_plan(plan)
    if not isinstance(model, nn.Module):
        raise PlanError(f"expected a torch model (nn.Module), got {type(model).__name__}")
    spec = plan.method_spec
    check_idle(model)  # replacing adapters under a training thread would break it
    existing = find_peft_model(model)
    if model_map is None:
        model_map = inspect(existing if existing is not None else model)
    _check_quantization(plan, model_map)

    targets: list[str] = []
    if spec.targets_modules:
        _check_names(plan, model_map)
        # what get_peft_model wraps for this very config (rank patterns need the targets: later)
        targets = model_map.match_config(plan.peft_config(task_type=model_map.task_type))
        _check_targets(plan, model_map, _asked(plan, model_map), targets)
    ranks = _resolve_patterns(plan.ranks, "ranks", model_map, targets)
    alphas = _resolve_patterns(plan.alphas, "alphas", model_map, targets)
    check_widths(plan, model_map, targets, ranks)
    config = plan.peft_config(task_type=model_map.task_type, ranks=ranks, alphas=alphas)
    _check_adapter_mix(plan, existing, config)
    if existing is None and plan.adapter_name is not None and _carries_adapters(model):
        raise PlanError(
            f"this model carries adapters from a PeftModel jupyter_peft did not make; adding "
            f"{plan.adapter_name!r} here would drop them. Apply the plan to that PeftModel instead "
            "(%%peft peft_model), or leave out adapter_name to replace them",
            key="adapter_name",
            value=plan.adapter_name,
        )
    return Checked(plan, model_map, existing, targets, config)


def _carries_adapters(model: Any) -> bool:
    layer_type, wrapper_type = adapter_layer_types()
    return any(isinstance(m, (layer_type, wrapper_type)) for m in model.modules())


def apply(plan: Any, model: Any) -> Any:
    """Apply `plan` to `model` and return the PeftModel (see the module docstring)."""
    checked = check(plan, model)
    return _wrap(checked, model)


def applied_plan(peft_model: Any = None, adapter: str | None = None) -> tuple[Any, Plan] | None:
    """(PeftModel, Plan) last applied to `peft_model` (or its base) for `adapter` (default: the
    active one); with no model, the latest apply in this session. None when nothing is recorded."""
    peft_model = session().last_applied() if peft_model is None else find_peft_model(peft_model)
    plans = session().plans_of(peft_model) if peft_model is not None else None
    if not plans:
        return None
    name = adapter or getattr(peft_model, "active_adapter", None)
    plan = plans.get(name) if isinstance(name, str) else None
    return (peft_model, plan) if plan is not None else None


def plan_of(peft_model: Any) -> Plan:
    """The Plan behind a PeftModel's active adapter: the one `apply` recorded, else one read back
    from its peft config (an adapter loaded with `PeftModel.from_pretrained`)."""
    found = applied_plan(peft_model)
    if found is not None:
        return found[1]
    import dataclasses
    import enum

    from .summary import method_name

    config = peft_model.peft_config[peft_model.active_adapter]
    data: dict[str, Any] = {"method": method_name(config)}
    spec = Plan.from_dict(data).method_spec
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name not in spec.options or f.name == "task_type" or value == spec.options[f.name].default:
            continue
        if isinstance(value, enum.Enum):
            value = value.value
        data[f.name] = sorted(value) if isinstance(value, (set, frozenset)) else value
    targets = getattr(config, "target_modules", None)
    if targets is not None:
        data["target_modules"] = sorted(targets) if isinstance(targets, (set, frozenset, list)) else targets
    try:
        return Plan.from_dict(data)
    except PlanError:  # an option our plan cannot say: the method and targets still estimate it
        return Plan.from_dict({k: data[k] for k in ("method", "target_modules", "r") if k in data})


def find_peft_model(model: Any) -> Any:
    """The PeftModel `model` is (or whose base it is), else None."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return model
    peft_model = session().wrapper_of(model) or getattr(model, "__dict__", {}).get(_WRAPPER)
    if peft_model is not None and peft_model.get_base_model() is model:
        return peft_model
    return None


def forget(model: Any) -> None:
    """Forget that `model` was wrapped (its adapters were merged into it in place)."""
    model.__dict__.pop(_WRAPPER, None)
    session().forget(model)


def check_idle(model: Any) -> None:
    """PlanError when a run is training `model` (changing its adapters now would break it)."""
    run = session().run_training(base_id(model))
    if run is not None:
        raise busy(run)


def base_id(model: Any) -> int:
    """The key of the base model `model` is or wraps: one active run per base."""
    return id(base_model(model))


def busy(run: Any) -> PlanError:
    return PlanError(f"this model is already training in {run.describe()}: stop it first "
                     "(%peft stop, or peft_run.stop()), or wait for it (peft_run.wait())")


def _wrap(checked: Checked, model: Any) -> Any:
    from peft import get_peft_model

    silence_library_noise()
    plan, existing = checked.plan, checked.peft_model
    base = existing.get_base_model() if existing is not None else model
    snapshot = _Snapshot(base)
    try:
        if plan.adapter_name is not None and existing is not None:
            name = plan.adapter_name
            if name in existing.peft_config:
                existing.delete_adapter(name)
            existing.add_adapter(name, checked.config)
            kbit.prepare(base, kbit.wants_checkpointing(plan.train, base))
            existing.set_adapter(name)
            peft_model = existing
        else:
            snapshot.strip_adapters()
            kbit.prepare(base, kbit.wants_checkpointing(plan.train, base))  # once per base; no-op unquantized
            peft_model = get_peft_model(base, checked.config, adapter_name=plan.adapter_name or "default")
    except Exception as err:  # peft's own refusal after our checks: undo, then explain
        snapshot.restore()
        raise PlanError(f"peft could not apply this plan, the model is unchanged: {type(err).__name__}: {err}") from err
    # the base keeps its PeftModel alive (and the PeftModel its base): a wrapper nobody kept in a
    # variable is still found by the next plan, so adding a named adapter never drops the others
    peft_model.get_base_model().__dict__[_WRAPPER] = peft_model
    # remember the plan behind each adapter (export reads it back with `applied_plan`)
    session().remember_apply(peft_model.get_base_model(), peft_model, plan.adapter_name or "default", plan)
    return peft_model


class _Snapshot:
    """Enough of a model's state to undo a failed apply: replaced modules and grad flags."""
    def __init__(self, base: Any) -> None:
        self.base = base
        self.grad = {name: p.requires_grad for name, p in base.named_parameters()}
        self.replaced: list[tuple[Any, str, Any]] = []
        self.modules = dict(base.named_modules())
        self.peft_config = base.__dict__.get("peft_config")
        self.wrapper = base.__dict__.get(_WRAPPER)

    def strip_adapters(self) -> None:
        """Remove every adapter layer and wrapper from the base, keeping the original layers."""
        from peft.tuners.tuners_utils import BaseTunerLayer
        from peft.utils.other import AuxiliaryTrainingWrapper

        for path, module in list(self.base.named_modules()):
            if not path or not isinstance(module, (BaseTunerLayer, AuxiliaryTrainingWrapper)):
                continue
            parent_path, _, child = path.rpartition(".")
            parent = self.base.get_submodule(parent_path)
            if getattr(parent, child, None) is not module:
                continue  # already inside a stripped layer
            if isinstance(module, AuxiliaryTrainingWrapper):
                original = module.unload_and_optionally_merge_module(merge=False, safe_merge=False, adapter_names=None)
            else:
                original = module.get_base_layer()
            setattr(parent, child, original)
            self.replaced.append((parent, child, module))
        if "peft_config" in self.base.__dict__:
            del self.base.__dict__["peft_config"]

    def restore(self) -> None:
        """Put back the modules, flags and config as they were when the snapshot was taken."""
        for path, module in self.modules.items():
            if not path:
                continue
            parent_path, _, child = path.rpartition(".")
            parent = self.modules.get(parent_path, self.base) if parent_path else self.base
            if getattr(parent, child, None) is not module:
                setattr(parent, child, module)
        for name, p in self.base.named_parameters():
            if name in self.grad:
                p.requires_grad_(self.grad[name])
        if self.peft_config is not None:
            self.base.__dict__["peft_config"] = self.peft_config
        else:
            self.base.__dict__.pop("peft_config", None)
        if self.wrapper is not None:
            self.base.__dict__[_WRAPPER] = self.wrapper
        else:
            self.base.__dict__.pop(_WRAPPER, None)


Snapshot = _Snapshot  # training/api.py undoes an apply whose trainer TRL then refuses (issue 15)


# ---- checks ------------------------------------------------------------------------------


def match_options(options: dict[str, Any]) -> dict[str, Any]:
    """The plan options that change what a target pattern selects (peft never targets the
    modules it saves whole), for `ModelMap.match`. The studio's draft matches with these too."""
    keys = ("exclude_modules", "layers_to_transform", "layers_pattern", "modules_to_save")
    return {k: options[k] for k in keys if k in options}


def default_targets(spec: Any, model_map: ModelMap, options: dict[str, Any] | None = None) -> Any:
    """peft's per-architecture default targets, or a PlanError listing the real groups."""
    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING
    from peft.utils import PeftType

    tuner = PEFT_TYPE_TO_TUNER_MAPPING.get(PeftType(spec.peft_type))
    model_type = getattr(getattr(model_map.base_model, "config", None), "model_type", None)
    default = getattr(tuner, "target_module_mapping", {}).get(model_type) if tuner else None
    if default is None and tuner is not None:  # tuners that keep their table inside a hook (IA3)
        default = _hook_default_targets(spec, model_map, options)
    if default is None:
        raise PlanError(
            f"peft has no default targets for {model_type or type(model_map.base_model).__name__}: set target_modules",
            key="target_modules",
            choices=_group_choices(model_map),
        )
    return default if isinstance(default, str) else list(default)


def _hook_default_targets(spec: Any, model_map: ModelMap, options: dict[str, Any] | None = None) -> Any:
    """The targets peft's own config hook picks for this model type, or None."""
    try:
        config = spec.config_class(**{**(options or {}), **spec.fixed})  # options that change the default (placement)
        return prepared_config(config, model_map.base_model).target_modules
    except (ValueError, TypeError):  # a config that needs more, or "Please specify `target_modules`"
        return None


def _group_choices(model_map: ModelMap) -> list[str]:
    return model_map.group_choices()


def _exists(model_map: ModelMap, name: str, task_type: Any = None) -> bool:
    """Whether the target name `name` selects anything in this model on its own (a task type's
    saved heads excluded when given). peft refusing it alone counts as selecting: its v4 MoE
    names (Mixtral's w1, w3) convert only together, and that is peft's word, not a typo."""
    try:
        return bool(model_map.match([name], task_type=task_type))
    except PlanError:
        return True


def _asked(plan: Plan, model_map: ModelMap) -> Any:
    """What the plan asks to target, as its messages quote it: its target_modules, else its
    target_parameters, else peft's default for the model."""
    if plan.target_modules is not None:
        return plan.target_modules
    parameters = plan.options.get("target_parameters")
    if parameters:
        return {"target_parameters": parameters}
    return default_targets(plan.method_spec, model_map, plan.options)


def _check_names(plan: Plan, model_map: ModelMap) -> None:
    """Every name in a target_modules list and every target_parameters entry must select
    something in this model. peft itself drops a name that matches nothing as long as another
    one matches; we are strict on purpose: a misspelt `vproj` must not silently train q_proj alone."""
    from .._errors import did_you_mean

    names = plan.target_modules if isinstance(plan.target_modules, list) else []
    for name in names:
        if _exists(model_map, name, task_type=model_map.task_type):
            continue  # (excluding it again, or leaving its layers out, is the plan's own choice)
        cls = type(model_map.base_model).__name__
        if _exists(model_map, name) and not _exists(model_map, name, task_type=model_map.task_type):
            why = (f"{name!r} is trained whole on this {cls} ({model_map.task_type}: peft saves the task head, "
                   "it does not adapt it); leave it out of target_modules")
        else:
            why = f"{name!r} in target_modules matches no module of this {cls}"
        leaves = sorted({p.rsplit(".", 1)[-1] for g in model_map.groups for p in g.paths})
        close = did_you_mean(name, leaves + model_map.roles)
        raise PlanError(why, key="target_modules", value=name,
                        choices=list(dict.fromkeys([*close, *_group_choices(model_map)])))
    for name in plan.options.get("target_parameters") or []:
        if not model_map.match([], target_parameters=[name]):
            params = sorted({f"{p}.{g.parameter or 'weight'}".split(".", 1)[-1] for g in model_map.groups
                             for p in g.paths[:1]})
            raise PlanError(
                f"{name!r} in target_parameters selects no parameter of this {type(model_map.base_model).__name__}",
                key="target_parameters",
                value=name,
                choices=did_you_mean(name, params) or params[:8],
            )


def _check_targets(plan: Plan, model_map: ModelMap, resolved: Any, targets: list[str]) -> None:
    where = {"key": "target_modules", "value": resolved}
    if not targets:
        hint = ""
        if isinstance(resolved, str) and resolved.lower() != "all-linear":
            hint = " (a string is a regex matched against the whole path, e.g. '.*\\.q_proj'; a list matches names)"
        raise PlanError(
            f"{resolved!r} matches no module of this {type(model_map.base_model).__name__}{hint}",
            choices=_group_choices(model_map),
            **where,
        )

    spec = plan.method_spec
    for path in targets:
        group = model_map.group_of(path)
        if group is None and plan.target_modules is None:
            continue  # peft's own default for this method (Shadow wraps whole decoder blocks)
        if group is None:
            module = model_map.base_model.get_submodule(path)
            inner = [g.role for g in model_map.groups if any(p.startswith(path + ".") for p in g.paths)]
            raise PlanError(
                f"{resolved!r} selects {path!r}, a {type(module).__name__} that holds layers rather than "
                "being one; name the layers inside it",
                choices=inner or _group_choices(model_map),
                **where,
            )
        if methods.can_target(spec.name, group.kind) is False:
            able = [g.role for g in model_map.groups if methods.can_target(spec.name, g.kind)]
            raise PlanError(
                f"method {spec.name!r} cannot adapt {group.kind} modules ({group.role}, e.g. {path!r})",
                choices=able,
                **where,
            )


def _check_quantization(plan: Plan, model_map: ModelMap) -> None:
    """A plan's quantization must be the model's: a loaded model keeps the one it was loaded with."""
    want = plan.effective_quantization
    have = kbit.quantization_of(model_map.base_model)
    if want == "none" or have == want or plan.base is not None:
        return
    where: dict[str, Any] = {"key": "quantization" if plan.quantization else "method", "value": want}
    if have == "none":
        raise PlanError(
            f"the plan asks for a {want} base but this model is not quantized: "
            "quantization happens when a model is loaded. Add `base: <path or hub id>` to the plan to load it "
            f"quantized, or load it with BitsAndBytesConfig(load_in_{want[0]}bit=True)",
            **where,
        )
    fix = f"write `quantization: {have}` (or leave it out)" if plan.quantization else "use `method: lora` on it"
    raise PlanError(
        f"the plan asks for a {want} base but this model was loaded in {have}, and a loaded model keeps its "
        f"quantization: {fix}, or load the base again in {want} with `base: <path or hub id>`",
        choices=[have] if have in ("4bit", "8bit") else [],
        **where,
    )


def _resolve_patterns(mapping: dict[str, Any], key: str, model_map: ModelMap, targets: list[str]) -> dict[str, Any]:
    """Rank/alpha keys as peft patterns: a group role becomes its exact regex; patterns stay.

    Every key must select at least one targeted module, else PlanError naming the targeted groups.
    """
    if not mapping:
        return {}
    targeted_roles = list(dict.fromkeys(g.role for p in targets if (g := model_map.group_of(p))))
    out: dict[str, Any] = {}
    for name, value in mapping.items():
        pattern = model_map[name].pattern if name in model_map.roles else _as_peft_pattern(name)
        try:
            hits = [p for p in targets if re.match(rf"(.*\.)?({pattern})$", p)]
        except re.error as err:
            raise PlanError(f"{name!r} is not a valid pattern: {err}", key=f"{key}.{name}") from None
        if not hits:
            raise PlanError(
                f"{name!r} selects none of the targeted modules",
                key=f"{key}.{name}",
                value=name,
                choices=targeted_roles,
            )
        out[pattern] = value
    return out


def _as_peft_pattern(name: str) -> str:
    """A role written with `*` layer parts becomes its regex; anything else is peft's as is."""
    return role_pattern(name) if "*" in name.split(".") else name


def _check_adapter_mix(plan: Plan, existing: Any, config: Any) -> None:
    if existing is None or plan.adapter_name is None:
        return
    kinds = {c.peft_type for c in existing.peft_config.values()}
    if config.peft_type not in kinds:
        have = ", ".join(f"{n!r} ({c.peft_type.value.lower()})" for n, c in existing.peft_config.items())
        raise PlanError(
            f"this model carries {have}; peft keeps one method per model, so a {plan.method} adapter "
            "cannot be added beside it. Drop adapter_name to replace the adapters",
            key="adapter_name",
            value=plan.adapter_name,
        )
