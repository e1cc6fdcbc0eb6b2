"""What work on one thread may not do to another: per-thread gates over library functions, and
work that leaves the process's randomness alone.

A run trains on its own thread while the studio estimates and previews on another. A library
function patched and restored around one of them would reach the other meanwhile, so
`gate(module, name, flag, fake)` replaces it once, for good, by one that asks a context
variable (per thread) which to run. `private_random()` uses such gates: the trainers a
preview builds do not reseed torch, Python and NumPy (`Trainer.__init__`, TRL's trainers call
`set_seed`), so a run training meanwhile keeps the data order and init its seed gave it.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator
from typing import Any


def gate(module: Any, name: str, flag: contextvars.ContextVar[bool], fake: Any) -> None:
    """Replace `module.name`, once and for good, by a function that runs `fake(original, ...)`
    where `flag` is set (on this thread: context variables are per thread) and the original
    everywhere else. A patch set and restored around one thread's work would also reach a
    real run training on another thread meanwhile, and two such blocks at once could restore
    each other's patch for good."""
    original = getattr(module, name)
    if getattr(original, "_jupyter_peft_gate", None) is flag:
        return

    def gated(*args: Any, **kwargs: Any) -> Any:
        return fake(original, *args, **kwargs) if flag.get() else original(*args, **kwargs)

    gated._jupyter_peft_gate = flag  # type: ignore[attr-defined]
    gated.__name__ = getattr(original, "__name__", name)
    setattr(module, name, gated)


_PRIVATE = contextvars.ContextVar("jupyter_peft_private_random", default=False)
_SEEDERS = ("set_seed", "enable_full_determinism")


@contextlib.contextmanager
def private_random() -> Iterator[None]:
    """In this block, on this thread, the trainer modules loaded (transformers' and TRL's)
    seed nothing: a throwaway trainer built here leaves the process's random state as it was.
    Model weights made here must not be drawn from torch's generator either: build them on meta
    (transformers' `no_init_weights` patches torch's init for every thread)."""
    for module_name, module in list(sys.modules.items()):
        if module is None or not module_name.startswith(("transformers.trainer", "trl.trainer.")):
            continue
        for name in _SEEDERS:
            if callable(getattr(module, name, None)):
                gate(module, name, _PRIVATE, lambda original, *args, **kwargs: None)
    token = _PRIVATE.set(True)
    try:
        yield
    finally:
        _PRIVATE.reset(token)
