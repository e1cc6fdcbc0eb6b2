"""plotly.js for the page, sent once: the widgets' bundles do not carry it.

Both widgets draw with one partial plotly build (`static/plotly.js`: core + bar, about 1.1 MB).
anywidget imports each widget's `_esm` on its own (a blob URL per model), so a plotly inside
both bundles would reach the page twice per widget shown. Instead the first view on a page asks
its widget for plotly (`{kind: "plotly"}`), gets the file as one binary buffer, imports it and
keeps it on `globalThis` for every later view of either widget (js/common/plotly.ts).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

PLOTLY = Path(__file__).resolve().parents[1] / "static" / "plotly.js"


@functools.lru_cache(maxsize=1)
def plotly_source() -> bytes:
    return PLOTLY.read_bytes()


def answer(widget: Any, content: Any) -> bool:
    """Send plotly to `widget`'s page when `content` asks for it; True when it did."""
    if not isinstance(content, dict) or content.get("kind") != "plotly":
        return False
    widget.send({"kind": "plotly"}, buffers=[plotly_source()])
    return True
