"""A LoRA rank wider than the layers it adapts is refused (issue 15, item 11: `r: 100000` on
64-wide layers was accepted silently)."""

from __future__ import annotations

import pytest
import tiny

import jupyter_peft as jp
from jupyter_peft import PlanError
from jupyter_peft.model.adapt import check
from jupyter_peft.model.widths import check_widths


def _check(text: str) -> None:
    plan = jp.Plan.from_yaml(text)
    checked = check(plan, tiny.build("llama"))
    check_widths(plan, checked.model_map, checked.targets, dict(checked.config.rank_pattern or {}))


@pytest.mark.parametrize("text, key", [
    ("method: lora\nr: 100000\ntarget_modules: [q_proj, v_proj]\n", "r"),
    ("method: dora\nr: 80\ntarget_modules: [k_proj]\n", "r"),  # k_proj is 64 -> 32: 80 is above both sides
    ("method: lora\nr: 8\ntarget_modules: [q_proj, v_proj]\nranks: {self_attn.q_proj: 1000}\n",
     "ranks.self_attn.q_proj"),
])
def test_a_rank_wider_than_its_layers_is_refused(text, key):
    with pytest.raises(PlanError, match="adds parameters and no capacity") as caught:
        _check(text)
    assert caught.value.key == key


@pytest.mark.parametrize("text", [
    "method: lora\nr: 32\ntarget_modules: [k_proj, q_proj]\n",
    "method: lora\nr: 8\ntarget_modules: all-linear\nranks: {mlp.down_proj: 64}\n",
    "method: loha\nr: 100\ntarget_modules: [q_proj]\n",  # not LoRA's B @ A: left to peft
])
def test_ranks_that_fit_pass(text):
    _check(text)


def test_apply_refuses_a_rank_wider_than_its_layers():
    with pytest.raises(PlanError, match="no capacity"):
        jp.apply("method: lora\nr: 100000\ntarget_modules: [q_proj]\n", tiny.build("llama"))
