"""What fits: GPU presets, the overhead on top of tensors, the largest batch and sequence,
full fine-tuning vs LoRA vs QLoRA side by side, and what to change when a step does not fit.

Capacities are what `nvidia-smi` reports for each card. On top of the memory the caching
allocator reserves (reserved.py), a process pays the CUDA context (~0.3-1.4 GB; 512 MiB with
lazy module loading, the default since CUDA 11.7). `estimate(..., overhead=...)` replaces the
context and the allocator's gap with a measured number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import PlanError, unknown
from .._format import GiB, MiB  # noqa: F401 - re-exported for the memory views

CONTEXT_BYTES = 512 * MiB

# name -> MiB as nvidia-smi reports the card
GPUS: dict[str, int] = {
    "T4-16GB": 15360,
    "V100-16GB": 16384,
    "V100-32GB": 32768,
    "L4-24GB": 23034,
    "A10-24GB": 23028,
    "RTX3090-24GB": 24576,
    "RTX4090-24GB": 24564,
    "A100-40GB": 40960,
    "A6000-48GB": 49140,
    "L40S-48GB": 46068,
    "A100-80GB": 81920,
    "H100-80GB": 81559,
    "H200-141GB": 143771,
    "B200-180GB": 183359,
}


@dataclass(frozen=True)
class Gpu:
    name: str
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "bytes": self.bytes}


def gpu(spec: Any) -> Gpu:
    """A Gpu from a preset name (case and dashes forgiven; "H100", "4090" when unambiguous),
    a size in bytes, or a size text ("24GB", "80GiB")."""
    if isinstance(spec, Gpu):
        return spec
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        if spec <= 0:
            raise PlanError(f"{spec!r} is not valid: GPU memory is a positive number of bytes", key="gpu")
        return Gpu(f"{spec / GiB:.1f} GiB", int(spec))
    text = str(spec).strip()
    want = _squash(text)
    exact = [n for n in GPUS if _squash(n) == want]
    models = [n for n in GPUS if want in (_squash(n.split("-")[0]), _squash(n.split("-")[0]).removeprefix("RTX"))]
    found = exact or models
    if len(found) == 1:
        return Gpu(found[0], GPUS[found[0]] * MiB)
    if len(found) > 1:
        raise PlanError(f"{text!r} names several cards; pick one", key="gpu", value=text, choices=found)
    size = _size(want)
    if size is not None:
        return Gpu(text, size)
    raise unknown("gpu", text, [*GPUS, "24GB", "80GiB"], key="gpu")


def _squash(text: str) -> str:
    return text.upper().replace("-", "").replace("_", "").replace(" ", "")


def _size(text: str) -> int | None:
    for suffix, unit in (("GIB", GiB), ("GB", 10**9), ("MIB", MiB), ("MB", 10**6)):
        if text.endswith(suffix):
            try:
                value = float(text[: -len(suffix)])
            except ValueError:
                return None
            return int(value * unit) if value > 0 else None
    return None


def overhead(peak_bytes: int = 0) -> int:
    """Bytes a process needs beyond what its caching allocator reserves: the CUDA context."""
    return CONTEXT_BYTES


# ---- searching ---------------------------------------------------------------------------


def largest(fits: Callable[[int], bool], low: int, high: int) -> int | None:
    """The largest n in [low, high] with fits(n), fits monotone (None when even low fails)."""
    if not fits(low):
        return None
    if fits(high):
        return high
    return bisected(fits, low, high)


def bisected(fits: Callable[[int], bool], low: int, high: int) -> int:
    """The largest n with fits(n) between `low`, which fits, and `high`, which does not."""
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            low = mid
        else:
            high = mid
    return low


def max_positions(config: Any) -> int:
    target = getattr(config, "get_text_config", lambda: config)()
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(target, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 131072


def accumulation(batch: int, fitting: int) -> int:
    return math.ceil(batch / fitting)
