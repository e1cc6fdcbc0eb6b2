"""Our estimate beside `accelerate estimate-memory`'s method, on the same rows.

accelerate builds the model on meta, sums its parameter bytes (fp32) and reports training
"with Adam" as the largest of weights, gradients, optimizer state and step (16 bytes per
parameter in fp32): no batch, no sequence, no activations, no LoRA or QLoRA. The rows are the
published measurements (bench/memory_published.py) and cases of the accuracy matrix, where
the simulated step is the reference.

    PYTHONPATH=.:tests python bench/memory_vs_accelerate.py
"""

from __future__ import annotations

import sys
import warnings

sys.path.insert(0, "bench")
sys.path.insert(0, "tests")

GiB = 2**30


def accelerate_estimate(config: object, model_class: str | None = None) -> int:
    """accelerate's number for training with Adam, from the model built on meta as it does."""
    from accelerate.commands.estimate import estimate_training_usage
    from accelerate.utils import calculate_maximum_sizes

    from jupyter_peft.memory.build import _base

    total, _ = calculate_maximum_sizes(_base(model_class, config, "float32"))
    return max(estimate_training_usage(total, "float32").values())


def main() -> None:
    import logging

    import tiny
    import transformers
    from memory_accuracy import CONFIGS, PLANS
    from memory_published import LORA, configs

    import jupyter_peft as jp

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    transformers.logging.set_verbosity_error()
    print(f"{'row':54} {'reference':>12} {'ours':>18} {'accelerate':>18}")

    def row(label: str, reference: float, ours: float, theirs: float) -> None:
        print(
            f"{label:54} {reference / GiB:10.3f}G {ours / GiB:9.3f}G {ours / reference - 1:+7.1%} "
            f"{theirs / GiB:9.3f}G {theirs / reference - 1:+7.1%}"
        )

    published = configs()
    old = dict(
        batch_size=8,
        seq_len=64,
        dtype="float32",
        loss="full",
        gradient_checkpointing=False,
        attention="eager",
        keep_gradients=True,
        optimizer="adamw_torch_fused",
    )
    for name, plan, gb, extra in [
        ("T0_3B", None, 47.14, {"target_len": 4}),
        ("T0_3B", LORA, 14.4, {"target_len": 4}),
        ("mt0-xxl", LORA, 56.0, {"target_len": 4}),
        ("bloomz-7b1", LORA, 32.0, {}),
    ]:
        ours = jp.estimate(published[name], plan, **old, **extra).peak_bytes
        row(
            f"{name} {'full' if plan is None else 'LoRA r8'} b8 (published)",
            gb * GiB,
            ours,
            accelerate_estimate(published[name]),
        )
    for arch, plan, dtype, ckpt in [
        ("llama", "full", "float32", False),
        ("llama", "lora-all-r32", "bfloat16", False),
        ("gpt2", "lora-attn-r8", "float32", True),
        ("gpt2", "full", "bfloat16", True),
        ("llama", "prompt", "bfloat16", False),
    ]:
        config = tiny.config(arch, **CONFIGS[arch])
        options = dict(batch_size=4, seq_len=256, dtype=dtype, gradient_checkpointing=ckpt)
        simulated = jp.estimate(config, PLANS[plan][arch], method="simulate", **options).peak_bytes
        ours = jp.estimate(config, PLANS[plan][arch], **options).peak_bytes
        row(
            f"{arch} {plan} {dtype} gc={ckpt:d} b4 s256 (simulated)",
            simulated,
            ours,
            accelerate_estimate(config),
        )


if __name__ == "__main__":
    main()
