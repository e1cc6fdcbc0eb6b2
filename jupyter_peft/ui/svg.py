"""Charts as SVG for the static views (a finished run's snapshot, the studio's saved view).

A notebook reopened without a kernel cannot draw widgets; what it shows instead is HTML from
Python, and its charts are these: `<img src="data:image/svg+xml;base64,...">` (JupyterLab keeps
images with data URLs even in untrusted notebooks, which strip inline `<svg>`; nbviewer and
GitHub show them too). Each is drawn at a nominal size and shown at the width of its place
(`width: 100%`), so on a page they take the room the live charts took. Every label and tick is
made here; the colours are plotly's defaults and the parameter chart's, as the live charts.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from typing import Any

from ..training.metrics import decimate, finite_or_none

# plotly.js's default colorway, so the static charts match the live ones
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
PARAM_COLORS = ("#b8c0cc", "#e8710a")  # frozen, trainable: js/common/param_chart.ts's
INK, MUTED, GRID, FRAME = "#222", "#555", "#e8e8e8", "#c8c8c8"
LINE_W, LINE_H = 480, 250  # a line chart's nominal size (drawn at the width of its grid cell)
PAD_L, PAD_R, PAD_T, PAD_B = 60, 14, 34, 40
MAX_POINTS = 600  # per trace: a chart a few hundred px wide shows no more
_FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif"


def img(svg: str, alt: str, width: int, height: int, css: str = "width:100%;height:auto") -> str:
    """The `<img>` that shows `svg` at the width of its place (`width`/`height`: its aspect)."""
    data = base64.b64encode(svg.encode()).decode()
    return (f"<img class='jp-peft-static-chart' alt='{html.escape(alt)}' width='{width}' height='{height}' "
            f"style='{css}' src='data:image/svg+xml;base64,{data}'/>")


def line_chart(title: str, traces: list[tuple[str, list[Any], list[Any]]], flags: Sequence[int] = (),
               log_y: bool = False, *, unit: str = "", scale: float = 1.0, from_zero: bool = False) -> str:
    """An SVG line chart: one polyline per trace `(name, steps, values)` (gaps at None), values
    times `scale` on a y axis titled `unit` (from 0 with `from_zero`), red dashed lines at `flags`."""
    w, h = LINE_W, LINE_H
    traces = [(name, *decimate(xs, [_scaled(finite_or_none(y), scale) for y in ys], MAX_POINTS))
              for name, xs, ys in traces]
    xs_all = [x for _, xs, _ in traces for x in xs] + list(flags)
    ys_all = [y for _, _, ys in traces for y in ys if y is not None and (y > 0 or not log_y)]
    if not xs_all or not ys_all:
        return _svg(title, "", w, h)
    fy = math.log10 if log_y else (lambda v: v)
    x0, x1 = _span(min(xs_all), max(xs_all))
    lo, hi = min(ys_all), max(ys_all)
    if from_zero and not log_y:
        lo = min(lo, 0.0)
    y0, y1 = _span(fy(lo), fy(hi))
    if from_zero and not log_y and lo >= 0:
        y0 = 0.0
    px = lambda x: PAD_L + (x - x0) / (x1 - x0) * (w - PAD_L - PAD_R)  # noqa: E731
    py = lambda y: h - PAD_B - (fy(y) - y0) / (y1 - y0) * (h - PAD_T - PAD_B)  # noqa: E731
    body = [_axes(x0, x1, y0, y1, log_y, w, h, unit)]
    for step in flags:
        body.append(f"<line x1='{px(step):.1f}' x2='{px(step):.1f}' y1='{PAD_T}' y2='{h - PAD_B}' "
                    "stroke='#d62728' stroke-dasharray='3,3'/>")
    for i, (name, xs, ys) in enumerate(traces):
        color = COLORS[i % len(COLORS)]
        for run in _segments(xs, ys, log_y):
            if len(run) > 1:
                pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in run)
                body.append(f"<polyline fill='none' stroke='{color}' stroke-width='1.6' points='{pts}'/>")
            else:
                body.append(f"<circle cx='{px(run[0][0]):.1f}' cy='{py(run[0][1]):.1f}' r='2' fill='{color}'/>")
        if len(traces) > 1:  # one trace: the title says what it is
            body.append(f"<text x='{w - PAD_R}' y='{14 + 12 * i}' font-size='10' text-anchor='end' "
                        f"fill='{color}'>{html.escape(name)}</text>")
    return _svg(title, "".join(body), w, h)


def param_chart(data: dict[str, Any], width: int = 960) -> tuple[str, int, int]:
    """The trainable-parameter chart (`ui/param_chart.py` data) as horizontal bars: every group,
    its frozen weights (grey) and the trainable parameters an adapter adds (orange) on one log
    axis of powers of ten; returns (svg, width, height)."""
    rows = data.get("rows") or []
    label_w, row_h, top, bottom = 250, 24, 44, 34
    height = top + row_h * max(len(rows), 1) + bottom
    peak = max([r["frozen"] for r in rows] + [r["trainable"] for r in rows] + [10])
    decades = max(1, math.ceil(math.log10(peak)))
    x0, x1 = label_w, width - 16
    px = lambda n: x0 + (math.log10(n) / decades) * (x1 - x0) if n >= 1 else x0  # noqa: E731
    body = [f"<rect x='{width - 214}' y='24' width='9' height='9' fill='{PARAM_COLORS[0]}'/>"
            f"<text x='{width - 201}' y='32' font-size='10' fill='{MUTED}'>frozen</text>"
            f"<rect x='{width - 150}' y='24' width='9' height='9' fill='{PARAM_COLORS[1]}'/>"
            f"<text x='{width - 137}' y='32' font-size='10' fill='{MUTED}'>trainable</text>"]
    axis_y = top + row_h * max(len(rows), 1)
    for k in range(decades + 1):
        x = px(10**k)
        body.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{top - 4}' y2='{axis_y}' stroke='{GRID}'/>"
                    f"<text x='{x:.1f}' y='{axis_y + 13}' font-size='10' text-anchor='middle' fill='{MUTED}'>"
                    f"{format_tick(10**k)}</text>")
    body.append(f"<line x1='{x0}' x2='{x1}' y1='{axis_y}' y2='{axis_y}' stroke='{FRAME}'/>"
                f"<text x='{(x0 + x1) / 2:.0f}' y='{axis_y + 27}' font-size='10' text-anchor='middle' "
                f"fill='{MUTED}'>parameters (log scale)</text>")
    for i, r in enumerate(rows):
        y = top + i * row_h
        body.append(f"<text x='{label_w - 8}' y='{y + 15:.1f}' font-size='11' text-anchor='end' fill='{INK}' "
                    f"font-family='ui-monospace, monospace'>{html.escape(_short(r['role'], 34))}</text>")
        for j, (key, color) in enumerate((("frozen", PARAM_COLORS[0]), ("trainable", PARAM_COLORS[1]))):
            if r[key] > 0:
                bar = max(px(r[key]) - x0, 1.5)
                body.append(f"<rect x='{x0}' y='{y + 3 + j * 9:.1f}' width='{bar:.1f}' height='8' fill='{color}'>"
                            f"<title>{key} {html.escape(r[f'{key}_text'])}</title></rect>")
        if r["trainable"]:
            body.append(f"<text x='{px(r['trainable']) + 4:.1f}' y='{y + 19:.1f}' font-size='9' fill='{MUTED}'>"
                        f"+{html.escape(r['trainable_text'])}</text>")
    return _svg(data.get("title", "trainable parameters"), "".join(body), width, height, title_x=8), width, height


def _scaled(v: float | None, scale: float) -> float | None:
    return None if v is None else v * scale


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else "…" + text[-(n - 1):]


def _svg(title: str, body: str, w: int, h: int, title_x: int = PAD_L) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' viewBox='0 0 {w} {h}' "
            f"font-family=\"{_FONT}\"><rect width='100%' height='100%' rx='4' fill='white'/>"
            f"<text x='{title_x}' y='18' font-size='12' font-weight='600' fill='{INK}'>{html.escape(title)}</text>"
            f"{body}</svg>")


def _axes(x0: float, x1: float, y0: float, y1: float, log_y: bool, w: int, h: int, unit: str) -> str:
    out = [f"<rect x='{PAD_L}' y='{PAD_T}' width='{w - PAD_L - PAD_R}' height='{h - PAD_T - PAD_B}' "
           f"fill='none' stroke='{FRAME}'/>"]
    ticks = nice_ticks(y0, y1)
    step = ticks[1] - ticks[0] if len(ticks) > 1 and not log_y else None
    for t in ticks:
        y = h - PAD_B - (t - y0) / (y1 - y0) * (h - PAD_T - PAD_B)
        label = format_tick(10**t if log_y else t, step)
        out.append(f"<line x1='{PAD_L}' x2='{w - PAD_R}' y1='{y:.1f}' y2='{y:.1f}' stroke='{GRID}'/>"
                   f"<text x='{PAD_L - 5}' y='{y + 3:.1f}' font-size='10' text-anchor='end' fill='{MUTED}'>"
                   f"{label}</text>")
    for t in nice_ticks(x0, x1):
        x = PAD_L + (t - x0) / (x1 - x0) * (w - PAD_L - PAD_R)
        out.append(f"<text x='{x:.1f}' y='{h - PAD_B + 14}' font-size='10' text-anchor='middle' fill='{MUTED}'>"
                   f"{format_tick(t)}</text>")
    out.append(f"<text x='{(w + PAD_L) / 2}' y='{h - 8}' font-size='10' text-anchor='middle' fill='{MUTED}'>"
               "step</text>")
    if unit:
        mid = (h - PAD_B + PAD_T) / 2
        out.append(f"<text x='12' y='{mid:.0f}' font-size='10' text-anchor='middle' fill='{MUTED}' "
                   f"transform='rotate(-90 12 {mid:.0f})'>{html.escape(unit)}</text>")
    return "".join(out)


def _segments(xs: list[Any], ys: list[Any], log_y: bool) -> list[list[tuple[float, float]]]:
    """Runs of drawable points; None (NaN/inf) and non-positive values on a log axis break the line."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(xs, ys):
        if y is None or (log_y and y <= 0):
            runs.append([])
        else:
            runs[-1].append((x, y))
    return [r for r in runs if r]


def _span(lo: float, hi: float) -> tuple[float, float]:
    if hi <= lo:
        pad = abs(lo) * 0.05 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values inside [lo, hi], about `count` of them (1, 2, 2.5, 5 x 10^k steps)."""
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def format_tick(v: float, step: float | None = None) -> str:
    """Short labels: 0.0003, 1.25, 1500, 12k, 3.4M, 1.2G; with enough digits to tell ticks
    `step` apart (a learning rate decaying from 0.001 gets 0.0009998, not 0.001 twice)."""
    a = abs(v)
    digits = 3
    if step and a:
        digits = max(3, math.floor(math.log10(a / step)) + 2)
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= max(size, 1e4):  # 1500 stays 1500; 15000 becomes 15k
            return f"{v / size:.{digits}g}{suffix}"
    return f"{v:.0f}" if a >= 1000 else f"{v:.{digits}g}"
