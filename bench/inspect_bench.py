"""How fast `jp.inspect` and `ModelMap.match` are on a Llama-3-70B-sized model built on `meta`.

Prints times and their ratio to a bare `named_modules()` walk measured in the same run (the
baseline any inspector must pay). Issue 2 asks for inspect under 1 s on this model.

    python bench/inspect_bench.py
"""

from __future__ import annotations

import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

import jupyter_peft as jp

LLAMA3_70B = dict(
    hidden_size=8192,
    intermediate_size=28672,
    num_hidden_layers=80,
    num_attention_heads=64,
    num_key_value_heads=8,
    vocab_size=128256,
    max_position_embeddings=8192,
)


def best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    t = time.perf_counter()
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**LLAMA3_70B))
    build = time.perf_counter() - t
    t = time.perf_counter()
    mm = jp.inspect(model)  # first call also imports peft
    first = time.perf_counter() - t
    walk = best(lambda: [p.numel() for _, m in model.named_modules() for p in m._parameters.values() if p is not None])
    inspect = best(lambda: jp.inspect(model))
    match_names = best(lambda: mm.match(["q_proj", "v_proj"]))
    match_all = best(lambda: mm.match("all-linear"))
    n_modules = sum(1 for _ in model.named_modules())
    print(
        f"model: {mm.total_params / 1e9:.1f}B params, {n_modules} modules, {len(mm.groups)} groups "
        f"(built in {build:.2f} s)"
    )
    print(f"baseline named_modules walk : {walk * 1000:8.1f} ms")
    print(f"jp.inspect (first, +imports): {first * 1000:8.1f} ms")
    print(f"jp.inspect                  : {inspect * 1000:8.1f} ms  ({inspect / walk:.1f}x walk)")
    print(f"match([q_proj, v_proj])     : {match_names * 1000:8.1f} ms  ({match_names / walk:.1f}x walk)")
    print(f"match('all-linear')         : {match_all * 1000:8.1f} ms  ({match_all / walk:.1f}x walk)")
    print(f"inspect under 1 s: {'yes' if inspect < 1.0 else 'NO'}")


if __name__ == "__main__":
    main()
