"""The one prepared GPU check: run it once when a CUDA machine is lent, under 8 minutes.

    PYTHONPATH=. python bench/gpu_check.py

1. bench/gpu_memory_check.py: the instant estimate against `max_memory_allocated` and
   `max_memory_reserved` of two real steps, for full fine-tuning, LoRA, DoRA, QLoRA, IA3 and
   prompt tuning (bf16 and fp32, with and without gradient checkpointing) on a 1.1B Llama shape.
2. bench/gpu_quant_check.py: 4-bit and 8-bit training steps (loss falls, save/load round trip,
   merge) on a small Llama.
3. Memory back after `run.close()`: a real `jp.train` run on CUDA, `torch.cuda.memory_allocated`
   before the run, after it ends and after `close()`.
4. Reserved over varied lengths: a real `jp.train` run on rows of 3-90 words (up to ~460 tokens), its
   `max_memory_allocated` / `max_memory_reserved` against the estimate for that data (one-length
   reserved, and `reserved_over_data` from the simulated replay of the sampler's batches).
Each part runs in its own process with its own time limit; a part that fails or runs out of
time is reported and the next one runs. On a machine without CUDA it says so and exits 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = [  # (name, command, seconds)
    ("estimate vs measured memory", [sys.executable, "bench/gpu_memory_check.py"], 240),
    ("4-bit and 8-bit training steps", [sys.executable, "bench/gpu_quant_check.py"], 100),
    ("memory back after run.close()", [sys.executable, "bench/gpu_check.py", "--close-part"], 60),
    ("reserved over varied lengths", [sys.executable, "bench/gpu_check.py", "--varied-part"], 80),
]


def varied_part() -> int:
    """A real jp.train run on rows of varied lengths (batches padded to their longest): its
    max_memory_allocated and max_memory_reserved against the estimate for the data (the longest
    batch's step; the simulated replay of the sampler's batches: reserved_over_data)."""
    import random

    import torch
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(ROOT / "tests"))
    import tiny

    import jupyter_peft as jp

    tok = tiny.tokenizer()
    cfg = LlamaConfig(hidden_size=1024, intermediate_size=2816, num_hidden_layers=12, num_attention_heads=16,
                      num_key_value_heads=4, vocab_size=len(tok))
    rng = random.Random(0)
    words = " ".join(tiny._CORPUS).split()
    rows = [{"text": " ".join(rng.choice(words) for _ in range(rng.randint(3, 90)))} for _ in range(120)]
    data = Dataset.from_list(rows)
    plan = ("method: lora\nr: 16\ntarget_modules: all-linear\ntrain: {max_steps: 30, per_device_train_batch_size: 4, "
            "max_length: 512, bf16: true, seed: 0}")
    est = jp.estimate(cfg, plan, method="simulate", dataset=data, tokenizer=tok)
    torch.cuda.empty_cache()
    start_alloc, start_reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
    model = LlamaForCausalLM(cfg).to(torch.bfloat16).to("cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()  # the peaks start from what is live now: the weights
    run = jp.train(model, plan, dataset=data, tokenizer=tok, runs_dir="/tmp/gpu_check_runs")
    state = run.wait(60)
    allocated = torch.cuda.max_memory_allocated() - start_alloc
    reserved = torch.cuda.max_memory_reserved() - start_reserved
    run.close()
    gib = 2**30
    print(f"run {state}; {est.data_line}")
    print(f"max_memory_allocated {allocated / gib:.3f} GiB vs estimate {est.peak_bytes / gib:.3f} "
          f"({est.peak_bytes / allocated - 1:+.1%})")
    print(f"max_memory_reserved {reserved / gib:.3f} GiB vs one-length reserved {est.reserved_bytes / gib:.3f} "
          f"({est.reserved_bytes / reserved - 1:+.1%}) and over the data {est.reserved_over_data / gib:.3f} "
          f"({est.reserved_over_data / reserved - 1:+.1%}); expandable segments modelled "
          f"{est.reserved_over_data_expandable / gib:.3f}")
    return 0


def close_part() -> int:
    """Train a small Llama for 20 steps on CUDA through jp.train; close the run; memory before/after."""
    import torch
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(ROOT / "tests"))
    import tiny

    import jupyter_peft as jp

    cfg = LlamaConfig(hidden_size=512, intermediate_size=1376, num_hidden_layers=8, num_attention_heads=8,
                      num_key_value_heads=4, vocab_size=len(tiny.tokenizer()))
    model = LlamaForCausalLM(cfg).to("cuda", torch.bfloat16)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    data = Dataset.from_list([{"text": " ".join(tiny._CORPUS)}] * 64)
    run = jp.train(model, "method: lora\nr: 16\ntarget_modules: all-linear\ntrain: {max_steps: 20, "
                   "per_device_train_batch_size: 8, bf16: true}", dataset=data, tokenizer=tiny.tokenizer(),
                   runs_dir="/tmp/gpu_check_runs")
    state = run.wait(300)
    ended = torch.cuda.memory_allocated()
    report = run.close()
    closed = torch.cuda.memory_allocated()
    adapter = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if "lora_" in n)
    mib = 2**20
    print(f"run {state}: memory_allocated before {before / mib:.1f} MiB, at the end {ended / mib:.1f} MiB, after "
          f"close {closed / mib:.1f} MiB (the adapter itself: {adapter / mib:.1f} MiB); {report['text']}")
    print(f"after close - before - adapter = {(closed - before - adapter) / mib:+.1f} MiB "
          f"({(closed - before - adapter) / max(before, 1):+.1%} of before)")
    return 0


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print("gpu_check needs a CUDA device; this machine has none.")
        return 2
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    for name, command, seconds in PARTS:
        print(f"\n=== {name} (limit {seconds} s)", flush=True)
        t0 = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=ROOT, env=env, timeout=seconds)
            print(f"--- {name}: exit {done.returncode} in {time.perf_counter() - t0:.0f} s", flush=True)
        except subprocess.TimeoutExpired:
            print(f"--- {name}: ran out of its {seconds} s", flush=True)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    if "--close-part" in sys.argv:
        sys.exit(close_part())
    sys.exit(varied_part() if "--varied-part" in sys.argv else main())
