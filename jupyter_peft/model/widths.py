"""A LoRA rank must fit the layers it adapts: above min(in, out) of a layer a rank adds
parameters and no capacity (B @ A already reaches full rank there). A rank a little above a
narrow layer's width is common and harmless (a 4-wide MoE router under `r: 8` all-linear), but
one above both of its sides (`r: 100000` on 64-wide layers) is a mistake to say, not to train.
Called by `model.adapt.check` with what it resolved."""

from __future__ import annotations

import re
from typing import Any

from .._compat import pattern_key
from .._errors import PlanError

_LORA_TYPES = ("LORA",)  # lora, dora, qlora: r is the rank of B @ A


def check_widths(plan: Any, model_map: Any, targets: list[str], ranks: dict[str, int]) -> None:
    """PlanError naming the first targeted group whose width (min of its weight's two sides) is
    below the rank the plan gives it; `ranks` is the resolved rank_pattern (pattern -> rank)."""
    spec = plan.method_spec
    if spec.peft_type not in _LORA_TYPES or plan.rank is None:
        return
    keys = list(ranks)
    for path in targets:
        group = model_map.group_of(path)
        if group is None or len(group.shape) < 2:
            continue
        key = pattern_key(keys, path) if keys else None
        rank = ranks.get(key, plan.rank) if key is not None else plan.rank
        width = min(group.shape[0], group.shape[1])
        if rank > max(group.shape[0], group.shape[1]):
            source = f"ranks.{_plan_key(plan, group.role, path, key)}" if key in ranks else spec.rank_option
            raise PlanError(
                f"rank {rank} is more than {group.role} can use: its weight is {group.shape[1]} -> "
                f"{group.shape[0]}, so a rank above {width} adds parameters and no capacity; use at most {width}",
                key=source,
                value=rank,
                choices=[str(width), str(min(width, 16))],
            )


def _plan_key(plan: Any, role: str, path: str, pattern: str | None) -> str:
    """The plan's own key behind the resolved rank pattern for `path` (a group role became its
    regex): the role itself, else the key written as that pattern, else the pattern."""
    if role in plan.ranks:
        return role
    return next((k for k in plan.ranks if k == pattern or re.fullmatch(rf"(.*\.)?({k})", path)), str(pattern))
