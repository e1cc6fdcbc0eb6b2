"""What an export writes: a Plan (and the model it was applied to) as literal settings.

`resolve(plan, model)` turns the notebook's state into plain values that a script or a config
file can spell out: the peft config the notebook passed to `get_peft_model` (fields that
differ from peft's defaults, with `rank_pattern` / `alpha_pattern` resolved against the
model), the keyword arguments that built the notebook's TRL config (those that differ from
TRL's defaults), the base model's path or hub id, its dtype and quantization. Everything a
file cannot carry (a model without a name, a task TRL cannot train) is a PlanError here,
before any file is written.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .._compat import base_model
from .._errors import PlanError
from .._hardware import cuda_here
from ..model.adapt import as_plan, check
from ..plan.plan import Plan
from ..plan.train_config import TRAINERS, trainer_config, trainer_kwargs
from ..quant.loading import quantization_config, source_path

# peft fields filled in by peft itself or by the config class: never written
_FILLED_IN = {"peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision", "inference_mode"}
# task types a TRL trainer trains, and the transformers auto class that loads the base for it
AUTO_CLASSES = {"CAUSAL_LM": "AutoModelForCausalLM", "SEQ_CLS": "AutoModelForSequenceClassification"}


@dataclass
class Source:
    """The literal settings of one export. `*_kwargs` hold only what differs from the library
    defaults, as plain Python values (str, numbers, bools, None, lists, dicts)."""
    plan: Plan
    train: dict[str, Any]  # the checked train block (plan.train, or {trainer: sft})
    on_gpu: bool
    base: str
    task_type: str
    dtype: str | None  # the base's dtype name, None when unknown (the checkpoint's own)
    peft_class: str
    peft_kwargs: dict[str, Any]
    peft_config: Any  # the config object the notebook passed to get_peft_model
    train_kwargs: dict[str, Any]  # without output_dir
    quantization: str  # none | 4bit | 8bit
    quant_kwargs: dict[str, Any]
    adapts: list[tuple[str, int]] = field(default_factory=list)  # (group role, module count)
    reward_funcs: list[tuple[str, str | None]] = field(default_factory=list)  # (name, source or None)
    notes: list[str] = field(default_factory=list)

    @property
    def trainer(self) -> str:
        return str(self.train.get("trainer", "sft"))

    @property
    def auto_class(self) -> str:
        return AUTO_CLASSES[self.task_type]

    def trainer_config(self, output_dir: str) -> Any:
        """The TRL config object the notebook builds for this plan (the round trip's reference)."""
        return trainer_config(self.train, output_dir, on_gpu=self.on_gpu, method=self.plan.method)

    def mixed_precision(self) -> str:
        """accelerate's `mixed_precision` that matches the training config (bf16 | fp16 | no)."""
        if self.train_kwargs.get("bf16"):
            return "bf16"
        return "fp16" if self.train_kwargs.get("fp16") else "no"


def resolve(
    plan: Any,
    model: Any = None,
    *,
    base: str | None = None,
    on_gpu: bool | None = None,
    user_ns: dict[str, Any] | None = None,
) -> Source:
    """The literal settings for `plan`, resolved against `model` when given (see module doc)."""
    plan = as_plan(plan)
    if on_gpu is None:

        on_gpu = cuda_here()
    notes: list[str] = []
    train = plan.train
    if train is None:
        train = {"trainer": "sft"}
        notes.append("the plan has no `train:` block: SFT with jupyter_peft's defaults (add `train:` to choose)")
    peft_config, task_type, adapts = _peft_config(plan, model, train)
    _check_rebuilds(peft_config)
    quantization, quant_kwargs = _quantization(plan, model)
    # TRL's own complaints, as PlanErrors, before writing
    trainer_config(train, "output", on_gpu=bool(on_gpu), method=plan.method)
    return Source(
        plan=plan,
        train=train,
        on_gpu=bool(on_gpu),
        base=_base(plan, model, base),
        task_type=task_type,
        dtype=_dtype(model),
        peft_class=type(peft_config).__name__,
        peft_kwargs=peft_kwargs(peft_config),
        peft_config=peft_config,
        train_kwargs=_train_kwargs(train, bool(on_gpu), plan.method),
        quantization=quantization,
        quant_kwargs=quant_kwargs,
        adapts=adapts,
        reward_funcs=_reward_funcs(train, user_ns or {}),
        notes=notes,
    )


# ---- peft ---------------------------------------------------------------------------------


def _peft_config(plan: Plan, model: Any, train: dict[str, Any]) -> tuple[Any, str, list[tuple[str, int]]]:
    """(config, task type, adapted groups): what `apply` passes to peft for this model, or
    the plan's own config (peft resolves its patterns at run time) when there is no model."""
    if model is None:
        guess = "SEQ_CLS" if train.get("trainer") == "reward" else "CAUSAL_LM"
        return plan.peft_config(task_type=guess), guess, []

    checked = check(plan, model)
    task_type: str | None = checked.model_map.task_type
    if task_type is None or task_type not in AUTO_CLASSES:
        raise PlanError(
            f"export writes TRL training for causal language models (and reward models); this "
            f"{type(checked.model_map.base_model).__name__} is a {task_type} model",
            key="method",
            choices=list(AUTO_CLASSES),
        )
    roles = Counter(g.role for p in checked.targets if (g := checked.model_map.group_of(p)) is not None)
    return checked.config, task_type, list(roles.items())


def peft_kwargs(config: Any) -> dict[str, Any]:
    """The fields of a peft config that differ from its class defaults, as literal values."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        if not f.init or f.name in _FILLED_IN:
            continue
        value, default = getattr(config, f.name), _field_default(f)
        if value == default:  # also skips nested option dataclasses left at their defaults
            continue
        value = literal(value, f"peft option {f.name}")
        if value != literal(default, f.name):
            out[f.name] = value
    return out


def _check_rebuilds(config: Any) -> None:
    """The written fields must rebuild the same config; a difference is a bug in this room."""
    rebuilt = type(config)(**peft_kwargs(config))
    skip = _FILLED_IN - {"peft_type"}
    a = {k: v for k, v in config.to_dict().items() if k not in skip}
    b = {k: v for k, v in rebuilt.to_dict().items() if k not in skip}
    if a != b:
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        raise RuntimeError(f"export would not rebuild the same {type(config).__name__}: {diff} differ")


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


# ---- TRL ----------------------------------------------------------------------------------


def _train_kwargs(train: dict[str, Any], on_gpu: bool, method: str | None = None) -> dict[str, Any]:
    """The keyword arguments of the notebook's TRL config that differ from TRL's field defaults."""
    _, config_cls = TRAINERS[train.get("trainer", "sft")].load()
    defaults = {f.name: _field_default(f) for f in dataclasses.fields(config_cls) if f.init}
    kwargs = trainer_kwargs(train, "out", on_gpu=on_gpu, method=method)
    kwargs.pop("output_dir")
    out = {}
    for key, value in kwargs.items():
        value = literal(value, f"train.{key}")
        if key not in defaults or value != literal(defaults[key], key):
            out[key] = value
    return out


def _reward_funcs(train: dict[str, Any], user_ns: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(name, source) for GRPO/RLOO reward functions: notebook functions travel as their source
    code; other names (reward model ids) travel as strings (source None)."""
    import inspect

    out: list[tuple[str, str | None]] = []
    for name in train.get("reward_funcs", []):
        func = user_ns.get(name)
        if func is None:
            out.append((name, None))
            continue
        try:
            source = inspect.getsource(func)
        except (OSError, TypeError):
            raise PlanError(
                f"reward function {name!r} has no source code to copy into the script (define it with def in a cell)",
                key="train.reward_funcs",
                value=name,
            ) from None
        out.append((name, source))
    return out


# ---- base model ---------------------------------------------------------------------------


def _base(plan: Plan, model: Any, base: str | None) -> str:
    """The path or hub id the script loads: the argument, the plan's `base:`, or the name the
    model was loaded from."""
    if base:
        return source_path(str(base))
    if plan.base:
        return source_path(plan.base)
    name = base_model(model)
    name = getattr(name, "name_or_path", None) or getattr(getattr(name, "config", None), "_name_or_path", None)
    if name:
        return str(name)
    raise PlanError(
        "the exported files load the base model by path or hub id, but this model was built in memory "
        "(it has no name_or_path): add `base: <path or hub id>` to the plan, or pass base= (--base)",
        key="base",
    )


def _dtype(model: Any) -> str | None:
    """The dtype the base was loaded in (its float weights' dtype), None without a model."""
    base = base_model(model)
    if base is None:
        return None
    import torch

    for p in base.parameters():
        if p.dtype in (torch.float32, torch.bfloat16, torch.float16) and not p.requires_grad:
            return str(p.dtype).removeprefix("torch.")
    return None


def _quantization(plan: Plan, model: Any) -> tuple[str, dict[str, Any]]:
    """(none|4bit|8bit, BitsAndBytesConfig kwargs): the plan's, else how the model was loaded."""
    import inspect

    from transformers import BitsAndBytesConfig

    config = quantization_config(plan) if plan.effective_quantization != "none" else None
    base = base_model(model)
    if config is None and base is not None:
        config = getattr(getattr(base, "config", None), "quantization_config", None)
        if isinstance(config, dict):
            config = BitsAndBytesConfig.from_dict(config)
        if not isinstance(config, BitsAndBytesConfig):
            config = None
    if config is None:
        return "none", {}
    params = set(inspect.signature(BitsAndBytesConfig.__init__).parameters) - {"self", "kwargs"}
    defaults = BitsAndBytesConfig().to_dict()
    kwargs = {k: literal(v, k) for k, v in config.to_dict().items() if k in params and v != defaults.get(k)}
    return ("4bit" if kwargs.get("load_in_4bit") else "8bit"), kwargs


# ---- literal values -----------------------------------------------------------------------


def literal(value: Any, what: str) -> Any:
    """`value` as plain data a file can spell out: sets become sorted lists, enums their
    values, torch dtypes their names. PlanError for anything else (a callable, an object)."""
    if isinstance(value, enum.Enum):
        return literal(value.value, what)
    if isinstance(value, (set, frozenset)):
        return sorted(literal(v, what) for v in value)
    if isinstance(value, (list, tuple)):
        return [literal(v, what) for v in value]
    if isinstance(value, dict):
        return {str(k): literal(v, what) for k, v in value.items()}
    if type(value).__module__ == "torch" and type(value).__name__ == "dtype":
        return str(value).removeprefix("torch.")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise PlanError(f"{what} = {value!r} cannot be written into a file (it is a {type(value).__name__})", key=what)


def comment(lines: list[str]) -> str:
    """`lines` as `#` comment lines of a YAML file; a line holding a line break stays comment on
    every line (a value with a newline in it cannot start YAML of its own)."""
    out = []
    for line in lines:
        out += [f"# {part}".rstrip() for part in str(line).splitlines()] or ["#"]
    return "".join(f"{row}\n" for row in out)


def docstring(text: str) -> str:
    """`text` as a Python docstring literal that reads back exactly: raw (regex backslashes stay
    readable) unless `text` holds a double quote, a control character or ends in a backslash;
    then a plain string with backslashes, quotes and control characters escaped, so no value can
    end the string and become code."""
    plain = all(c in "\n\t" or c.isprintable() for c in text)
    if plain and '"' not in text and not text.endswith("\\"):
        return f'r"""{text}"""'
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c in "\n\t" or c.isprintable() else c.encode("unicode_escape").decode() for c in escaped)
    return f'"""{escaped}"""'


def python_literal(value: Any) -> str:
    """Python source for a literal value (checked to read back equal)."""
    text = repr(value)
    if ast.literal_eval(text) != value:  # e.g. float('inf') reprs as inf
        raise PlanError(f"{value!r} has no Python literal form")
    return text
