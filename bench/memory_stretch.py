"""The instant estimate's stretched step against the whole simulated step (memory/stretch.py).

For real-sized configs (built on meta: nothing is downloaded), the reserved peak of a
three-layer model's step stretched to the model's depth, over the reserved peak of the whole
model's simulated step, and the time each takes (the probe and the stretched step over the whole
simulation: a ratio, as timings here are noisy).

    PYTHONPATH=. python bench/memory_stretch.py [name ...]
"""

from __future__ import annotations

import sys
import time
import warnings

import torch
import transformers as T

from jupyter_peft.memory import reserved, stretch
from jupyter_peft.memory.settings import resolve
from jupyter_peft.memory.simulate import simulate
from jupyter_peft.session import session

GiB = 2**30
LLAMA_3B = dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24,
                num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=True)
QV = {"method": "lora", "r": 8, "target_modules": ["q_proj", "v_proj"]}
ALL = {"method": "lora", "r": 32, "target_modules": "all-linear"}
CASES = [
    ("llama-3b full", T.LlamaConfig(**LLAMA_3B), None, {}),
    ("llama-3b lora q,v, plain loop", T.LlamaConfig(**LLAMA_3B), QV, {"loop": "plain"}),
    ("llama-3b lora all, trainer loop", T.LlamaConfig(**LLAMA_3B), ALL, {"loop": "trainer"}),
    ("llama-3b dora all", T.LlamaConfig(**LLAMA_3B), {**ALL, "method": "dora"}, {}),
    ("llama-3b lora all, adamw_torch", T.LlamaConfig(**LLAMA_3B), ALL, {"optimizer": "adamw_torch"}),
    ("qwen2-1.5b full", T.Qwen2Config(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                       num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                                       tie_word_embeddings=True), None, {"batch_size": 2, "seq_len": 512}),
    ("qwen2-1.5b lora all, padded", T.Qwen2Config(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                                   num_attention_heads=12, num_key_value_heads=2,
                                                   vocab_size=151936), ALL, {"padded": True}),
    ("gemma2-2b full", T.Gemma2Config(hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                                      num_attention_heads=8, num_key_value_heads=4, head_dim=256,
                                      vocab_size=256000), None, {"batch_size": 2, "seq_len": 512}),
    ("phi3-mini lora all", T.Phi3Config(hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
                                        num_attention_heads=32, num_key_value_heads=32, vocab_size=32064), ALL, {}),
    ("gpt2 full", T.GPT2Config(), None, {}),
    ("mixtral-small lora q,v", T.MixtralConfig(hidden_size=1024, intermediate_size=2048, num_hidden_layers=8,
                                               num_attention_heads=8, num_key_value_heads=2, num_local_experts=4,
                                               vocab_size=32000), QV, {}),
]


def main(only: list[str]) -> None:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    print(f"{'case':34} {'stretched':>10} {'whole':>10} {'ratio':>7} {'time ratio':>11}")
    worst = 0.0
    for name, config, plan, options in CASES:
        if only and not any(o in name for o in only):
            continue
        setup = resolve(config, plan, **{"batch_size": 4, "seq_len": 768, "dtype": "bfloat16",
                                         "gradient_checkpointing": False, **options})
        session().profiles.clear()
        start = time.perf_counter()
        step = stretch.stretched(setup)
        stretched_s = time.perf_counter() - start
        if step is None:
            print(f"{name:34} {'(falls back)':>10}")
            continue
        short = reserved.replayed(*step)
        start = time.perf_counter()
        whole = simulate(setup)
        whole_s = time.perf_counter() - start
        full = reserved.replayed(whole.events, whole.step_start)
        ratio = short.reserved_bytes / full.reserved_bytes
        worst = max(worst, abs(ratio - 1))
        print(f"{name:34} {short.reserved_bytes / GiB:9.2f}G {full.reserved_bytes / GiB:9.2f}G {ratio:7.3f} "
              f"{stretched_s / whole_s:10.2f}x", flush=True)
    print(f"worst |stretched / whole - 1| of the reserved peak: {worst:.1%}")


if __name__ == "__main__":
    main(sys.argv[1:])
