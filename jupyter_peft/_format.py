"""One way to write sizes and durations, for every view (studio, dashboard, estimate, merge, exports).

`format_bytes` picks the unit (B, KiB, MiB, GiB) and writes two decimals above bytes, so the
same number reads the same everywhere; `format_duration` writes m:ss or h:mm:ss.
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


def format_duration(seconds: float | None) -> str:
    """m:ss, or h:mm:ss from an hour on; "" for None or a non-finite value."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    total = int(round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
