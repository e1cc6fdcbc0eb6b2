"""`jp.runs(runs_dir)`: every run folder under the runs folder, read back as a `Record`.

A run folder (training/folders.py) holds `plan.yaml`, `history.jsonl`, `checkpoint-N/` and
`run.json` (how it ended: state, error, start and end, steps). Reading one never raises: a
folder from an older version (no run.json), one half-written by a crash (a history line cut
short, a run.json that still says "running" though no kernel trains it), or one that is no run
folder at all is listed with state "incomplete" or "unreadable" and the reason. Sweep folders
(`study.db`, sweeps/) are not runs: their trials are, each in its own run folder.
"""

from __future__ import annotations

import functools
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import PlanError
from ..training import folders

ENDED = ("finished", "stopped", "failed")
LIVE = ("running", "stopping")
SWEEP_MARKERS = ("study.db", "sweep.yaml")
_STAMP = re.compile(r"^(\d{8}-\d{6})")

# the table's columns, in order: (key, label)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "run"), ("trainer", "trainer"), ("method", "method"), ("r", "r"), ("targets", "targets"),
    ("learning_rate", "learning rate"), ("state", "state"), ("steps", "steps"), ("max_steps", "of"),
    ("train_loss", "final train loss"), ("eval_loss", "best eval loss"), ("eval_step", "at step"),
    ("duration_s", "duration (s)"), ("started", "started"), ("reason", "note"),
)


@dataclass
class Record:
    """One run folder as read back; see the module docstring. `plan_data` is plan.yaml's flat
    mapping, read as YAML only (listing runs imports neither peft nor TRL); `plan` is the checked
    `Plan`, built on first use (None when it no longer reads as one: `plan_problem` says why)."""

    folder: Path
    state: str
    reason: str = ""
    error: str | None = None
    plan_text: str = ""
    plan_data: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] | None = None
    checkpoints: list[Path] = field(default_factory=list)
    started: float | None = None

    @property
    def name(self) -> str:
        return self.folder.name

    @functools.cached_property
    def _checked(self) -> tuple[Any, str]:
        from ..plan.plan import Plan

        if not self.plan_text:
            return None, "no plan.yaml"
        try:
            return Plan.from_yaml(self.plan_text), ""
        except PlanError as err:
            return None, f"plan.yaml does not read as a plan now ({err})"

    @property
    def plan(self) -> Any:
        """The run's Plan (checked against this version's methods and trainers), or None."""
        return self._checked[0]

    @property
    def plan_problem(self) -> str:
        """Why `plan` is None ("" when it is not)."""
        return self._checked[1]

    @property
    def train(self) -> dict[str, Any]:
        block = self.plan_data.get("train")
        return block if isinstance(block, dict) else {}

    @property
    def steps(self) -> int:
        candidates = [int(r["step"]) for r in self.history[-1:] if isinstance(r.get("step"), (int, float))]
        if self.info and isinstance(self.info.get("steps"), int):
            candidates.append(self.info["steps"])
        candidates += [folders.checkpoint_step(c) for c in self.checkpoints[-1:]]
        return max(candidates, default=0)

    @property
    def max_steps(self) -> int | None:
        for value in ((self.info or {}).get("max_steps"), self.train.get("max_steps")):
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        return None

    @property
    def checkpoint(self) -> Path | None:
        return self.checkpoints[-1] if self.checkpoints else None

    def last(self, key: str) -> float | None:
        """The last finite value of `key` in the history."""
        return next((float(r[key]) for r in reversed(self.history) if _finite(r.get(key))), None)

    def best(self, key: str, direction: str = "minimize") -> tuple[float | None, int | None]:
        """(best finite value of `key`, its step)."""
        found = [(float(r[key]), int(r.get("step", 0))) for r in self.history if _finite(r.get(key))]
        if not found:
            return None, None
        pick = min if direction == "minimize" else max
        return pick(found, key=lambda p: p[0])

    @property
    def duration(self) -> float | None:
        """Seconds of training: the history's clock (it continues across resumes), else run.json's."""
        times = [r["time"] for r in self.history if _finite(r.get("time"))]
        if times:
            return float(times[-1])
        info = self.info or {}
        if _finite(info.get("started")) and _finite(info.get("ended")):
            return float(info["ended"]) - float(info["started"])
        return None

    def metrics(self) -> list[str]:
        """Every numeric key the run logged (not its step and clock), in first-seen order."""
        seen: dict[str, None] = {}
        for row in self.history:
            for key, value in row.items():
                if key not in ("step", "time", "epoch") and isinstance(value, (int, float)):
                    seen.setdefault(key, None)
        return list(seen)

    def row(self) -> dict[str, Any]:
        """The run's line of the table (JSON-safe: None for what is unknown)."""
        targets = self.plan_data.get("target_modules")
        value, step = self.best("eval_loss")
        rank = self.plan_data.get("r")
        return {
            "name": self.name, "trainer": self.train.get("trainer"), "method": self.plan_data.get("method"),
            "r": rank, "targets": ", ".join(map(str, targets)) if isinstance(targets, list) else targets,
            "learning_rate": self.train.get("learning_rate"), "state": self.state, "steps": self.steps,
            "max_steps": self.max_steps, "train_loss": self.last("loss"), "eval_loss": value, "eval_step": step,
            "duration_s": round(self.duration, 2) if self.duration is not None else None,
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started)) if self.started else None,
            "reason": self.reason or (self.error or ""),
        }


def is_sweep_folder(path: Path) -> bool:
    return any((path / m).exists() for m in SWEEP_MARKERS)


def scan(runs_dir: str | Path) -> list[Record]:
    """Every run folder directly under `runs_dir`, newest first ([] when there is no such folder)."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    found = [read(p) for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and not is_sweep_folder(p)]
    return sorted(found, key=lambda r: (r.started or 0.0, r.name), reverse=True)


def read(folder: str | Path) -> Record:
    """`folder` read back as a Record; never raises (what could not be read is the reason)."""
    path = Path(folder)
    try:
        return _read(path)
    except Exception as err:  # noqa: BLE001 - one odd folder must not hide the others
        return Record(path, "unreadable", f"{type(err).__name__}: {err}", started=_started(path, None))


def _read(path: Path) -> Record:
    notes: list[str] = []
    plan_text, plan_data = _plan(path, notes)
    history, problem = folders.read_history_lenient(path)
    if problem:
        notes.append(problem)
    found = folders.checkpoints(path)
    try:
        info = folders.read_run_info(path)
    except ValueError as err:
        info, state = None, "unreadable"
        notes.insert(0, str(err))
    else:
        state = _state(path, info, plan_data, history, found, notes)
    error = (info or {}).get("error") if isinstance((info or {}).get("error"), str) else None
    return Record(path, state, "; ".join(notes), error, plan_text, plan_data, history, info, found,
                  _started(path, info))


def _plan(path: Path, notes: list[str]) -> tuple[str, dict[str, Any]]:
    """(plan.yaml's text, the flat mapping it holds), read as YAML only."""
    from .. import _yaml

    file = path / folders.PLAN
    if not file.exists():
        return "", {}
    text = file.read_text(errors="replace")
    try:
        data, _ = _yaml.load_with_lines(text)
    except Exception:  # noqa: BLE001 - not YAML at all
        data = None
    if not isinstance(data, dict):
        notes.append("plan.yaml is damaged")
        return text, {}
    return text, data


def _state(path: Path, info: dict[str, Any] | None, plan_data: dict[str, Any], history: list[dict[str, Any]],
           found: list[Path], notes: list[str]) -> str:
    live = _live_run(path)
    if live is not None:
        return live.state
    if info is None:
        if not plan_data and not history and not found:
            notes.insert(0, "not a run folder: no plan.yaml, history.jsonl, run.json or checkpoint")
            return "unreadable"
        notes.insert(0, "no run.json: written by an older version, or the run never started")
        return "incomplete"
    state = info.get("state")
    if state in LIVE:
        step = info.get("steps")
        last = found[-1].name if found else "none"
        notes.insert(0, f"run.json says {state} but no run in this kernel trains it: its kernel ended while it "
                        f"trained (or it trains in another kernel); last checkpoint {last}"
                        + (f", {step} steps recorded at start" if step else ""))
        return "incomplete"
    if state not in ENDED:
        notes.insert(0, f"run.json has an unknown state {state!r}")
        return "unreadable"
    return str(state)


def _live_run(path: Path) -> Any:
    """The Run of this kernel that writes `path`, while it is live."""
    from ..session import session

    target = path.resolve()
    for run in session().active_runs():
        try:
            if Path(run.folder).resolve() == target:
                return run
        except (OSError, AttributeError):
            continue
    return None


def _started(path: Path, info: dict[str, Any] | None) -> float | None:
    if info and _finite(info.get("started")):
        return float(info["started"])
    m = _STAMP.match(path.name)
    if m:
        try:
            return time.mktime(time.strptime(m.group(1), "%Y%m%d-%H%M%S"))
        except ValueError:
            pass
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Runs:
    """The runs under a runs folder, newest first: `.df` (pandas), `.records`, `runs[name or i]`
    (a Record), `.load(name)` (a Run back), `.compare(a, b, metric=)`; shown as a sortable
    table with a checkbox per run and a Compare button (ui/runs/)."""

    def __init__(self, runs_dir: str | Path | None = None) -> None:
        self.runs_dir = Path(runs_dir if runs_dir is not None else "peft_runs")
        self.records: list[Record] = scan(self.runs_dir)
        self._widget: Any = None

    def refresh(self) -> Runs:
        """Read the folder again (new runs, runs that ended)."""
        self.records = scan(self.runs_dir)
        if self._widget is not None:
            self._widget.refresh()
        return self

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Any:
        return iter(self.records)

    def __getitem__(self, key: int | str) -> Record:
        if isinstance(key, int):
            return self.records[key]
        for record in self.records:
            if record.name == key or str(record.folder) == str(key):
                return record
        from .._errors import unknown

        raise unknown("run", str(key), [r.name for r in self.records], f" in {str(self.runs_dir)!r}", key="run")

    @property
    def df(self) -> Any:
        """One row per run, newest first (columns: COLUMNS' keys, and the folder)."""
        import pandas as pd

        rows = [{**r.row(), "folder": str(r.folder)} for r in self.records]
        return pd.DataFrame(rows, columns=[*(k for k, _ in COLUMNS), "folder"])

    def load(self, key: int | str) -> Any:
        """The run `key` (name or index) back as a Run without a trainer (records/loaded.py)."""
        from .loaded import load_run

        return load_run(self[key].folder)

    def compare(self, *keys: int | str, **options: Any) -> Any:
        """`jp.compare_runs` of the runs named (names or indices)."""
        from .compare import compare_runs

        return compare_runs(*(self[k] for k in keys), **options)

    @property
    def widget(self) -> Any:
        if self._widget is None:
            from ..ui.runs.widget import RunsWidget

            self._widget = RunsWidget(self)
        return self._widget

    def __repr__(self) -> str:
        return f"<Runs {str(self.runs_dir)!r}: {len(self.records)} runs>"

    def _repr_html_(self) -> str:
        if not self.records:
            return f"<p>No runs in {self.runs_dir}.</p>"
        return self.df.drop(columns=["folder"]).to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
