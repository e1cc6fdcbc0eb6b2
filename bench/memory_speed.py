"""How fast the instant estimate answers, on a Llama-3-70B-shaped config (meta, no weights).

The first call for a (model, plan, precision, checkpointing) builds the model on meta and runs
the layer probe; later calls (a batch or sequence slider, a GPU picker) are arithmetic on the
cached profile. Printed as times and as the ratio of a repeated call to the first one, both
measured in this run; the largest-batch search (about a dozen estimates) is timed too.

    PYTHONPATH=. python bench/memory_speed.py
"""

from __future__ import annotations

import statistics
import time
import warnings

GiB = 2**30


def main() -> None:
    import logging

    import transformers

    import jupyter_peft as jp
    from jupyter_peft.demo import skeletons

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    transformers.logging.set_verbosity_error()
    config = skeletons.config("llama-3-70b", dtype="bfloat16")
    plan = "method: lora\nr: 16\ntarget_modules: all-linear"
    start = time.perf_counter()
    est = jp.estimate(config, plan, batch_size=4, seq_len=2048, gradient_checkpointing=True)
    first = time.perf_counter() - start
    repeated = []
    for batch, seq in [(1, 512), (2, 1024), (4, 4096), (8, 2048), (16, 8192)] * 4:
        start = time.perf_counter()
        jp.estimate(config, plan, batch_size=batch, seq_len=seq, gradient_checkpointing=True).to_json()
        repeated.append(time.perf_counter() - start)
    start = time.perf_counter()
    batch = est.largest_batch("B200-180GB")
    search = time.perf_counter() - start
    median = statistics.median(repeated)
    print(f"Llama-70B shape, LoRA r16 all-linear, bf16, checkpointing: {est.total_bytes / GiB:.1f} GiB at 4 x 2048")
    print(
        f"first call {first * 1000:.0f} ms; repeated call (estimate + to_json) median {median * 1000:.2f} ms "
        f"= {median / first:.4f} x the first; largest batch on B200-180GB ({batch}) found in {search * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
