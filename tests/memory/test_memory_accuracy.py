"""The instant estimate stays within 10% of the simulated step's peak.

The issue's matrix: Llama-style and GPT-2-style configs (hidden 256, 3 layers, vocabulary
4000: logits and activations both matter), LoRA on attention and on all linear layers (two
ranks), full fine-tuning, IA3, prompt tuning, with and without gradient checkpointing, two
batch sizes, two sequence lengths, fp32 and bf16. Every value of every axis appears here in
a subset that covers each pair of (method, precision, checkpointing); the full product
(160 cases, both loss heads) runs in bench/memory_accuracy.py.
"""

from __future__ import annotations

import itertools

import pytest
import tiny
from memory_matrix import CONFIGS, DTYPES, PLANS, SIZES

import jupyter_peft as jp


def _cases() -> list[tuple[str, str, str, bool, tuple[int, int]]]:
    """Each plan with each (dtype, checkpointing) pair once; architectures and sizes rotate."""
    cases = []
    for i, (plan, (dtype, ckpt)) in enumerate(
        itertools.product(PLANS, itertools.product(DTYPES, [False, True]))
    ):
        cases.append((list(CONFIGS)[i % 2], plan, dtype, ckpt, SIZES[(i // 2) % 2]))
    return cases


@pytest.mark.parametrize(("arch", "plan", "dtype", "ckpt", "size"), _cases())
def test_instant_estimate_within_10_percent_of_the_simulated_step(arch, plan, dtype, ckpt, size):
    config = tiny.config(arch, **CONFIGS[arch])
    text = PLANS[plan][arch]
    batch, seq = size
    options = dict(batch_size=batch, seq_len=seq, dtype=dtype, gradient_checkpointing=ckpt)
    instant = jp.estimate(config, text, **options)
    simulated = jp.estimate(config, text, method="simulate", **options)
    error = instant.peak_bytes / simulated.peak_bytes - 1
    assert abs(error) < 0.10, f"{error:+.1%}: instant {instant.breakdown} vs simulated {simulated.breakdown}"


def test_the_full_logits_head_is_estimated_too():
    config = tiny.config("llama", **CONFIGS["llama"])
    for plan in (None, PLANS["lora-all-linear-r32"]["llama"]):
        options = dict(batch_size=4, seq_len=256, dtype="bfloat16", loss="full")
        instant = jp.estimate(config, plan, **options).peak_bytes
        simulated = jp.estimate(config, plan, method="simulate", **options).peak_bytes
        assert abs(instant / simulated - 1) < 0.10


def test_qlora_dpo_and_8bit_optimizers_are_estimated_too():
    config = tiny.config("llama", **CONFIGS["llama"])
    cases = [
        ("method: qlora\ntarget_modules: all-linear\nbnb_4bit_use_double_quant: true", {}),
        (
            "method: lora\ntarget_modules: all-linear\ntrain: {trainer: dpo, per_device_train_batch_size: 2}",
            {},
        ),
        (None, {"optimizer": "paged_adamw_8bit"}),
        (None, {"dtype": "float32", "autocast": "bfloat16", "optimizer": "adamw_torch"}),
    ]
    for plan, extra in cases:
        options = {"batch_size": 2, "seq_len": 128, "dtype": "bfloat16", **extra}
        instant = jp.estimate(config, plan, **options)
        simulated = jp.estimate(config, plan, method="simulate", **options)
        assert abs(instant.peak_bytes / simulated.peak_bytes - 1) < 0.10, (plan, extra)
        assert instant.paged_bytes == simulated.paged_bytes
