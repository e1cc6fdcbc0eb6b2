"""What a training run's logs mean: history rows, throughput, ETA, NaN flags, chart panels.

Pure Python, no torch: the Run feeds it the trainer's log dicts (one per `on_log`) and the
dashboard, the static snapshot and `Run.df` read from it. Every number the dashboard shows is
computed here.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._format import format_bytes, format_duration  # noqa: F401 - format_bytes re-exported for views

# Keys of the trainer's final summary log (one call after training); kept apart from the history.
_SUMMARY_KEYS = ("train_runtime", "train_loss", "train_samples_per_second", "train_steps_per_second")
# Logged values whose NaN/inf is flagged (a loss or the gradient norm going non-finite).
_WATCHED = re.compile(r"^(eval_)?loss$|_loss$|^grad_norm$")


@dataclass(frozen=True)
class Panel:
    """One chart of the dashboard: which logged keys it draws."""

    id: str
    title: str
    keys: str  # regex, full match
    log_y: bool = False

    def takes(self, key: str) -> bool:
        return re.fullmatch(self.keys, key) is not None


# The dashboard's charts, in display order. A panel appears when its first key is logged:
# DPO/KTO/ORPO/CPO log rewards/chosen|rejected|margins|accuracies, GRPO/RLOO reward and
# rewards/<function>/mean, reward modelling mean_reward, margin and accuracy, SFT
# mean_token_accuracy.
PANELS: tuple[Panel, ...] = (
    Panel("loss", "loss (train, eval)", r"(eval_)?loss"),
    Panel("learning_rate", "learning rate", r"learning_rate"),
    Panel("grad_norm", "grad norm", r"grad_norm"),
    Panel("rewards", "rewards and margins",
          r"(eval_)?(rewards/(chosen|rejected|margins)|reward|rewards/[^/]+/mean|mean_reward|margin)"),
    Panel("accuracy", "accuracy", r"(eval_)?(rewards/accuracies|mean_token_accuracy|accuracy)"),
    Panel("tokens_per_second", "tokens / s", r"tokens_per_second"),
    Panel("steps_per_second", "steps / s", r"steps_per_second"),
    Panel("memory", "memory (bytes)", r"memory_bytes"),
)


@functools.lru_cache(maxsize=4096)  # called for every logged key of every step
def _watched(key: str) -> bool:
    return _WATCHED.search(key) is not None


@functools.lru_cache(maxsize=4096)
def panel_of(key: str) -> Panel | None:
    return next((p for p in PANELS if p.takes(key)), None)


class Tracker:
    """History and derived figures of one run. `record` takes each log dict in order.

    A history row is `{"step", "epoch", "time" (seconds since start), <logged values>,
    "steps_per_second", "tokens_per_second", "memory_bytes"}`; rates are over the last
    `window` logs (throughput of the recent past, not since the start).
    """

    def __init__(self, window: int = 10, clock: Callable[[], float] = time.perf_counter) -> None:
        self.rows: list[dict[str, Any]] = []
        self.flags: list[dict[str, Any]] = []
        self.summary: dict[str, float] = {}
        self.max_steps: int | None = None
        self.num_epochs: float | None = None
        self.keys: list[str] = []  # every charted key, in first-seen order
        self._clock = clock
        self._start = clock()
        self._offset = 0.0  # seconds of earlier sessions (resume)
        self._recent: deque[tuple[float, int, float | None]] = deque(maxlen=window + 1)

    # ---- input ---------------------------------------------------------------------------

    def begin(self, max_steps: int | None, num_epochs: float | None, prior: Iterable[dict[str, Any]] = ()) -> None:
        """Training starts (or resumes after `prior` rows): reset the clock, keep the history."""
        self.max_steps, self.num_epochs = max_steps, num_epochs
        for row in prior:
            self._keep(row)
        self._offset = float(self.rows[-1].get("time", 0.0)) if self.rows else 0.0
        self._start = self._clock()
        self._recent.clear()

    def record(self, step: int, logs: dict[str, Any], memory: int | None = None) -> dict[str, Any] | None:
        """One `on_log` call. Returns the new history row (None for the final summary log)."""
        values = {k: x for k, v in logs.items() if (x := _number(v)) is not None}
        if any(k in values for k in _SUMMARY_KEYS):
            self.summary.update(values)
            return None
        now = self._clock()
        row: dict[str, Any] = {"step": int(step), "time": round(self._offset + now - self._start, 3), **values}
        if not any(k.startswith("eval_") for k in values):  # evaluation logs carry no throughput
            row.update(self._rates(now, int(step), values.get("num_tokens")))
        if memory is not None:
            row["memory_bytes"] = int(memory)
        self._keep(row)
        for key in values:
            if _watched(key) and not math.isfinite(values[key]):
                self.flags.append({"step": int(step), "key": key, "value": str(values[key])})
        return row

    def _keep(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        for key in row:
            if key not in self.keys and panel_of(key) is not None:
                self.keys.append(key)

    def _rates(self, now: float, step: int, tokens: float | None) -> dict[str, float]:
        self._recent.append((now, step, tokens))
        t0, s0, n0 = self._recent[0]
        if now <= t0 or step <= s0:
            return {}
        rates = {"steps_per_second": (step - s0) / (now - t0)}
        if tokens is not None and n0 is not None and tokens >= n0:
            rates["tokens_per_second"] = (tokens - n0) / (now - t0)
        return {k: round(v, 4) for k, v in rates.items()}

    # ---- output --------------------------------------------------------------------------

    @property
    def step(self) -> int:
        return int(self.rows[-1]["step"]) if self.rows else 0

    @property
    def elapsed(self) -> float:
        return self._offset + self._clock() - self._start

    def eta(self) -> float | None:
        """Seconds left at the recent step rate, None before a rate is known."""
        rate = next((r["steps_per_second"] for r in reversed(self.rows) if "steps_per_second" in r), None)
        if not rate or self.max_steps is None:
            return None
        return max(self.max_steps - self.step, 0) / rate

    def status(self) -> dict[str, Any]:
        """The progress line: step of max, percent, epoch, elapsed, ETA (numbers and text)."""
        step, total = self.step, self.max_steps
        epoch = next((r["epoch"] for r in reversed(self.rows) if "epoch" in r), None)
        eta = self.eta()
        return {
            "step": step,
            "max_steps": total,
            "percent": round(100.0 * step / total, 2) if total else None,
            "epoch_text": _epoch_text(epoch, self.num_epochs),
            "elapsed_text": format_duration(self.elapsed),
            "eta_text": format_duration(eta) if eta is not None else "",
        }

    def series(self, key: str, until: int | None = None) -> tuple[list[int], list[float | None]]:
        """(steps, values) of `key` over the first `until` rows (all by default); non-finite
        values as None (gaps)."""
        steps, values = [], []
        for row in self.rows[:until]:
            if key in row:
                steps.append(row["step"])
                values.append(finite_or_none(row[key]))
        return steps, values

    def panels(self) -> list[dict[str, Any]]:
        """The charts to draw now: panels with at least one logged key, in PANELS order."""
        out = []
        for panel in PANELS:
            keys = [k for k in self.keys if panel.takes(k)]
            if keys:
                out.append({"id": panel.id, "title": panel.title, "keys": keys, "log_y": panel.log_y})
        return out


def _number(value: Any) -> float | None:
    """A logged value as a float; None for text, flags and anything else that is not a number."""
    if not isinstance(value, (int, float)) and hasattr(value, "item"):
        try:  # 0-d tensors and numpy scalars
            value = value.item()
        except (ValueError, RuntimeError):
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def finite_or_none(value: Any) -> float | None:
    """JSON cannot carry NaN/inf: the browser gets null (a gap) and a flag instead."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def decimate(xs: list[Any], ys: list[Any], max_points: int) -> tuple[list[Any], list[Any]]:
    """At most `max_points` points, evenly strided, the last point always kept."""
    n = len(xs)
    if n <= max_points or max_points < 2:
        return list(xs), list(ys)
    stride = math.ceil((n - 1) / (max_points - 1))
    idx = list(range(0, n - 1, stride)) + [n - 1]
    return [xs[i] for i in idx], [ys[i] for i in idx]


def _epoch_text(epoch: float | None, num_epochs: float | None) -> str:
    if epoch is None:
        return ""
    return f"{epoch:.2f} / {num_epochs:g}" if num_epochs else f"{epoch:.2f}"
