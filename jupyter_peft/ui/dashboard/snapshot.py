"""The static picture of a finished run: HTML with the final charts as SVG images.

A notebook reopened without a kernel cannot draw widgets, so when a run ends its dashboard's
output is replaced by this. It is `text/html` holding `<img src="data:image/svg+xml;base64,...">`:
JupyterLab shows that for untrusted notebooks too (its sanitizer keeps images with data
URLs, while it refuses untrusted `image/svg+xml` and strips inline `<svg>`), and so do
nbviewer and GitHub.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from typing import Any

from ...training.metrics import decimate, finite_or_none
from . import view

# plotly.js's default colorway, so the static charts match the live ones
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
_W, _H, _PAD_L, _PAD_R, _PAD_T, _PAD_B = 360, 220, 56, 12, 28, 40
PARAM_COLORS = ("#b8c0cc", "#e8710a")  # frozen, trainable: js/common/param_chart.ts's
MAX_POINTS = 400  # per trace: a line 360 px wide shows no more


def html_snapshot(run: Any) -> str:
    """The whole static dashboard of `run`: status, error, flags, charts, trainable parameters."""
    tracker, status, progress = run.tracker, run.dashboard.status, run.dashboard.progress
    charts = []
    for panel in tracker.panels():
        traces = [(key, *tracker.series(key)) for key in panel["keys"]]
        flags = [f["step"] for f in tracker.flags] if panel["id"] == "loss" else []
        charts.append(_img(line_chart(panel["title"], traces, flags, panel["log_y"]), panel["title"]))
    params = run.dashboard.params
    if params.get("rows"):
        charts.append(_img(bar_chart(params), "trainable parameters"))
    esc = html.escape
    lines = [f"<div><b>{esc(status.get('title', ''))}</b>: <b>{esc(status.get('state', ''))}</b> "
             f"{esc(progress.get('text', ''))}</div>"]
    for key, color in (("message", "#444"), ("error", "#b00020")):
        if status.get(key):
            lines.append(f"<div style='color:{color}'>{esc(status[key])}</div>")
    memory = view.memory(run).get("line")
    if memory:
        lines.append(f"<div style='color:#444'>{esc(memory)}</div>")
    for flag in tracker.flags[:10]:
        text = f"{flag['key']} = {flag['value']} at step {flag['step']}"
        lines.append(f"<div style='color:#b00020'>{esc(text)}</div>")
    return (
        "<div class='jp-peft-run-snapshot' style='font-family:var(--jp-ui-font-family,sans-serif);font-size:13px'>"
        + "".join(lines)
        + "<div style='display:flex;flex-wrap:wrap;gap:6px;margin-top:6px'>" + "".join(charts) + "</div></div>"
    )


def _img(svg: str, alt: str) -> str:
    data = base64.b64encode(svg.encode()).decode()
    return f"<img alt='{html.escape(alt)}' width='{_W}' height='{_H}' src='data:image/svg+xml;base64,{data}'/>"


def line_chart(title: str, traces: list[tuple[str, list[Any], list[Any]]], flags: Sequence[int] = (),
               log_y: bool = False) -> str:
    """An SVG line chart: one polyline per trace (gaps at None), red dashed lines at `flags`."""
    traces = [(name, *decimate(xs, [finite_or_none(y) for y in ys], MAX_POINTS)) for name, xs, ys in traces]
    xs_all = [x for _, xs, _ in traces for x in xs] + list(flags)
    ys_all = [y for _, _, ys in traces for y in ys if y is not None and (y > 0 or not log_y)]
    if not xs_all or not ys_all:
        return _svg(title, "")
    fy = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    x0, x1 = _span(min(xs_all), max(xs_all))
    y0, y1 = _span(fy(min(ys_all)), fy(max(ys_all)))
    px = lambda x: _PAD_L + (x - x0) / (x1 - x0) * (_W - _PAD_L - _PAD_R)  # noqa: E731
    py = lambda y: _H - _PAD_B - (fy(y) - y0) / (y1 - y0) * (_H - _PAD_T - _PAD_B)  # noqa: E731
    body = [_axes(x0, x1, y0, y1, log_y)]
    for step in flags:
        body.append(f"<line x1='{px(step):.1f}' x2='{px(step):.1f}' y1='{_PAD_T}' y2='{_H - _PAD_B}' "
                    "stroke='#d62728' stroke-dasharray='3,3'/>")
    for i, (name, xs, ys) in enumerate(traces):
        color = COLORS[i % len(COLORS)]
        for run in _segments(xs, ys, log_y):
            pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in run)
            shape = "polyline" if len(run) > 1 else "circle"
            if shape == "polyline":
                body.append(f"<polyline fill='none' stroke='{color}' stroke-width='1.5' points='{pts}'/>")
            else:
                body.append(f"<circle cx='{px(run[0][0]):.1f}' cy='{py(run[0][1]):.1f}' r='2' fill='{color}'/>")
        body.append(f"<text x='{_W - _PAD_R}' y='{14 + 12 * i}' font-size='10' text-anchor='end' "
                    f"fill='{color}'>{html.escape(name)}</text>")
    return _svg(title, "".join(body))


def bar_chart(params: dict[str, Any]) -> str:
    """The trainable-parameter chart (`param_chart`) of the adapted groups, largest first: per
    group its frozen weights (grey) and the trainable parameters (orange) on a log scale, as
    the live chart draws them."""
    rows = sorted((r for r in params["rows"] if r["trainable"]), key=lambda r: -r["trainable"])[:5]
    top = math.log10(max([r["frozen"] for r in rows] + [r["trainable"] for r in rows] + [10]))
    row_h = min((_H - _PAD_T - 4) / max(len(rows), 1), 40)
    width = _W - _PAD_R - 8
    body = []
    for i, r in enumerate(rows):
        y = _PAD_T + i * row_h
        body.append(f"<text x='8' y='{y + 10:.1f}' font-size='10'>{html.escape(r['role'])}"
                    f"<tspan fill='#555' font-size='9'>  +{html.escape(r['trainable_text'])}</tspan></text>")
        bar_h = (row_h - 16) / 2
        for j, (key, color) in enumerate((("frozen", PARAM_COLORS[0]), ("trainable", PARAM_COLORS[1]))):
            w = max(math.log10(r[key]) / top * width, 1) if r[key] > 1 else 1
            body.append(f"<rect x='8' y='{y + 13 + j * bar_h:.1f}' width='{w:.1f}' height='{bar_h - 1:.1f}' "
                        f"fill='{color}'><title>{key} {r[key]:,}</title></rect>")
    return _svg(params.get("title", "trainable parameters"), "".join(body), title_x=8)


def _svg(title: str, body: str, title_x: int = _PAD_L) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{_H}' viewBox='0 0 {_W} {_H}' "
            "font-family='sans-serif'><rect width='100%' height='100%' fill='white'/>"
            f"<text x='{title_x}' y='16' font-size='12' font-weight='bold'>{html.escape(title)}</text>{body}</svg>")


def _axes(x0: float, x1: float, y0: float, y1: float, log_y: bool) -> str:
    out = [f"<rect x='{_PAD_L}' y='{_PAD_T}' width='{_W - _PAD_L - _PAD_R}' height='{_H - _PAD_T - _PAD_B}' "
           "fill='none' stroke='#ccc'/>"]
    ticks = nice_ticks(y0, y1)
    step = ticks[1] - ticks[0] if len(ticks) > 1 and not log_y else None
    for t in ticks:
        y = _H - _PAD_B - (t - y0) / (y1 - y0) * (_H - _PAD_T - _PAD_B)
        label = format_tick(10 ** t if log_y else t, step)
        out.append(f"<line x1='{_PAD_L}' x2='{_W - _PAD_R}' y1='{y:.1f}' y2='{y:.1f}' stroke='#eee'/>"
                   f"<text x='{_PAD_L - 4}' y='{y + 3:.1f}' font-size='9' text-anchor='end'>{label}</text>")
    for t in nice_ticks(x0, x1):
        x = _PAD_L + (t - x0) / (x1 - x0) * (_W - _PAD_L - _PAD_R)
        out.append(f"<text x='{x:.1f}' y='{_H - _PAD_B + 12}' font-size='9' text-anchor='middle'>"
                   f"{format_tick(t)}</text>")
    out.append(f"<text x='{(_W + _PAD_L) / 2}' y='{_H - 8}' font-size='10' text-anchor='middle'>step</text>")
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
    return [round(first + i * step, 12) for i in range(int((hi - first) / step) + 1)]


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
