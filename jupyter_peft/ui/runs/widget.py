"""The runs table widget: a view of `Runs` (records/catalog.py), drawn by js/runs/.

State in traits: the table (`columns`, `rows`), the ticked runs (`selected`, set by the page),
the comparison's settings (`metric`, `x`, `smooth`, `log_y`, set by the page) and the overlay
Python computed for them (`overlay`: records/compare.overlay, or {}), with `error` for a choice
that cannot be drawn. Messages from the page, routed on `kind`: `compare` (draw the ticked
runs), `refresh` (read the folder again) and `plotly` (plotly_asset.py). Sorting is the page's:
it orders rows Python sent, it computes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from ..._errors import PlanError
from ...records.catalog import COLUMNS
from ...records.compare import metrics_of, overlay
from .. import plotly_asset


class RunsWidget(anywidget.AnyWidget):
    """The table of runs; see the module docstring."""

    _esm = Path(__file__).resolve().parents[2] / "static" / "runs.js"

    runs_dir = t.Unicode("").tag(sync=True)
    """The runs folder the table shows."""
    columns: t.List[dict[str, str]] = t.List().tag(sync=True)
    """The table's columns `[{key, label}]`, in order."""
    rows: t.List[dict[str, Any]] = t.List().tag(sync=True)
    """One row per run, newest first (`Record.row()`; None where unknown)."""
    selected: t.List[str] = t.List().tag(sync=True)
    """The names of the ticked runs (set by the page's checkboxes)."""
    metric = t.Unicode("loss").tag(sync=True)
    """The metric the overlay draws (the page's picker)."""
    x = t.Unicode("step").tag(sync=True)
    """The overlay's x axis: "step" or "time" (seconds since the run started)."""
    smooth = t.Float(0.0).tag(sync=True)
    """EMA weight on the past, 0 (none) to below 1 (the page's slider)."""
    log_y = t.Bool(False).tag(sync=True)
    """Whether the overlay's y axis is logarithmic."""
    overlay = t.Dict().tag(sync=True)
    """What the page draws (records/compare.overlay): traces, every metric logged, the plan diff."""
    error = t.Unicode("").tag(sync=True)
    """Why the overlay could not be drawn ("" when it was)."""

    def __init__(self, runs: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runs = runs
        self.on_msg(self._on_msg)
        self.observe(self._settings_changed, names=["metric", "x", "smooth", "log_y"])
        self.refresh()

    def refresh(self) -> None:
        """The table from the Records (after `Runs.refresh`)."""
        with self.hold_sync():
            self.runs_dir = str(self.runs.runs_dir)
            self.columns = [{"key": k, "label": label} for k, label in COLUMNS]
            self.rows = [r.row() for r in self.runs.records]
            names = {r.name for r in self.runs.records}
            self.selected = [n for n in self.selected if n in names]

    def compare(self, names: list[str] | None = None) -> dict[str, Any]:
        """Draw the runs `names` (default: the ticked ones); returns the overlay."""
        if names is not None:
            self.selected = list(names)
        records = [self.runs[n] for n in self.selected]
        try:
            if not records:
                raise PlanError("tick at least one run to compare")
            metric = self.metric
            known = metrics_of([r.history for r in records])
            if metric not in known and known:
                metric = "loss" if "loss" in known else known[0]
            data = overlay(records, metric, self.x, self.smooth, self.log_y)
        except PlanError as err:
            with self.hold_sync():
                self.error, self.overlay = str(err), {}
            return {}
        with self.hold_sync():
            self.error = ""
            self.overlay = data
            if metric != self.metric:
                self.metric = metric
        return data

    def _settings_changed(self, change: Any) -> None:
        if self.overlay:
            self.compare()

    def _on_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        kind = content.get("kind") if isinstance(content, dict) else None
        if kind == "compare":
            self.compare(content.get("names") if isinstance(content.get("names"), list) else None)
        elif kind == "refresh":
            self.runs.refresh()
        elif kind == "plotly":
            plotly_asset.answer(self, content)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget, and the table as HTML beside it (what a front end without the widget shows)."""
        bundle = super()._repr_mimebundle_(**kwargs)
        table = self.runs._repr_html_()
        if bundle is None:
            return {"text/html": table, "text/plain": repr(self.runs)}
        data, meta = bundle
        return {**data, "text/html": table}, meta
