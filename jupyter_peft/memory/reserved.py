"""From allocated to reserved: what the caching allocator holds at a run's peak, and why.

A run keeps the model states (weights, adapters, optimizer state) allocated from step to
step and makes and frees the step's tensors every step. The reserved peak is the steady one:
the simulated step's trace (`trace.PeakTracker.events`) replayed twice after the states, so
the second step reuses the segments the first one left cached, as every later step does.

Beside the tensors, the allocator also serves cuBLAS: each (thread, stream) gets a workspace
(`CUBLAS_WORKSPACE_CONFIG`, default ":4096:2:16:8" = 8 MiB + 128 KiB before Hopper, ":4096:8"
= 32 MiB on Hopper and later; aten/src/ATen/cuda/CublasHandlePool.cpp), allocated through the
caching allocator, and a training step uses two threads (forward and the optimizer on the
main thread, backward on autograd's device thread). The CUDA context is outside the allocator
(`fit.CONTEXT_BYTES`): `MemoryEstimate.total_bytes` adds it.

The instant estimate replays a whole step too: a three-layer model's, stretched to the
model's depth (stretch.py). Where no such step can be made, and for the what-if searches
(options.py: many shapes, each instant), `instant` replays the states tensor by tensor (their
rounding and segments are exact) and gives the step's transient bytes a share on top: the one
the stretched step reserved at the estimate's own shape, else `TRANSIENT_GAP`
(tests/memory/test_stretch.py and test_allocator.py hold the methods together).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .allocator import CachingAllocator, settings_from_env

MiB = 1 << 20
TRANSIENT_GAP = 0.10
"""Reserved beyond the transient peak (rounding and cached blocks), as a share of it."""
_HOPPER = ("H100", "H200", "B200", "GH200", "GB200")


def cublas_workspace(gpu: Any = None) -> int:
    """Bytes of one cuBLAS workspace on `gpu` (a Gpu or None: a pre-Hopper card)."""
    name = str(getattr(gpu, "name", "") or "").upper()
    return 32 * MiB if name.startswith(_HOPPER) else 8 * MiB + 128 * 1024


@dataclass
class Reserved:
    """The reserved peak and what it adds to the allocated peak."""

    reserved_bytes: int
    allocated_bytes: int
    """The allocator's allocated peak (blocks, rounded, with the workspaces)."""
    gap: dict[str, int] = field(default_factory=dict)
    """reserved_bytes - (tensor peak) by cause: allocator rounding, cached free blocks
    (fragmentation), cuBLAS workspaces."""
    segments: int = 0


def replayed(events: list[tuple[int, int]], step_start: int, gpu: Any = None, steps: int = 2,
             settings: dict[str, Any] | None = None) -> Reserved:
    """The steady reserved peak of a simulated step (see the module docstring)."""
    alloc, workspace = started(events, step_start, gpu, settings)
    step = events[step_start:]
    kept = _kept(step)
    for k in range(steps):
        for i, (key, nbytes) in enumerate(step):
            if k and i in kept:
                continue  # made once (lazy state), then alive: not made again
            _apply(alloc, (k, key), nbytes)
    result = alloc.result()
    return Reserved(
        result.peak_reserved,
        result.peak_allocated,
        {
            "allocator rounding": result.gap["rounding"],
            "cached free blocks": result.gap["cached free blocks"],
            "cuBLAS workspaces": 2 * workspace,
        },
        result.segments,
    )


def started(events: list[tuple[int, int]], step_start: int, gpu: Any = None,
            settings: dict[str, Any] | None = None) -> tuple[CachingAllocator, int]:
    """An allocator holding a run's states (the events before the step) and the two cuBLAS
    workspaces a training step makes; and the workspace's size."""
    alloc = CachingAllocator(**(settings if settings is not None else settings_from_env()))  # type: ignore[arg-type]
    for key, nbytes in events[:step_start]:
        _apply(alloc, key, nbytes)
    workspace = cublas_workspace(gpu)
    for thread in range(2):
        alloc.malloc(("cublas", thread), workspace)
    return alloc, workspace


def _apply(alloc: CachingAllocator, key: object, nbytes: int) -> None:
    if nbytes:
        alloc.malloc(key, nbytes)
    else:
        alloc.free(key)


def _kept(step: list[tuple[int, int]]) -> set[int]:
    """Indices of the allocations a step makes and never frees."""
    last: dict[int, int] = {}
    for i, (key, nbytes) in enumerate(step):
        if nbytes:
            last[key] = i
        else:
            last.pop(key, None)
    return set(last.values())


def instant(state_sizes: Iterable[int], peak_bytes: int, gpu: Any = None,
            settings: dict[str, Any] | None = None, share: float = TRANSIENT_GAP) -> Reserved:
    """The instant estimate's reserved peak without a step's trace: the states replayed one
    tensor at a time, the workspaces, and the transient peak with `share` of it on top
    (`TRANSIENT_GAP`, or what a stretched step reserved beyond it: stretch.share)."""
    alloc = CachingAllocator(**(settings if settings is not None else settings_from_env()))  # type: ignore[arg-type]
    for i, size in enumerate(state_sizes):
        if size:
            alloc.malloc(i, size)
    states = alloc.requested
    workspace = cublas_workspace(gpu)
    for thread in range(2):
        alloc.malloc(("cublas", thread), workspace)
    # the step's own segments are allocated fresh; cached state blocks rarely fit them
    transient = max(peak_bytes - states, 0)
    rounding = alloc.allocated - alloc.requested
    cached = alloc.reserved - alloc.allocated
    step_gap = int(share * transient)
    reserved = states + rounding + cached + 2 * workspace + transient + step_gap
    return Reserved(
        reserved,
        alloc.allocated + transient,
        {
            "allocator rounding": rounding,
            "cached free blocks": cached + step_gap,
            "cuBLAS workspaces": 2 * workspace,
        },
        alloc.segments,
    )


def state_sizes(setup: Any, prof: Any, tensors: Any = None, with_outputs: bool = True) -> list[int]:
    """The resident tensors of a run in load order: every weight, then each trainable tensor's
    optimizer states (one block each) and, when kept between steps, its gradient (and a plain
    loop's outputs, unless not `with_outputs`). `tensors`: those of these (default: all)."""
    from .states import DTYPE_BYTES, OPTIMIZERS, _state_bytes

    tensors = prof.tensors if tensors is None else tensors
    sizes = [int(t.nbytes) for t in tensors]
    opt = OPTIMIZERS[setup.optimizer]
    for t in tensors:
        if not t.trainable:
            continue
        state = _state_bytes(opt, t.numel, t.dtype, t.shape)
        if opt.states and not (opt.paged and t.numel >= 100_000):
            sizes += [state // opt.states] * opt.states
        if setup.keep_gradients:
            sizes.append(t.numel * DTYPE_BYTES[t.dtype])
    if with_outputs and setup.loop == "plain" and prof.vocab:  # a plain loop's outputs, held from step to step
        from .analytic import held_logits

        sizes.append(held_logits(setup, prof))
    return sizes
