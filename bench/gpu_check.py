"""The one prepared GPU check: run it once when a CUDA machine is lent, under 8 minutes.

    PYTHONPATH=. python bench/gpu_check.py

1. bench/gpu_memory_check.py: the instant estimate against `max_memory_allocated` and
   `max_memory_reserved` of two real steps, for full fine-tuning, LoRA, DoRA, QLoRA, IA3 and
   prompt tuning (bf16 and fp32, with and without gradient checkpointing) on a 1.1B Llama shape.
2. bench/gpu_quant_check.py: 4-bit and 8-bit training steps (loss falls, save/load round trip,
   merge) on a small Llama.
3. Memory back after `run.close()`: a real `jp.train` run on CUDA, `torch.cuda.memory_allocated`
   before the run, after it ends and after `close()`.
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
    ("estimate vs measured memory", [sys.executable, "bench/gpu_memory_check.py"], 270),
    ("4-bit and 8-bit training steps", [sys.executable, "bench/gpu_quant_check.py"], 120),
    ("memory back after run.close()", [sys.executable, "bench/gpu_check.py", "--close-part"], 60),
]


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
    sys.exit(close_part() if "--close-part" in sys.argv else main())
