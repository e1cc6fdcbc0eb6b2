"""Format errors of a data set for a trainer, found before any tokenizing or training.

Each problem names the row and the column: a missing column (`chosen`/`rejected` for DPO),
an empty value, a `messages` row without an assistant turn (nothing would train), a message
without `role` or `content`. `check` raises one PlanError listing the first few; `problems`
returns them all (up to `limit`) for a view to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._errors import PlanError

# Columns each trainer reads, as alternatives (the first set present is used).
COLUMNS: dict[str, tuple[tuple[str, ...], ...]] = {
    "sft": (("messages",), ("prompt", "completion"), ("text",)),
    "dpo": (("chosen", "rejected"),),
    "orpo": (("chosen", "rejected"),),
    "cpo": (("chosen", "rejected"),),
    "reward": (("chosen", "rejected"),),
    "kto": (("prompt", "completion", "label"),),
    "grpo": (("prompt",),),
    "rloo": (("prompt",),),
}


@dataclass(frozen=True)
class Problem:
    row: int | None
    column: str
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}, " if self.row is not None else ""
        return f"{where}column {self.column!r}: {self.message}"


def columns_for(dataset: Any, trainer: str, text_field: str = "text") -> tuple[str, ...] | None:
    """The column set `trainer` will read from `dataset` (None: none is there)."""
    names = set(getattr(dataset, "column_names", None) or [])
    for option in COLUMNS.get(trainer, COLUMNS["sft"]):
        option = tuple(text_field if c == "text" else c for c in option)
        if set(option) <= names:
            return option
    return None


def problems(dataset: Any, trainer: str = "sft", text_field: str = "text", limit: int = 20,
             rows: int | None = None) -> list[Problem]:
    """Everything wrong with `dataset` for `trainer` (the first `rows` rows; None: all)."""
    used = columns_for(dataset, trainer, text_field)
    if used is None:
        sets = COLUMNS.get(trainer, COLUMNS["sft"])
        options = [" + ".join(text_field if c == "text" else c for c in o) for o in sets]
        have = list(getattr(dataset, "column_names", None) or [])
        first = tuple(text_field if c == "text" else c for c in COLUMNS.get(trainer, COLUMNS["sft"])[0])
        missing = next((c for c in first if c not in have), first[0])
        return [Problem(None, missing, f"missing; the {trainer} trainer needs the columns {' or '.join(options)}, "
                        f"the data has {have}")]
    out: list[Problem] = []
    count = len(dataset) if rows is None else min(rows, len(dataset))
    if count == 0:
        return [Problem(None, used[0], "the data set has no rows")]
    for i in range(count):
        row = dataset[i]
        for column in used:
            out.extend(_value_problems(i, column, row.get(column), trainer))
        if len(out) >= limit:
            break
    return out[:limit]


def _value_problems(i: int, column: str, value: Any, trainer: str) -> list[Problem]:
    if column == "label":
        return [] if isinstance(value, bool) else [Problem(i, column, f"must be true or false, not {value!r}")]
    if value is None or (isinstance(value, (str, list)) and not value):
        return [Problem(i, column, "is empty")]
    if isinstance(value, str):
        return [Problem(i, column, "is empty")] if not value.strip() else []
    if isinstance(value, list):  # conversational: a list of messages
        bad = [m for m in value if not isinstance(m, dict) or "role" not in m or "content" not in m]
        if bad:
            return [Problem(i, column, f"a message without 'role' and 'content': {bad[0]!r}")]
        if column in ("messages", "completion", "chosen", "rejected") and not any(
            m["role"] == "assistant" for m in value
        ):
            return [Problem(i, column, "has no assistant turn: nothing in this row would train")]
        return []
    return [Problem(i, column, f"must be text or a list of messages, not {type(value).__name__}")]


def check(dataset: Any, trainer: str = "sft", text_field: str = "text", rows: int | None = None) -> None:
    """Raise a PlanError naming the rows and columns at fault (nothing when the data is fine)."""
    found = problems(dataset, trainer, text_field, rows=rows)
    if not found:
        return
    more = f" (and more; {len(found)} shown)" if len(found) > 5 else ""
    first = found[0]
    raise PlanError(
        f"the data set does not suit the {trainer} trainer: " + "; ".join(map(str, found[:5])) + more,
        key=first.column,
        value=first.row,
    )
