"""Which loop runs the step changes its memory: TRL's trainers (the chunked LM head), transformers'
Trainer (the model's own loss over full logits, only the loss kept) and a plain loop
(`outputs = model(**batch)`: no autocast unless asked, and the outputs' logits held until the
next step's forward has replaced them)."""

from __future__ import annotations

import pytest
import tiny

import jupyter_peft as jp
from jupyter_peft import PlanError

LORA = "method: lora\nr: 8\ntarget_modules: [q_proj, v_proj]"
STEP = dict(batch_size=4, seq_len=64, dtype="bfloat16", gradient_checkpointing=False, dataset=False)


def _estimate(**options):
    return jp.estimate(tiny.config("llama"), LORA, **{**STEP, **options})


def test_each_loop_says_its_loss_and_precision():
    assert (_estimate().setup.loss, _estimate().setup.autocast) == ("chunked", "bfloat16")
    assert (_estimate(loop="trainer").setup.loss, _estimate(loop="trainer").setup.autocast) == ("full", "bfloat16")
    plain = _estimate(loop="plain").setup
    assert (plain.loss, plain.autocast) == ("full", None)  # a bf16 model computes in bf16, adapters in fp32
    assert _estimate(loop="plain", loss="chunked", autocast="bfloat16").setup.loss == "chunked"  # given wins


@pytest.mark.parametrize("method", ["analytic", "simulate"])
def test_a_plain_loop_holds_its_outputs_logits(method):
    cfg = tiny.config("llama")
    trainer = _estimate(loop="trainer", method=method)
    plain = _estimate(loop="plain", autocast="bfloat16", method=method)  # the same precision: only the outputs differ
    logits = 4 * 64 * cfg.vocab_size * 2
    assert plain.peak_bytes - trainer.peak_bytes == pytest.approx(logits, rel=0.02)


def test_an_unknown_loop_names_the_choices():
    with pytest.raises(PlanError) as err:
        _estimate(loop="deepspeed")
    assert err.value.key == "loop" and "plain" in str(err.value)
