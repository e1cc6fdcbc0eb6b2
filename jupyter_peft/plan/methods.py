"""The PEFT methods and their options, read from peft's own config dataclasses.

Every method peft ships is a method here, by its `PeftType` in lower case (`lora`, `ia3`,
`prefix_tuning`, `p_tuning`, `loha`, ...), plus two names users expect: `dora` (LoRA with
`use_dora`) and `qlora` (LoRA on a 4-bit base). Field names, types, defaults and help texts
come from the dataclass fields; nothing is retyped here, so a new peft release brings its
new methods and options with it.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
import threading
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from .._errors import PlanError, unknown

# Fields the Plan sets itself (or peft fills in): not user options.
PLAN_OWNED = {
    "peft_type": "set by `method`",
    "target_modules": "a Plan key of its own",
    "rank_pattern": "use `ranks:` (group or pattern -> rank)",
    "alpha_pattern": "use `alphas:` (group or pattern -> alpha)",
    "auto_mapping": "filled in by peft",
    "peft_version": "filled in by peft",
    "base_model_name_or_path": "use `base:`",
    "revision": "filled in by peft",
    "inference_mode": "set by training",
}

# Aliases users know, as (peft type, fixed options, implied quantization).
_ALIASES: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "dora": ("lora", {"use_dora": True}, None),
    "qlora": ("lora", {}, "4bit"),
}


@dataclass(frozen=True)
class Option:
    """One option of a method, as peft's dataclass declares it."""

    name: str
    type: Any  # the resolved annotation
    default: Any
    help: str
    choices: tuple[Any, ...] = ()

    @property
    def type_name(self) -> str:
        return type_name(self.type)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able description for the studio's options form."""
        default = self.default
        if isinstance(default, enum.Enum):
            default = default.value
        if not isinstance(default, (str, int, float, bool, type(None), list, dict)):
            default = None
        return {
            "name": self.name,
            "type": self.type_name,
            "widget": _widget_kind(self.type),
            "default": default,
            "help": self.help,
            "choices": [c.value if isinstance(c, enum.Enum) else c for c in self.choices],
        }


@dataclass(frozen=True)
class Method:
    """A method users can name in a Plan."""

    name: str
    peft_type: str  # PeftType value, e.g. "LORA"
    fixed: dict[str, Any] = field(default_factory=dict)
    quantization: str | None = None

    @property
    def config_class(self) -> type:
        from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
        from peft.utils import PeftType

        return PEFT_TYPE_TO_CONFIG_MAPPING[PeftType(self.peft_type)]

    @property
    def options(self) -> dict[str, Option]:
        return _options(self.config_class)

    @property
    def description(self) -> str:
        """One line on what the method is, where its config class says (`DESCRIPTION`), else ""."""
        return str(getattr(self.config_class, "DESCRIPTION", ""))

    @property
    def is_prompt_learning(self) -> bool:
        from peft.config import PromptLearningConfig

        return issubclass(self.config_class, PromptLearningConfig)

    @property
    def targets_modules(self) -> bool:
        """Whether the method adapts modules named by `target_modules`."""
        return not self.is_prompt_learning and "target_modules" in _field_names(self.config_class)

    @property
    def rank_option(self) -> str | None:
        """The option that sets the rank (`r`), where the method has one."""
        return "r" if "r" in self.options else None

    @property
    def alpha_option(self) -> str | None:
        """The option that sets the scale (`lora_alpha`, `alpha`), where the method has one."""
        for name in ("lora_alpha", "alpha"):
            if name in self.options:
                return name
        return None

    @property
    def has_rank_pattern(self) -> bool:
        return "rank_pattern" in _field_names(self.config_class)

    @property
    def has_alpha_pattern(self) -> bool:
        return "alpha_pattern" in _field_names(self.config_class)


@functools.cache
def _table() -> dict[str, Method]:
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    from ..tuners import register

    register()  # our own methods (bottleneck) join peft's table before it is read

    table = {pt.value.lower(): Method(pt.value.lower(), pt.value) for pt in PEFT_TYPE_TO_CONFIG_MAPPING}
    for alias, (base, fixed, quant) in _ALIASES.items():
        table[alias] = Method(alias, table[base].peft_type, fixed, quant)
    return table


def names() -> list[str]:
    """All method names, the common ones first."""
    common = ["lora", "dora", "qlora", "ia3", "prefix_tuning", "prompt_tuning", "p_tuning", "bottleneck", "loha"]
    common += ["lokr", "adalora", "vera", "oft"]
    rest = sorted(set(_table()) - set(common))
    return [n for n in common if n in _table()] + rest


def get(name: str, **where: Any) -> Method:
    """The method called `name` (case-insensitive), or a PlanError with close names."""
    method = _table().get(str(name).lower().replace("-", "_"))
    if method is None:
        raise unknown("method", name, names(), **where)
    return method


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@functools.cache
def _options(cls: type) -> dict[str, Option]:
    hints = typing.get_type_hints(cls)
    out: dict[str, Option] = {}
    for f in dataclasses.fields(cls):
        if f.name in PLAN_OWNED or not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        tp = hints.get(f.name, Any)
        out[f.name] = Option(f.name, tp, default, _help_text(f.metadata.get("help", "")), _choices(tp))
    return out


def _help_text(help_: Any) -> str:
    """A field's help on one line (peft writes a few as tuples of strings, e.g. BOFT's init_weights)."""
    if isinstance(help_, (tuple, list)):
        help_ = "".join(map(str, help_))
    return " ".join(str(help_).split())


# ---- types: check and coerce YAML values against peft's annotations ------------------------


def _args(tp: Any) -> tuple[Any, ...]:
    return typing.get_args(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _choices(tp: Any) -> tuple[Any, ...]:
    """The finite set of values a type allows (Literal members, enum values), if it has one."""
    if typing.get_origin(tp) is typing.Literal:
        return tuple(_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tuple(m.value for m in tp)
    if _is_union(tp):
        found: list[Any] = []
        for arm in _args(tp):
            if arm is bool:
                found += [True, False]
            elif arm is not type(None):
                sub = _choices(arm)
                if not sub:
                    return ()  # a free arm (str, int...) makes the set open
                found += [c for c in sub if c not in found]
        return tuple(found)
    return ()


def type_name(tp: Any) -> str:
    if tp is Any:
        return "any"
    if _is_union(tp):
        arms = [a for a in _args(tp) if a is not type(None)]
        name = " or ".join(type_name(a) for a in arms)
        return f"{name} or null" if len(arms) < len(_args(tp)) else name
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in _args(tp))
    if origin in (list, tuple, set):
        inner = _args(tp)
        return f"list of {type_name(inner[0])}" if inner else "list"
    if origin is dict:
        k, v = _args(tp) or (str, Any)
        return f"mapping of {type_name(k)} to {type_name(v)}"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return f"mapping ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def _widget_kind(tp: Any) -> str:
    """How a form shows the option: bool, int, float, choice, text or yaml."""
    arms = [a for a in _args(tp) if a is not type(None)] if _is_union(tp) else [tp]
    if _choices(tp):
        return "choice"
    if len(arms) == 1:
        arm = arms[0]
        if arm is bool:
            return "bool"
        if arm is int:
            return "int"
        if arm is float:
            return "float"
        if arm is str:
            return "text"
    return "yaml"


class Mismatch(Exception):
    pass


def coerce(value: Any, tp: Any) -> Any:
    """`value` as type `tp` (ints widen to float, YAML lists become tuples where asked).

    Raises `Mismatch` when the value does not fit.
    """
    if tp is Any or tp is typing.Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise Mismatch
    if _is_union(tp):
        for arm in _args(tp):
            try:
                return coerce(value, arm)
            except Mismatch:
                continue
        raise Mismatch
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        if value in _args(tp) and not (isinstance(value, bool) and True not in _args(tp)):
            return value
        raise Mismatch
    if origin in (list, set):
        if not isinstance(value, list):
            raise Mismatch
        inner = _args(tp)
        return [coerce(v, inner[0]) for v in value] if inner else list(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise Mismatch
        inner = _args(tp)
        if len(inner) == 2 and inner[1] is Ellipsis:
            return tuple(coerce(v, inner[0]) for v in value)
        if inner and len(inner) != len(value):
            raise Mismatch
        return tuple(coerce(v, t) for v, t in zip(value, inner)) if inner else tuple(value)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise Mismatch
        kv = _args(tp)
        return {coerce(k, kv[0]): coerce(v, kv[1]) for k, v in value.items()} if kv else dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value) if isinstance(value, int) else value
        raise Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise Mismatch
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if value in (member.value, member.name):
                return member.value
        raise Mismatch
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return value  # kept as a mapping in the plan; built into `tp` by build_config
        raise Mismatch
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise Mismatch
    return value


# sizes that must be at least 1 (ranks, token counts, block sizes), by name
_POSITIVE = re.compile(r"^(r|.*_r|rank|.*_rank|num_.*|.*_size|.*_dim|total_step)$")


def check_option(method: Method, name: str, value: Any, **where: Any) -> Any:
    """The option `name=value` for `method`, coerced, or a PlanError that says what is valid."""
    options = method.options
    if name not in options:
        if name in PLAN_OWNED:
            raise PlanError(f"{name!r} is not set directly: {PLAN_OWNED[name]}", key=name, value=value, **where)
        raise unknown("option", name, options, f" for method {method.name!r}", key=name, **where)
    opt = options[name]
    try:
        value = coerce(value, opt.type)
    except Mismatch:
        choices = [repr(c) for c in opt.choices]
        raise PlanError(
            f"{value!r} is not valid: expected {opt.type_name}", key=name, value=value, choices=choices, **where
        ) from None
    if isinstance(value, int) and not isinstance(value, bool) and _POSITIVE.match(name):
        # 0 is a real choice where peft defaults to it (OFT's r) or for block sizes (OFT: r or size)
        zero_ok = opt.default == 0 or name.endswith("block_size")
        if value < 0 or (value == 0 and not zero_ok):
            need = "a non-negative" if zero_ok else "a positive"
            raise PlanError(f"{value!r} is not valid: {name} must be {need} integer", key=name, value=value, **where)
    if name.endswith("dropout") and isinstance(value, float) and not 0.0 <= value < 1.0:
        raise PlanError(f"{value!r} is not valid: a dropout is in [0, 1)", key=name, value=value, **where)
    if name in method.fixed and value != method.fixed[name]:
        raise PlanError(
            f"method {method.name!r} sets {name}={method.fixed[name]!r}; use method "
            f"{method.peft_type.lower()!r} to choose it",
            key=name,
            value=value,
            **where,
        )
    return value


def build_config(method: Method, options: dict[str, Any], **plan_fields: Any) -> Any:
    """peft's config object for `method`, from checked options plus the Plan's own fields.

    peft's own __post_init__ checks run here; their complaints become PlanErrors.
    """
    cls = method.config_class
    kwargs = {**method.fixed, **options, **{k: v for k, v in plan_fields.items() if v is not None}}
    for name, value in list(kwargs.items()):
        tp = _options(cls).get(name)
        if tp is not None and isinstance(value, dict):
            kwargs[name] = _build_nested(tp.type, value)
    try:
        return cls(**kwargs)
    except ImportError as err:  # a method whose config needs an optional package (AdaMSS: scikit-learn)
        raise PlanError(f"{method.name} needs a package that is not installed: {err}") from None
    except (ValueError, TypeError) as err:
        key = next((k for k in kwargs if re.search(rf"\b{re.escape(k)}\b", str(err))), None)
        raise PlanError(f"peft rejects this {method.name} config: {err}", key=key) from None


def _build_nested(tp: Any, value: dict[str, Any]) -> Any:
    arms = _args(tp) if _is_union(tp) else (tp,)
    for arm in arms:
        if isinstance(arm, type) and dataclasses.is_dataclass(arm):
            return arm(**value)
    return value


# ---- which module kinds a method can adapt, asked of peft itself ---------------------------

_NOT_SUPPORTED = re.compile(
    r"not supported|does not support target|is not a plain|no layers types compatible|"
    r"not compatible|only .* supported|is not supported",
    re.IGNORECASE,
)
# options a method needs before peft will build it at all (not about the target's kind)
_PROBE_OPTIONS: dict[str, dict[str, Any]] = {
    "ADALORA": {"total_step": 10},
    "IA3": {"feedforward_modules": []},
}


def _probe_module(kind: str) -> Any:
    """A fresh small module of class `kind` (name), or None when we cannot build one."""
    import torch.nn as nn

    factories: dict[str, Any] = {
        "Linear": lambda: nn.Linear(64, 64),
        "Embedding": lambda: nn.Embedding(64, 64),
        "Conv1d": lambda: nn.Conv1d(64, 64, 1),
        "Conv2d": lambda: nn.Conv2d(64, 64, 1),
        "Conv3d": lambda: nn.Conv3d(64, 64, 1),
        "LayerNorm": lambda: nn.LayerNorm(64),
        "MultiheadAttention": lambda: nn.MultiheadAttention(64, 4),
    }
    if kind == "Conv1D":
        from transformers.pytorch_utils import Conv1D

        return Conv1D(64, 64)
    if kind in ("Linear4bit", "Linear8bitLt"):
        try:
            import bitsandbytes as bnb
        except ImportError:
            return None
        return getattr(bnb.nn, kind)(64, 64)
    factory = factories.get(kind)
    return factory() if factory else None


@functools.cache
def can_target(method_name: str, kind: str) -> bool | None:
    """Whether peft's `method` can adapt a module of class `kind`: True, False, or None (unknown).

    Asked of peft by injecting the method into a fresh 64x64 module of that class.
    """
    method = get(method_name)
    if not method.targets_modules:
        return False
    import torch

    # On meta first: a probe must not draw from torch's global generator, which a run on another
    # thread (or the user's next seeded cell) draws its init and data order from. The few methods
    # peft cannot build on meta (BOFT, SHiRA) are asked on the CPU with the generator's state kept.
    with torch.device("meta"):
        verdict = _injected(method, kind)
    if verdict is None:
        with _CPU_PROBE, torch.random.fork_rng(devices=[]):
            verdict = _injected(method, kind)
    return verdict


_CPU_PROBE = threading.Lock()


def _injected(method: Method, kind: str) -> bool | None:
    """peft's verdict on injecting `method` into a fresh module of class `kind` (see can_target)."""
    module = _probe_module(kind)
    if module is None:
        return None
    import warnings

    import torch.nn as nn
    from peft import inject_adapter_in_model

    holder = nn.Module()
    holder.m = module
    try:
        config = method.config_class(
            target_modules=["m"], **method.fixed, **_PROBE_OPTIONS.get(method.peft_type, {})
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inject_adapter_in_model(config, holder)
    except Exception as err:  # peft's own verdict; anything but "not supported" is unknown
        return False if _NOT_SUPPORTED.search(str(err)) else None
    return True
