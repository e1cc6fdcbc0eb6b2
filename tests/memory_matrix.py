"""The memory-accuracy matrix of issue 6, shared by tests/test_memory_accuracy.py (a subset)
and bench/memory_accuracy.py (all of it): two architectures small enough to simulate, large
enough that activations and logits matter, and the plans to estimate on each."""

from __future__ import annotations

# Llama-style and GPT-2-style: hidden 256, 3 layers, vocabulary 4000
CONFIGS = {
    "llama": dict(
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=3,
        num_attention_heads=8,
        num_key_value_heads=4,
        vocab_size=4000,
    ),
    "gpt2": dict(n_embd=256, n_layer=3, n_head=8, vocab_size=4000, n_positions=1024),
}
# plan name -> architecture -> plan text (None: full fine-tuning)
PLANS: dict[str, dict[str, str | None]] = {
    "full": {"llama": None, "gpt2": None},
    "lora-attention-r8": {
        "llama": "method: lora\nr: 8\ntarget_modules: [q_proj, v_proj]",
        "gpt2": "method: lora\nr: 8\ntarget_modules: [c_attn]",
    },
    "lora-all-linear-r32": {arch: "method: lora\nr: 32\ntarget_modules: all-linear" for arch in CONFIGS},
    "ia3": {
        "llama": "method: ia3\ntarget_modules: [k_proj, v_proj, down_proj]\nfeedforward_modules: [down_proj]",
        "gpt2": "method: ia3\ntarget_modules: [c_attn, mlp.c_proj]\nfeedforward_modules: [mlp.c_proj]",
    },
    "prompt-tuning": {arch: "method: prompt_tuning\nnum_virtual_tokens: 16" for arch in CONFIGS},
}
SIZES = [(2, 128), (4, 256)]  # (batch, tokens)
DTYPES = ["float32", "bfloat16"]
