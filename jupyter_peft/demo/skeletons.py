"""Well-known architectures as weightless skeletons, to plan for a big model on a small machine.

    model = skeleton("llama-3-70b")   # 70.6B parameters on the `meta` device, built in ~0.1 s
    jp.studio(model); jp.estimate(model, plan, gpu="H100-80GB")

The hyperparameters are the published ones of each model's config; nothing is downloaded and
no memory is used for weights. Inspect, studio, estimate and export all work on a skeleton.
"""

from __future__ import annotations

from typing import Any

from .._errors import unknown

# name -> (config class, model class, config fields)
ARCHITECTURES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "llama-3-8b": ("LlamaConfig", "LlamaForCausalLM", dict(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0)),
    "llama-3-70b": ("LlamaConfig", "LlamaForCausalLM", dict(
        hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0)),
    "mistral-7b": ("MistralConfig", "MistralForCausalLM", dict(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=32768)),
    "qwen2.5-7b": ("Qwen2Config", "Qwen2ForCausalLM", dict(
        hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, vocab_size=152064)),
    "mixtral-8x7b": ("MixtralConfig", "MixtralForCausalLM", dict(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=32000, num_local_experts=8, num_experts_per_tok=2)),
}


def config(name: str, **overrides: Any) -> Any:
    """The transformers config of architecture `name` (see ARCHITECTURES)."""
    import transformers

    if name not in ARCHITECTURES:
        raise unknown("architecture", name, ARCHITECTURES)
    config_cls, model_cls, fields = ARCHITECTURES[name]
    return getattr(transformers, config_cls)(**{**fields, **overrides}, architectures=[model_cls])


def skeleton(name: str, dtype: str = "bfloat16", **overrides: Any) -> Any:
    """Architecture `name` as a model on the `meta` device (no weights, no memory), in `dtype`."""
    import torch
    import transformers

    cfg = config(name, **overrides)
    model_cls = getattr(transformers, ARCHITECTURES[name][1])
    with torch.device("meta"):
        model = model_cls(cfg)
    return model.to(getattr(torch, dtype))
