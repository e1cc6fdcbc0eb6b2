"""Model states by formula: weights (by dtype and quantization), gradients, optimizer state.

Bytes per parameter, P parameters of which T train (numbers from the notes, checked by the
simulation):
    weights     fp32 4P, bf16/fp16 2P; 4-bit NF4 0.5 + 4/64 (absmax) = 0.5625 B/param, with
                double quantization 0.5 + (1 + 4/256)/64 ~ 0.516; 8-bit 1 + 4/in per param
    gradients   T x the trainable parameters' bytes
    optimizer   AdamW: 2 states in the parameter dtype; 8-bit (bnb): 2 bytes + an fp32 absmax per
                256 values, fp32 states for tensors under 4096 values; paged: bnb pages states
                of 1e5+ values into managed memory (`max_memory_allocated` does not see them);
                foreach AdamW makes a temporary one parameter set in size during the step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "uint8": 1, "int8": 1, "float64": 8}


@dataclass(frozen=True)
class Optimizer:
    """How an optimizer (transformers' `optim` name) stores its state."""

    name: str
    states: int
    """State tensors per parameter."""
    state_dtype: str | None = None
    """None: the parameter's dtype; "float32"; "8bit" (bnb blockwise: 1 byte + absmax)."""
    step_temp: float = 0.0
    """Temporaries during `step`, in trainable-parameter sets (foreach: one)."""
    paged: bool = False
    factored: bool = False
    """Adafactor: row and column second moments instead of full ones."""


OPTIMIZERS: dict[str, Optimizer] = {
    o.name: o
    for o in [
        Optimizer("adamw_torch_fused", 2),
        Optimizer("adamw_torch", 2, step_temp=1.0),  # torch picks foreach on CUDA
        Optimizer("adamw_8bit", 2, "8bit"),
        Optimizer("adamw_bnb_8bit", 2, "8bit"),
        Optimizer("paged_adamw_8bit", 2, "8bit", paged=True),
        Optimizer("paged_adamw_32bit", 2, "float32", paged=True),
        Optimizer("lion_8bit", 1, "8bit"),
        Optimizer("lion_32bit", 1, "float32"),
        Optimizer("paged_lion_8bit", 1, "8bit", paged=True),
        Optimizer("paged_lion_32bit", 1, "float32", paged=True),
        Optimizer("sgd", 0),
        Optimizer("adagrad", 1, step_temp=1.0),
        Optimizer("rmsprop", 1, step_temp=1.0),
        Optimizer("adafactor", 1, "float32", factored=True),
    ]
}

_MIN_8BIT = 4096  # bnb keeps fp32 state for smaller tensors
_MIN_PAGED = 100_000  # bnb pages only tensors this large


@dataclass
class OptimizerBytes:
    resident: int = 0
    """State in ordinary device memory."""
    paged: int = 0
    """State in managed (paged) memory: on the GPU while it fits, spilled to CPU when not."""
    step_temp: int = 0
    """Peak temporaries while `step` runs."""


def optimizer_bytes(name: str, trainable: Iterable[tuple[int, str, tuple[int, ...]]]) -> OptimizerBytes:
    """State of optimizer `name` for trainable tensors given as (numel, dtype, shape)."""
    opt = OPTIMIZERS[name]
    out = OptimizerBytes()
    largest = total = 0
    for numel, dtype, shape in trainable:
        total += numel * DTYPE_BYTES[dtype]
        largest = max(largest, numel)
        state = _state_bytes(opt, numel, dtype, shape)
        if opt.paged and numel >= _MIN_PAGED:
            out.paged += state
        else:
            out.resident += state
    out.step_temp = int(opt.step_temp * total)
    if opt.factored:  # Adafactor updates one tensor at a time through fp32 copies of it
        out.step_temp = 3 * 4 * largest
    return out


def _state_bytes(opt: Optimizer, numel: int, dtype: str, shape: tuple[int, ...]) -> int:
    if opt.states == 0:
        return 0
    if opt.factored and len(shape) >= 2:
        return 4 * (shape[0] + int(numel // shape[0]))  # row + column second moments, fp32
    if opt.state_dtype == "8bit":
        if numel < _MIN_8BIT:
            return opt.states * 4 * numel
        blocks = -(-numel // 256)
        return opt.states * (numel + 4 * blocks)
    per = DTYPE_BYTES[opt.state_dtype] if opt.state_dtype else DTYPE_BYTES[dtype]
    return opt.states * per * numel


def packed_bytes(numel: int, quantization: str, double_quant: bool, rows: int = 0) -> int:
    """Bytes of a quantized weight: 4-bit packs two values a byte with an fp32 absmax per block
    of 64 (double quantization: an 8-bit absmax and an fp32 one per 256 blocks); 8-bit is a
    byte a value and an fp32 scale per row."""
    if quantization == "8bit":
        return numel + 4 * rows
    blocks = numel / 64
    absmax = blocks * (1 + 4 / 256) if double_quant else blocks * 4
    return int(numel / 2 + absmax)
