"""What this machine's accelerator can do, asked in one place (torch is imported on first use).

Training defaults (train_config), quantized loading (loading, demo) and exports (export_job,
export_source) all decide by these answers, so they cannot disagree.
"""

from __future__ import annotations

from typing import Any


def cuda_here() -> bool:
    """Whether this machine has a CUDA GPU."""
    import torch

    return bool(torch.cuda.is_available())


def bf16_gpu() -> bool:
    """Whether this machine has a CUDA GPU that computes in bfloat16 (Ampere or newer)."""
    import torch

    return cuda_here() and bool(torch.cuda.is_bf16_supported())


def default_device_map() -> Any:
    """Where a model loaded for training goes when nothing says: the one GPU, else the CPU."""
    return {"": 0} if cuda_here() else "cpu"
