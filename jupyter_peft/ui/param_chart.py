"""The trainable-parameter chart, one data shape for the studio and the dashboard.

Per group of the ModelMap: its frozen parameters (the base weights) and the trainable ones
an adapter adds, drawn as two bars on a log axis by `js/common/param_chart.ts` (both
widgets) and as SVG by `snapshot.bar_chart` (a finished run). The studio feeds it the
preview counts of its selection (`counting.Count`), the dashboard the applied adapter's
`summarize(peft_model)`; for the same plan the group rows are the same (the
preview counts equal peft's own, see counting.py).

Pure Python, no torch: every number and label is made here, the page only draws them.
"""

from __future__ import annotations

from typing import Any

from .._format import format_percent as percent_text

OTHER = "other (virtual tokens, saved modules)"


def param_chart(
    groups: list[tuple[str, int]], trainable: dict[str, int], other: dict[str, int], total_trainable: int, total: int
) -> dict[str, Any]:
    """The chart's data: `groups` (role, frozen parameters) in model order, each with the
    trainable parameters `trainable` gives it; `other` trainable parameters outside adapted
    groups (virtual tokens, modules_to_save...), one bar each; totals for the title."""
    rows = [_row(role, frozen, trainable.get(role, 0)) for role, frozen in groups if frozen]
    rows += [_row(name, 0, n) for name, n in other.items() if n]
    percent = 100.0 * total_trainable / total if total else 0.0
    return {
        "title": f"trainable: {total_trainable:,} of {total:,} parameters ({percent_text(percent)})",
        "trainable": total_trainable,
        "total": total,
        "rows": rows,
    }


def from_count(model_map: Any, count: Any | None) -> dict[str, Any]:
    """The studio's chart: the preview `Count` of its selection (None: no valid plan, every
    group frozen)."""
    groups = [(g.role, g.params) for g in model_map.groups]
    if count is None:
        return param_chart(groups, {}, {}, 0, model_map.total_params)
    per_group = {role: cost.trainable for role, cost in count.per_group.items()}
    return param_chart(groups, per_group, {OTHER: count.other.trainable}, count.trainable, count.total)


def from_summary(summary: Any, model_map: Any) -> dict[str, Any]:
    """The dashboard's chart: an applied adapter's `Summary` (summary.py) over `model_map`,
    the ModelMap of the same PeftModel."""
    groups = [(g.role, g.params) for g in model_map.groups]
    per_group = {r.role: r.added for r in summary.rows}
    return param_chart(groups, per_group, dict(summary.other), summary.trainable, summary.total)


def _row(role: str, frozen: int, trainable: int) -> dict[str, Any]:
    share = f" ({100.0 * trainable / frozen:.2f}% of its weights)" if frozen and trainable else ""
    return {
        "role": role,
        "frozen": frozen,
        "trainable": trainable,
        "frozen_text": f"{frozen:,}",
        "trainable_text": f"{trainable:,}{share}",
    }
