"""A run's memory estimate, shown on its dashboard beside the memory measured while it trains.

When training starts, `jp.estimate` is computed for the run's real settings: the adapter's
plan as `jp.apply` recorded it (full fine-tuning for a model without adapter), the trainer
kind, and from the trainer's own arguments the per-device batch size, gradient
checkpointing, optimizer and mixed precision; the sequence length is the longest tokenized
row of the training data (the longest batch sets the peak), capped at `max_length`.

It runs on the training thread before the first step (the `%%peft` cell has returned by
then, and no other thread builds models while the step runs). The estimate's `peak_bytes`
is what `torch.cuda.max_memory_allocated` measures on a GPU; on CPU the dashboard measures
the process's RSS, which is not comparable, and says so.
"""

from __future__ import annotations

import functools
from typing import Any

from .._errors import PlanError
from .._format import format_bytes as size_text
from ..memory import estimate
from ..model.adapt import applied_plan, find_peft_model
from ..plan.train_config import TRAINERS


def run_estimate(trainer: Any, plan: Any, cuda: bool) -> dict[str, Any]:
    """The dashboard's estimate fields: `estimate_bytes` (peak tensors) and `estimate_text`,
    or an `estimate_text` saying why there is none."""
    try:
        settings = run_settings(trainer)
        est = estimate(trainer.model, _plan(trainer, plan), **settings)
    except Exception as err:  # noqa: BLE001 - a model memory cannot estimate must not stop training
        why = err.message if isinstance(err, PlanError) else f"{type(err).__name__}: {err}"
        return {"estimate_bytes": None, "estimate_text": f"no estimate ({why})"}
    shape = f"batch {settings['batch_size']} × {settings['seq_len']} tokens"
    if cuda:
        text = f"estimate {size_text(est.peak_bytes)} (GPU peak tensors, {shape})"
    else:
        text = (
            f"estimate on a GPU {size_text(est.peak_bytes)} peak tensors ({size_text(est.total_bytes)} with the "
            f"CUDA context), {shape}; not comparable with RSS"
        )
    return {"estimate_bytes": int(est.peak_bytes), "estimate_text": text}


def run_settings(trainer: Any) -> dict[str, Any]:
    """`jp.estimate`'s options for what this trainer will run."""
    args = trainer.args
    max_length = getattr(args, "max_length", None)
    longest = longest_row(getattr(trainer, "train_dataset", None))
    seq_len = min(longest, max_length) if longest and max_length else longest or max_length or 1024
    return {
        "batch_size": int(args.per_device_train_batch_size),
        "seq_len": int(seq_len),
        "gradient_checkpointing": bool(args.gradient_checkpointing),
        "optimizer": str(getattr(args.optim, "value", args.optim)),
        "autocast": "bfloat16" if args.bf16 else "float16" if args.fp16 else "none",
    }


def _plan(trainer: Any, plan: Any) -> Any:
    """The plan to estimate: the one `jp.apply` recorded for the adapter (the run's own may
    name no targets), with the trainer kind; None (full fine-tuning) without an adapter."""
    peft_model = find_peft_model(trainer.model)
    if peft_model is None:
        return None
    recorded = applied_plan(peft_model)
    if recorded is None:
        raise PlanError("the adapter was not applied by jupyter_peft, so its plan is unknown")
    kind = (plan.train or {}).get("trainer") if plan is not None else None
    kind = kind or next((n for n, s in TRAINERS.items() if s.trainer == type(trainer).__name__), "sft")
    return recorded[1].replace(train={"trainer": kind})


def longest_row(dataset: Any) -> int | None:
    """Tokens in the longest row of a tokenized data set (TRL's columns: input_ids, or a prompt
    plus its longest completion), read column-wise from Arrow; None when not tokenized."""
    names = set(getattr(dataset, "column_names", None) or [])
    wanted = [n for n in ("input_ids", "prompt_ids", "completion_ids", "chosen_ids", "rejected_ids") if n in names]
    if not wanted or not hasattr(dataset, "with_format"):
        return None
    import pyarrow.compute as pc

    longest = 0
    # public iteration honours a filtered set's indices (TRL drops over-long DPO prompts that way)
    for batch in dataset.select_columns(wanted).with_format("arrow").iter(batch_size=65536):
        longest = max(longest, pc.max(_row_lengths(batch, pc)).as_py() or 0)
    return longest or None


def _row_lengths(batch: Any, pc: Any) -> Any:
    """Tokens per row of one Arrow batch: input_ids, or a prompt plus its longest completion."""
    def length(name: str) -> Any:
        return pc.list_value_length(batch.column(name))

    names = set(batch.column_names)
    if "input_ids" in names:
        return length("input_ids")
    parts = [length(n) for n in ("completion_ids", "chosen_ids", "rejected_ids") if n in names]
    total = functools.reduce(pc.max_element_wise, parts) if parts else None
    if "prompt_ids" in names:
        total = length("prompt_ids") if total is None else pc.add(total, length("prompt_ids"))
    return total
