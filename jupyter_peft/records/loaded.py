"""`jp.Run.load(folder)`: a finished run back from its folder, after a kernel restart.

A `LoadedRun` is a `Run` without a trainer or a model: its state and error (run.json), history
(`run.history`, `run.df`, the same Tracker rows the live run had), plan, checkpoints
(`run.checkpoint`, `run.adapter_path` for `PeftModel.from_pretrained(base, ...)`) and its
dashboard as it ended (the static snapshot with the charts, ui/dashboard/snapshot.py). It
cannot train, stop, save or generate: that needs the model, and the error says how to get it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._errors import PlanError
from ..training import folders
from ..training.metrics import Tracker
from ..training.run import Run
from .catalog import read


class LoadedRun(Run):
    """A Run read back from its folder; built by `load_run` (Run.__init__ needs a trainer)."""

    trainer = None
    model = None
    record: Any
    reason: str

    @classmethod
    def _from_record(cls, record: Any) -> LoadedRun:
        run = cls.__new__(cls)
        run.record = record
        run.folder = record.folder
        run.plan = record.plan
        run.state = record.state
        run.error = record.error
        run.traceback = None
        run.reason = "; ".join(filter(None, [record.reason, record.plan_problem if record.plan_text else ""]))
        """Why the folder is incomplete or unreadable ("" for a run that settled)."""
        run.checkpoint = _complete_checkpoint(record)
        run.tracker = Tracker()
        run.tracker.begin(record.max_steps, None, record.history)
        run.notes, run.views, run.estimate, run.sample_rows = [], [], {}, []
        run.on_cuda, run.closed, run.stop_on_nan = False, True, True
        run._foreground, run._thread = False, None
        run.dashboard = StaticDashboard(run)
        return run

    # ---- what a loaded run can say -------------------------------------------------------

    @property
    def step(self) -> int:
        return int(self.record.steps)

    @property
    def max_steps(self) -> int | None:
        return self.record.max_steps

    @property
    def kind(self) -> str:
        return str(self.record.train.get("trainer") or "run")

    @property
    def save_pending(self) -> bool:
        return False

    @property
    def live(self) -> bool:
        return False

    @property
    def adapter_path(self) -> Path | None:
        if self.checkpoint is None:
            return None
        return folders.adapter_dir(self.checkpoint, self.record.plan_data.get("adapter_name"))

    # ---- what it cannot do ---------------------------------------------------------------

    def _no_model(self, what: str) -> PlanError:
        where = f"PeftModel.from_pretrained(base, {str(self.adapter_path)!r})" if self.adapter_path else "its plan"
        return PlanError(f"{self.folder.name} was loaded from its folder and has no model: to {what}, load the "
                         f"adapter with {where}, or continue it with jp.train(..., resume_from={str(self.folder)!r})")

    def start(self) -> Run:
        raise self._no_model("train it")

    def stop(self) -> Run:
        return self  # it is not training

    def wait(self, timeout: float | None = None) -> str:
        return self.state

    def save(self, wait: bool = True, timeout: float | None = 600) -> Path | None:
        raise self._no_model("save it")

    def generate(self, prompt: Any, max_new_tokens: int = 64, **kwargs: Any) -> str:
        raise self._no_model("generate")

    def compare(self, prompt: Any, max_new_tokens: int = 64, **kwargs: Any) -> Any:
        raise self._no_model("compare with the adapter off")

    def close(self) -> dict[str, Any]:
        return {"freed_bytes": 0, "text": f"{self.folder.name}: a loaded run holds no model"}

    def describe(self) -> str:
        return super().describe() + (f" [{self.reason}]" if self.reason else "")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.dashboard)


class StaticDashboard:
    """A loaded run's dashboard: its static snapshot (status, charts as SVG, as the live
    dashboard's output left it), in any front end. `status` and `progress` are left empty so
    the snapshot computes them from the run (ui/dashboard/view.py)."""

    parts: list[Any] = []

    def __init__(self, run: LoadedRun) -> None:
        self.run = run
        self.status: dict[str, Any] = {}
        self.progress: dict[str, Any] = {}
        self.params: dict[str, Any] = {}

    def _repr_html_(self) -> str:
        from ..ui.dashboard.snapshot import html_snapshot

        return html_snapshot(self.run)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/html": self._repr_html_(), "text/plain": self.run.describe()}


def _complete_checkpoint(record: Any) -> Path | None:
    """The newest checkpoint whose adapter files read back whole (else the newest one)."""
    adapter = record.plan_data.get("adapter_name")
    for checkpoint in reversed(record.checkpoints):
        if folders.problem(checkpoint, adapter, adapter_only=True) is None:
            return checkpoint
    return record.checkpoints[-1] if record.checkpoints else None


def load_run(folder: str | Path) -> LoadedRun:
    """The run in `folder` (see the module docstring); PlanError when there is no such folder."""
    path = Path(folder)
    if not path.is_dir():
        raise PlanError(f"no run folder {str(path)!r}", key="folder", value=str(folder))
    return LoadedRun._from_record(read(path))
