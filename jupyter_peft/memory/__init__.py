"""The memory of one training step: know it before training, check it against reality.

    est = jp.estimate(model, plan, batch_size=4, seq_len=1024, gpu="A100-80GB")
    est.total_bytes, est.breakdown, est.fits("L4"), est.largest_batch(), est.compare(), est.advice()

Three methods, one answer type (`MemoryEstimate`):
    analytic  instant (cached per model and plan): model states by formula, activations from a
              one/two-layer probe on fake tensors, the LM head and loss by formula (analytic.py)
    simulate  one whole training step on FakeTensors under PyTorch's MemTracker (simulate.py)
    measure   one step on a CUDA device, read from torch.cuda.max_memory_allocated (measure.py)

Rooms: settings (what is trained and how), build (the model on meta), trace (fake execution as
CUDA would run it), step (the training step), probe, states, inventory, analytic, simulate,
measure, fit (GPUs, overhead), sharding (per GPU), options (what-ifs), report (MemoryEstimate).
`%peft estimate` is magics/estimate.py. May import: plan/, model/, the session, the root helpers.
"""

from __future__ import annotations

from typing import Any

from .._errors import PlanError, unknown
from .fit import GPUS
from .fit import gpu as as_gpu
from .fit import overhead as modelled_overhead
from .measure import measure
from .measure import peak_callback as make
from .report import MemoryEstimate
from .settings import resolve

__all__ = ["GPUS", "MemoryEstimate", "estimate", "estimate_magic", "peak_callback"]

METHODS = ("analytic", "simulate", "measure")


def estimate(
    model_or_config: Any,
    plan: Any = None,
    *,
    batch_size: int | None = None,
    seq_len: int | None = None,
    method: str = "analytic",
    optimizer: str | None = None,
    gradient_checkpointing: bool | None = None,
    dtype: str | None = None,
    gpu: Any = None,
    overhead: int | None = None,
    batch: dict[str, Any] | None = None,
    **options: Any,
) -> MemoryEstimate:
    """Peak accelerator memory of one training step of `plan` on `model_or_config`.

    `model_or_config`: a model (real or on `meta`; a PeftModel is read through its base), a
    transformers config, or a local config folder. `plan`: a Plan, its YAML or mapping, or None
    (or "full") for full fine-tuning. Unset options come from the plan's `train:` block (TRL's
    names), then TRL's GPU defaults. Other options: autocast, loss ("chunked": TRL's fused LM
    head; "full": logits), quantization, double_quant. `gpu` (a preset name or bytes) is the
    card `fits()` and the what-ifs compare against; `overhead` replaces the modelled CUDA
    context and allocator slack (bytes). `batch` (method="measure"): the user's longest batch.
    """
    import time

    if method not in METHODS:
        raise unknown("method", method, METHODS, key="method")
    start = time.perf_counter()
    setup = resolve(
        model_or_config,
        plan,
        batch_size=batch_size,
        seq_len=seq_len,
        optimizer=optimizer,
        gradient_checkpointing=gradient_checkpointing,
        dtype=dtype,
        **options,
    )
    card = as_gpu(gpu) if gpu is not None else None
    if batch is not None and method != "measure":
        raise PlanError(
            "batch= is the batch method='measure' runs; the other methods use batch_size and seq_len",
            key="batch",
        )
    result = _run(method, setup, batch)
    result.gpu = card
    if overhead is not None:
        result.overhead_bytes = int(overhead)
    result.seconds = time.perf_counter() - start
    return result


def _run(method: str, setup: Any, batch: Any) -> MemoryEstimate:
    if method == "analytic":
        from .analytic import analytic

        c = analytic(setup)
        return MemoryEstimate(
            c.peak_bytes,
            c.breakdown,
            method,
            setup,
            modelled_overhead(c.peak_bytes),
            c.paged_bytes,
            c.phase,
            c.phases,
        )
    if method == "simulate":
        from .simulate import simulate

        s = simulate(setup)
        return MemoryEstimate(
            s.peak_bytes, s.breakdown, method, setup, modelled_overhead(s.peak_bytes), s.paged_bytes, s.phase
        )

    m = measure(setup, batch)
    return MemoryEstimate(m.peak_bytes, m.breakdown, method, setup, m.overhead_bytes, 0, "measured step")


def peak_callback() -> Any:
    """A transformers TrainerCallback logging `memory/peak_gib` (torch.cuda.max_memory_allocated)
    each step, for a run's dashboard to show beside `estimate(...).peak_bytes`."""
    return make()
