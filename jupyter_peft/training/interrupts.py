"""Kernel interrupts (the stop button, Ctrl-C) stop training runs cleanly, at a step boundary.

Training runs in a thread and a signal only reaches the main thread, so:
- kernel idle: ipykernel ignores SIGINT between cells and restores its `saved_sigint_handler`
  after each one. Once a run has started, that saved handler is ours: it stops every active
  run at its next step (the adapter is saved) and otherwise ignores the signal, as before.
- kernel busy with a cell: the cell gets its KeyboardInterrupt as usual; a `post_run_cell`
  hook then stops the active runs as well (`run.wait()` is such a cell).
- a trainer training on the main thread (`jp.attach(trainer)`, then `trainer.train()`): the
  first interrupt stops at the next step and saves, a second one raises KeyboardInterrupt.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from ..session import session


def install(stop_all: Callable[[str], list[Any]], cell_failed: Callable[[BaseException], None]) -> None:
    """Route interrupts to `stop_all(reason) -> runs stopped`, and a cell's exception to
    `cell_failed(err)` (idempotent, cheap)."""
    state = session()
    state.interrupt_handlers = (stop_all, cell_failed)
    shell = _shell()
    if shell is None:
        return
    if id(shell) not in state.hooked_shells:
        shell.events.register("post_run_cell", _after_cell)
        state.hooked_shells.add(id(shell))
    kernel = getattr(shell, "kernel", None)
    if kernel is not None and getattr(kernel, "saved_sigint_handler", None) is signal.SIG_IGN:
        kernel.saved_sigint_handler = _idle_handler


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return get_ipython()


def _stop_all(reason: str) -> list[Any]:
    handlers = session().interrupt_handlers
    return handlers[0](reason) if handlers is not None else []


def _cell_failed(err: BaseException) -> None:
    handlers = session().interrupt_handlers
    if handlers is not None:
        handlers[1](err)


def _idle_handler(signum: int, frame: Any) -> None:
    _stop_all("kernel interrupt")


def _after_cell(result: Any) -> None:
    err = getattr(result, "error_in_exec", None)
    if err is None:
        return
    _cell_failed(err)
    if isinstance(err, KeyboardInterrupt):
        for run in _stop_all("kernel interrupt"):
            print(f"Interrupted: {run.describe()} stops at the next step and saves its adapter.")


def foreground_guard(stop: Callable[[], object], active: Callable[[], bool]) -> Callable[[], None]:
    """While a trainer trains on the main thread: the first SIGINT calls `stop()`, a second raises.

    Returns the function that puts the previous handler back. When `active()` is false (the
    training ended without that call, e.g. by an exception) the handler passes signals on.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)
    asked: list[bool] = []

    def handler(signum: int, frame: Any) -> None:
        if active() and not asked:
            asked.append(True)
            stop()
            return
        if callable(previous) and previous is not handler:
            previous(signum, frame)
        elif previous is not signal.SIG_IGN:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)

    def restore() -> None:
        if signal.getsignal(signal.SIGINT) is handler:
            signal.signal(signal.SIGINT, previous)

    return restore
