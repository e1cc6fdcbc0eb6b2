"""What the product says about a model is true now: adapters are not dropped behind the user's
back, an estimate says which plan it is for (an adapted model's own), a studio does not claim
what a later cell undid, and peft's refusals arrive as PlanErrors."""

from __future__ import annotations

import gc
import html

import pytest
import tiny

import jupyter_peft as jp


def test_a_named_adapter_keeps_the_others_even_when_nobody_kept_the_peft_model():
    model = tiny.build("llama")
    jp.apply("method: lora\ntarget_modules: [q_proj]", model)  # the PeftModel is not kept
    gc.collect()
    peft_model = jp.apply("method: lora\ntarget_modules: [v_proj]\nadapter_name: other", model)
    assert sorted(peft_model.peft_config) == ["default", "other"]
    assert peft_model.active_adapter == "other"


def test_the_same_through_the_magic_after_the_variable_is_dropped(shell):
    shell.user_ns["model"] = tiny.build("llama")
    shell.run_cell_magic("peft", "model", "method: lora\ntarget_modules: [q_proj]\n")
    shell.user_ns["peft_model"] = None
    gc.collect()
    shell.run_cell_magic("peft", "model", "method: lora\ntarget_modules: [v_proj]\nadapter_name: other\n")
    assert sorted(shell.user_ns["peft_model"].peft_config) == ["default", "other"]


def test_adapters_made_outside_jupyter_peft_are_not_dropped_silently():
    from peft import LoraConfig, get_peft_model

    model = tiny.build("llama")
    get_peft_model(model, LoraConfig(target_modules=["q_proj"]))  # the user's own, not kept
    gc.collect()
    with pytest.raises(jp.PlanError, match="did not make"):
        jp.apply("method: lora\ntarget_modules: [v_proj]\nadapter_name: other", model)


def test_the_estimate_of_an_adapted_model_is_for_its_adapter_and_says_so():
    model = tiny.build("llama")
    full = jp.estimate(model, batch_size=1, seq_len=32)
    assert full.plan_line.startswith("for full fine-tuning")
    peft_model = jp.apply("method: lora\nr: 4\ntarget_modules: [q_proj, v_proj]", model)
    for which in (peft_model, model):  # the PeftModel, or the base the notebook still calls `model`
        est = jp.estimate(which, batch_size=1, seq_len=32)
        assert est.plan_line.startswith("for method: lora, r: 4, target_modules: [q_proj, v_proj]")
        assert "the adapter 'default' the model carries" in est.plan_line
        # no gradients or Adam states for the frozen weights (reserved: the same few 2 MiB segments)
        assert est.peak_bytes < full.peak_bytes and est.total_bytes <= full.total_bytes
        assert repr(est).startswith(f"MemoryEstimate({est.plan_line};")
        assert html.escape(est.plan_line) in est._repr_html_()
    assert jp.estimate(model, "full", batch_size=1, seq_len=32).total_bytes == full.total_bytes


def test_percent_peft_estimate_after_a_lora_cell_estimates_the_lora(shell, capsys):
    shell.user_ns["model"] = tiny.build("llama")
    shell.run_cell_magic("peft", "model", "method: lora\ntarget_modules: [q_proj]\n")
    shell.run_line_magic("peft", "estimate model --batch 1 --seq 32")
    assert "MemoryEstimate(for method: lora, target_modules: [q_proj] (the adapter" in capsys.readouterr().out
    shell.run_line_magic("peft", "estimate model --batch 1 --seq 32 --method full")
    assert "MemoryEstimate(for full fine-tuning" in capsys.readouterr().out


def test_a_studio_says_when_a_later_cell_replaced_what_it_applied():
    model = tiny.build("llama")
    studio = jp.studio(model)
    try:
        studio._on_msg(studio, {"kind": "apply"}, None)
        assert studio.summary["stale"] == "" and studio.summary["applied_at"]
        jp.apply("method: lora\ntarget_modules: [v_proj]", model)  # another cell replaces the adapter
        studio.recheck()
        assert "replaced" in studio.summary["stale"] or "no longer carries" in studio.summary["stale"]
    finally:
        studio.close()


def test_a_partly_fused_moe_target_is_a_plan_error_saying_why():
    """Mixtral's experts are fused in transformers 5: peft converts v4 names (w1, w3) only together."""
    mixtral = tiny.build("mixtral")
    with pytest.raises(jp.PlanError) as err:
        jp.apply("method: lora\ntarget_modules: [q_proj, w1]", mixtral)
    assert "w3" in str(err.value)
    assert not any("lora" in name for name, _ in mixtral.named_modules())
