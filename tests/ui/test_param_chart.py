"""One trainable-parameter chart: the studio's preview (from its counts) and the dashboard's
(from the applied adapter's summary) give the same data for the same plan."""

from __future__ import annotations

import pytest
import tiny

import jupyter_peft as jp
from jupyter_peft.model.summary import summarize
from jupyter_peft.ui.param_chart import OTHER, from_summary


def _groups(chart):
    return [(r["role"], r["frozen"], r["trainable"]) for r in chart["rows"] if r["frozen"]]


@pytest.mark.parametrize(
    "arch, plan",
    [
        ("llama", "method: lora\nr: 4\ntarget_modules: all-linear\nranks: {self_attn.q_proj: 16}"),
        ("gpt2", "method: lora\ntarget_modules: [c_attn]"),
        ("t5", "method: ia3\ntarget_modules: [q, v, wo]\nfeedforward_modules: [wo]"),
        ("llama", "method: prompt_tuning\nnum_virtual_tokens: 5"),
    ],
)
def test_the_studio_preview_and_the_applied_adapter_chart_the_same(arch, plan):
    studio = jp.studio(tiny.build(arch), plan)
    preview = studio.chart
    applied = jp.apply(studio.plan, tiny.build(arch))
    after = from_summary(summarize(applied), jp.inspect(applied))
    assert _groups(preview) == _groups(after)
    assert (preview["trainable"], preview["total"], preview["title"]) == (
        after["trainable"],
        after["total"],
        after["title"],
    )
    other = sum(r["trainable"] for r in after["rows"] if not r["frozen"])
    assert [r["trainable"] for r in preview["rows"] if r["role"] == OTHER] == ([other] if other else [])
    assert (
        sum(r["trainable"] for r in preview["rows"]) == preview["trainable"] == applied.get_nb_trainable_parameters()[0]
    )


def test_rows_carry_their_numbers_as_text():
    chart = jp.studio(tiny.build("llama"), "method: lora\nr: 8\ntarget_modules: [q_proj]").chart
    q = next(r for r in chart["rows"] if r["role"] == "self_attn.q_proj")
    assert q["frozen_text"] == f"{q['frozen']:,}" and q["trainable"] == 2 * 8 * (64 + 64)
    assert q["trainable_text"] == f"{q['trainable']:,} ({100 * q['trainable'] / q['frozen']:.2f}% of its weights)"
    frozen = next(r for r in chart["rows"] if r["role"] == "mlp.down_proj")
    assert frozen["trainable"] == 0 and frozen["trainable_text"] == "0"
