"""Quantized (k-bit) bases: the BitsAndBytesConfig a plan asks for, which quantization a model
carries, and preparing it for training.

A bitsandbytes model is prepared once, before its first adapter (peft's
`prepare_model_for_kbit_training`: freeze the base, upcast the 16-bit non-quantized
parameters to fp32 for stable training). Applying a plan again does not prepare it again;
it only switches activation (gradient) checkpointing to what the new plan's train block says.

Nothing here imports bitsandbytes: layers are recognised by their parameter classes.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from .._compat import base_model as _base
from .._errors import PlanError
from .._hardware import bf16_gpu
from ..session import session

INSTALL_HINT = "pip install 'jupyter-peft[quant]'"

_BNB_PARAMS = {"Params4bit": "4bit", "Int8Params": "8bit"}
_CHECKPOINTING_KEYS = ("activation_checkpointing", "gradient_checkpointing")  # transformers 5 name, older alias


def quantization_of(model: Any) -> str:
    """How `model` (or a PeftModel's base) is quantized: "none", "4bit", "8bit", or another
    method's name ("gptq", "awq", ...) when transformers loaded it with one.

    The stored weights decide first (bitsandbytes' Params4bit / Int8Params), then the flags
    transformers sets when loading (`is_loaded_in_4bit/8bit`), then `config.quantization_config`.
    """
    base = _base(model)
    for param in base.parameters():
        found = _BNB_PARAMS.get(type(param).__name__)
        if found is not None:
            return found
    if getattr(base, "is_loaded_in_4bit", False):
        return "4bit"
    if getattr(base, "is_loaded_in_8bit", False):
        return "8bit"
    return _from_config(getattr(getattr(base, "config", None), "quantization_config", None))


def _from_config(qc: Any) -> str:
    if qc is None:
        return "none"
    get = qc.get if isinstance(qc, dict) else (lambda k, d=None: getattr(qc, k, d))
    if get("load_in_4bit", False):
        return "4bit"
    if get("load_in_8bit", False):
        return "8bit"
    method = get("quant_method", None)
    method = getattr(method, "value", method)  # an enum in transformers' config classes
    return str(method) if method else "none"


def is_prepared(model: Any) -> bool:
    """Whether `prepare` has already prepared this model (or the PeftModel's base)."""
    return _base(model) in session().prepared


def wants_checkpointing(train: dict[str, Any] | None, model: Any) -> bool:
    """Activation checkpointing as the plan's train block says; when it is silent, on for a
    model on a GPU (memory is what quantization is for) and off on CPU, where it only costs time."""
    for key in _CHECKPOINTING_KEYS:
        if train and train.get(key) is not None:
            return bool(train[key])
    return any(p.device.type == "cuda" for p in _base(model).parameters())


def prepare(model: Any, checkpointing: bool) -> bool:
    """Prepare a quantized base for k-bit training, once; returns whether it is quantized.

    A full-precision model is left alone. On a model prepared before only checkpointing is
    switched, so re-applying a plan does not upcast or re-freeze anything.
    """
    model = _base(model)
    quant = quantization_of(model)
    if quant == "none":
        return False
    if model not in session().prepared:
        from peft import prepare_model_for_kbit_training

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft calls transformers' deprecated aliases
            # checkpointing is set below, non-reentrant: no input-grad hook needed for frozen embeddings
            prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        session().prepared.add(model)
        if quant == "8bit":
            _quiet_int8_casts()
    set_checkpointing(model, checkpointing)
    return True


def set_checkpointing(model: Any, on: bool) -> None:
    """Switch activation checkpointing on or off (non-reentrant), through whichever name this
    transformers version has."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        return
    current = getattr(model, "is_activation_checkpointing", None)
    if current is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            current = bool(getattr(model, "is_gradient_checkpointing", False))
    if current == on:
        return
    if hasattr(model, "activation_checkpointing_enable"):
        if on:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


class _Once(logging.Filter):
    """Lets each distinct message through once."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = record.getMessage()
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def _quiet_int8_casts() -> None:
    """bitsandbytes logs "MatMul8bitLt: inputs will be cast ..." on every 8-bit matmul whose input
    is not fp16 (each layer, each step): show it once, not thousands of times in a cell."""
    logger = logging.getLogger("bitsandbytes.autograd._functions")
    if not any(isinstance(f, _Once) for f in logger.filters):
        logger.addFilter(_Once())


def quantization_config(plan: Any) -> Any:
    """transformers' BitsAndBytesConfig for the plan, or None when it does not quantize.

    Without bitsandbytes installed this is one PlanError line saying what to install.
    4-bit compute runs in bfloat16 on a GPU that has it (QLoRA's setting; float32 there is
    slow) unless the plan sets `bnb_4bit_compute_dtype`.
    """
    quant = plan.effective_quantization
    if quant == "none":
        return None
    require_bitsandbytes(quant)
    import torch
    from transformers import BitsAndBytesConfig

    options = dict(plan.quant_options)
    if quant == "4bit" and "bnb_4bit_compute_dtype" not in options and bf16_gpu():
        options["bnb_4bit_compute_dtype"] = "bfloat16"
    if "bnb_4bit_compute_dtype" in options:
        options["bnb_4bit_compute_dtype"] = getattr(torch, options["bnb_4bit_compute_dtype"])
    if quant == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, **options)
    return BitsAndBytesConfig(load_in_8bit=True, **options)


def require_bitsandbytes(quant: str) -> None:
    """PlanError naming the package to install when bitsandbytes cannot be imported."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise PlanError(f"a {quant} base needs bitsandbytes: {INSTALL_HINT}", key="quantization") from None
