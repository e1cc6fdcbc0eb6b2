"""Reserved memory over the data's steps (memory/varying.py): a step's allocations at another
length come from two simulated lengths, and replaying the sampler's batches keeps the blocks
cached for other lengths, as PyTorch's caching allocator does."""

from __future__ import annotations

import tiny
from datasets import Dataset

import jupyter_peft as jp
from jupyter_peft.memory import varying
from jupyter_peft.memory.settings import resolve
from jupyter_peft.memory.simulate import simulate

PLAN = "method: lora\nr: 8\ntarget_modules: all-linear"


def _setup(seq_len, padded=False):
    return resolve(tiny.config("llama"), jp.Plan.from_yaml(PLAN), batch_size=4, seq_len=seq_len, dtype="bfloat16",
                   gradient_checkpointing=False, padded=padded)


def test_a_padded_batchs_mask_is_the_one_square_term_of_fused_attention():
    long, short = simulate(_setup(64, padded=True)), simulate(_setup(32, padded=True))
    powers = varying.exponents(long.events[long.step_start:], short.events[short.step_start:], 2.0)
    squares = [n for p, (_, n) in zip(powers, long.events[long.step_start:]) if n and round(p) == 2]
    # the boolean mask once per forward (b x s x s), each layer the mask in the query's dtype (bf16),
    # and nothing else grows with s^2
    assert sorted(squares) == [4 * 64 * 64] + [4 * 64 * 64 * 2] * tiny.config("llama").num_hidden_layers


def test_a_step_at_a_third_length_is_the_two_traces_scaled():
    long, short, middle = simulate(_setup(64)), simulate(_setup(32)), simulate(_setup(48))
    powers = varying.exponents(long.events[long.step_start:], short.events[short.step_start:], 2.0)
    assert powers is not None
    made = [p for p, (_, n) in zip(powers, long.events[long.step_start:]) if n]
    assert {round(p) for p in made} == {0, 1}  # weights' and adapters' tensors, and activations (unpadded: no s^2)
    scaled = varying.scaled(long.events[long.step_start:], powers, 48 / 64, 1.0)
    real = middle.events[middle.step_start:]
    assert [n > 0 for _, n in scaled] == [n > 0 for _, n in real]
    assert abs(sum(n for _, n in scaled) / sum(n for _, n in real) - 1) < 0.01
    assert varying.exponents(long.events[long.step_start:], short.events[short.step_start:][:-1], 2.0) is None


def test_the_datas_varying_lengths_keep_more_reserved_than_one_length():
    rows = [{"text": " ".join(["word"] * (5 + (i * 7) % 50))} for i in range(64)]
    plan = jp.Plan.from_yaml(PLAN + "\ntrain: {per_device_train_batch_size: 4, max_steps: 16}")
    est = jp.estimate(tiny.config("llama"), plan, method="simulate", dataset=Dataset.from_list(rows),
                      tokenizer=tiny.tokenizer(), dtype="bfloat16")
    one = jp.estimate(tiny.config("llama"), plan, method="simulate", dataset=False, dtype="bfloat16",
                      batch_size=est.setup.batch_size, seq_len=est.setup.seq_len)
    assert est.peak_bytes == one.peak_bytes and est.reserved_bytes == one.reserved_bytes  # fits: one length
    assert est.reserved_over_data > est.reserved_bytes and est.reserved_over_data_note == ""
    # one segment per pool that grows in place keeps less cached for the other lengths
    assert 0 < est.reserved_over_data_expandable < est.reserved_over_data
    assert "expandable_segments:True" in est._repr_html_()
    assert "over the data's steps" in est._repr_html_()
    # a card the one-length step fits but the cache over the data does not: said, and what helps
    from jupyter_peft.memory.fit import Gpu

    beyond = est.reserved_over_data + est.paged_bytes + est.overhead_bytes
    est.gpu = Gpu("small card", (est.total_bytes + beyond) // 2)
    assert est.fits() and "that cache does not fit" in est._repr_html_()
    est.gpu = Gpu("roomy card", beyond * 2)
    assert "that cache does not fit" not in est._repr_html_()
    same = Dataset.from_list([{"text": "word " * 30}] * 16)  # one length: nothing more to model
    flat = jp.estimate(tiny.config("llama"), plan, method="simulate", dataset=same, tokenizer=tiny.tokenizer(),
                       dtype="bfloat16")
    assert flat.reserved_over_data == 0


def test_the_instant_estimate_replays_the_datas_lengths_too():
    # six layers: the instant estimate's step is a three-layer model's, stretched (memory/stretch.py)
    config = tiny.config("llama", hidden_size=128, intermediate_size=256, num_hidden_layers=6)
    rows = [{"text": " ".join(["word"] * (5 + (i * 7) % 50))} for i in range(64)]
    plan = jp.Plan.from_yaml(PLAN + "\ntrain: {per_device_train_batch_size: 4, max_steps: 16}")
    data = dict(dataset=Dataset.from_list(rows), tokenizer=tiny.tokenizer(), dtype="bfloat16")
    instant = jp.estimate(config, plan, **data)
    simulated = jp.estimate(config, plan, method="simulate", **data)
    assert instant.reserved_over_data > instant.reserved_bytes and instant.reserved_over_data_note == ""
    assert abs(instant.reserved_over_data / simulated.reserved_over_data - 1) < 0.02
    assert abs(instant.reserved_over_data_expandable / simulated.reserved_over_data_expandable - 1) < 0.02
    picked = jp.Plan.from_yaml("method: lora\nr: 8\ntarget_modules: [q_proj]\nlayers_to_transform: [0]\n"
                               "train: {per_device_train_batch_size: 4, max_steps: 16}")
    fallback = jp.estimate(config, picked, **data)  # no stack of like layers to stretch: said
    assert fallback.reserved_over_data == 0 and "like layers" in fallback.reserved_over_data_note
    assert "like layers" in fallback._repr_html_()
