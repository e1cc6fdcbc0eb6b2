"""The model a Setup trains, built on the `meta` device: no memory, no weights, seconds at most.

`meta_model(setup)` gives the exact module tree a run would train: the transformers class in
the weight dtype, train mode, gradient checkpointing as the Trainer enables it, TRL's fused
LM head when the loss is chunked, bitsandbytes-like packed weights for a quantized base, and
the plan applied by peft on meta (`_compat.peft_on_meta`, thread-safe), as
`jp.apply` would apply it).
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import torch
import torch.nn as nn

from .._compat import adapter_layer_types, add_fused_lm_head, peft_on_meta
from .._errors import PlanError
from ..model.adapt import check
from ..plan.plan import Plan
from .settings import Setup
from .states import packed_bytes

_BUILDING = threading.Lock()


def meta_model(setup: Setup, num_layers: int | None = None) -> Any:
    """The model of `setup` on meta (see the module docstring); `num_layers` truncates the stack."""
    config = with_layers(setup.config, num_layers) if num_layers is not None else setup.config
    model = build_base(setup.model_class, config, setup.dtype, attention=setup.attention)
    if setup.gradient_checkpointing:
        if not model.supports_gradient_checkpointing:
            raise PlanError(
                f"{type(model).__name__} does not support gradient checkpointing",
                key="gradient_checkpointing",
            )
        model.gradient_checkpointing_enable()
        from .trace import checkpoint_like_cuda

        model._set_gradient_checkpointing(True, checkpoint_like_cuda)
    if setup.loss == "chunked" and is_causal_lm(model):

        add_fused_lm_head(model, ("log_probs", "entropy", "is_top1"))  # what SFTTrainer asks for
    if setup.plan is None:
        return model
    if setup.quantization != "none":
        model.is_loaded_in_4bit = setup.quantization == "4bit"  # what TRL and peft read
    peft_model = _apply(setup.plan, model)
    for module in peft_model.modules():
        if getattr(module, "module_dropout", None) is not None:
            # LoHa/LoKr draw `torch.rand(1) > module_dropout` in training, which fake tensors
            # cannot answer; in eval mode they always apply the adapter, the same memory
            module.train(False)
    if setup.quantization != "none":
        _pack_frozen_linears(peft_model, setup)
        for name, p in peft_model.named_parameters():  # TRL keeps QLoRA adapters in bf16,
            if p.requires_grad and "lora_magnitude_vector" not in name:  # DoRA's magnitude in fp32
                p.data = torch.empty_like(p, dtype=torch.bfloat16)
    if setup.gradient_checkpointing:
        peft_model.enable_input_require_grads()  # as TRL does for peft + checkpointing
    return peft_model


def with_layers(config: Any, n: int) -> Any:
    """A copy of `config` with `n` hidden layers (encoder and decoder stacks alike)."""
    config = copy.deepcopy(config)
    target = getattr(config, "get_text_config", lambda: config)()
    for name in layer_count_names(target):
        setattr(target, name, n)
    for name in ("layer_types", "mlp_layer_types"):  # per-layer lists must shrink with the stack
        value = getattr(target, name, None)
        if isinstance(value, list):
            setattr(target, name, value[:n])
    return config


def layer_count_names(config: Any) -> list[str]:
    names = (
        "num_hidden_layers",
        "num_layers",
        "num_decoder_layers",
        "encoder_layers",
        "decoder_layers",
        "n_layer",
    )
    found = [n for n in names if isinstance(getattr(config, n, None), int)]
    if not found:
        raise PlanError(f"cannot find the layer count of a {type(config).__name__}", key="model_or_config")
    return found


def num_layers(config: Any) -> int:
    target = getattr(config, "get_text_config", lambda: config)()
    return max(getattr(target, n) for n in layer_count_names(target))


def _class_for(model_class: str | None) -> Any:
    import transformers

    return getattr(transformers, model_class, None) if model_class else None


def build_base(model_class: str | None, config: Any, dtype: str, device: str = "meta", attention: str = "fused") -> Any:
    """The transformers model for `config`, built on `device` (random weights off meta)."""
    import transformers

    cls = _class_for(model_class)
    if cls is None:
        auto = (
            transformers.AutoModelForSeq2SeqLM
            if getattr(config, "is_encoder_decoder", False)
            else transformers.AutoModelForCausalLM
        )
        cls = auto._model_mapping[type(config)] if type(config) in auto._model_mapping else None
        if cls is None:
            raise PlanError(
                f"no causal or sequence-to-sequence LM class for {type(config).__name__}; pass the "
                "model itself (on meta) instead of its config",
                key="model_or_config",
            )
    config = copy.deepcopy(config)
    # sdpa: on fake tensors trace.CudaLike routes it to a fused kernel, as CUDA would run it
    # (flash attention's kernels keep what it keeps without a mask); models without SDPA support
    # run eager attention, as transformers would run them
    fused = attention in ("fused", "flash") and getattr(cls, "_supports_sdpa", True)
    config._attn_implementation = "sdpa" if fused else "eager"
    if getattr(config, "is_encoder_decoder", False) and getattr(config, "decoder_start_token_id", None) is None:
        # the decoder's inputs are the labels shifted right from this id (T5 and BART checkpoints
        # set it; a config built by hand may not): which id it is does not change memory
        config.decoder_start_token_id = getattr(config, "pad_token_id", None) or 0
    # _from_config sets torch's process-wide default dtype while it builds and restores it after:
    # two estimates building at once (the studio's thread, a run's) could restore each other's
    with _BUILDING, torch.device(device):
        model = cls._from_config(config, dtype=getattr(torch, dtype))
    return model.train()


def is_causal_lm(model: Any) -> bool:
    name = type(model).__name__
    return name.endswith(("ForCausalLM", "LMHeadModel")) and hasattr(model, "get_output_embeddings")


def unquantized(plan: Any) -> Any:
    """The plan for an unquantized base (qlora -> lora): the meta base is not quantized, the
    packing happens after peft has wrapped it."""
    if plan.effective_quantization == "none":
        return plan

    data = {k: v for k, v in plan.to_dict().items() if not k.startswith(("bnb_", "llm_int8_"))}
    data.update(method="lora" if plan.method == "qlora" else plan.method)
    data.pop("quantization", None)
    return Plan.from_dict(data)


def _apply(plan: Any, model: Any) -> Any:
    """peft's model for `plan`, checked by jp's own `check` (same targets as `jp.apply`)."""
    checked = check(unquantized(plan), model)
    return peft_on_meta(model, checked.config)


# ---- a quantized base, as bitsandbytes lays it out ------------------------------------------


class _Dequantized(torch.autograd.Function):
    """bitsandbytes' MatMul4Bit memory: the dequantized weight lives only during a matmul and
    is made again in backward; the input is not saved (the weight does not train)."""
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        ctx.shape = shape
        weight = x.new_empty(shape)
        return x @ weight.t()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        weight = grad.new_empty(ctx.shape)
        return grad @ weight, None


class PackedLinear(nn.Module):
    """A frozen linear layer stored like bitsandbytes' Linear4bit / Linear8bitLt."""
    def __init__(self, linear: nn.Linear, quantization: str, double_quant: bool) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        numel = self.in_features * self.out_features
        nbytes = packed_bytes(numel, quantization, double_quant, rows=self.out_features)
        self.weight = nn.Parameter(
            torch.empty(nbytes, 1, dtype=torch.uint8, device=linear.weight.device), requires_grad=False
        )
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _Dequantized.apply(x, (self.out_features, self.in_features))
        return y + self.bias if self.bias is not None else y


def _pack_frozen_linears(model: Any, setup: Setup) -> None:
    """Frozen nn.Linear layers inside the decoder (not the LM head) become PackedLinear,
    as `from_pretrained(..., quantization_config=...)` would store them."""
    BaseTunerLayer = adapter_layer_types()[0]

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is not nn.Linear or child is head or child.weight.requires_grad:
                continue
            if isinstance(module, BaseTunerLayer) and name != "base_layer":
                continue  # adapter weights
            setattr(module, name, PackedLinear(child, setup.quantization, setup.double_quant))
