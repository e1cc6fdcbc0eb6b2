"""Loading the base model a plan names (`base:`), quantized when the plan says so."""

from __future__ import annotations

from typing import Any

from ._errors import PlanError


def load_base(plan: Any) -> tuple[Any, Any]:
    """(model, tokenizer) for `plan.base`, a local folder or hub id, quantized per the plan."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {}
    quant = quantization_config(plan)
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map=_device_map())
    try:
        model = AutoModelForCausalLM.from_pretrained(plan.base, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(plan.base)
    except (OSError, ValueError) as err:
        raise PlanError(f"cannot load {plan.base!r}: {err}", key="base", value=plan.base) from None
    return model, tokenizer


def quantization_config(plan: Any) -> Any:
    """transformers' BitsAndBytesConfig for the plan, or None when it does not quantize."""
    quant = plan.effective_quantization
    if quant == "none":
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise PlanError(
            f"a {quant} base needs bitsandbytes: pip install 'jupyter-peft[quant]'", key="quantization"
        ) from None
    import torch
    from transformers import BitsAndBytesConfig

    options = dict(plan.quant_options)
    if "bnb_4bit_compute_dtype" in options:
        options["bnb_4bit_compute_dtype"] = getattr(torch, options["bnb_4bit_compute_dtype"])
    if quant == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, **options)
    return BitsAndBytesConfig(load_in_8bit=True, **options)


def _device_map() -> Any:
    import torch

    return {"": 0} if torch.cuda.is_available() else "cpu"
