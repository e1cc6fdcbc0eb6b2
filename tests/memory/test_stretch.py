"""The instant estimate's whole step: a three-layer model's, stretched to the model's depth
(memory/stretch.py), held to the simulation of the whole model."""

from __future__ import annotations

import pytest

import jupyter_peft as jp
from jupyter_peft.memory import allocator, reserved, stretch
from jupyter_peft.memory.settings import resolve
from jupyter_peft.memory.simulate import simulate
from tests import tiny

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LORA = {"method": "lora", "r": 8, "target_modules": "all-linear"}


def _config(arch: str = "llama", layers: int = 6) -> object:
    sizes = dict(n_embd=256, n_layer=layers, n_head=4) if arch == "gpt2" else dict(
        hidden_size=256, intermediate_size=1024, num_hidden_layers=layers, num_attention_heads=4)
    return tiny.config(arch, vocab_size=3000, **sizes)


def _both(setup: object) -> tuple[object, object, int, int]:
    events, start = stretch.stretched(setup)
    whole = simulate(setup)
    return (reserved.replayed(events, start), reserved.replayed(whole.events, whole.step_start),
            allocator.replay(events).peak_requested, whole.peak_bytes)


@pytest.mark.parametrize("arch,plan,options", [
    ("llama", None, {}),
    ("llama", LORA, {}),
    ("llama", LORA, {"gradient_checkpointing": True}),
    ("llama", LORA, {"loop": "plain"}),
    ("llama", {"method": "lora", "r": 8, "target_modules": ["q_proj", "v_proj"]}, {"padded": True}),
    ("gpt2", {"method": "lora", "r": 8, "target_modules": ["c_attn"]}, {}),
])
def test_the_stretched_step_is_the_whole_models_step(arch, plan, options):
    setup = resolve(_config(arch), plan, **{"batch_size": 2, "seq_len": 128, "dtype": "bfloat16", **options})
    stretched, whole, _, _ = _both(setup)
    # the same allocations and frees in the same order: the allocator reserves the same
    assert abs(stretched.reserved_bytes / whole.reserved_bytes - 1) < 0.01, (stretched, whole)
    assert abs(stretched.allocated_bytes / whole.allocated_bytes - 1) < 0.01


def test_a_foreach_step_has_every_layers_temporaries():
    # the short model's own are made inside its step; the other layers' around it: the same
    # bytes at the step's peak, laid out a little differently
    setup = resolve(_config(), None, batch_size=2, seq_len=128, dtype="bfloat16", optimizer="adamw_torch")
    stretched, whole, requested, peak = _both(setup)
    assert abs(requested / peak - 1) < 0.005
    assert abs(stretched.reserved_bytes / whole.reserved_bytes - 1) < 0.06


def test_the_stretched_step_holds_every_layers_tensors():
    setup = resolve(_config(layers=7), LORA, batch_size=2, seq_len=128, dtype="bfloat16")
    events, start = stretch.stretched(setup)
    whole = simulate(setup)
    states = sum(n for _, n in events[:start]) - sum(n for _, n in whole.events[:whole.step_start])
    assert abs(states) < 1024  # the layers the short model lacks, each with its states
    live: dict[object, int] = {}
    for key, nbytes in events[start:]:  # every tensor a copy makes is let go where the whole model's is
        if nbytes:
            live[key] = nbytes
        else:
            live.pop(key, None)
    whole_live: dict[object, int] = {}
    for key, nbytes in whole.events[whole.step_start:]:
        if nbytes:
            whole_live[key] = nbytes
        else:
            whole_live.pop(key, None)
    assert sum(live.values()) == sum(whole_live.values())


def test_the_instant_estimate_replays_the_stretched_step_and_its_searches_agree():
    config = _config(layers=8)
    est = jp.estimate(config, LORA, batch_size=2, seq_len=256, dtype="bfloat16")
    simulated = jp.estimate(config, LORA, batch_size=2, seq_len=256, dtype="bfloat16", method="simulate")
    assert abs(est.reserved_bytes / simulated.reserved_bytes - 1) < 0.01
    # the what-if searches take the share the stretched step reserved beyond its transients
    from jupyter_peft.memory.options import total_bytes

    assert abs(total_bytes(est.setup) - est.total_bytes) <= 1 << 20
    assert est.largest_batch(est.total_bytes + (1 << 20)) == 2  # what fits is what the estimate says


def test_steps_that_are_not_a_stack_of_like_layers_fall_back_to_the_share():
    picked = {**LORA, "target_modules": ["q_proj", "v_proj"], "layers_to_transform": [0, 1]}
    setup = resolve(_config(), picked, batch_size=2, seq_len=128, dtype="bfloat16")
    assert stretch.stretched(setup) is None
    est = jp.estimate(_config(), picked, batch_size=2, seq_len=128, dtype="bfloat16")
    assert est.reserved_bytes >= est.peak_bytes
    import transformers

    mixed = transformers.Qwen2MoeConfig(  # dense and MoE layers in turn
        hidden_size=64, intermediate_size=128, moe_intermediate_size=32, shared_expert_intermediate_size=64,
        num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
        vocab_size=256, decoder_sparse_step=2)
    assert stretch.stretched(resolve(mixed, None, batch_size=2, seq_len=32, dtype="bfloat16")) is None
    # in fp32 the experts take transformers' loop of matmuls (grouped_mm's fake kernel takes bf16 only)
    moe = mixed.__class__(**{**mixed.to_dict(), "decoder_sparse_step": 1})
    for dtype in ("float32", "bfloat16"):
        est = jp.estimate(moe, None, batch_size=2, seq_len=32, dtype=dtype)
        assert est.reserved_bytes >= est.peak_bytes > 0
        assert stretch.stretched(est.setup) is not None
    seq2seq = resolve(tiny.config("t5"), None, batch_size=2, seq_len=64)
    assert stretch.stretched(seq2seq) is None
    shallow = resolve(_config(layers=3), None, batch_size=2, seq_len=64)
    whole, (events, start) = simulate(shallow), stretch.stretched(shallow)
    assert start == whole.step_start and [n for _, n in events] == [n for _, n in whole.events]  # simulated whole


def test_a_seq2seq_config_without_a_decoder_start_id_simulates():
    import transformers

    config = transformers.T5Config(d_model=64, d_ff=128, d_kv=16, num_layers=2, num_heads=4, vocab_size=256)
    assert getattr(config, "decoder_start_token_id", None) is None  # as T5Config() is built by hand
    est = jp.estimate(config, LORA, batch_size=2, seq_len=32, method="simulate")
    assert est.reserved_bytes >= est.peak_bytes > 0
