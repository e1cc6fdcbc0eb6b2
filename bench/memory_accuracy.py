"""The instant estimate against the simulated step, over the issue's whole matrix.

Llama-style and GPT-2-style configs (hidden 256, 3 layers, vocabulary 4000), full fine-tuning,
LoRA on attention (r=8) and on all linear layers (r=32), IA3, prompt tuning; with and without
gradient checkpointing; batch 2 and 4; 128 and 256 tokens; fp32 and bf16 (bf16 weights, bf16
autocast); TRL's chunked LM head and the full-logits loss: 160 cases. Prints every case, then
the worst and mean error and the time each method took.

    PYTHONPATH=.:tests python bench/memory_accuracy.py [--quick]
"""

from __future__ import annotations

import itertools
import sys
import time
import warnings

sys.path.insert(0, "tests")

MiB = 2**20


def main(quick: bool = False) -> float:
    import logging

    import tiny
    import transformers
    from memory_matrix import CONFIGS, DTYPES, PLANS, SIZES

    import jupyter_peft as jp

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    transformers.logging.set_verbosity_error()
    losses = ["chunked"] if quick else ["chunked", "full"]
    errors, seconds = (
        [],
        {"instant (first call of a model+plan)": [], "instant (repeated)": [], "simulate": []},
    )
    seen: set = set()
    for arch, plan, dtype, ckpt, (batch, seq), loss in itertools.product(
        CONFIGS, PLANS, DTYPES, [False, True], SIZES, losses
    ):
        config = tiny.config(arch, **CONFIGS[arch])
        options = dict(batch_size=batch, seq_len=seq, dtype=dtype, gradient_checkpointing=ckpt, loss=loss)
        start = time.perf_counter()
        instant = jp.estimate(config, PLANS[plan][arch], **options)
        first = (arch, plan, dtype, ckpt) not in seen
        seen.add((arch, plan, dtype, ckpt))
        seconds["instant (first call of a model+plan)" if first else "instant (repeated)"].append(
            time.perf_counter() - start
        )
        start = time.perf_counter()
        simulated = jp.estimate(config, PLANS[plan][arch], method="simulate", **options)
        seconds["simulate"].append(time.perf_counter() - start)
        error = instant.peak_bytes / simulated.peak_bytes - 1
        errors.append(error)
        print(
            f"{arch:5} {plan:19} {dtype:8} gc={ckpt:d} b{batch} s{seq:<3} {loss:7}  simulated "
            f"{simulated.peak_bytes / MiB:8.2f} MiB  instant {instant.peak_bytes / MiB:8.2f} MiB  "
            f"{error:+6.2%}  peak in {instant.phase}",
            flush=True,
        )
    worst = max(errors, key=abs)
    print(
        f"\n{len(errors)} cases: worst error {worst:+.2%}, "
        f"mean |error| {sum(map(abs, errors)) / len(errors):.2%}"
    )
    for name, values in seconds.items():
        if values:
            print(f"{name:38} median {sorted(values)[len(values) // 2] * 1000:8.1f} ms over {len(values)}")
    return worst


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
