"""`Plan`: what to adapt and how, the one value every front end produces and consumes.

A Plan is YAML in and out (`Plan.from_yaml`, `plan.to_yaml`, exact round trip) and becomes
a peft config (`plan.peft_config()`). YAML keys:

    method: lora                 # any peft method, or dora / qlora
    r: 16                        # the method's own options, by peft's field names
    target_modules: [q_proj, v_proj]   # names, a regex string, or all-linear
    ranks: {self_attn.q_proj: 32}      # group or pattern -> rank (peft's rank_pattern)
    alphas: {self_attn.q_proj: 64}     # group or pattern -> alpha (peft's alpha_pattern)
    quantization: 4bit           # none | 4bit | 8bit, with bnb_* options by their own names
    base: path/or/hub-id         # load this model first
    adapter_name: second         # add beside existing adapters instead of replacing them
    train: {trainer: sft, dataset: ds, max_steps: 200}

Checking against the method's schema happens here; checking against a model in `apply`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from .. import _yaml
from .._errors import PlanError, unknown
from . import methods
from .train_config import check_train

QUANTIZATIONS = ("none", "4bit", "8bit")
_RESERVED = ("method", "target_modules", "ranks", "alphas", "quantization", "base", "adapter_name", "train")
_QUANT_PREFIXES = ("bnb_", "llm_int8_")
_ALIASES = {"alpha": "alphas", "rank": "ranks", "targets": "target_modules", "trainer": "train"}
_REGEX_OPTIONS = ("exclude_modules", "feedforward_modules", "layers_pattern")


@dataclass
class Plan:
    """A parameter-efficient fine-tuning plan. See the module docstring for the YAML keys."""
    method: str = "lora"
    options: dict[str, Any] = field(default_factory=dict)
    """The method's own options by peft's field names (r, lora_alpha, num_virtual_tokens...)."""
    target_modules: list[str] | str | None = None
    """peft's `target_modules`: names (suffix match), one regex (full match) or "all-linear"."""
    ranks: dict[str, int] = field(default_factory=dict)
    """Group name or pattern -> rank; becomes peft's `rank_pattern`."""
    alphas: dict[str, float] = field(default_factory=dict)
    """Group name or pattern -> alpha; becomes peft's `alpha_pattern`."""
    quantization: str | None = None
    """none | 4bit | 8bit; None means what the method implies (qlora: 4bit)."""
    quant_options: dict[str, Any] = field(default_factory=dict)
    """bitsandbytes options by `BitsAndBytesConfig`'s names (bnb_4bit_quant_type...)."""
    base: str | None = None
    """A local path or hub id to load the model from, quantized if the plan says so."""
    adapter_name: str | None = None
    """None replaces existing adapters; a name adds (or replaces) that adapter only."""
    train: dict[str, Any] | None = None
    """The training block: trainer, dataset and the trainer config's own fields."""
    # ---- construction --------------------------------------------------------------------

    def __post_init__(self) -> None:
        checked = _check(self.to_dict(), lines={})
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(checked, f.name))

    @classmethod
    def from_yaml(cls, text: str) -> Plan:
        """A Plan from YAML text; PlanError with `.line` and `.key` for anything wrong."""
        if (
            not text
            or not text.strip()
            or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines())
        ):
            raise PlanError(
                "the plan is empty: write at least `method: lora` (and `target_modules: [...]`)",
                line=1,
                choices=["method: lora", "r: 16", "target_modules: all-linear"],
            )
        data, lines = _yaml.load_with_lines(text)
        if not isinstance(data, dict):
            raise PlanError(
                f"a plan is a mapping of keys to values, got {type(data).__name__}: {data!r}",
                line=1,
                value=data,
                choices=["method: lora", "r: 16"],
            )
        return _check(data, lines)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """A Plan from the flat mapping `to_dict` gives (the studio's and YAML's shape)."""
        return _check(dict(data), lines={})

    def to_dict(self) -> dict[str, Any]:
        """The flat mapping of YAML keys to values, minimal: unset keys are left out."""
        out: dict[str, Any] = {"method": self.method}
        out.update(self.options)
        if self.target_modules is not None:
            out["target_modules"] = self.target_modules
        if self.ranks:
            out["ranks"] = dict(self.ranks)
        if self.alphas:
            out["alphas"] = dict(self.alphas)
        if self.quantization is not None:
            out["quantization"] = self.quantization
        out.update(self.quant_options)
        for key in ("base", "adapter_name", "train"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    def to_yaml(self) -> str:
        """YAML text for this plan; `Plan.from_yaml(plan.to_yaml()) == plan`."""
        return _yaml.dump(self.to_dict())

    def replace(self, **changes: Any) -> Plan:
        """A copy with some fields changed, checked again."""
        return dataclasses.replace(self, **changes)

    # ---- derived -------------------------------------------------------------------------

    @property
    def method_spec(self) -> Any:
        return methods.get(self.method)

    @property
    def effective_quantization(self) -> str:
        """The quantization the base must have: the plan's, else the method's, else none."""
        return self.quantization or self.method_spec.quantization or "none"

    @property
    def rank(self) -> int | None:
        """The default rank (`r`) this plan gives, peft's default when unset."""
        name = self.method_spec.rank_option
        if name is None:
            return None
        return self.options.get(name, self.method_spec.options[name].default)

    def peft_config(
        self,
        task_type: str | None = None,
        target_modules: Any = None,
        ranks: dict[str, int] | None = None,
        alphas: dict[str, float] | None = None,
    ) -> Any:
        """peft's config for this plan. `task_type` is used unless the plan sets one; the other
        arguments override the plan's (apply passes the forms it resolved against a model)."""
        spec = self.method_spec
        options = dict(self.options)
        if task_type is not None and "task_type" in spec.options:
            options.setdefault("task_type", task_type)
        extra: dict[str, Any] = {}
        if spec.targets_modules:
            extra["target_modules"] = target_modules if target_modules is not None else self.target_modules
        ranks = self.ranks if ranks is None else ranks
        alphas = self.alphas if alphas is None else alphas
        if ranks:
            extra["rank_pattern"] = dict(ranks)
        if alphas:
            extra["alpha_pattern"] = dict(alphas)
        return methods.build_config(spec, options, **extra)


# ---- checking ----------------------------------------------------------------------------


def _check(data: dict[str, Any], lines: dict[tuple[str, ...], int]) -> Plan:
    """Check a flat mapping of YAML keys and build the Plan. Nothing here touches a model."""
    def at(*path: str) -> dict[str, Any]:
        return {"line": lines.get(tuple(path))}

    for alias, real in _ALIASES.items():
        if alias in data and real not in data and not (alias == "alpha" and not isinstance(data[alias], dict)):
            raise PlanError(
                f"{alias!r} is not a plan key; did you mean {real!r}?", key=alias, choices=[real], **at(alias)
            )
    for key in data:
        if not isinstance(key, str):
            raise PlanError(f"keys are names, got {key!r}", key=str(key), **at(str(key)))

    method_name = data.get("method", "lora")
    if not isinstance(method_name, str):
        raise PlanError(f"{method_name!r} is not a method name", key="method", value=method_name, **at("method"))
    spec = methods.get(method_name, key="method", **at("method"))

    options: dict[str, Any] = {}
    quant_options: dict[str, Any] = {}
    for key, value in data.items():
        if key in _RESERVED:
            continue
        if key.startswith(_QUANT_PREFIXES):
            quant_options[key] = _check_quant_option(key, value, **at(key))
            continue
        if key not in spec.options and key not in methods.PLAN_OWNED:
            pool = list(spec.options) + list(_RESERVED)
            raise unknown("key", key, pool, f" (neither a plan key nor a {spec.name} option)", key=key, **at(key))
        options[key] = methods.check_option(spec, key, value, **at(key))
    for key in _REGEX_OPTIONS:  # strings peft matches as regexes, like target_modules (lists are names,
        found = options.get(key)  # but peft builds layers_pattern's entries into a regex)
        listed = found if isinstance(found, list) and key == "layers_pattern" else []
        for pattern in [found] if isinstance(found, str) else listed:
            if isinstance(pattern, str):
                check_pattern(pattern, key, **at(key))

    targets = data.get("target_modules")
    if targets is not None:
        targets = _check_targets(spec, targets, bool(options.get("target_parameters")), **at("target_modules"))

    ranks = _check_pattern_map(spec, data.get("ranks"), "ranks", int, lines)
    alphas = _check_pattern_map(spec, data.get("alphas"), "alphas", float, lines)

    quant = data.get("quantization")
    if quant is not None:
        quant = _check_quantization(spec, quant, **at("quantization"))
    if quant_options and (quant or spec.quantization or "none") == "none":
        first = next(iter(quant_options))
        raise PlanError(
            f"{first!r} is a bitsandbytes option but the plan does not quantize; add `quantization: 4bit` or `8bit`",
            key=first,
            **at(first),
        )

    for key in ("base", "adapter_name"):
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise PlanError(f"{value!r} is not valid: expected a non-empty string", key=key, value=value, **at(key))
    if data.get("adapter_name") is not None:
        check_adapter_name(data["adapter_name"], **at("adapter_name"))

    train = data.get("train")
    if train is not None:

        train = check_train(train, lines)

    plan = object.__new__(Plan)  # fields already checked: skip __post_init__'s second pass
    plan.__dict__.update(
        method=spec.name,
        options=options,
        target_modules=targets,
        ranks=ranks,
        alphas=alphas,
        quantization=quant,
        quant_options=quant_options,
        base=data.get("base"),
        adapter_name=data.get("adapter_name"),
        train=train,
    )
    # peft's own consistency checks (e.g. IA3's feedforward_modules) before any model
    plan.peft_config()
    return plan


def _check_targets(spec: Any, targets: Any, has_parameters: bool = False, **where: Any) -> list[str] | str:
    if not spec.targets_modules:
        raise PlanError(
            f"method {spec.name!r} does not adapt modules (it learns virtual tokens); remove target_modules",
            key="target_modules",
            value=targets,
            **where,
        )
    if isinstance(targets, str):
        if not targets.strip():
            raise PlanError("target_modules is empty", key="target_modules", value=targets, **where)
        if targets.lower() != "all-linear":
            check_pattern(targets, "target_modules", " (a string is a regex matched against the whole "
                          "module path, a list is names)", **where)
        return targets
    if isinstance(targets, list) and targets and all(isinstance(t, str) and t for t in targets):
        return list(targets)
    if targets == [] and has_parameters:  # peft's way to adapt parameters only (target_parameters)
        return []
    if targets == []:
        raise PlanError(
            "target_modules is an empty list: name modules, or give target_parameters to adapt parameters only",
            key="target_modules",
            value=targets,
            choices=["[q_proj, v_proj]", "all-linear", "target_parameters: [mlp.experts.gate_up_proj]"],
            **where,
        )
    raise PlanError(
        f"{targets!r} is not valid: expected a list of module names, a regex string, or all-linear",
        key="target_modules",
        value=targets,
        choices=["[q_proj, v_proj]", "all-linear", "'.*\\.(q|v)_proj'"],
        **where,
    )


def _check_pattern_map(
    spec: Any, value: Any, key: str, kind: type, lines: dict[tuple[str, ...], int]
) -> dict[str, Any]:
    if value is None:
        return {}
    where = {"line": lines.get((key,))}
    has = spec.has_rank_pattern if key == "ranks" else spec.has_alpha_pattern
    if not has:
        raise PlanError(f"method {spec.name!r} has no per-module {key[:-1]}s", key=key, **where)
    if not isinstance(value, dict) or not value:
        raise PlanError(
            f"{value!r} is not valid: {key} maps groups or patterns to numbers, e.g. {{self_attn.q_proj: 16}}",
            key=key,
            value=value,
            **where,
        )
    out: dict[str, Any] = {}
    for name, number in value.items():
        sub = {"key": f"{key}.{name}", "line": lines.get((key, str(name)), where["line"])}
        ok = isinstance(number, int) if kind is int else isinstance(number, (int, float))
        if isinstance(number, bool) or not ok or number <= 0:
            what = "a positive integer" if kind is int else "a positive number"
            raise PlanError(f"{number!r} is not valid: expected {what}", value=number, **sub)
        if "*" not in str(name).split("."):  # `layers.*.q_proj` becomes our own pattern (model/adapt.py)
            check_pattern(str(name), f"{key}.{name}", line=lines.get((key, str(name)), where["line"]))
        out[str(name)] = number if kind is float and isinstance(number, int) else kind(number)  # 64, not 64.0
    return out


# ---- patterns and names that become code, paths or regexes -----------------------------------

PATTERN_LENGTH = 20_000
"""The longest regex a plan may hold (the studio's alternation of a few groups' paths fits; the
cost of a safe pattern grows with its length, not exponentially)."""
FREE_REPEATS = 3
"""The most open-ended repeats (`*`, `+`, `{2,}`, ...) one match can go through (the worst
alternative of an alternation): each multiplies the work of a match."""


def check_pattern(pattern: str, key: str, hint: str = "", **where: Any) -> None:
    """PlanError unless `pattern` is a regex that matches in bounded time: it compiles, it is at
    most PATTERN_LENGTH long, no repeated group can itself match in several ways (`(.+)+y`,
    `(a|ab)*`: exponential backtracking, which Python's `re` cannot interrupt) and it has at most
    FREE_REPEATS open-ended repeats. Checked here, before peft (or our matching) runs it."""
    where = {"key": key, "value": pattern, **where}
    if len(pattern) > PATTERN_LENGTH:
        raise PlanError(f"the regex is {len(pattern)} characters long (at most {PATTERN_LENGTH}): name the "
                        "modules in a list, or write a shorter pattern", **where)
    try:
        tree = _parse_regex(pattern)
    except (re.error, RecursionError, OverflowError) as err:
        raise PlanError(f"{pattern!r} is not a valid regular expression ({err}){hint}", **where) from None
    free: list[int] = []
    nested = _nested_repeat(tree, free)
    why = ""
    if nested:
        why = ("repeats a group that can itself match in several ways (like `(.+)+` or `(a|ab)*`); "
               "write it without the nested repeat")
    elif len(free) > FREE_REPEATS:
        why = f"has {len(free)} open-ended repeats (`*`, `+`, `{{n,}}`; at most {FREE_REPEATS}); write fewer"
    if why:
        raise PlanError(
            f"the regex {pattern!r} {why}: matching such a pattern can backtrack for minutes and would hang "
            "the kernel (Python cannot interrupt a running match)",
            choices=["'.*\\.(q|v)_proj'", "[q_proj, v_proj]"],
            **where,
        )


def _parse_regex(pattern: str) -> Any:
    try:
        from re import _parser  # type: ignore[attr-defined]  # Python 3.11+
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse as _parser
    return _parser.parse(pattern)


def _nested_repeat(items: Any, free: list[int], inside: bool = False) -> bool:
    """Whether a repeat (more than once) holds a variable repeat or an alternation; counts the
    open-ended repeats into `free`. `items` is a parsed pattern (a list of (op, argument))."""
    for op, arg in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, body = arg
            variable = high != low
            if variable and (high - low > 16 or str(high) == "MAXREPEAT"):
                free.append(1)
            if inside and variable:
                return True
            if _nested_repeat(body, free, inside or high > 1):
                return True
        elif name == "BRANCH":
            if inside:
                return True
            counts = []  # alternatives do not multiply: a match takes one, so count the worst one
            for branch in arg[1]:
                mine: list[int] = []
                if _nested_repeat(branch, mine, inside):
                    return True
                counts.append(len(mine))
            free.extend([1] * max(counts, default=0))
        elif name == "SUBPATTERN":
            if _nested_repeat(arg[-1], free, inside):
                return True
        elif name in ("ASSERT", "ASSERT_NOT"):
            if _nested_repeat(arg[1], free, inside):
                return True
        elif name == "ATOMIC_GROUP":
            if _nested_repeat(arg, free, inside):
                return True
        elif name == "GROUPREF_EXISTS":
            if any(_nested_repeat(b, free, inside) for b in arg[1:] if b is not None):
                return True
    return False


ADAPTER_NAME = re.compile(r"^[^\W\d][\w-]{0,63}$")
"""An adapter name: a letter or `_` first, then letters, digits, `_` or `-`; at most 64. peft
makes it a module key and a folder name (`checkpoint-N/<name>/`): no dots, no separators."""


def check_adapter_name(name: Any, **where: Any) -> str:
    """`name` if it can be an adapter's name (ADAPTER_NAME), else a PlanError saying why."""
    if isinstance(name, str) and ADAPTER_NAME.match(name):
        return name
    raise PlanError(
        f"adapter_name {name!r} is not valid: peft keeps the adapter under this name as a module key and "
        "saves it in a folder of this name, so it is a letter or `_` followed by letters, digits, `_` or "
        "`-` (at most 64; no `/`, `.` or spaces)",
        key="adapter_name",
        value=name,
        choices=["second", "sft_v2", "my-adapter"],
        **where,
    )


def _check_quantization(spec: Any, quant: Any, **where: Any) -> str:
    text = str(quant).lower().replace("-", "").replace("_", "") if quant is not False else "none"
    text = {"4": "4bit", "8": "8bit", "false": "none", "no": "none", "nf4": "4bit", "int8": "8bit"}.get(text, text)
    if text not in QUANTIZATIONS:
        raise unknown("quantization", quant, QUANTIZATIONS, key="quantization", **where)
    if spec.quantization and text != spec.quantization:
        raise PlanError(
            f"method {spec.name!r} means LoRA on a {spec.quantization} base; use method 'lora' with "
            f"quantization: {text}",
            key="quantization",
            value=quant,
            **where,
        )
    return text


def _check_quant_option(key: str, value: Any, **where: Any) -> Any:
    """A bitsandbytes option, checked against `BitsAndBytesConfig`'s own parameters."""
    import inspect as _inspect

    from transformers import BitsAndBytesConfig

    params = _inspect.signature(BitsAndBytesConfig.__init__).parameters
    valid = [p for p in params if p.startswith(_QUANT_PREFIXES)]
    if key not in valid:
        raise unknown("bitsandbytes option", key, valid, key=key, **where)
    choices = {"bnb_4bit_quant_type": ("nf4", "fp4"), "bnb_4bit_compute_dtype": _DTYPES}
    allowed = choices.get(key)
    if allowed is not None and value not in allowed:
        raise PlanError(f"{value!r} is not valid", key=key, value=value, choices=allowed, **where)
    default = params[key].default
    if isinstance(default, bool) and not isinstance(value, bool):
        raise PlanError(f"{value!r} is not valid: expected true or false", key=key, value=value, **where)
    return value


_DTYPES = ("float32", "bfloat16", "float16")
