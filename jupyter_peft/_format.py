"""One way to write sizes and durations, for every view (studio, dashboard, estimate, merge, exports).

`format_bytes` picks the unit (B, KiB, MiB, GiB) and writes two decimals above bytes, so the
same number reads the same everywhere; `format_percent` writes shares; `format_duration` writes
m:ss or h:mm:ss.
"""

from __future__ import annotations

import math

KiB, MiB, GiB = 2**10, 2**20, 2**30


def format_bytes(n: float | None) -> str:
    """`n` bytes in the largest unit it reaches (up to GiB), "" for None."""
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return ""  # pragma: no cover - the loop always returns


def format_percent(p: float) -> str:
    """A share as every view writes it: two decimals (1.79%), two significant digits below
    0.1% (0.042%), so the studio's panel, its chart, the Apply summary and the dashboard agree."""
    if p == 0 or p >= 0.1:
        return f"{p:.2f}%"
    return f"{p:.2g}%" if p >= 1e-4 else "<0.0001%"


def format_duration(seconds: float | None) -> str:
    """m:ss, or h:mm:ss from an hour on; "" for None or a non-finite value."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    total = int(round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
