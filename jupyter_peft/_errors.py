"""The one error users see for their own mistakes: where, which key, what was wrong, what is valid.

Kept free of heavy imports: the magics import it at load time.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable
from typing import Any

SHOWN = 200
"""The most characters of a value a message echoes (a 1 MB list is not printed whole)."""
MESSAGE = 1000
"""The most characters of a message (longer ones keep their start and end)."""


def shown(value: Any, limit: int = SHOWN) -> str:
    """`repr(value)` for a message: at most `limit` characters, the middle left out. Built with
    reprlib, so a huge or deeply nested value is never rendered whole first."""
    short = reprlib.Repr()
    short.maxstring = short.maxother = limit
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 24
    short.maxlevel = 4
    try:
        text = short.repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails is still named
        text = f"<{type(value).__name__}>"
    return clip(text, limit)


def clip(text: str, limit: int) -> str:
    """`text`, or its start and end around a note of how much was left out."""
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 3
    return f"{text[:head]}...[{len(text) - head - tail} characters]...{text[-tail:]}"


def _bounded(message: str, value: Any) -> str:
    """`message` with a long echo of `value` shortened, and at most MESSAGE characters."""
    if value is not None and len(message) > SHOWN:
        for form in (repr, str):
            try:
                text = form(value) if isinstance(value, (str, int, float, list, tuple, dict, set)) else ""
            except Exception:  # noqa: BLE001
                text = ""
            if len(text) > SHOWN and text in message:
                message = message.replace(text, shown(value))
    return clip(message, MESSAGE)


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
        self.message = _bounded(str(message), value)
        self.key = key if key is None else clip(str(key), SHOWN)
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
            text += f" (valid: {', '.join(clip(str(c), 80) for c in self.choices[:12])}"
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
    if len(str(word)) > SHOWN:  # difflib is quadratic in the length; no name is this long
        return []
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
    return PlanError(f"unknown {kind} {shown(word)}{context}{hint}", value=word, choices=close or pool, **where)
