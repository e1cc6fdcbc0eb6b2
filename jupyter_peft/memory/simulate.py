"""`method="simulate"`: one real training step of the actual model on FakeTensors, tracked.

The model of the Setup is built on meta (`build.meta_model`), given fake CPU tensors, and
runs a whole step under PyTorch's MemTracker: forward (with autocast when mixed), the loss
(TRL's fused LM head or the model's own), backward, the optimizer step and `zero_grad`. The
optimizer state exists before the step, as from the second step on, so the peak is the
steady one a run keeps hitting. Nothing is allocated; an 8B model takes seconds.

It counts tensor bytes, as `torch.cuda.max_memory_allocated` does, and records every
allocation and free in order: `allocator.py` replays them through PyTorch's caching allocator
for the reserved peak. Paged optimizer state is counted where bitsandbytes would page it.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from .._compat import base_model
from .settings import Setup
from .states import optimizer_bytes


@dataclass
class Simulated:
    """The tracked peak of one step and what it was made of."""
    peak_bytes: int
    breakdown: dict[str, int] = field(default_factory=dict)
    """At the peak: weights, gradients, optimizer, activations (kept for backward), temporaries."""
    paged_bytes: int = 0
    """Optimizer state bitsandbytes would page (left out of the peak, as on CUDA)."""
    phase: str = "simulated step"
    seconds: float = 0.0
    events: list[tuple[int, int]] = field(default_factory=list, repr=False)
    """Every allocation and free of the run, in order (see trace.PeakTracker.events)."""
    step_start: int = 0
    """Where in `events` the step begins (before it: weights, optimizer state)."""
    marks: list[tuple[int, str, int]] = field(default_factory=list, repr=False)
    """Where each decoder layer's forward and backward begin in `events`, and where the
    optimizer step begins and ends (layer -1)."""


# MemTracker's kinds -> MemoryEstimate's components
_KINDS = {
    "parameter": "weights",
    "buffer": "weights",
    "other": "weights",
    "gradient": "gradients",
    "optstate": "optimizer",
    "activation": "activations",
    "temp": "temporaries",
}


def simulate(setup: Setup, real: bool = False, layers: int | None = None) -> Simulated:
    """Run one step of `setup` on fake tensors and return the tracked peak. `real` runs it on
    real (uninitialised) CPU tensors instead: the same numbers, for small models and tests.
    `layers`: a model cut to that many decoder layers. Each decoder layer's forward and
    backward are marked in the events (`Simulated.marks`, for stretch.py)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from .build import meta_model, num_layers
    from .step import (
        batch_for,
        keep_gradients,
        loss_of,
        model_mask,
        previous_outputs,
        reference_model,
        steady_optimizer,
        step,
    )
    from .trace import PeakTracker, batch_rows, cuda_like, to_fake

    start = time.perf_counter()
    model = meta_model(setup, num_layers=layers)
    reference = reference_model(setup, model)
    fake: Any = contextlib.nullcontext() if real else FakeTensorMode()
    to_fake(model, fake)
    if reference is not None:
        to_fake(reference, fake)
    trainable = [p for p in model.parameters() if p.requires_grad]
    with fake:
        optimizer = steady_optimizer(setup.optimizer, trainable, run_kernels=False)
        if setup.keep_gradients:
            keep_gradients(trainable)
        batch = batch_for(setup, model)
    tracker = PeakTracker()
    tracker.track_external(*(m for m in (model, reference) if m is not None), optimizer)
    tracker.mark_step()
    tracker.watch(decoder_layers(model, layers if layers is not None else num_layers(setup.config)))
    autocast = getattr(torch, setup.autocast) if setup.autocast else None
    with fake, tracker, _gpu_kernels(), batch_rows(setup.masked):
        before = previous_outputs(setup, model)  # a plain loop's outputs of the step before
        # the mask lives through the backbone's forward; checkpointing keeps it as a saved input
        mask, hook = {"mask": model_mask(setup)}, None
        decoder = getattr(base_model(model), "get_decoder", lambda: None)() if mask["mask"] is not None else None
        if decoder is not None and not setup.gradient_checkpointing:
            hook = decoder.register_forward_hook(lambda *_: mask.clear())
        with cuda_like(autocast):
            loss, held = loss_of(setup, model, reference, batch)
        del before  # `outputs = model(**batch)` has replaced them
        if hook is not None:
            hook.remove()
        if not setup.gradient_checkpointing:
            mask.clear()
        loss.backward()
        del loss
        mask.clear()
        tracker.marks.append((len(tracker.events), "optimizer", -1))
        step(optimizer, setup.keep_gradients)
        tracker.marks.append((len(tracker.events), "optimizer end", -1))
        del held
    breakdown: dict[str, int] = {}
    for kind, size in tracker.peak_breakdown().items():
        breakdown[_KINDS.get(kind, "temporaries")] = breakdown.get(_KINDS.get(kind, "temporaries"), 0) + size
    paged = _paged(setup.optimizer, trainable)
    breakdown["optimizer"] = breakdown.get("optimizer", 0) - paged
    return Simulated(tracker.peak - paged, breakdown, paged, seconds=time.perf_counter() - start,
                     events=_unpaged(tracker, setup.optimizer, optimizer, trainable), step_start=tracker.step_start,
                     marks=tracker.marks)


def decoder_layers(model: Any, n: int) -> list[Any]:
    """The model's stack of `n` decoder layers: the module list of that length holding the most
    parameters (not an MoE layer's experts). Empty when there is none."""
    best: list[Any] = []
    size = -1
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            count = sum(p.numel() for p in module.parameters())
            if count > size and len({type(m) for m in module}) == 1:
                best, size = list(module), count
    return best


def _unpaged(tracker: Any, name: str, optimizer: Any, trainable: list[Any]) -> list[tuple[int, int]]:
    """The events the CUDA caching allocator sees: bitsandbytes' paged state (tensors of at
    least 100k values) lives in managed memory, outside the allocator. A copy: the tracker
    goes on recording frees as the simulation's model and optimizer are let go, after the step."""
    if not _paged(name, trainable):
        return list(tracker.events)
    paged = set()
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.numel() >= 100_000:
                winfo, _ = tracker._WINFO.get(value.untyped_storage(), (None, None))
                if winfo is not None:
                    paged.add(id(winfo))
    return [(key, nbytes) for key, nbytes in tracker.events if key not in paged]


def _paged(optimizer: str, trainable: list[Any]) -> int:
    """State a paged bitsandbytes optimizer keeps in managed memory (CPU fake tensors cannot
    page, so the tracker saw it as ordinary memory)."""
    shapes = ((p.numel(), str(p.dtype).replace("torch.", ""), tuple(p.shape)) for p in trainable)
    return optimizer_bytes(optimizer, shapes).paged


_CUDA_KERNELS: contextvars.ContextVar[bool] = contextvars.ContextVar("jupyter_peft_cuda_kernels", default=False)


@contextlib.contextmanager
def _gpu_kernels() -> Iterator[None]:
    """TRL's fused head on CUDA folds each logits tile with a Triton kernel and accumulates
    gradients with `addmm(out_dtype=float32, out=...)`, allocating nothing; its CPU fallback
    makes fp32 copies of every tile. Do both in place, as CUDA does (values do not matter)."""
    from .._threads import gate

    try:
        from trl.kernels import chunked_logprob as kernels
    except ImportError:  # an older TRL without the fused head: nothing to replace
        yield
        return
    for name in ("_forward_tile", "_backward_tile", "_addmm_fp32"):
        gate(kernels, name, _CUDA_KERNELS, _in_place)  # this thread's simulation only
    token = _CUDA_KERNELS.set(True)
    try:
        yield
    finally:
        _CUDA_KERNELS.reset(token)


def _in_place(*args: Any, **kwargs: Any) -> None:
    """Stands for a CUDA kernel that writes into buffers it was given."""
