"""The estimate from a user's data: 10,000 rows, how long tokenizing (TRL's own data path on
the stand-in trainer) and the sampler's batches take, and how fast the instant estimate is
once the longest batch is known (the issue asks under 1 s after tokenization).

    PYTHONPATH=. python bench/data_estimate_speed.py
"""

from __future__ import annotations

import random
import sys
import time
import warnings

sys.path.insert(0, "tests")


def main() -> int:
    import tiny
    from datasets import Dataset

    import jupyter_peft as jp
    from jupyter_peft.data.batches import batches
    from jupyter_peft.data.stand_in import build, train_block
    from jupyter_peft.demo.skeletons import config

    warnings.filterwarnings("ignore")
    rng = random.Random(0)
    rows = [{"text": " ".join(["word"] * rng.randint(5, 300))} for _ in range(10_000)]
    data, tok = Dataset.from_list(rows), tiny.tokenizer()
    plan = "method: lora\nr: 16\ntarget_modules: all-linear\ntrain: {trainer: sft, per_device_train_batch_size: 4}"
    cfg = config("llama-3-8b")
    start = time.perf_counter()
    trainer = build(data, tok, train_block(plan, "sft", 1024, per_device_train_batch_size=4))
    tokenized = time.perf_counter() - start
    found = batches(trainer)
    sampled = time.perf_counter() - start - tokenized
    top = found.longest
    jp.estimate(cfg, plan, batch_size=top.rows, seq_len=top.seq_len)  # warm the per-model cache
    start = time.perf_counter()
    est = jp.estimate(cfg, plan, batch_size=top.rows, seq_len=top.seq_len, gpu="A100-80GB")
    instant = time.perf_counter() - start
    print(f"10,000 rows: tokenizing {tokenized:.1f} s, batches of {trainer.args.max_steps} steps {sampled:.1f} s; "
          f"longest batch step {top.step} ({top.rows} x {top.seq_len}); instant estimate {instant * 1000:.0f} ms "
          f"({'under' if instant < 1 else 'OVER'} 1 s): {est.total_bytes / 2**30:.1f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
