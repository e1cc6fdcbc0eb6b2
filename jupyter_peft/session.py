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
        self._recent: list[tuple[weakref.ref[Any], list[str]]] = []  # (run, [its last summary])
        self.studios: weakref.WeakSet[Any] = weakref.WeakSet()
        """Studios shown in this session (closed ones drop out when collected)."""
        self.workers: weakref.WeakSet[Any] = weakref.WeakSet()
        """Background workers (ui/latest.py) to let finish before the interpreter exits."""
        self.conversions: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        """transformers' weight-conversion table per model (model/modelmap.py builds it once)."""
        self._profiles_lock = threading.Lock()  # a profile takes up to a second: not under `lock`
        self.profiles: dict[Any, Any] = {}
        """Memory profiles by setup key (memory/probe.py), at most `PROFILES` of them."""
        self.shares: dict[Any, float] = {}
        """The allocator's share beyond a step's transient bytes, by setup family (memory/stretch.py)."""
        self.interrupt_handlers: tuple[Callable[[str], list[Any]], Callable[[BaseException], None]] | None = None
        """(stop_all, cell_failed): what a kernel interrupt and a failed cell call (training/interrupts.py)."""
        self.hooked_shells: set[int] = set()
        self._cell_hooks: set[tuple[int, str]] = set()

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

    def wrapping(self, base: Any) -> tuple[Any, ...]:
        """What the session knows of `base`'s PeftModel now, for `restore_wrapping` (an apply
        that is undone because what came after it failed)."""
        with self.lock:
            peft_model = self.wrapper_of(base)
            plans = dict(self._plans.get(peft_model, {})) if peft_model is not None else {}
            return peft_model, plans, self._last

    def restore_wrapping(self, base: Any, saved: tuple[Any, ...]) -> None:
        peft_model, plans, last = saved
        with self.lock:
            if peft_model is None:
                self._wrapped.pop(base, None)
            else:
                self._wrapped[base] = weakref.ref(peft_model)
                self._plans[peft_model] = plans
            self._last = last

    # ---- runs ----------------------------------------------------------------------------

    RECENT = 50

    def add_run(self, run: Any) -> None:
        with self.lock:
            kept = [(ref, last) for ref, last in self._recent if ref() is not None or last]
            self._recent[:] = [*kept, (weakref.ref(run), [])][-self.RECENT:]

    def remember_run(self, run: Any, summary: str) -> None:
        """`run`'s one-line summary, kept for `%peft status` after the notebook drops the run
        (a second `%%peft ... train` rebinds `peft_run`); the run itself is held weakly."""
        with self.lock:
            for ref, last in self._recent:
                if ref() is run:
                    last[:] = [summary]

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
        return [r for ref, _ in self._recent if (r := ref()) is not None]

    def run_summaries(self) -> list[Any]:
        """Every run of this session, oldest first: the Run while it is referenced, else the
        summary it left when it ended (str)."""
        with self.lock:
            entries = list(self._recent)
        out: list[Any] = []
        for ref, last in entries:
            run = ref()
            if run is not None or last:
                out.append(run if run is not None else last[0])
        return out

    def after_each_cell(self, name: str, callback: Callable[[Any], None]) -> None:
        """Call `callback(result)` after every cell of this IPython shell, registered once per
        `name` (a no-op outside IPython)."""
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython is a dependency
            return
        shell = get_ipython()
        if shell is None or (id(shell), name) in self._cell_hooks:
            return
        shell.events.register("post_run_cell", callback)
        self._cell_hooks.add((id(shell), name))

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
