"""A padded batch (rows padded to the longest, with an attention mask) as CUDA runs it: no GQA in
SDPA (transformers repeats keys and values to every query head when there is a mask) and the
memory-efficient kernel, which keeps the mask in the query's dtype (trace.batch_rows)."""

from __future__ import annotations

import tiny

import jupyter_peft as jp
from jupyter_peft.memory.probe import profile
from jupyter_peft.memory.settings import resolve

LORA = "method: lora\nr: 8\ntarget_modules: [q_proj, v_proj]"


def _setup(**options):
    base = dict(batch_size=4, seq_len=64, dtype="bfloat16", gradient_checkpointing=False)
    return resolve(tiny.config("llama"), jp.Plan.from_yaml(LORA), **{**base, **options})


def test_a_padded_layer_keeps_repeated_keys_and_values_and_the_mask():
    cfg = tiny.config("llama")
    heads, kv = cfg.num_attention_heads, cfg.num_key_value_heads
    dim = cfg.hidden_size // heads
    plain, padded = profile(_setup(padded=False)), profile(_setup(padded=True))
    for rows, seq in ((4, 64), (2, 200)):
        extra = padded.layer_retained.at(rows, seq) - plain.layer_retained.at(rows, seq)
        keys_values = 2 * rows * seq * (heads - kv) * dim * 2  # bf16 keys and values at every query head
        mask = rows * seq * seq * 2  # (b, 1, s, s) in bf16
        assert abs(extra - (keys_values + mask)) <= 0.01 * (keys_values + mask), (rows, seq, extra)


def test_the_simulated_and_the_instant_padded_steps_agree():
    for padded in (False, True):
        fast = jp.estimate(tiny.config("llama"), LORA, batch_size=4, seq_len=64, dtype="bfloat16",
                           gradient_checkpointing=False, padded=padded, dataset=False)
        slow = jp.estimate(tiny.config("llama"), LORA, batch_size=4, seq_len=64, dtype="bfloat16",
                           gradient_checkpointing=False, padded=padded, dataset=False, method="simulate")
        assert abs(fast.peak_bytes / slow.peak_bytes - 1) < 0.05, padded


def test_who_pads():
    assert _setup().padded  # several unpacked rows: the collator pads them to the longest
    assert not _setup(batch_size=1).padded  # one row: nothing to pad to, no mask
    assert not _setup().replace(batch_size=1).padded  # what-ifs and searches that shrink the batch too
    assert not _setup(padded=False).padded
    packed = jp.Plan.from_yaml(LORA + "\ntrain: {packing: true}")
    assert not resolve(tiny.config("llama"), packed, batch_size=4, seq_len=64).padded
    free = jp.Plan.from_yaml(LORA + "\ntrain: {padding_free: true}")
    assert not resolve(tiny.config("llama"), free, batch_size=4, seq_len=64).padded
    dpo = jp.Plan.from_yaml(LORA + "\ntrain: {trainer: dpo}")
    assert resolve(tiny.config("llama"), dpo, batch_size=1, seq_len=64).padded  # chosen and rejected: two rows


def test_a_bad_padded_value_names_the_key():
    import pytest

    from jupyter_peft import PlanError

    with pytest.raises(PlanError) as err:
        _setup(padded="yes")
    assert err.value.key == "padded"
