"""Memory per GPU when a step is spread over several: DDP, ZeRO-2, ZeRO-3 / FSDP full shard.

Each process runs the estimated step on its own micro-batch, so activations, logits and
temporaries stay as they are. What a backend shards is the model state (ZeRO, Rajbhandari
et al. 2020): ZeRO-2 splits gradients and optimizer state over the N processes, ZeRO-3 and
FSDP full-shard split the weights too, and gather one layer's weights at a time to run it.
CPU offload moves the optimizer state (and with ZeRO-3/FSDP the sharded weights) to host
memory. The split applies to the breakdown at the estimate's peak; another phase of the step
could become the peak once model state shrinks, so this is an approximation of the same kind
as the estimate it starts from.
"""

from __future__ import annotations

from dataclasses import dataclass

# backend -> model-state components split over the processes
_SHARDED = {
    "ddp": (),
    "zero2": ("gradients", "optimizer"),
    "zero3": ("weights", "adapters", "gradients", "optimizer"),
    "fsdp": ("weights", "adapters", "gradients", "optimizer"),
}
_OFFLOADED = {"ddp": (), "zero2": ("optimizer",), "zero3": ("optimizer", "weights"), "fsdp": ("optimizer", "weights")}


@dataclass(frozen=True)
class PerGpu:
    """One process's share of a step under a backend."""

    backend: str
    processes: int
    offload: bool
    bytes: int
    breakdown: dict[str, int]


def per_gpu(estimate: object, backend: str, processes: int, offload: bool = False) -> PerGpu:
    """`estimate` (a MemoryEstimate of one process's step) as one GPU's share under `backend`."""
    breakdown = dict(getattr(estimate, "breakdown"))  # noqa: B009 - any MemoryEstimate-like object
    layers = max(int(getattr(getattr(estimate, "setup").config, "num_hidden_layers", 1) or 1), 1)  # noqa: B009
    out: dict[str, int] = {}
    for name, value in breakdown.items():
        if name in _SHARDED[backend]:
            value = 0 if offload and name in _OFFLOADED[backend] else -(-value // processes)
        out[name] = value
    if backend in ("zero3", "fsdp"):  # one layer's full weights gathered while it runs
        out["gathered layer"] = breakdown.get("weights", 0) // layers
    overhead = sum(int(getattr(estimate, name, 0)) for name in ("overhead_bytes", "paged_bytes", "allocator_bytes"))
    return PerGpu(backend, processes, offload, sum(out.values()) + overhead, out)
