"""The live training dashboard (anywidget): a view of a `Run`, drawn by js/dashboard/ with plotly.

State lives in traitlets (status, progress, panels, flags, params, memory). Metric points stream as
custom messages holding only the points logged since the previous update, at most once per
`interval` seconds (0.25), so bytes per step do not grow with the history. The training thread
only queues each history row (`add`); the run's monitor thread (training/run.py) makes the
points, sends them and syncs the traits (`tick`), so the dashboard costs a step an append. The browser keeps at
most `max_points` points per trace and thins the older ones. Messages from the page are
routed on `kind`: `stop`, `save`, `resume` (resume.py: the run that continues this one, shown
here), `sync` (a new view asks for the history so far, answered by one `reset`) and `plotly`
(plotly_asset.py). The output carries a static HTML snapshot beside the widget (snapshot.py),
brought up to date when the run ends and at each checkpoint: a notebook reopened without a
kernel shows that (the jupyter-peft extension falls back to it when the widget's model is gone).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from ..._errors import PlanError
from ...model.adapt import find_peft_model
from ...model.modelmap import inspect
from ...model.summary import summarize
from ...training.metrics import decimate, finite_or_none, panel_of
from .. import plotly_asset
from ..param_chart import from_summary
from . import samples, view
from .modules import ModulesPart

LIVE = ("ready", "running", "stopping")
MAX_FLAGS = 20


class Dashboard(anywidget.AnyWidget):
    """Live charts, progress and Stop / Save now for a training run (`run.dashboard`)."""
    _esm = Path(__file__).resolve().parents[2] / "static" / "dashboard.js"

    status = t.Dict().tag(sync=True)
    """The run's state line (view.status): state, title, message, error, checkpoint."""
    progress = t.Dict().tag(sync=True)
    """Progress (view.progress): step, max_steps, percent, text (step, epoch, elapsed, ETA)."""
    panels: t.List[dict[str, Any]] = t.List().tag(sync=True)
    """The charts to draw, `[{id, title, keys, log_y}]`, from `Tracker.panels()`."""
    flags: t.List[dict[str, Any]] = t.List().tag(sync=True)
    """Non-finite losses and grad norms, `[{step, key, value}]`: marked on the loss chart."""
    params = t.Dict().tag(sync=True)
    """The trainable-parameter chart (`param_chart.from_summary`): frozen and trainable
    parameters per group, drawn like the studio's."""
    memory = t.Dict().tag(sync=True)
    """Measured memory `{label, bytes, text}` (CUDA peak, or process RSS on CPU) and the estimate
    for the run's settings `{estimate_bytes, estimate_text}` (view.memory); `line` says both."""
    max_points = t.Int(2000).tag(sync=True)
    """Points per trace the browser keeps; beyond it the older half is thinned to every other point."""
    interval = t.Float(0.25)
    """Seconds between updates sent to the browser: 4 a second, as often as the page redraws.
    Updates are made and sent by the run's monitor thread (`tick`), never the training thread."""
    def __init__(self, run: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run = run
        self._lock = threading.Lock()  # the training thread adds, the kernel's thread resets
        self._sync = threading.RLock()  # one trait update at a time
        self._queue: deque[dict[str, Any]] = deque()  # rows the training thread added, not yet made points
        self._pending: dict[str, tuple[list[int], list[float | None]]] = {}
        self._charted: dict[str, bool] = {}
        self._count = 0  # history rows whose points were added (sent, pending or in a reset)
        self._next = time.monotonic()  # the monitor's next update (tick)
        self._keys = self._flags = -1
        self._display_id: str | None = None
        self._shown: tuple[str, Any] | None = None  # (state, checkpoint) the displayed snapshot shows
        self._resume_error = ""
        self.parts: list[Any] = []
        """More views inside the dashboard (samples table, module heatmap): each has `tick(widget)`
        (send what is new; called with every update, off the training thread), `reset(widget)` (send
        everything: a new view asked for it) and `html(run)` (its part of the static snapshot)."""
        self.parts += samples.parts_for(run)  # the samples table (samples.py, issue 17)
        self.parts.append(ModulesPart())  # the module heatmap (modules.py, issue 19)
        self.on_msg(self._on_msg)
        self.params = _param_data(run.model)
        self.refresh()
        run.watch(self)

    # ---- from the run --------------------------------------------------------------------

    def add(self, row: dict[str, Any]) -> None:
        """A new history row, on the training thread: queued, nothing else (O(1)). The run's
        monitor thread `tick`s: the points are made, serialised and sent there."""
        self._queue.append(row)

    def tick(self) -> None:
        """From the run's monitor thread (every 0.25 s while it trains): send what is new once
        `interval` has passed. An update that took long (a slow kernel connection) waits 200 times
        as long as it took before the next: the updates take at most 0.5% of the time."""
        now = time.monotonic()
        if now < self._next:
            return
        self.flush()
        spent = time.monotonic() - now
        self._next = now + max(self.interval, 200 * spent)

    def _drain(self) -> None:
        """Queued rows into pending points (holding `_lock`)."""
        queue, pending = self._queue, self._pending
        while queue:
            row = queue.popleft()
            for key, value in row.items():
                charted = self._charted.get(key)
                if charted is None:
                    charted = self._charted[key] = panel_of(key) is not None
                if charted:
                    xs, ys = pending.setdefault(key, ([], []))
                    xs.append(row["step"])
                    ys.append(finite_or_none(value))
            self._count += 1

    def flush(self) -> None:
        """Send the queued points (only those) and the current status."""
        with self._lock:
            self._drain()
            pending, self._pending = self._pending, {}
        if pending:
            self.send({"kind": "points", "series": pending})
        for part in self.parts:
            part.tick(self)
        self.refresh()

    def refresh(self) -> None:
        """Push status, progress, panels, flags and memory (traits send only what changed)."""
        run, tracker = self.run, self.run.tracker
        with self._sync, self.hold_sync():
            status = view.status(run)
            if self._resume_error:
                status = {**status, "error": self._resume_error}
            self.status = status
            self.progress = view.progress(run)
            if self._keys != len(tracker.keys):  # a new metric: maybe a new chart or trace
                self._keys = len(tracker.keys)
                self.panels = view.panels(run)
            if self._flags != len(tracker.flags):  # the latest ones: a run of inf grad norms stays small
                self._flags = len(tracker.flags)
                self.flags = tracker.flags[-MAX_FLAGS:]
            self.memory = view.memory(run)
        if run.state in LIVE and self._display_id is not None and self._shown != (run.state, run.checkpoint):
            self._update_display()  # a checkpoint while training: the saved snapshot follows (finish: the end)

    def follow(self, run: Any) -> None:
        """Show `run` from now on (Resume: the run that continues this one)."""
        if self in self.run.views:
            self.run.views.remove(self)
        run.views[:] = [v for v in run.views if not isinstance(v, Dashboard)]  # the one jp.train made
        with self._lock:
            self._queue.clear()
            self.run, self._pending, self._count, self._charted = run, {}, 0, {}
            self._keys = self._flags = -1
        self._resume_error = ""
        run.dashboard = self
        run.watch(self)
        self.params = _param_data(run.model)
        self.begin()

    def begin(self) -> None:
        """Training (re)starts: the history so far (a resumed run's) goes to every view."""
        with self._lock:
            self._queue.clear()
            self._count = len(self.run.tracker.rows)
        self.resync()

    def resync(self) -> None:
        """Send every view the whole history so far, thinned to `max_points` per trace."""
        tracker = self.run.tracker
        with self._lock:
            self._drain()
            self._pending = {}  # the reset covers them
            series = {}
            for key in tracker.keys:
                steps, values = tracker.series(key, until=self._count)
                series[key] = decimate(steps, values, self.max_points)
        self.send({"kind": "reset", "series": series})
        for part in self.parts:
            part.reset(self)
        self.refresh()

    def finish(self) -> None:
        """The run ended: last points and status; the output's snapshot shows the end (the live
        view stays while the kernel lives: its charts, and Resume)."""
        self.flush()
        self._update_display()

    # ---- display -------------------------------------------------------------------------

    def static_bundle(self) -> dict[str, str]:
        """The snapshot alone: what a front end without widgets, or without this kernel, shows."""
        from .snapshot import html_snapshot

        return {"text/html": html_snapshot(self.run), "text/plain": self.run.describe()}

    def bundle(self, live: bool = True) -> dict[str, Any]:
        """The output: the snapshot, and the widget's view beside it while the widget is open."""
        data: dict[str, Any] = self.static_bundle()
        widget = super()._repr_mimebundle_() if live and self.comm is not None else None
        if widget is not None:
            data = {**widget[0], **data}
        self._shown = (self.run.state, self.run.checkpoint)
        return data

    def _update_display(self) -> None:
        if self._display_id is None:
            return
        from IPython.display import update_display

        update_display(self.bundle(), raw=True, display_id=self._display_id)

    def show(self, live: bool | None = None) -> None:
        """Display the dashboard: the live view with its snapshot beside it, or (live=False) the
        snapshot alone."""
        from IPython.display import display

        self._display_id = self._display_id or uuid.uuid4().hex
        display(self.bundle(live=live is not False), raw=True, display_id=self._display_id)

    def _ipython_display_(self) -> None:
        self.show()

    # ---- from the page -------------------------------------------------------------------

    def _on_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        kind = content.get("kind") if isinstance(content, dict) else None
        if kind == "stop":
            self.run.stop()
        elif kind == "save":
            self.run.save(wait=False)
            self.refresh()
        elif kind == "sync":
            self.resync()
        elif kind == "resume":
            self._resume()
        elif kind == "plotly":  # the page's first chart: plotly itself
            plotly_asset.answer(self, content)

    def _resume(self) -> None:
        from .resume import resume

        try:
            resume(self)
        except PlanError as err:  # said on the dashboard: the click came from the page, not a cell
            self._resume_error = str(err)
            self.refresh()


def _param_data(model: Any) -> dict[str, Any]:
    """The trainable-parameter chart of a PeftModel ({} for a model without adapters)."""
    peft_model = find_peft_model(model)
    if peft_model is None:
        return {}
    return from_summary(summarize(peft_model), inspect(peft_model))
