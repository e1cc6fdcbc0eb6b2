"""What this kernel session knows, in one object: `session()`.

- the PeftModel made of each base model, and the Plan behind each of its adapters
  (so applying to `model` again finds its adapters, and export finds the plan);
- the runs: the one training each base model now, and the recent ones (`%peft status`);
- the bases already prepared for k-bit training (prepared once, never twice);
- the open studios and the background workers that must finish before the interpreter does;
- caches of pure computations keyed by a model (transformers' conversion table, memory profiles).

Every room reads and writes this state here, nothing hides in module globals, and a test can
start from a clean slate with `reset()`. Models are held weakly: a model the notebook drops is
not kept alive by the session. Nothing here imports torch, transformers or peft.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any


class Session:
    """See the module docstring. One per process: `session()`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._wrapped: weakref.WeakKeyDictionary[Any, weakref.ref[Any]] = weakref.WeakKeyDictionary()
        self._plans: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
        self._last: weakref.ref[Any] | None = None
        self.prepared: weakref.WeakSet[Any] = weakref.WeakSet()
        """Base models prepared for k-bit training (quant/kbit.py)."""
        self._active: dict[int, Any] = {}  # id(base model) -> the Run training it
        self._recent: list[weakref.ref[Any]] = []
        self.studios: weakref.WeakSet[Any] = weakref.WeakSet()
        """Studios shown in this session (closed ones drop out when collected)."""
        self.workers: weakref.WeakSet[Any] = weakref.WeakSet()
        """Background workers (ui/latest.py) to let finish before the interpreter exits."""
        self.conversions: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        """transformers' weight-conversion table per model (model/modelmap.py builds it once)."""
        self._profiles_lock = threading.Lock()  # a profile takes up to a second: not under `lock`
        self.profiles: dict[Any, Any] = {}
        """Memory profiles by setup key (memory/probe.py), at most `PROFILES` of them."""
        self.interrupt_handlers: tuple[Callable[[str], list[Any]], Callable[[BaseException], None]] | None = None
        """(stop_all, cell_failed): what a kernel interrupt and a failed cell call (training/interrupts.py)."""
        self.hooked_shells: set[int] = set()

    PROFILES = 64

    # ---- adapters: base model -> PeftModel -> plans ----------------------------------------

    def remember_apply(self, base: Any, peft_model: Any, adapter: str, plan: Any) -> None:
        """`peft_model` wraps `base`, and its adapter `adapter` came from `plan`."""
        with self.lock:
            self._wrapped[base] = weakref.ref(peft_model)
            plans = {n: p for n, p in self._plans.get(peft_model, {}).items() if n in peft_model.peft_config}
            plans[adapter] = plan
            self._plans[peft_model] = plans
            self._last = weakref.ref(peft_model)

    def wrapper_of(self, base: Any) -> Any:
        """The PeftModel made of `base` in this session, if it is alive, else None."""
        ref = self._wrapped.get(base)
        return ref() if ref is not None else None

    def forget(self, base: Any) -> None:
        """`base` is no longer wrapped (its adapters were merged into it in place)."""
        self._wrapped.pop(base, None)

    def plans_of(self, peft_model: Any) -> dict[str, Any]:
        """{adapter name: Plan} applied to `peft_model` in this session."""
        return dict(self._plans.get(peft_model, {}))

    def last_applied(self) -> Any:
        """The PeftModel of the latest successful apply, or None."""
        return self._last() if self._last is not None else None

    # ---- runs ----------------------------------------------------------------------------

    def add_run(self, run: Any) -> None:
        with self.lock:
            self._recent[:] = [r for r in self._recent if r() is not None] + [weakref.ref(run)]

    def claim(self, run: Any, base_id: int) -> Any:
        """Make `run` the one training the base `base_id`; returns the live run already
        training it instead (and claims nothing), or None."""
        with self.lock:
            other = self._active.get(base_id)
            if other is not None and other is not run and other.live:
                return other
            self._active[base_id] = run
            return None

    def release(self, run: Any, base_id: int) -> None:
        with self.lock:
            if self._active.get(base_id) is run:
                del self._active[base_id]

    def run_training(self, base_id: int) -> Any:
        """The live run training the base `base_id`, or None."""
        run = self._active.get(base_id)
        return run if run is not None and run.live else None

    def active_runs(self) -> list[Any]:
        with self.lock:
            return [r for r in self._active.values() if r.live]

    def recent_runs(self) -> list[Any]:
        """Runs made in this session that are still referenced, oldest first."""
        return [r for ref in self._recent if (r := ref()) is not None]

    # ---- caches --------------------------------------------------------------------------

    def profile(self, key: Any, build: Callable[[], Any]) -> Any:
        """The cached memory profile for `key`, built once (oldest dropped past PROFILES)."""
        with self._profiles_lock:
            if key not in self.profiles:
                if len(self.profiles) >= self.PROFILES:
                    self.profiles.pop(next(iter(self.profiles)))
                self.profiles[key] = build()
            return self.profiles[key]


_SESSION = Session()


def session() -> Session:
    """This process's session (one kernel, one session)."""
    return _SESSION


def reset() -> Session:
    """Forget everything (tests start from a clean slate); live runs are stopped first."""
    global _SESSION
    for run in _SESSION.active_runs():
        run.stop()
    _SESSION = Session()
    return _SESSION
