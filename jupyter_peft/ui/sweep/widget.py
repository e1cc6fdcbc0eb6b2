"""The live sweep dashboard: a view of a `Sweep` (sweeps/search.py), drawn by js/sweep/ with plotly.

State in traits, computed by view.py from the study: `status`, `progress` (trials done, ETA),
`trials` (each with its curve), `best`, `parcoords`, and `cell` (the best plan as a `%%peft`
cell, "" before a trial completed). The sweep calls `refresh` after every evaluation and every
trial. Messages from the page, routed on `kind`: `stop` and `plotly` (plotly_asset.py). Write
cell is the page's: it hands `cell` to the jupyter-peft extension (js/studio/cell.ts), or offers
it to copy.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from .. import plotly_asset
from . import view


class SweepDashboard(anywidget.AnyWidget):
    """Live view of a sweep; see the module docstring."""

    _esm = Path(__file__).resolve().parents[2] / "static" / "sweep.js"

    status = t.Dict().tag(sync=True)
    """`{state, title, message, error, metric, direction}` (view.status)."""
    progress = t.Dict().tag(sync=True)
    """`{done, total, percent, elapsed_text, eta_text, text}` (Sweep.progress)."""
    trials: t.List[dict[str, Any]] = t.List().tag(sync=True)
    """Every trial: `{number, state, value, params, curve: {x, y}, run, why}` (view.trials)."""
    best = t.Dict().tag(sync=True)
    """The best complete trial `{number, value, params, run}`, or {}."""
    parcoords = t.Dict().tag(sync=True)
    """Parallel coordinates of the complete trials (view.parcoords), or {} before two completed."""
    cell = t.Unicode("").tag(sync=True)
    """The best plan as a `%%peft` cell ("" before a trial completed)."""

    def __init__(self, sweep: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sweep = sweep
        self._lock = threading.Lock()
        self.on_msg(self._on_msg)
        self.refresh()

    def refresh(self) -> None:
        """Everything again from the study (a few trials: cheap)."""
        sweep = self.sweep
        with self._lock:
            rows = view.trials(sweep, sweep.study.get_trials(deepcopy=False))
            with self.hold_sync():
                self.status = view.status(sweep)
                self.progress = sweep.progress()
                self.trials = rows
                self.best = view.best(sweep, rows)
                self.parcoords = view.parcoords(sweep, rows)
                self.cell = sweep.best_cell()

    def _on_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        kind = content.get("kind") if isinstance(content, dict) else None
        if kind == "stop":
            self.sweep.stop()
        elif kind == "plotly":
            plotly_asset.answer(self, content)

    def html(self) -> str:
        """The trials as a static table (what a front end without the widget shows)."""
        esc = html.escape

        def line(r: dict[str, Any]) -> str:
            value = "" if r["value"] is None else f"{r['value']:.4g}"
            params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
            return f"<tr><td>{r['number']}</td><td>{esc(r['state'])}</td><td>{value}</td><td>{esc(params)}</td></tr>"

        head = "".join(f"<th>{esc(h)}</th>" for h in ("trial", "state", self.sweep.metric, "params"))
        best = self.best
        said = f"best: trial {best['number']} ({best['value']:.4g})" if best else "no complete trial yet"
        return (f"<div class='jp-peft-static'><b>{esc(self.status.get('title', ''))}</b> · "
                f"{esc(self.status.get('state', ''))} · {esc(self.progress.get('text', ''))}<br>{esc(said)}"
                f"<table><tr>{head}</tr>{''.join(line(r) for r in self.trials)}</table></div>")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return {"text/html": self.html(), "text/plain": repr(self.sweep)}
        data, meta = bundle
        return {**data, "text/html": self.html()}, meta
