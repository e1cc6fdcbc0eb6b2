"""The static picture of a run: HTML with its charts as SVG images, for a notebook without a kernel.

The dashboard's output carries it beside the live widget (widget.py), kept up to date at each
checkpoint and at the end; where the widget cannot be drawn (the notebook reopened without its
kernel, nbviewer, GitHub) this shows instead. Same text as the live view (view.py: state,
progress, message, memory), the same charts with the same titles, trace names and units, laid
out the way the live ones are: a grid of charts as wide as the output, then the trainable
parameters of every group across the whole width. Inline styles only: no stylesheet of ours
is on a page that never drew the widget.
"""

from __future__ import annotations

import html
from typing import Any

from ..svg import LINE_H, LINE_W, format_tick, img, line_chart, nice_ticks, param_chart  # noqa: F401 - re-exported
from . import view

_ERROR, _MUTED = "var(--jp-error-color1, #b00020)", "var(--jp-ui-font-color2, #555)"


def html_snapshot(run: Any) -> str:
    """The whole static dashboard of `run`: status, error, flags, charts, trainable parameters."""
    tracker, dash = run.tracker, run.dashboard
    status = dash.status if dash is not None and dash.status else view.status(run)
    progress = dash.progress if dash is not None and dash.progress else view.progress(run)
    charts = []
    for panel in view.panels(run):
        traces = [(panel["labels"].get(key, key), *tracker.series(key)) for key in panel["keys"]]
        flags = [f["step"] for f in tracker.flags] if panel["id"] == "loss" else []
        svg = line_chart(panel["title"], traces, flags, panel["log_y"], unit=panel["unit"], scale=panel["scale"],
                         from_zero=panel["from_zero"])
        charts.append(f"<div>{img(svg, panel['title'], LINE_W, LINE_H)}</div>")
    params = dash.params if dash is not None else {}
    esc = html.escape
    lines = [f"<div><b>{esc(status.get('title', ''))}</b> · <b>{esc(status.get('state', ''))}</b> "
             f"<span style='color:{_MUTED}'>{esc(progress.get('text', ''))}</span></div>"]
    for key, color in (("message", _MUTED), ("error", _ERROR)):
        if status.get(key):
            lines.append(f"<div style='color:{color};white-space:pre-wrap'>{esc(status[key])}</div>")
    memory = view.memory(run).get("line")
    if memory:
        lines.append(f"<div style='color:{_MUTED}'>{esc(memory)}</div>")
    for flag in tracker.flags[:10]:
        text = f"{flag['key']} = {flag['value']} at step {flag['step']}"
        lines.append(f"<div style='color:{_ERROR}'>{esc(text)}</div>")
    if run.state in view.LIVE:
        lines.append(f"<div style='color:{_MUTED}'>(as it was at step {run.step}: the kernel that ran it "
                     "is not connected)</div>")
    grid = ("<div style='display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:6px;"
            "margin-top:6px'>" + "".join(charts) + "</div>")
    bars = ""
    if params.get("rows"):
        svg, w, h = param_chart(params)
        shown = img(svg, "trainable parameters", w, h, "width:100%;max-width:1200px;height:auto")
        bars = f"<div style='margin-top:6px'>{shown}</div>"
    return ("<div class='jp-peft-static jp-peft-run-snapshot' style='font-size:13px;"
            "font-family:var(--jp-ui-font-family,sans-serif);color:var(--jp-ui-font-color1,#222)'>"
            + "".join(lines) + grid + bars + "".join(part.html(run) for part in getattr(dash, "parts", []))
            + "</div>")
