"""Previews of a data set as the trainer will see it.

    view = jp.preview(ds, tok, trainer="sft", max_length=1024)
    view.rows, view.lengths, view.figure(), view.longest, view.problems

The room builds the TRL trainer a run would build, on a one-layer stand-in model, so that the
tokenization, the chat template, truncation, packing, the collator and the sampler's order are
TRL's own (stand_in.py); it renders rows with the tokens that train (labels != -100, or the
completion mask of preference data), lengths against `max_length`, the batches in the order
the sampler yields them and the longest of them (batches.py: what `jp.estimate(..., dataset=)`
uses), and format errors naming the row and the column (checks.py). `%peft data` is
magics/data.py. May import: plan/, training.trainer's checks, the root helpers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["preview"]


def preview(dataset: Any, tokenizer: Any, trainer: str = "sft", plan: Any = None, max_length: int | None = None,
            **options: Any) -> Any:
    """A DataView of `dataset` as `trainer` (TRL's name) will see it (see view.py)."""
    from .view import preview as run

    return run(dataset, tokenizer, trainer=trainer, plan=plan, max_length=max_length, **options)
