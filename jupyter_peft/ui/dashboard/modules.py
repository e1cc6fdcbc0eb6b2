"""The dashboard's module heatmap part: per-module signals (run.diagnostics) to the page, and as SVG.

Messages (js/dashboard/types.ts, drawn by js/dashboard/heatmap.ts):
- `{kind: "modules", samples: [[step, [[grad...], [update...], [moved...], [relative...]]], ...]}`:
  only the samples not sent yet (each one a value per module and signal, 4 significant digits:
  bytes per sample depend on the number of modules, not on the run's length);
- `{kind: "modules-reset", meta, samples, nan}`: what the columns are (paths, groups, layers,
  ranks, signals) and every sample so far, thinned to `MAX_SAMPLES` (a new view, a new run);
  `nan`: the first non-finite gradient's report (diagnostics/nan.py) or null; it is also sent
  once with `{kind: "modules", samples: [], nan}` when it happens;
- `{kind: "modules-suggest", cell, reasoning}`: once the run has ended, `run.suggest_ranks()` as
  the `%%peft` cell the page's button writes below, and why.
"""

from __future__ import annotations

import html
import math
from typing import Any

from ...diagnostics.text import CAPTION
from ..svg import MUTED, format_tick, img

MAX_SAMPLES = 400
"""Samples a reset sends at most (evenly thinned, the last one kept); the page keeps as many."""


def _round(v: Any) -> float | None:
    v = float(v)
    return float(f"{v:.4g}") if math.isfinite(v) else None


def sample_payload(step: int, row: Any) -> list[Any]:
    """One sample as it goes to the page: [step, [values of each signal, per module]]."""
    return [int(step), [[_round(v) for v in signal] for signal in row]]


class ModulesPart:
    """Sends the run's per-module samples to the dashboard's heatmap."""

    def __init__(self) -> None:
        self._sent = 0
        self._diag: Any = None  # the Diagnostics whose columns the page has
        self._nan_sent = False
        self._suggested: Any = None  # the Diagnostics whose rank suggestion the page has

    def tick(self, widget: Any) -> None:
        diag = getattr(widget.run, "diagnostics", None)
        if diag is None or not diag.modules:
            return
        if diag is not self._diag:  # the first samples, or a new run (Resume): the columns go first
            self.reset(widget)
            return
        steps, rows = diag.samples(self._sent)
        nan = diag.nan if diag.nan is not None and not self._nan_sent else None
        self._suggest(widget, diag)
        if not steps and nan is None:
            return
        self._sent += len(steps)
        self._nan_sent = self._nan_sent or nan is not None
        message: dict[str, Any] = {"kind": "modules", "samples": [sample_payload(s, r) for s, r in zip(steps, rows)]}
        if nan is not None:
            message["nan"] = _wire(nan)
        widget.send(message)

    def reset(self, widget: Any) -> None:
        diag = getattr(widget.run, "diagnostics", None)
        if diag is None or not diag.modules:  # nothing measured yet: the first tick with modules resets
            self._diag = None
            return
        self._diag = diag
        steps, rows = diag.samples()
        self._sent = len(steps)
        keep = _thin(len(steps), MAX_SAMPLES)
        self._nan_sent = diag.nan is not None
        widget.send({"kind": "modules-reset", "meta": diag.meta(),
                     "samples": [sample_payload(steps[i], rows[i]) for i in keep],
                     "nan": _wire(diag.nan) if diag.nan is not None else None})
        self._suggested = None
        self._suggest(widget, diag)

    def _suggest(self, widget: Any, diag: Any) -> None:
        """Once the run has ended (the weights hold still): the next run's ranks, for the page's button."""
        run = widget.run
        if self._suggested is diag or run.state not in ("finished", "stopped") or not len(diag):
            return
        self._suggested = diag
        from ..._errors import PlanError

        try:
            suggestion = run.suggest_ranks()
        except PlanError:  # no low-rank module to measure (IA3, ...): no button
            return
        widget.send({"kind": "modules-suggest", "cell": suggestion.cell(), "reasoning": suggestion.reasoning})

    def html(self, run: Any) -> str:
        diag = getattr(run, "diagnostics", None)
        if diag is None or not diag.modules or not len(diag):
            return ""
        svg, w, h = heatmap_svg(diag, "relative")
        shown = img(svg, "relative update per module", w, h, f"width:100%;max-width:{w}px;height:auto")
        note = f"<div style='color:{MUTED};font-size:12px'>{html.escape(CAPTION)}</div>"
        nan = (f"<div style='color:var(--jp-error-color1, #b00020)'>{html.escape(diag.nan['text'])}</div>"
               if diag.nan else "")
        return f"<div class='jp-peft-modules-static' style='margin-top:6px'>{shown}{nan}{note}</div>"


def _wire(report: dict[str, Any]) -> dict[str, Any]:
    """The NaN report as JSON carries it: a non-finite input norm becomes null (its text says it)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in report.items()}


def _thin(n: int, most: int) -> list[int]:
    if n <= most:
        return list(range(n))
    picked = sorted({round(i * (n - 1) / (most - 1)) for i in range(most)})
    return picked


def grid(meta: dict[str, Any]) -> tuple[list[str], list[Any], dict[tuple[Any, str], int]]:
    """(roles in first-seen order, layers in order, (layer, role) -> module index)."""
    roles = list(dict.fromkeys(meta["groups"]))
    layers = sorted({la for la in meta["layers"] if la is not None}) + (
        [None] if any(la is None for la in meta["layers"]) else [])
    cells = {(la, g): i for i, (la, g) in enumerate(zip(meta["layers"], meta["groups"]))}
    return roles, layers, cells


def heatmap_svg(diag: Any, signal: str) -> tuple[str, int, int]:
    """The last sample's `signal` as an SVG heatmap: layers down, roles across, log colour scale."""
    from ...diagnostics.record import SIGNALS

    meta = diag.meta()
    roles, layers, cells = grid(meta)
    values = diag.last(signal)
    logs = [math.log10(v) for v in values if math.isfinite(v) and v > 0]
    lo, hi = (min(logs), max(logs)) if logs else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1
    cw, ch, left, top = max(34, min(90, 720 // max(len(roles), 1))), 16, 56, 40
    w, h = left + cw * len(roles) + 90, top + ch * len(layers) + 70
    body = []
    for j, role in enumerate(roles):
        x = left + j * cw + cw / 2
        body.append(f"<text x='{x:.0f}' y='{top + ch * len(layers) + 14}' font-size='9' text-anchor='end' "
                    f"fill='{MUTED}' transform='rotate(-35 {x:.0f} {top + ch * len(layers) + 14})'>"
                    f"{html.escape(role.rsplit('.', 1)[-1])}</text>")
    for i, layer in enumerate(layers):
        y = top + i * ch
        body.append(f"<text x='{left - 6}' y='{y + 12}' font-size='10' text-anchor='end' fill='{MUTED}'>"
                    f"{'other' if layer is None else layer}</text>")
        for j, role in enumerate(roles):
            k = cells.get((layer, role))
            if k is None:
                continue
            v = values[k]
            color = _color((math.log10(v) - lo) / (hi - lo)) if math.isfinite(v) and v > 0 else "#dddddd"
            tip = f"{meta['paths'][k]}: {SIGNALS[signal]} {v:.4g}"
            body.append(f"<rect x='{left + j * cw}' y='{y}' width='{cw - 1}' height='{ch - 1}' fill='{color}'>"
                        f"<title>{html.escape(tip)}</title></rect>")
    bx = left + cw * len(roles) + 16
    for t in range(11):
        body.append(f"<rect x='{bx}' y='{top + (10 - t) * ch * len(layers) / 11:.1f}' width='12' "
                    f"height='{ch * len(layers) / 11 + 0.5:.1f}' fill='{_color(t / 10)}'/>")
    body.append(f"<text x='{bx + 16}' y='{top + 8}' font-size='9' fill='{MUTED}'>{format_tick(10 ** hi)}</text>"
                f"<text x='{bx + 16}' y='{top + ch * len(layers)}' font-size='9' fill='{MUTED}'>"
                f"{format_tick(10 ** lo)}</text>")
    title = f"{SIGNALS[signal]} per module, step {diag.steps[-1] if diag.steps else 0} (log colour scale)"
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' viewBox='0 0 {w} {h}' "
            f"font-family='system-ui, sans-serif'><rect width='100%' height='100%' rx='4' fill='white'/>"
            f"<text x='8' y='18' font-size='12' font-weight='600' fill='#222'>{html.escape(title)}</text>"
            f"{''.join(body)}</svg>"), w, h


# viridis at 5 stops: the same scale as the live heatmap's
_STOPS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def _color(t: float) -> str:
    t = min(max(t, 0.0), 1.0) * (len(_STOPS) - 1)
    i = min(int(t), len(_STOPS) - 2)
    f = t - i
    r, g, b = (round(a + (c - a) * f) for a, c in zip(_STOPS[i], _STOPS[i + 1]))
    return f"#{r:02x}{g:02x}{b:02x}"
