"""`Diagnostics`: the per-module samples of one run (`run.diagnostics`), compact and thread-safe.

A sample is the step and one float32 row per signal with a value per adapted module (the
training thread appends; the dashboard and `run.modules` read from the kernel's thread).
Signals (what each measures; what it does not is in the README and under the heatmap):

- `grad`: ||g||_F of the module's trainable adapter parameters after backward, before the
  trainer clips (the logged `grad_norm` is pre-clip too), summed over accumulated micro-batches;
- `update`: ||delta_now - delta_at_previous_sample||_F: how far the module's effective weight
  moved since the last sample (0 for a frozen adapter);
- `moved`: ||delta_now - delta_at_start||_F: how far it moved since training began (a resumed
  run: since it resumed);
- `relative`: ||delta_now||_F / ||W_base||_F: the adapter's change relative to the frozen weight.
"""

from __future__ import annotations

import math
import threading
from typing import Any

SIGNALS: dict[str, str] = {
    "grad": "gradient norm",
    "update": "update since last sample",
    "moved": "update since start",
    "relative": "relative update",
}
ORDER = tuple(SIGNALS)


class Diagnostics:
    """Per-module signals of a run, sampled every `every` steps; see the module docstring."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.adaptive = False
        """Whether `every` is the default, which the callback widens so that samples take at most
        BUDGET of the training time (callback.py); a given `diagnostics: N` is kept as given."""
        """Steps between samples (the train block's `diagnostics: N`)."""
        self.modules: list[Any] = []
        """The adapted modules (signals.Module), in forward order: the columns of every sample."""
        self.steps: list[int] = []
        self.rows: list[Any] = []
        """One float32 array (len(SIGNALS) x modules) per sample, rows in `ORDER`."""
        self.nan: dict[str, Any] | None = None
        """The first step whose gradients were non-finite: which modules, in which order (nan.py)."""
        self.seconds = 0.0
        """Time the training thread spent on diagnostics (hooks excluded): for the overhead bench."""
        self._lock = threading.Lock()

    # ---- written by the training thread --------------------------------------------------

    def add(self, step: int, row: Any) -> None:
        with self._lock:
            self.steps.append(step)
            self.rows.append(row)

    # ---- read anywhere -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.steps)

    def samples(self, start: int = 0, stop: int | None = None) -> tuple[list[int], list[Any]]:
        """(steps, rows) of samples `start:stop` (a consistent copy)."""
        with self._lock:
            return self.steps[start:stop], self.rows[start:stop]

    def meta(self) -> dict[str, Any]:
        """What the columns are: path, group, layer, rank per module; the signals' names."""
        return {
            "paths": [m.path for m in self.modules],
            "groups": [m.group for m in self.modules],
            "layers": [m.layer for m in self.modules],
            "ranks": [m.rank for m in self.modules],
            "signals": dict(SIGNALS),
            "every": self.every,
        }

    def last(self, signal: str) -> list[float]:
        """The latest sample's values of `signal` (NaN everywhere before the first sample)."""
        with self._lock:
            if not self.rows:
                return [math.nan] * len(self.modules)
            return [float(v) for v in self.rows[-1][ORDER.index(signal)]]

    @property
    def df(self) -> Any:
        """Every sample in long form: step, path, group, layer and one column per signal."""
        import pandas as pd

        steps, rows = self.samples()
        records = [
            {"step": step, "path": m.path, "group": m.group, "layer": m.layer,
             **{name: float(row[k][i]) for k, name in enumerate(ORDER)}}
            for step, row in zip(steps, rows) for i, m in enumerate(self.modules)
        ]
        return pd.DataFrame(records, columns=["step", "path", "group", "layer", *ORDER])

    def nan_note(self) -> str:
        """"; first non-finite gradient: <path> ..." for run.error, or "" when none was seen."""
        return f"; {self.nan['text']}" if self.nan else ""
