"""The one error users see for their own mistakes: where, which key, what was wrong, what is valid.

Kept free of heavy imports: the magics import it at load time.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class PlanError(ValueError):
    """A plan, cell or call that cannot be carried out. Nothing was changed.

    `.line` is the 1-based line in the YAML text (None when the plan did not come from
    text), `.key` the dotted key path (e.g. "train.max_steps"), `.value` the bad value and
    `.choices` the nearest valid values, best first.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        line: int | None = None,
        value: Any = None,
        choices: Iterable[str] = (),
    ) -> None:
        self.message = message
        self.key = key
        self.line = line
        self.value = value
        self.choices = list(choices)
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.key:
            where.append(f"key '{self.key}'")
        text = f"{', '.join(where)}: {self.message}" if where else self.message
        if self.choices:
            text += f" (valid: {', '.join(map(str, self.choices[:12]))}"
            text += ", ...)" if len(self.choices) > 12 else ")"
        return text

    def at(self, line: int | None = None, key: str | None = None) -> PlanError:
        """The same error located at `line` / `key` (kept when already known)."""
        return PlanError(
            self.message,
            key=self.key or key,
            line=self.line if self.line is not None else line,
            value=self.value,
            choices=self.choices,
        )


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The closest valid names to `word`, best first (empty when nothing is close)."""
    pool = [str(c) for c in choices]
    lowered = {c.lower(): c for c in pool}
    close = difflib.get_close_matches(str(word).lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[c] for c in close]


def unknown(kind: str, word: str, choices: Iterable[str], context: str = "", **where: Any) -> PlanError:
    """PlanError for an unknown name, with "did you mean" and the valid names.

    Reads "unknown {kind} {word!r}{context}; did you mean ...?".
    """
    pool = sorted({str(c) for c in choices})
    close = did_you_mean(word, pool)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return PlanError(f"unknown {kind} {word!r}{context}{hint}", value=word, choices=close or pool, **where)
