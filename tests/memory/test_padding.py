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
    packed = resolve(tiny.config("llama"), jp.Plan.from_yaml(LORA + "\ntrain: {packing: true}"), batch_size=4,
                     seq_len=64)
    # TRL packs padding-free: one row of 4 x 64 tokens, and SDPA gets a block-causal mask over it
    assert not packed.padded and packed.packed and packed.masked and packed.step_shape == (1, 256)
    free = resolve(tiny.config("llama"), jp.Plan.from_yaml(LORA + "\ntrain: {padding_free: true}"), batch_size=4,
                   seq_len=64)
    assert not free.padded and free.packed and free.masked
    wrapped = resolve(tiny.config("llama"), jp.Plan.from_yaml(LORA + "\ntrain: {packing: true, packing_strategy: "
                      "wrapped}"), batch_size=4, seq_len=64)
    assert not (wrapped.padded or wrapped.packed or wrapped.masked)  # full rows of one length: no mask
    # flash attention's varlen kernels take no mask, padded or packed
    assert not _setup(attention="flash").masked and not free.replace(attention="flash").masked
    dpo = jp.Plan.from_yaml(LORA + "\ntrain: {trainer: dpo}")
    assert resolve(tiny.config("llama"), dpo, batch_size=1, seq_len=64).padded  # chosen and rejected: two rows


def test_a_bad_padded_value_names_the_key():
    import pytest

    from jupyter_peft import PlanError

    with pytest.raises(PlanError) as err:
        _setup(padded="yes")
    assert err.value.key == "padded"


def test_packed_rows_keep_one_block_causal_mask_over_all_their_tokens():
    cfg = tiny.config("llama")
    heads, kv = cfg.num_attention_heads, cfg.num_key_value_heads
    dim = cfg.hidden_size // heads
    packed, flash = _setup(packed=True), _setup(packed=True, attention="flash")
    extra = profile(packed).layer_retained.at(*packed.step_shape) - profile(flash).layer_retained.at(*flash.step_shape)
    tokens = 4 * 64
    expected = 2 * tokens * (heads - kv) * dim * 2 + tokens * tokens * 2  # repeated keys/values, the (1, 1, N, N) mask
    assert abs(extra - expected) <= 0.01 * expected
    fast = jp.estimate(cfg, LORA, batch_size=4, seq_len=64, dtype="bfloat16", gradient_checkpointing=False,
                       packed=True, dataset=False)
    slow = jp.estimate(cfg, LORA, batch_size=4, seq_len=64, dtype="bfloat16", gradient_checkpointing=False,
                       packed=True, dataset=False, method="simulate")
    assert abs(fast.peak_bytes / slow.peak_bytes - 1) < 0.05
    assert "rows packed into one (block-causal mask)" in fast._repr_html_()


def test_a_models_flash_attention_is_read_from_the_model():
    model = tiny.build("llama")
    model.config._attn_implementation = "flash_attention_2"  # as from_pretrained(attn_implementation=...) sets it
    est = jp.estimate(model, LORA, batch_size=4, seq_len=64, dataset=False)
    assert est.setup.attention == "flash" and not est.setup.masked


def test_with_checkpointing_the_boolean_mask_is_kept_until_the_last_layer_is_recomputed():
    cfg = tiny.config("llama")
    common = dict(batch_size=4, seq_len=64, dtype="bfloat16", gradient_checkpointing=True, packed=True, dataset=False)
    for method in ("analytic", "simulate"):
        sdpa = jp.estimate(cfg, LORA, method=method, **common)
        flash = jp.estimate(cfg, LORA, method=method, attention="flash", **common)
        tokens = 4 * 64
        # the (1, 1, N, N) boolean mask is still alive at the LM head, this step's peak
        assert sdpa.peak_bytes - flash.peak_bytes >= tokens * tokens, method
    fast = jp.estimate(cfg, LORA, **common)
    slow = jp.estimate(cfg, LORA, method="simulate", **common)
    assert abs(fast.peak_bytes / slow.peak_bytes - 1) < 0.05
