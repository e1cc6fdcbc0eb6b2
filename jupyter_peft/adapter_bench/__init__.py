"""The adapter bench: several adapters on one base model, side by side.

    bench = jp.adapters(peft_model, tokenizer=tok)
    bench.load(run, step=40, name="cards")     # a run's checkpoint, an adapter folder, or a Run
    bench.compare(["Tell me a story"])          # one batched greedy generate: a column per adapter + base
    bench.merge({"cards": 0.7, "chat": 0.3}, how="ties", density=0.5)   # peft's add_weighted_adapter

`bench.py` is the object (names, activate, rename, delete, save, hot-swap), `sources.py` finds and
checks what `load` is given, `compare.py` generates, `combine.py` merges and says what a merge
will cost before it runs. The widget is ui/adapters/. This room may import model/, training/
(folders, generation), session and _errors; nothing from ui/. torch, peft and pandas are
imported inside the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Adapters", "adapters"]


def adapters(model: Any, tokenizer: Any = None) -> Any:
    """The adapter bench over `model` (a PeftModel, or a base that carries one): an `Adapters`."""
    from .bench import Adapters

    return Adapters(model, tokenizer=tokenizer)


def __getattr__(name: str) -> Any:
    if name == "Adapters":
        from .bench import Adapters

        return Adapters
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from .bench import Adapters
