"""Runs on disk, looked back on: every run folder under the runs folder read back, compared, and
a finished run loaded again after a kernel restart.

- `catalog.py`: `jp.runs(runs_dir)` -> `Runs` (`.df`, the table widget): each folder as a
  `Record`, never an exception (older or half-written folders say what they lack);
- `compare.py`: `jp.compare_runs(a, b, ..., metric=)`: one metric of several runs overlaid
  (plotly), every metric they logged, and the plan keys that differ;
- `loaded.py`: `jp.Run.load(folder)`: a `Run` without a trainer (state, history, plan,
  checkpoints, its static dashboard).

May import: plan/, training/folders.py and training/metrics.py (the formats runs write), the
root helpers; ui/runs only where a widget is asked for. pandas and plotly inside functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def runs(runs_dir: str | Path | None = None) -> Any:
    """Every run under `runs_dir` (default `peft_runs`, the magics' runs folder), newest first."""
    from .catalog import Runs

    return Runs(runs_dir)


def compare_runs(*runs: Any, metric: str = "loss", x: str = "step", smooth: float = 0.0, log_y: bool = False) -> Any:
    """One chart of `metric` for each run (Run objects, loaded runs or folders), and the plan diff."""
    from .compare import compare_runs as _compare

    return _compare(*runs, metric=metric, x=x, smooth=smooth, log_y=log_y)


__all__ = ["runs", "compare_runs"]
