"""One training step as TRL runs it: the batch, the loss, the reference pass, the optimizer.

Shared by `simulate` (fake tensors) and `measure` (a CUDA device), so both run the same step:
forward (TRL's fused LM head when the loss is chunked), keeping only the loss alive as
`Trainer.compute_loss` does; for DPO and KTO a reference pass without grad first (the adapter
disabled, or a frozen copy under full fine-tuning); backward; the optimizer step; zero_grad.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from .._compat import base_model
from .._errors import PlanError
from .settings import Setup


def batch_for(setup: Setup, model: Any, device: str = "cpu") -> dict[str, Any]:
    """A batch of `setup.rows` sequences of `setup.seq_len` tokens (ids 0: values do not matter);
    packed, one row of them all."""
    ids = torch.zeros((1, setup.rows * setup.seq_len) if setup.packed else (setup.rows, setup.seq_len),
                      dtype=torch.long, device=device)
    if _is_classifier(model):
        labels = torch.zeros((setup.rows,), dtype=torch.long, device=device)
    elif getattr(setup.config, "is_encoder_decoder", False):
        labels = torch.zeros((setup.rows, setup.targets), dtype=torch.long, device=device)
    else:
        labels = ids
    batch = {"input_ids": ids, "labels": labels, "use_cache": False}  # as TRL calls the model
    if setup.packed and device != "cpu":  # the sequences' own position ids, as TRL's collator makes them
        batch["position_ids"] = torch.arange(setup.seq_len, device=device).repeat(setup.rows)[None]
    if setup.padded and device != "cpu":
        # a real device reads a real mask: every row but the first one token short, as the
        # trainer's collator pads a batch of rows of other lengths (on fake tensors the
        # simulation makes the mask's memory itself: trace.batch_rows)
        mask = torch.ones_like(ids)
        mask[1:, -1] = 0
        batch["attention_mask"] = mask
    return batch


def _is_classifier(model: Any) -> bool:
    base = base_model(model)
    return type(base).__name__.endswith("ForSequenceClassification")


def loss_of(setup: Setup, model: Any, reference: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, Any]:
    """(the training loss, what the loop still holds of the forward). TRL's trainers and
    transformers' Trainer keep nothing but the loss (Trainer.compute_loss); a plain loop
    (`outputs = model(**batch)`, setup.loop "plain") holds the outputs, logits and all, until
    the next step's forward has replaced them."""
    fused = {"fused_lm_head": True} if setup.loss == "chunked" and not _is_classifier(model) else {}
    if setup.trainer in ("dpo", "kto"):
        # the reference pass: the adapter disabled (or the reference copy), without grad
        with torch.no_grad(), _reference_of(model, reference) as ref:
            ref(**batch, **fused)
    outputs = model(**batch, **fused)
    return outputs.loss, (outputs if setup.loop == "plain" else None)


def model_mask(setup: Setup) -> Any:
    """The boolean mask transformers builds once per forward for a masked batch (rows, 1, s, s)
    on fake tensors, where it cannot build it itself (trace.batch_rows); None without a mask."""
    if not setup.masked:
        return None
    rows, seq = setup.step_shape
    return torch.empty((rows, 1, seq, seq), dtype=torch.bool)


def previous_outputs(setup: Setup, model: Any, device: str = "cpu") -> Any:
    """A plain loop's outputs of the step before, alive through this step's forward (the
    logits, the one large tensor); None for the trainers, which keep none."""
    logits = getattr(base_model(model).get_output_embeddings(), "weight", None) if setup.loop == "plain" else None
    if logits is None or _is_classifier(model):
        return None
    dtype = getattr(torch, setup.autocast) if setup.autocast else logits.dtype
    rows, tokens = setup.step_shape if setup.packed else (setup.rows, setup.targets)
    return torch.empty((rows, tokens, logits.shape[0]), dtype=dtype, device=device)


@contextlib.contextmanager
def _reference_of(model: Any, reference: Any) -> Iterator[Any]:
    if reference is not None:
        yield reference
    else:
        with model.disable_adapter():
            yield model


def reference_model(setup: Setup, model: Any) -> Any:
    """Full fine-tuning with a reference (DPO, KTO) keeps a frozen copy of the model."""
    if not setup.full or setup.trainer not in ("dpo", "kto"):
        return None
    import copy

    reference = copy.deepcopy(model)
    for p in reference.parameters():
        p.requires_grad_(False)
    return reference.eval()


# ---- the optimizer, in its steady state --------------------------------------------------


def steady_optimizer(name: str, params: list[Any], run_kernels: bool = True) -> Any:
    """The optimizer `name` over `params`, with its state already made (as after step one).
    Without `run_kernels` (fake tensors) bitsandbytes' state is laid out but never stepped."""
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
    return _bnb_optimizer(name, params, run_kernels)


def _bnb_optimizer(name: str, params: list[Any], run_kernels: bool) -> Any:
    """A bitsandbytes optimizer with its state laid out by its own `init_state`. Its step runs
    CUDA kernels in place (no temporaries), so on fake tensors `step` leaves it out."""
    import bitsandbytes as bnb

    classes = {
        "adamw_8bit": bnb.optim.AdamW8bit,
        "adamw_bnb_8bit": bnb.optim.AdamW8bit,
        "paged_adamw_8bit": bnb.optim.PagedAdamW8bit,
        "paged_adamw_32bit": bnb.optim.PagedAdamW32bit,
        "lion_8bit": bnb.optim.Lion8bit,
        "lion_32bit": bnb.optim.Lion32bit,
        "paged_lion_8bit": bnb.optim.PagedLion8bit,
        "paged_lion_32bit": bnb.optim.PagedLion32bit,
    }
    if name not in classes:
        raise PlanError(
            f"simulate does not run optimizer {name!r}; the analytic estimate covers it",
            key="optimizer",
            choices=[*classes, "adamw_torch_fused", "adamw_torch", "sgd"],
        )
    building: Any = contextlib.nullcontext()
    if not run_kernels:  # its quantization maps are real tensors, made with real values
        from torch._subclasses.fake_tensor import unset_fake_temporarily

        building = unset_fake_temporarily()
    with building:
        optimizer = classes[name](params)
    optimizer._skip_step = not run_kernels
    for gindex, group in enumerate(optimizer.param_groups):
        for pindex, p in enumerate(group["params"]):
            optimizer.init_state(group, p, gindex, pindex)
    return optimizer


def step(optimizer: Any, keep_gradients: bool = False) -> None:
    """The optimizer step and `zero_grad` (freeing the gradients, as torch >= 2.0 does)."""
    if not getattr(optimizer, "_skip_step", False):
        optimizer.step()
    optimizer.zero_grad(set_to_none=not keep_gradients)


def keep_gradients(params: list[Any]) -> None:
    """Gradients allocated before the step, as `zero_grad(set_to_none=False)` leaves them."""
    for p in params:
        p.grad = torch.zeros_like(p)
