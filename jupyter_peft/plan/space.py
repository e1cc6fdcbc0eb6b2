"""A sweep's search space, the `sweep:` key of a train block (sweeps/ searches it with Optuna).

    train: {trainer: sft, max_steps: 60, trials: 8,
            sweep: {r: [8, 16, 32], learning_rate: {log: [1.0e-4, 1.0e-2]},
                    lora_dropout: {range: [0.0, 0.1]}, lora_alpha: {int: [8, 64]}}}

Each key is a plan key (the method's options: r, lora_alpha, target_modules, ...) or a field of
the trainer's config (learning_rate, per_device_train_batch_size, ...); which one, and whether
the values suit it, is checked against the plan when the sweep starts (sweeps/space_plan.py).
Here only the space's own shape: pure Python, no Optuna. Values:

    [a, b, c]            choose one (numbers, texts, true/false, or lists such as target_modules)
    {log: [low, high]}   a float, log-uniform (low > 0)
    {range: [low, high]} a float, uniform
    {int: [low, high]}   an integer, uniform, both ends included

`check_space` returns the space in that normal form: `{key: {"choices": [...]} | {"log": [lo, hi]}
| {"range": [lo, hi]} | {"int": [lo, hi]}}`.
"""

from __future__ import annotations

import math
from typing import Any

from .._errors import PlanError, shown, unknown

KINDS = ("log", "range", "int")  # and {choices: [...]}, the normal form of a list
VALID = "[choices] | {log: [low, high]} | {range: [low, high]} | {int: [low, high]}"
# keys a trial cannot change: what the data, the trainer, the base and the sweep itself are
FIXED = ("trainer", "dataset", "eval_dataset", "tokenizer", "reward_funcs", "resume_from", "sweep", "trials",
         "processes", "strategy", "base", "quantization", "adapter_name", "train", "output_dir")
MAX_CHOICES = 1000


def check_space(value: Any, where: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The space in its normal form (see the module docstring); PlanError naming
    `train.sweep.<key>`, what is wrong and what is valid. `where` is the sweep key's
    {"key": "train.sweep", "line": ...}."""
    base_key, line = where.get("key", "train.sweep"), where.get("line")
    if not isinstance(value, dict) or not value:
        raise PlanError(f"{shown(value)} is not a search space: sweep maps keys to values, e.g. "
                        "{r: [8, 16], learning_rate: {log: [1.0e-4, 1.0e-2]}}", key=base_key, line=line,
                        value=value, choices=[VALID])
    out: dict[str, dict[str, Any]] = {}
    for key, spec in value.items():
        at: dict[str, Any] = {"key": f"{base_key}.{key}", "line": line}
        if not isinstance(key, str) or not key.isidentifier():
            raise PlanError(f"{shown(key)} is not a plan or trainer key", value=key, **at)
        if key in FIXED:
            raise PlanError(f"{key} cannot be swept: every trial shares the data, the trainer and the base; "
                            "sweep the method's options or the trainer's numbers", value=key,
                            choices=["r", "lora_alpha", "lora_dropout", "learning_rate"], **at)
        out[key] = _check_one(key, spec, at)
    return out


def _check_one(key: str, spec: Any, at: dict[str, Any]) -> dict[str, Any]:
    if isinstance(spec, list):
        if not spec:
            raise PlanError(f"no choices for {key}: give at least one value", value=spec, choices=[VALID], **at)
        if len(spec) > MAX_CHOICES:
            raise PlanError(f"{len(spec)} choices for {key} (at most {MAX_CHOICES})", value=spec, **at)
        for choice in spec:
            if not _plain(choice):
                raise PlanError(f"choice {shown(choice)} of {key} is not a value a plan can hold (numbers, texts, "
                                "true/false, lists or mappings of them)", value=choice, **at)
        if len({_canon(c) for c in spec}) != len(spec):
            raise PlanError(f"the choices of {key} repeat a value: {shown(spec)}", value=spec, **at)
        return {"choices": list(spec)}
    if not isinstance(spec, dict):
        raise PlanError(f"{shown(spec)} is not valid for {key}: expected {VALID}", value=spec, choices=[VALID], **at)
    if set(spec) == {"choices"} and isinstance(spec["choices"], list):  # the normal form, read back
        return _check_one(key, spec["choices"], at)
    kinds = [k for k in spec if k in KINDS]
    extra = [k for k in spec if k not in KINDS]
    if extra:
        raise unknown("kind of range", str(extra[0]), KINDS, f" for {key} (valid: {VALID})", **at)
    if len(kinds) != 1:
        raise PlanError(f"{shown(spec)} for {key} gives {len(kinds)} kinds of range; give one of log, range, int",
                        value=spec, choices=[VALID], **at)
    kind = kinds[0]
    bounds = spec[kind]
    numbers = isinstance(bounds, list) and len(bounds) == 2 and all(_number(b) for b in bounds)
    if not numbers:
        raise PlanError(f"{kind}: {shown(bounds)} for {key} is not valid: expected [low, high], two numbers",
                        value=bounds, choices=[f"{{{kind}: [low, high]}}"], **at)
    low, high = bounds
    if kind == "int" and not all(isinstance(b, int) for b in bounds):
        raise PlanError(f"int: {shown(bounds)} for {key} is not valid: the ends are integers", value=bounds,
                        choices=["{int: [8, 64]}"], **at)
    if not low < high:
        raise PlanError(f"{kind}: [{low}, {high}] for {key} is empty: low must be below high", value=bounds,
                        choices=[f"{{{kind}: [{min(low, high)}, {max(low, high)}]}}"] if low != high else [], **at)
    if kind == "log" and low <= 0:
        raise PlanError(f"log: [{low}, {high}] for {key} is not valid: a log range starts above 0", value=bounds,
                        choices=["{log: [1.0e-5, 1.0e-2]}", f"{{range: [{low}, {high}]}}"], **at)
    return {kind: [low, high] if kind == "int" else [float(low), float(high)]}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _plain(v: Any, depth: int = 0) -> bool:
    if depth > 4:
        return False
    if v is None or isinstance(v, (bool, int, str)) or (isinstance(v, float) and math.isfinite(v)):
        return True
    if isinstance(v, list):
        return all(_plain(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x, depth + 1) for k, x in v.items())
    return False


def _canon(v: Any) -> str:
    import json

    return json.dumps(v, sort_keys=True)
