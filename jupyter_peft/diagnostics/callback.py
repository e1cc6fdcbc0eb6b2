"""The TrainerCallback that samples the per-module signals on the training thread.

Which transformers 5 events see what (Trainer._inner_training_loop): backward, then clip (the
gradients are scaled in place), `on_pre_optimizer_step`, `optimizer.step()`,
`on_optimizer_step`, `zero_grad()`, `on_step_end`. Pre-clip gradient norms therefore come from
the gradient hooks (nan.py), read at `on_pre_optimizer_step`; update norms at `on_step_end`,
when the weights are the step's new ones. No extra forward or backward pass.
"""

from __future__ import annotations

import math
import time
import weakref
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from . import signals
from .nan import GradWatch
from .record import ORDER, Diagnostics

BUDGET = 0.005
"""With the default interval, samples take at most this share of the training time: after each
sample the next comes after max(10, sample cost / (BUDGET x step time)) steps (fast steps of a
small model sample less often than the demo's)."""

# the watch on each model: a run that failed (no on_train_end) leaves hooks; the next run's begin removes them
_WATCHES: weakref.WeakKeyDictionary[Any, GradWatch] = weakref.WeakKeyDictionary()


class Sampler:
    """The start and previous state of every module's delta, and one sample of all signals."""

    def __init__(self, modules: list[Any]) -> None:
        self.modules = modules
        with torch.no_grad():
            self.start = [self._state(m) for m in modules]
        self.prev = list(self.start)

    def _state(self, m: Any) -> Any:
        if m.kind == "lowrank":
            b, a = signals.factors(m)
            return b.clone(), a.clone()
        if m.kind == "dense":
            return signals.dense_delta(m).cpu().clone()
        return None

    def sample(self, grads: Any) -> Any:
        """A (len(ORDER) x modules) float32 row: grad (given), update, moved, relative."""
        row = np.full((len(ORDER), len(self.modules)), np.nan, dtype=np.float32)
        if grads is not None:
            row[0] = grads.numpy()
        columns, values = [], []  # 0-d tensors, read back in one transfer (one sync, not three per module)
        with torch.no_grad():
            for i, m in enumerate(self.modules):
                now = self._state(m)
                if now is None:
                    continue
                if m.kind == "lowrank":
                    b, a = now
                    values.append(torch.stack([signals.lowrank_diff_norm(b, a, *self.prev[i]),
                                               signals.lowrank_diff_norm(b, a, *self.start[i]),
                                               signals.lowrank_norm(b, a)]))
                else:
                    values.append(torch.stack([torch.linalg.vector_norm(now - self.prev[i]),
                                               torch.linalg.vector_norm(now - self.start[i]),
                                               torch.linalg.vector_norm(now)]))
                columns.append(i)
                self.prev[i] = now
            if values:
                try:
                    read = torch.stack(values).double().cpu().numpy()
                except RuntimeError:  # modules on several devices
                    read = np.stack([v.double().cpu().numpy() for v in values])
                row[1:3, columns] = read[:, :2].T
                base = np.array([self.modules[i].base_norm for i in columns], dtype=np.float64)
                with np.errstate(divide="ignore", invalid="ignore"):
                    row[3, columns] = read[:, 2] / np.where(base > 0, base, np.nan)
        return row


class DiagnosticsCallback(TrainerCallback):
    """Samples `diagnostics` every `diagnostics.every` steps (and at the last step)."""

    def __init__(self, diagnostics: Diagnostics, model: Any) -> None:
        self.diag, self.model = diagnostics, model
        self.watch: GradWatch | None = None
        self.sampler: Sampler | None = None
        self._sampled = False
        self._grads: Any = None
        self._candidate: dict[str, Any] | None = None
        self._next = diagnostics.every  # the next step sampled, with the default (adaptive) interval
        self._last_end: float | None = None
        self._step_time: float | None = None  # seconds per step, recent average
        self._cost = 0.0  # seconds this step's sample took so far

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        from ..model.adapt import find_peft_model

        peft_model = find_peft_model(self.model)
        modules = signals.adapted(peft_model) if peft_model is not None else []
        self.diag.modules = modules
        self.sampler = Sampler(modules)
        keep_inputs = not any(bool(getattr(args, name, False)) for name in ("gradient_checkpointing",
                                                                             "activation_checkpointing"))
        old = _WATCHES.pop(self.model, None)
        if old is not None:
            old.remove()
        self.watch = GradWatch(modules, keep_inputs) if modules else None
        if self.watch is not None:
            _WATCHES[self.model] = self.watch
        self.diag.seconds += time.perf_counter() - t0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        nxt = state.global_step + 1  # global_step counts up after the optimizer step
        due = nxt >= self._next if self.diag.adaptive else nxt % self.diag.every == 0
        self._sampled = due or (state.max_steps > 0 and nxt == state.max_steps)
        self._cost = 0.0
        if self.watch is not None:
            self.watch.new_step()

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.watch is None:
            return
        t0 = time.perf_counter()
        finite, self._grads = self.watch.check(want_norms=self._sampled)
        if not finite and self.diag.nan is None:
            self._candidate = self.watch.report(state.global_step + 1)
        self.watch.drop_inputs()
        spent = time.perf_counter() - t0
        self.diag.seconds += spent
        if self._sampled:
            self._cost += spent

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        now = time.perf_counter()
        if self._last_end is not None:
            took = now - self._last_end
            self._step_time = took if self._step_time is None else 0.8 * self._step_time + 0.2 * took
        self._last_end = now
        if self._candidate is not None:
            # fp16's loss scaler skips a step whose scaled gradients overflowed and lowers its scale:
            # routine, not where a NaN started
            if not getattr(kwargs.get("optimizer"), "step_was_skipped", False):
                self.diag.nan = self._candidate
            self._candidate = None
        if not self._sampled or self.sampler is None or not self.diag.modules:
            return
        t0 = time.perf_counter()
        self.diag.add(state.global_step, self.sampler.sample(self._grads))
        self._grads = None
        spent = time.perf_counter() - t0
        self.diag.seconds += spent
        self._cost += spent
        if self.diag.adaptive:
            gap = self.diag.every
            if self._step_time:
                gap = max(gap, math.ceil(self._cost / (BUDGET * self._step_time)))
            self._next = state.global_step + gap
        self._last_end = time.perf_counter()  # the sample's own time is not the step's

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.sampler = None  # the start and previous deltas (dense ones are as big as the weights) go
        if self.watch is not None:
            self.watch.remove()
            _WATCHES.pop(self.model, None)
            self.watch = None
