"""`method="simulate"`: one real training step of the actual model on FakeTensors, tracked.

The model of the Setup is built on meta (`build.meta_model`), given fake CPU tensors, and
runs a whole step under PyTorch's MemTracker: forward (with autocast when mixed), the loss
(TRL's fused LM head or the model's own), backward, the optimizer step and `zero_grad`. The
optimizer state exists before the step, as from the second step on, so the peak is the
steady one a run keeps hitting. Nothing is allocated; an 8B model takes seconds.

It counts tensor bytes, as `torch.cuda.max_memory_allocated` does: no CUDA context, no
allocator caching. Paged optimizer state is counted where bitsandbytes would page it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from .._errors import PlanError
from .setup import Setup


@dataclass
class Simulated:
    """The tracked peak of one step and what it was made of."""

    peak_bytes: int
    breakdown: dict[str, int] = field(default_factory=dict)
    """At the peak: param, buffer, grad, act (saved activations), temp, opt."""
    seconds: float = 0.0


def simulate(setup: Setup) -> Simulated:
    """Run one step of `setup` on fake tensors and return the tracked peak."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from .build import meta_model
    from .trace import PeakTracker, cuda_like, one_sequence_per_row, to_fake

    start = time.perf_counter()
    model = meta_model(setup)
    reference = _reference_model(setup, model)
    fake = FakeTensorMode()
    to_fake(model, fake)
    if reference is not None:
        to_fake(reference, fake)
    trainable = [p for p in model.parameters() if p.requires_grad]
    with fake:
        optimizer = _steady_optimizer(setup.optimizer, trainable)
        batch = _batch(setup, model)
    tracker = PeakTracker()
    tracker.track_external(*(m for m in (model, reference) if m is not None), optimizer)
    autocast = getattr(torch, setup.autocast) if setup.autocast else None
    with fake, tracker, _gpu_kernels(), one_sequence_per_row():
        with cuda_like(autocast):
            loss = _loss(setup, model, reference, batch)
        loss.backward()
        del loss
        _step(optimizer)
        optimizer.zero_grad(set_to_none=True)
    return Simulated(tracker.peak, tracker.peak_breakdown(), time.perf_counter() - start)


# ---- the step ----------------------------------------------------------------------------


def _batch(setup: Setup, model: Any) -> dict[str, Any]:
    ids = torch.zeros((setup.rows, setup.seq_len), dtype=torch.long)
    labels = torch.zeros((setup.rows,), dtype=torch.long) if _is_classifier(model) else ids
    return {"input_ids": ids, "labels": labels, "use_cache": False}  # as TRL calls the model


def _is_classifier(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(base).__name__.endswith("ForSequenceClassification")


def _loss(setup: Setup, model: Any, reference: Any, batch: dict[str, Any]) -> torch.Tensor:
    """The training loss, keeping nothing but the loss alive (as Trainer.compute_loss does)."""
    fused = {"fused_lm_head": True} if setup.loss == "chunked" and not _is_classifier(model) else {}
    if setup.trainer in ("dpo", "kto"):
        # the reference pass: the adapter disabled (or the reference copy), without grad
        with torch.no_grad(), _reference_of(model, reference) as ref:
            ref(**batch, **fused)
    return model(**batch, **fused).loss


@contextlib.contextmanager
def _reference_of(model: Any, reference: Any) -> Iterator[Any]:
    if reference is not None:
        yield reference
    else:
        with model.disable_adapter():
            yield model


def _reference_model(setup: Setup, model: Any) -> Any:
    """Full fine-tuning with a reference (DPO, KTO) keeps a frozen copy of the model."""
    if not setup.full or setup.trainer not in ("dpo", "kto"):
        return None
    import copy

    reference = copy.deepcopy(model)
    for p in reference.parameters():
        p.requires_grad_(False)
    return reference.eval()


@contextlib.contextmanager
def _gpu_kernels() -> Iterator[None]:
    """TRL's fused head on CUDA folds each logits tile with a Triton kernel and accumulates
    gradients with `addmm(out_dtype=float32, out=...)`, allocating nothing; its CPU fallback
    makes fp32 copies of every tile. Do both in place, as CUDA does (values do not matter)."""
    try:
        from trl.kernels import chunked_logprob as kernels
    except ImportError:  # an older TRL without the fused head: nothing to replace
        yield
        return
    saved = kernels._forward_tile, kernels._backward_tile, kernels._addmm_fp32
    kernels._forward_tile = kernels._backward_tile = kernels._addmm_fp32 = lambda *args, **kwargs: None
    try:
        yield
    finally:
        kernels._forward_tile, kernels._backward_tile, kernels._addmm_fp32 = saved


# ---- the optimizer, in its steady state --------------------------------------------------


def _steady_optimizer(name: str, params: list[Any]) -> Any:
    """The optimizer `name` over `params`, with its state already made (as after step one)."""
    if not params:
        raise PlanError("nothing trains in this setup: no parameter requires grad", key="plan")
    torch_kinds = {
        "adamw_torch_fused": lambda: torch.optim.AdamW(params, fused=True),
        "adamw_torch": lambda: torch.optim.AdamW(params, foreach=True),
        "sgd": lambda: torch.optim.SGD(params, lr=1e-3, foreach=True),
        "adagrad": lambda: torch.optim.Adagrad(params, foreach=True),
        "rmsprop": lambda: torch.optim.RMSprop(params, foreach=True),
    }
    if name in torch_kinds:
        optimizer = torch_kinds[name]()
        for p in params:
            p.grad = torch.zeros_like(p)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return optimizer
    return _bnb_optimizer(name, params)


def _bnb_optimizer(name: str, params: list[Any]) -> Any:
    """A bitsandbytes optimizer with its state laid out by its own `init_state`. Its step runs
    CUDA kernels in place (no temporaries), so `_step` leaves it out."""
    import bitsandbytes as bnb

    classes = {
        "adamw_8bit": bnb.optim.AdamW8bit, "adamw_bnb_8bit": bnb.optim.AdamW8bit,
        "paged_adamw_8bit": bnb.optim.PagedAdamW8bit, "paged_adamw_32bit": bnb.optim.PagedAdamW32bit,
        "lion_8bit": bnb.optim.Lion8bit, "lion_32bit": bnb.optim.Lion32bit,
        "paged_lion_8bit": bnb.optim.PagedLion8bit, "paged_lion_32bit": bnb.optim.PagedLion32bit,
    }
    if name not in classes:
        raise PlanError(f"simulate does not run optimizer {name!r}; the analytic estimate covers it",
                        key="optimizer", choices=[*classes, "adamw_torch_fused", "adamw_torch", "sgd"])
    optimizer = classes[name](params)
    optimizer._is_bnb = True
    for gindex, group in enumerate(optimizer.param_groups):
        for pindex, p in enumerate(group["params"]):
            optimizer.init_state(group, p, gindex, pindex)
    return optimizer


def _step(optimizer: Any) -> None:
    if getattr(optimizer, "_is_bnb", False):
        return
    optimizer.step()
