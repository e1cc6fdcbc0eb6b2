"""From a search space and a plan to Optuna's distributions, and from a trial's values to its plan.

A key of the space is a trainer config field (it goes into the train block) or a plan key (the
method's options, `target_modules`, `ranks`, `alphas`); anything else is a PlanError naming
`train.sweep.<key>`. Every choice and both ends of every range are checked as plans before the
first trial, so a sweep never fails on its fifth trial for a value that could not work.
"""

from __future__ import annotations

import json
from typing import Any

from .._errors import PlanError, unknown
from ..plan.plan import Plan
from ..plan.space import check_space
from ..plan.train_config import config_fields

PLAN_KEYS = ("target_modules", "ranks", "alphas")
SWEEP_KEYS = ("sweep", "trials")


def base_of(plan: Plan) -> Plan:
    """`plan` without its sweep: the train block a single trial (and the best plan) starts from."""
    train = {k: v for k, v in (plan.train or {"trainer": "sft"}).items() if k not in SWEEP_KEYS}
    return plan.replace(train=train)


def resolve(plan: Plan, space: Any) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(the checked space in normal form, {key: "train" | "plan"}); PlanError for a key that is
    neither or a value the plan cannot take."""
    space = check_space(space, {"key": "train.sweep"})
    base = base_of(plan)
    trainer = (base.train or {}).get("trainer", "sft")
    fields = config_fields(trainer)
    options = base.method_spec.options
    where: dict[str, str] = {}
    for key in space:
        if key in fields:
            where[key] = "train"
        elif key in options or key in PLAN_KEYS:
            where[key] = "plan"
        else:
            raise unknown("key", key, [*options, *PLAN_KEYS, *fields],
                          f" to sweep (neither a {base.method} option nor a {trainer} config field)",
                          key=f"train.sweep.{key}")
    for key, spec in space.items():  # every value the sampler could pick, checked as a plan now
        for value in spec.get("choices") or next(iter(spec.values())):
            try:
                trial_plan(base, {key: value}, where)
            except PlanError as err:
                raise PlanError(f"{value!r} cannot be swept for {key}: {err.message}", key=f"train.sweep.{key}",
                                value=value, choices=err.choices) from None
    return space, where


def distributions(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Optuna's distribution per key. Choices that are not plain numbers, texts or booleans
    (target_modules lists) are offered as their JSON text and read back by `decode`."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for key, spec in space.items():
        if "choices" in spec:
            out[key] = CategoricalDistribution([_encode(c) for c in spec["choices"]])
        elif "log" in spec:
            out[key] = FloatDistribution(spec["log"][0], spec["log"][1], log=True)
        elif "range" in spec:
            out[key] = FloatDistribution(spec["range"][0], spec["range"][1])
        else:
            out[key] = IntDistribution(*spec["int"])
    return out


def decode(space: dict[str, dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """A trial's values as the plan takes them (the JSON-encoded choices decoded)."""
    out = {}
    for key, value in params.items():
        choices = space.get(key, {}).get("choices") or []
        out[key] = next((c for c in choices if _encode(c) == value and not isinstance(c, str) or c == value), value)
    return out


def trial_plan(base: Plan, values: dict[str, Any], where: dict[str, str], adapter_name: str | None = None) -> Plan:
    """`base` with the trial's `values` (train keys into the train block), as a checked Plan."""
    data = base.to_dict()
    train = dict(data.get("train") or {})
    for key, value in values.items():
        if where[key] == "train":
            train[key] = value
        else:
            data[key] = value
    data["train"] = train
    if adapter_name is not None:
        data["adapter_name"] = adapter_name
    return Plan.from_dict(data)


def _encode(choice: Any) -> Any:
    if choice is None or isinstance(choice, (bool, int, float, str)):
        return choice
    return json.dumps(choice)
