"""`method="measure"`: one real training step on a CUDA device, read from the allocator.

The model of the Setup is built on the GPU from its config with random weights (the user's
own model is never touched), quantized through bitsandbytes when the setup says so, wrapped
by `jp.apply`, and runs the same step as the simulation (`step.py`) twice: the first warms up
kernels, workspaces and the allocator, the second is measured with
`torch.cuda.max_memory_allocated` (tensor bytes, what `peak_bytes` means everywhere here).
Reserved-but-unused memory and the CUDA context become `overhead_bytes`.

`peak_callback()` gives a Trainer callback that logs the measured peak of a real run, for a
dashboard to show beside the estimate.
"""

from __future__ import annotations

import contextlib
import gc
import tempfile
from dataclasses import dataclass, field
from typing import Any

from .._compat import add_fused_lm_head
from .._errors import PlanError
from ..model.adapt import apply
from .settings import Setup


@dataclass
class Measured:
    peak_bytes: int
    breakdown: dict[str, int] = field(default_factory=dict)
    overhead_bytes: int = 0
    reserved_bytes: int = 0
    """torch.cuda.max_memory_reserved over the second step, less what was reserved before."""


def measure(setup: Setup, batch: dict[str, Any] | None = None) -> Measured:
    """Run two steps of `setup` on the GPU and return the second one's peak."""
    import torch

    if not torch.cuda.is_available():
        raise PlanError(
            "method='measure' runs a step on a CUDA GPU and this machine has none; "
            "method='simulate' tracks the same step on the CPU",
            key="method",
            value="measure",
        )
    from .step import batch_for, loss_of, reference_model, steady_optimizer, step

    _release()
    start = torch.cuda.memory_allocated()
    context = _context_bytes()
    model = cuda_model(setup)
    reference = reference_model(setup, model)
    weights = torch.cuda.memory_allocated() - start
    optimizer = steady_optimizer(setup.optimizer, [p for p in model.parameters() if p.requires_grad])
    states = torch.cuda.memory_allocated() - start - weights
    inputs: Any = batch_for(setup, model, device="cuda") if batch is None else _on_gpu(batch)
    mixed = torch.autocast("cuda", dtype=getattr(torch, setup.autocast)) if setup.autocast else contextlib.nullcontext()

    holder: dict[str, Any] = {}

    def one_step() -> None:
        with mixed:
            loss, held = loss_of(setup, model, reference, inputs)
        holder["outputs"] = held  # a plain loop's outputs replace the step before's after its forward
        loss.backward()
        del loss
        step(optimizer, setup.keep_gradients)

    one_step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    one_step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - start
    slack = torch.cuda.max_memory_reserved() - torch.cuda.max_memory_allocated()
    holder.clear()
    model = reference = optimizer = inputs = None  # free the GPU before returning
    _release()
    breakdown = {"weights": weights, "optimizer": states, "activations": peak - weights - states}
    return Measured(int(peak), breakdown, int(slack + context), int(peak + slack))


def cuda_model(setup: Setup) -> Any:
    """The model of `setup` on the GPU with random weights, as a run would train it."""
    import torch

    from .build import build_base, is_causal_lm

    if setup.quantization != "none":
        base = _quantized_base(setup)
    else:
        base = build_base(setup.model_class, setup.config, setup.dtype, device="cuda")
    base.train()
    if setup.gradient_checkpointing:
        base.gradient_checkpointing_enable()
    if setup.loss == "chunked" and is_causal_lm(base):

        add_fused_lm_head(base, ("log_probs", "entropy", "is_top1"))
    if setup.plan is None:
        return base

    model = apply(setup.plan.replace(base=None), base)
    if setup.quantization != "none":
        for name, p in model.named_parameters():  # TRL keeps QLoRA adapters in bf16,
            if p.requires_grad and "lora_magnitude_vector" not in name:  # DoRA's magnitude in fp32
                p.data = p.data.to(torch.bfloat16)
    if setup.gradient_checkpointing:
        model.enable_input_require_grads()
    return model


def _quantized_base(setup: Setup) -> Any:
    """A bitsandbytes-quantized base: random weights saved once, loaded as a run would load them."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from .build import build_base

    quant = (
        BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=setup.double_quant,
            bnb_4bit_compute_dtype=getattr(torch, setup.autocast or "bfloat16"),
        )
        if setup.quantization == "4bit"
        else BitsAndBytesConfig(load_in_8bit=True)
    )
    with tempfile.TemporaryDirectory() as folder:
        plain = build_base(setup.model_class, setup.config, setup.dtype, device="cuda")
        plain.save_pretrained(folder)
        del plain
        _release()
        return AutoModelForCausalLM.from_pretrained(
            folder, quantization_config=quant, device_map={"": 0}, dtype=getattr(torch, setup.dtype)
        )


def _on_gpu(batch: dict[str, Any]) -> dict[str, Any]:
    out = {k: v.to("cuda") if hasattr(v, "to") else v for k, v in batch.items()}
    out.setdefault("use_cache", False)
    return out


def _context_bytes() -> int:
    """Device memory in use that the caching allocator does not own: the CUDA context (and
    anything else on the card)."""
    import torch

    free, total = torch.cuda.mem_get_info()
    return max(total - free - torch.cuda.memory_reserved(), 0)


def _release() -> None:
    import torch

    gc.collect()
    torch.cuda.empty_cache()


def peak_callback() -> Any:
    """A transformers TrainerCallback adding `memory/peak_gib` (max_memory_allocated) to each log."""
    import torch
    from transformers import TrainerCallback

    class PeakMemory(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            if logs is not None and torch.cuda.is_available():
                logs["memory/peak_gib"] = torch.cuda.max_memory_allocated() / 2**30

    return PeakMemory()
