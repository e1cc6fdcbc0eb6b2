"""The studio's Python side: its state, the commands the page sends, the Plan round trip, the
%%peft cell it writes, Apply, and the trainable count against peft's own after apply.

Commands go through the widget's real message handler (`_on_msg`), as the page sends them.
"""

from __future__ import annotations

import json

import pytest
import tiny
import torch.nn as nn
from IPython.core.error import UsageError

import jupyter_peft as jp

EVIL = """<img src=x onerror="window['__pwned']=1">"""  # torch names hold no dots


def send(studio, **msg):
    studio._on_msg(studio, msg, None)


def cell_plan(studio) -> jp.Plan:
    """The Plan the written %%peft cell parses to (its first line is the magic)."""
    head, _, body = studio.cell.partition("\n")
    assert head.startswith("%%peft ")
    return jp.Plan.from_yaml(body)


def applied_count(studio) -> tuple[int, int]:
    return jp.apply(studio.plan, studio.model).get_nb_trainable_parameters()


# ---- state ----------------------------------------------------------------------------------


def test_opens_on_the_attention_layers_with_peft_numbers():
    studio = jp.studio(tiny.build("llama"))
    assert studio.method == "lora"
    assert sorted(studio.picked) == [
        "self_attn.k_proj",
        "self_attn.o_proj",
        "self_attn.q_proj",
        "self_attn.v_proj",
    ]
    assert studio.plan.target_modules == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert studio.issues == [] and studio.cell.startswith("%%peft model\n")
    roles = [g["role"] for g in studio.groups]
    assert roles == [g.role for g in jp.inspect(studio.model).groups]
    assert (studio.numbers["trainable"], studio.numbers["total"]) == applied_count(studio)


def test_the_options_form_is_peft_own_dataclass():
    studio = jp.studio(tiny.build("llama"))
    fields = {f["name"]: f for f in studio.option_fields}
    lora = jp.methods.get("lora").options
    assert set(fields) == set(lora) - {"target_parameters"}
    assert fields["r"] == {**lora["r"].to_json(), "primary": True}
    send(studio, kind="method", name="ia3")
    assert {f["name"] for f in studio.option_fields} == set(jp.methods.get("ia3").options)
    assert "feedforward_modules" in {f["name"] for f in studio.option_fields}


@pytest.mark.parametrize("arch", ["llama", "gpt2", "mixtral", "t5", "bert", "falcon"])
def test_count_shown_equals_peft_after_apply(arch):
    studio = jp.studio(tiny.build(arch))
    send(studio, kind="preset", name="all-linear")
    first = studio.groups[next(i for i, g in enumerate(studio.groups) if g["linear"])]["role"]
    send(studio, kind="rank", role=first, value="16")
    if studio.groups[-1]["count"] > 1:
        send(studio, kind="pick", role=studio.groups[-1]["role"], members=[0], on=False)
    assert studio.issues == []
    shown = (studio.numbers["trainable"], studio.numbers["total"])
    assert studio.numbers["trainable_text"] == f"{shown[0]:,}"
    assert shown == applied_count(studio)


def test_experts_are_ticked_as_target_parameters_and_counted_exactly():
    studio = jp.studio(tiny.build("mixtral"))
    send(studio, kind="pick", role="mlp.experts.gate_up_proj")
    send(studio, kind="pick", role="mlp.experts.down_proj", members=[1])
    plan = studio.plan
    assert plan.options["target_parameters"] == [
        "mlp.experts.gate_up_proj",
        "model.layers.1.mlp.experts.down_proj",
    ]
    assert studio.numbers["per_group"]["mlp.experts.gate_up_proj"]["targeted"] == 2
    assert studio.warnings == []
    studio.plan = "method: lora\nr: 8\ntarget_modules: [q_proj, w1, w3]"  # peft's v4 names of the experts
    assert studio.picked == {"self_attn.q_proj": [0, 1], "mlp.experts.gate_up_proj": [0, 1]}
    assert studio.warnings == [] and cell_plan(studio) == studio.plan
    assert (studio.numbers["trainable"], studio.numbers["total"]) == applied_count(studio)
    assert (studio.numbers["trainable"], studio.numbers["total"]) == applied_count(studio)


def test_state_for_a_70b_model_is_small():
    from jupyter_peft.demo.skeletons import skeleton

    model = skeleton("llama-3-70b")
    studio = jp.studio(model)
    state = {k: v for k, v in studio.get_state().items() if k != "_esm"}
    assert len(json.dumps(state)) < 200_000
    # LoRA adds r * (in + out) per adapted Linear: the formula, against the count from peft's layers
    lora = sum(8 * g.count * (g.shape[0] + g.shape[1]) for g in jp.inspect(model).groups if g.role in studio.picked)
    assert studio.numbers["trainable"] == lora == 32_768_000


# ---- commands -------------------------------------------------------------------------------


def test_bad_input_shows_inline_and_changes_nothing():
    studio = jp.studio(tiny.build("llama"))
    before = studio.plan
    send(studio, kind="rank", role="self_attn.q_proj", value="0")
    assert "positive integer" in studio.field_errors["ranks.self_attn.q_proj"]
    send(studio, kind="option", name="r", value=0, widget="int")
    assert "positive integer" in studio.field_errors["r"]
    send(studio, kind="option", name="lora_dropout", value="x", widget="float")
    assert "lora_dropout" in studio.field_errors
    send(studio, kind="pick", role="no.such.group")
    assert "unknown group" in studio.field_errors["selection"]
    assert studio.plan == before and studio.issues == []
    send(studio, kind="rank", role="self_attn.q_proj", value="32")
    assert "ranks.self_attn.q_proj" not in studio.field_errors and studio.plan.ranks == {"self_attn.q_proj": 32}


def test_empty_selection_is_an_issue_and_apply_changes_nothing():
    model = tiny.build("llama")
    studio = jp.studio(model)
    send(studio, kind="preset", name="none")
    assert studio.issues[0]["key"] == "target_modules" and studio.cell == ""
    assert studio.numbers["trainable"] == 0
    send(studio, kind="apply")
    assert studio.status == "failed" and studio.peft_model is None
    assert not hasattr(model, "peft_config") and all(p.requires_grad for p in model.parameters())


def test_ticks_by_layer_and_presets():
    studio = jp.studio(tiny.build("llama"))
    send(studio, kind="preset", name="mlp")
    assert sorted(studio.picked) == ["mlp.down_proj", "mlp.gate_proj", "mlp.up_proj"]
    send(studio, kind="pick", role="mlp.up_proj", members=[1], on=False)
    assert studio.picked["mlp.up_proj"] == [0]
    paths = jp.inspect(studio.model).match(studio.plan.target_modules)
    assert "model.layers.1.mlp.up_proj" not in paths and "model.layers.0.mlp.up_proj" in paths
    assert studio.numbers["per_group"]["mlp.up_proj"]["targeted"] == 1


def test_method_switch_keeps_ticks_and_prompt_learning_needs_tokens():
    studio = jp.studio(tiny.build("llama"))
    send(studio, kind="option", name="lora_dropout", value=0.1, widget="float")
    send(studio, kind="method", name="prompt_tuning")
    assert studio.options == {} and studio.issues[0]["key"] == "num_virtual_tokens"
    assert all(v is False for v in studio.targetable.values())
    send(studio, kind="option", name="num_virtual_tokens", value=4, widget="int")
    assert studio.issues == [] and studio.numbers["trainable"] == applied_count(studio)[0]
    send(studio, kind="method", name="lora")
    assert "self_attn.q_proj" in studio.picked


# ---- the Plan round trip --------------------------------------------------------------------

PLANS = [
    "method: lora\nr: 16\ntarget_modules: [q_proj, v_proj]",
    "method: lora\nr: 4\ntarget_modules: all-linear\nranks: {self_attn.q_proj: 8, '.*down_proj': 2}\n"
    "alphas: {self_attn.q_proj: 16}",
    "method: dora\nr: 8\ntarget_modules: 'model\\.layers\\.0\\.self_attn\\.(q|v)_proj'",
    "method: lora\nr: 8\n",  # peft's default targets for the model
    "method: ia3\ntarget_modules: [k_proj, down_proj]\nfeedforward_modules: [down_proj]",
    "method: prefix_tuning\nnum_virtual_tokens: 8",
    "method: lora\ntarget_modules: [q_proj]\ntrain: {trainer: sft, dataset: ds, max_steps: 3}",
]


@pytest.mark.parametrize("text", PLANS)
def test_setting_the_plan_shows_it_and_reads_back_equal(text):
    plan = jp.Plan.from_yaml(text)
    studio = jp.studio(tiny.build("llama"))
    studio.plan = plan
    assert studio.plan == plan
    assert cell_plan(studio) == plan
    assert studio.method == plan.method


def test_plan_setter_updates_the_ticks_and_ranks():
    studio = jp.studio(tiny.build("llama"))
    studio.plan = "method: lora\nr: 4\ntarget_modules: [down_proj]\nranks: {mlp.down_proj: 12}"
    assert studio.picked == {"mlp.down_proj": [0, 1]}
    assert studio.ranks == {"mlp.down_proj": 12} and studio.defaults["rank"] == 4
    send(studio, kind="pick", role="self_attn.q_proj")
    assert studio.plan.target_modules == ["down_proj", "q_proj"] and cell_plan(studio) == studio.plan


def test_the_cell_reproduces_the_studio():
    studio = jp.studio(tiny.build("gpt2"))
    send(studio, kind="pick", role="attn.c_attn", members=[1], on=False)
    send(studio, kind="rank", role="attn.c_proj", value=12)
    send(studio, kind="option", name="use_rslora", value=True, widget="bool")
    plan = cell_plan(studio)
    assert plan == studio.plan
    fresh = tiny.build("gpt2")
    assert jp.apply(plan, fresh).get_nb_trainable_parameters()[0] == studio.numbers["trainable"]


# ---- warnings -------------------------------------------------------------------------------


def _llava():
    import transformers as T

    text = T.LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=256,
    )
    vision = T.CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
    )
    return T.LlavaForConditionalGeneration(T.LlavaConfig(text_config=text, vision_config=vision, image_token_id=5))


def test_warns_about_modules_outside_the_language_model():
    studio = jp.studio(_llava())
    assert any("would also adapt the vision tower" in w for w in studio.warnings)
    assert all(
        p.startswith("model.language_model.") for p in jp.inspect(studio.model).match(studio.plan.target_modules)
    )
    send(studio, kind="preset", name="all-linear")
    assert any(
        w.startswith("Ticked outside the language model: vision tower") and "projector" in w for w in studio.warnings
    )
    assert (studio.numbers["trainable"], studio.numbers["total"]) == applied_count(studio)


def test_warns_where_peft_adapts_other_modules_than_ticked():
    studio = jp.studio(tiny.build("llama"))
    send(studio, kind="option", name="layers_to_transform", value="[0]", widget="yaml")
    assert any("will not adapt 4 ticked module(s)" in w for w in studio.warnings)
    assert studio.numbers["trainable"] == applied_count(studio)[0]


# ---- apply and the magic --------------------------------------------------------------------


def test_apply_shows_peft_summary_and_binds_like_the_magic(shell):
    shell.run_cell("import tiny\nmodel = tiny.build('llama')")
    studio = shell.run_line_magic("peft", "model --as tuned")
    assert studio.model_info["name"] == "model" and studio.cell.startswith("%%peft model --as tuned\n")
    send(studio, kind="pick", role="mlp.down_proj")
    send(studio, kind="apply")
    tuned = shell.user_ns["tuned"]
    assert studio.status == "applied" and studio.peft_model is tuned
    assert (studio.numbers["trainable"], studio.numbers["total"]) == tuned.get_nb_trainable_parameters()
    assert studio.summary["trainable"] == studio.numbers["trainable"]
    assert studio.summary["bound_to"] == "tuned"
    assert all(g["adapted"] for g in studio.groups if g["role"] in studio.picked)
    send(studio, kind="pick", role="mlp.down_proj", on=False)  # applying again replaces the adapter
    send(studio, kind="apply")
    tuned = shell.user_ns["tuned"]
    assert tuned.get_nb_trainable_parameters() == (studio.numbers["trainable"], studio.numbers["total"])


def test_opens_on_the_plan_the_model_carries(shell):
    shell.run_cell("import tiny\nmodel = tiny.build('llama')")
    shell.run_cell_magic("peft", "model", "method: lora\nr: 4\ntarget_modules: [down_proj]\nranks: {mlp.down_proj: 6}")
    studio = shell.run_line_magic("peft", "model")
    assert studio.plan == jp.Plan.from_yaml(
        "method: lora\nr: 4\ntarget_modules: [down_proj]\nranks: {mlp.down_proj: 6}"
    )
    assert studio.picked == {"mlp.down_proj": [0, 1]}
    shown = (studio.numbers["trainable"], studio.numbers["total"])
    assert shown == shell.user_ns["peft_model"].get_nb_trainable_parameters()


def test_magic_errors_are_usage_errors(shell):
    shell.run_cell("import tiny\nmodel = tiny.build('llama')\nnot_a_model = 3")
    with pytest.raises(UsageError, match="no variable named 'modle'.*model"):
        shell.run_line_magic("peft", "modle")
    with pytest.raises(UsageError, match="not a torch model"):
        shell.run_line_magic("peft", "not_a_model")
    with pytest.raises(UsageError, match="--as"):
        shell.run_line_magic("peft", "model --as 1x")
    assert type(shell.run_line_magic("peft", "model.model")).__name__ == "Studio"


def test_studio_names_the_notebook_variable(shell):
    shell.run_cell("import tiny, jupyter_peft as jp\nbase = tiny.build('llama')\ns = jp.studio(base)")
    assert shell.user_ns["s"].cell.startswith("%%peft base\n")


# ---- names are data -------------------------------------------------------------------------


class _Evil(nn.Module):
    """A custom model whose module names look like HTML (torch accepts any name without a dot)."""

    def __init__(self) -> None:
        super().__init__()
        self.add_module(EVIL, nn.Linear(8, 8))
        self.add_module("ok", nn.Linear(8, 8))


def test_html_like_module_names_round_trip_as_text():
    model = _Evil()
    studio = jp.studio(model)
    assert EVIL in [g["role"] for g in studio.groups]
    send(studio, kind="pick", role=EVIL)
    assert cell_plan(studio) == studio.plan and cell_plan(studio).target_modules == [EVIL]
    assert studio.numbers["trainable"] == applied_count(studio)[0]
