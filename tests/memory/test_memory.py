"""The memory estimate: its inputs, its formulas checked against the libraries, its views.

The accuracy of the instant estimate against the simulated step is in test_memory_accuracy.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import tiny
import torch

import jupyter_peft as jp
from jupyter_peft import PlanError
from jupyter_peft.memory import probe
from jupyter_peft.memory.settings import resolve
from jupyter_peft.memory.states import optimizer_bytes, packed_bytes

MiB = 2**20
LORA = "method: lora\nr: 8\ntarget_modules: [q_proj, v_proj]"


def small(arch: str = "llama") -> object:
    kwargs = {
        "llama": dict(
            hidden_size=128,
            intermediate_size=344,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=1024,
        ),
        "gpt2": dict(n_embd=128, n_layer=2, n_head=4, vocab_size=1024),
    }[arch]
    return tiny.config(arch, **kwargs)


# ---- what the estimate takes -------------------------------------------------------------


def test_options_come_from_the_train_block_then_trl_defaults():
    plan = jp.Plan.from_yaml(
        LORA + "\ntrain: {trainer: sft, per_device_train_batch_size: 3, max_length: 96, optim: adamw_8bit}"
    )
    setup = resolve(small(), plan)
    assert (setup.batch_size, setup.seq_len, setup.optimizer) == (3, 96, "adamw_8bit")
    assert setup.gradient_checkpointing is True  # TRL's default
    assert setup.autocast == "bfloat16"  # TRL's bf16 on a GPU
    assert setup.loss == "chunked"
    setup = resolve(small(), plan, batch_size=5, gradient_checkpointing=False)
    assert (setup.batch_size, setup.gradient_checkpointing) == (5, False)
    paired = resolve(
        small(), jp.Plan.from_yaml(LORA + "\ntrain: {trainer: dpo, per_device_train_batch_size: 2}")
    )
    assert paired.rows == 4  # chosen and rejected run together


def test_without_a_train_block_it_computes_in_the_weights_dtype():
    assert resolve(small(), None, dtype="bf16").autocast == "bfloat16"
    assert resolve(small(), None, dtype="float32").autocast is None
    assert resolve(small(), None).full


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"dtype": "fp8"}, "dtype"),
        ({"batch_size": 0}, "batch_size"),
        ({"optimizer": "adamw8bit"}, "optimizer"),
        ({"loss": "logits"}, "loss"),
        ({"batch_sise": 2}, "batch_sise"),
        ({"quantization": "4bit"}, "quantization"),  # full fine-tuning cannot train 4-bit weights
        ({"method": "guess"}, "method"),
        ({"gpu": "A100"}, "gpu"),  # two cards are A100s
    ],
)
def test_bad_options_are_plan_errors_naming_the_key(options, key):
    with pytest.raises(PlanError) as err:
        jp.estimate(small(), None, **options)
    assert err.value.key == key


def test_model_meta_model_config_and_folder_give_the_same_answer(tmp_path):
    folder = tiny.save("llama", tmp_path / "llama")
    answers = {
        name: jp.estimate(source, LORA, batch_size=2, seq_len=32, dtype="float32").peak_bytes
        for name, source in [
            ("model", tiny.build("llama")),
            ("meta", tiny.build("llama", device="meta")),
            ("config", tiny.config("llama")),
            ("folder", str(folder)),
        ]
    }
    assert len(set(answers.values())) == 1, answers


def test_a_peft_model_is_read_through_its_base():
    model = tiny.build("llama")
    peft_model = jp.apply(LORA, model)
    assert resolve(peft_model, LORA).model_class == "LlamaForCausalLM"
    with pytest.raises(PlanError, match="model, a transformers config"):
        jp.estimate(42, LORA)


# ---- formulas against the libraries ------------------------------------------------------


@pytest.mark.parametrize("double", [False, True])
def test_nf4_bytes_match_bitsandbytes(double):
    import bitsandbytes.functional as bnbf

    weight = torch.randn(512, 384, dtype=torch.bfloat16)
    packed, state = bnbf.quantize_4bit(weight, blocksize=64, compress_statistics=double, quant_type="nf4")
    stored = packed.numel() * packed.element_size() + state.absmax.numel() * state.absmax.element_size()
    if double:
        stored += state.state2.absmax.numel() * state.state2.absmax.element_size()
    assert abs(packed_bytes(weight.numel(), "4bit", double) - stored) <= 16
    assert packed_bytes(10**6, "4bit", double) / 10**6 == pytest.approx(0.516 if double else 0.5625, abs=1e-3)


def test_optimizer_state_matches_torch_and_bitsandbytes():
    import bitsandbytes as bnb

    params = [torch.nn.Parameter(torch.randn(256, 64)), torch.nn.Parameter(torch.randn(64))]  # 8-bit / fp32
    shapes = [(p.numel(), "float32", tuple(p.shape)) for p in params]
    adamw = torch.optim.AdamW(params)
    for p in params:
        p.grad = torch.zeros_like(p)
    adamw.step()
    real = sum(
        t.numel() * t.element_size() for s in adamw.state.values() for k, t in s.items() if k != "step"
    )
    assert optimizer_bytes("adamw_torch_fused", shapes).resident == real

    eight = bnb.optim.AdamW8bit(params)
    for g, group in enumerate(eight.param_groups):
        for i, p in enumerate(group["params"]):
            eight.init_state(group, p, g, i)
    keys = ("state1", "state2", "absmax1", "absmax2")
    real = sum(s[k].numel() * s[k].element_size() for s in eight.state.values() for k in keys if k in s)
    assert optimizer_bytes("adamw_8bit", shapes).resident == real
    paged = optimizer_bytes("paged_adamw_32bit", [(200_000, "bfloat16", (200_000,)), (10, "bfloat16", (10,))])
    assert (paged.paged, paged.resident) == (2 * 4 * 200_000, 2 * 4 * 10)


def test_fused_attention_computes_attention():
    from jupyter_peft.memory.trace import fused_attention

    q = torch.randn(2, 4, 6, 8, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 2, 6, 8, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 2, 6, 8, dtype=torch.float64, requires_grad=True)
    out, _ = fused_attention(q, k, v, True, 8**-0.5)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(out, want)
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    wants = torch.autograd.grad(want.sum(), (q, k, v))
    for got, expected in zip(grads, wants):
        torch.testing.assert_close(got, expected)


def test_fake_step_tracks_what_the_real_cpu_step_allocates():
    from jupyter_peft.memory.simulate import simulate

    setup = resolve(small(), LORA, batch_size=2, seq_len=64, dtype="float32")
    fake, real = simulate(setup), simulate(setup, real=True)
    assert fake.peak_bytes == pytest.approx(real.peak_bytes, rel=0.01)


# ---- the answer --------------------------------------------------------------------------


def test_estimate_parts_sum_to_the_total_and_views_show_them():
    est = jp.estimate(small(), LORA, batch_size=2, seq_len=64, gpu="T4")
    assert sum(est.breakdown.values()) == est.peak_bytes
    data = est.to_json()
    assert sum(p["bytes"] for p in data["parts"]) == data["total_bytes"] == est.total_bytes
    assert data["gpu"]["name"] == "T4-16GB" and data["gpu"]["fits"] is True
    assert data["setup"]["method"] == "lora" and data["phase"] in data["phases"]
    page = est._repr_html_()
    assert "<svg" in page and "T4-16GB" in page and "<script" not in page
    for name in est.breakdown:
        assert name in page
    assert est.figure().data  # the plotly stacked bar


def test_repeated_calls_reuse_the_per_model_work(monkeypatch):
    from jupyter_peft.session import session

    session().profiles.clear()  # another test may have profiled this setup already
    calls = []
    build = probe._build
    monkeypatch.setattr(probe, "_build", lambda setup: calls.append(1) or build(setup))
    config = small("gpt2")
    for batch in (2, 4, 8, 16):
        jp.estimate(config, "method: lora\ntarget_modules: [c_attn]", batch_size=batch, seq_len=64)
    assert len(calls) == 1
    # one row has no padding, so its attention has no mask: another probe, made once
    for seq in (32, 64):
        jp.estimate(config, "method: lora\ntarget_modules: [c_attn]", batch_size=1, seq_len=seq)
    assert len(calls) == 2


def test_fits_largest_batch_and_sequence_agree_with_the_estimate():
    config = small()
    est = jp.estimate(config, LORA, batch_size=4, seq_len=128)
    capacity = est.total_bytes * 3
    batch = est.largest_batch(capacity)
    assert batch > 4
    assert jp.estimate(config, LORA, batch_size=batch, seq_len=128).fits(capacity)
    assert not jp.estimate(config, LORA, batch_size=batch + 1, seq_len=128).fits(capacity)
    capacity = int(est.total_bytes * 1.1)
    seq = est.largest_seq_len(capacity)
    assert 128 < seq < config.max_position_embeddings
    assert jp.estimate(config, LORA, batch_size=4, seq_len=seq).fits(capacity)
    assert not jp.estimate(config, LORA, batch_size=4, seq_len=seq + 1).fits(capacity)


def test_compare_and_advice_when_it_does_not_fit():
    config = small()
    est = jp.estimate(config, None, batch_size=8, seq_len=256, loss="full")
    table = est.compare(est.total_bytes)
    labels = [(r.label, r.gradient_checkpointing) for r in table.rows]
    assert labels[0] == ("full fine-tuning", False) and len(labels) == 6
    by = {label: r.total_bytes for label, r in zip(labels, table.rows)}
    assert by[("full fine-tuning", True)] < by[("full fine-tuning", False)]
    assert by[("lora r=16", False)] < by[("full fine-tuning", False)]
    assert "<table" in table._repr_html_()

    tight = est.total_bytes - est.peak_bytes // 4
    advice = est.advice(tight)
    assert advice and any(a["fits"] for a in advice)
    assert all(a["total_bytes"] < est.total_bytes for a in advice)
    assert any("gradient checkpointing" in a["change"] for a in advice)
    assert est.advice(est.total_bytes * 2) == []


def test_gpu_presets_and_sizes():
    from jupyter_peft.memory.fit import gpu

    assert gpu("a100-80gb").name == "A100-80GB"
    assert gpu("H100").name == "H100-80GB"
    assert gpu("24GB").bytes == 24 * 10**9
    with pytest.raises(PlanError, match="did you mean"):
        gpu("A10O-80GB")


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="on a GPU machine measure runs (bench/gpu_memory_check.py)"
)
def test_measure_says_it_needs_cuda():
    with pytest.raises(PlanError, match="CUDA") as err:
        jp.estimate(small(), LORA, method="measure")
    assert err.value.key == "method"


def test_importing_the_room_imports_no_torch():
    code = (
        "import sys, jupyter_peft.memory as m; m.GPUS; "
        "print(sorted(k for k in ('torch', 'peft', 'trl') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- %peft estimate ----------------------------------------------------------------------


def test_magic_shows_the_estimate_and_what_to_change(shell, capsys):
    shell.user_ns["cfg"] = small()
    shell.user_ns["my_plan"] = jp.Plan.from_yaml(LORA)
    shell.run_line_magic("peft", "estimate cfg --batch 2 --seq 64 --gpu T4 --plan my_plan")
    out = capsys.readouterr().out
    assert "MemoryEstimate(for method: lora" in out and "; analytic" in out
    shell.run_line_magic(
        "peft",
        "estimate cfg --batch 64 --seq 512 --gpu 1GB --method lora --r 4 --targets q_proj,v_proj --no-gc",
    )
    out = capsys.readouterr().out
    assert "To fit 1GB" in out and "gradient checkpointing" in out
    shell.run_line_magic("peft", "estimate cfg --batch 2 --seq 64 --compare")
    assert "Comparison(rows=[Row(label='full fine-tuning'" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("estimate nothing_here --batch 2", "no notebook variable"),
        ("estimate cfg --batch two", "invalid int value"),
        ("estimate cfg --gpu A100", "names several cards"),
        ("estimate cfg --plan my_plan --r 8", "either --plan or --method"),
        ("estimate cfg --frobnicate", "unrecognized arguments"),
    ],
)
def test_magic_mistakes_are_usage_errors(shell, line, words):
    from IPython.core.error import UsageError

    shell.user_ns["cfg"] = small()
    shell.user_ns["my_plan"] = jp.Plan.from_yaml(LORA)
    with pytest.raises(UsageError, match=words):
        shell.run_line_magic("peft", line)
