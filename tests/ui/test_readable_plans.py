"""The plans the studio writes are the shortest readable form of its ticks: module names, then
names with `layers_to_transform`, then a short regex per layer choice; every form selects
exactly the ticks (peft's own matching), passes the plan's pattern checks, and reads back as
the same Plan (`Plan.from_yaml(written) == studio.plan`)."""

from __future__ import annotations

import pytest
import tiny

import jupyter_peft as jp
from jupyter_peft.plan.plan import check_pattern
from jupyter_peft.ui.studio.draft import Draft


def written(studio) -> jp.Plan:
    head, _, body = studio.cell.partition("\n")
    assert head.startswith("%%peft ")
    return jp.Plan.from_yaml(body)


def ticked_paths(studio) -> set[str]:
    mm = jp.inspect(studio.model)
    return {mm[role].paths[i] for role, members in studio.picked.items() for i in members}


def send(studio, **msg):
    studio._on_msg(studio, msg, None)


@pytest.fixture
def demo():
    model, _ = jp.demo.load()
    return model


def check_round_trip(studio):
    plan = written(studio)
    assert plan == studio.plan
    mm = jp.inspect(studio.model)
    assert set(mm.match(plan)) == ticked_paths(studio)
    if isinstance(plan.target_modules, str):
        check_pattern(plan.target_modules, "target_modules")
    again = Draft.from_plan(mm, plan)
    assert again.plan() == plan and {k: sorted(v) for k, v in again.picked.items()} == studio.picked


def test_unticking_one_layer_of_every_group_writes_names_and_layers(demo):
    studio = jp.studio(demo)
    send(studio, kind="preset", name="all-linear")
    for group in studio.groups:
        if group["linear"] and group["count"] > 1:
            send(studio, kind="pick", role=group["role"], members=[0], on=False)
    plan = written(studio)
    assert plan.target_modules == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert plan.options["layers_to_transform"] == [1, 2, 3, 4, 5]
    assert "layers_to_transform: [1, 2, 3, 4, 5]" in studio.cell
    check_round_trip(studio)
    # ticking layer 0 of one group back: no common layers any more, the form follows the ticks
    send(studio, kind="pick", role="self_attn.q_proj", members=[0], on=True)
    assert "layers_to_transform" not in written(studio).options
    check_round_trip(studio)


def test_unticking_one_layer_of_one_group_writes_a_short_regex(demo):
    studio = jp.studio(demo)
    send(studio, kind="preset", name="all-linear")
    send(studio, kind="pick", role="mlp.down_proj", members=[0], on=False)
    regex = written(studio).target_modules
    assert regex == (r"model\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj))"
                     r"|model\.layers\.[1-5]\.mlp\.down_proj")
    assert len(regex) < 140  # not one alternative per path (the old form: 700 characters)
    check_round_trip(studio)


@pytest.mark.parametrize("members", [[2], [0, 2, 4], [1, 2, 3], [5]])
def test_some_layers_of_some_groups(demo, members):
    studio = jp.studio(demo)  # attention preset
    send(studio, kind="pick", role="self_attn.v_proj", on=False)
    send(studio, kind="pick", role="mlp.up_proj", members=members, on=True)
    check_round_trip(studio)
    assert len(studio.cell) < 400


def test_alpha_and_rank_read_as_typed(demo):
    studio = jp.studio(demo)
    send(studio, kind="rank", role="self_attn.q_proj", value="32")
    assert "ranks: {self_attn.q_proj: 32}" in studio.cell
    check_round_trip(studio)


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


def test_a_vision_language_model_gets_a_regex_that_passes_the_plan_checks():
    studio = jp.studio(_llava())  # names would also hit the vision tower: a regex
    send(studio, kind="preset", name="attention")
    assert isinstance(written(studio).target_modules, str)
    check_round_trip(studio)


def test_targets_for_forms():
    mm = jp.inspect(tiny.build("llama"))
    q, v = mm["self_attn.q_proj"].paths, mm["self_attn.v_proj"].paths
    assert mm.targets_for(q + v) == ["q_proj", "v_proj"]
    assert mm.targets_for([q[1]]) == r"model\.layers\.1\.self_attn\.q_proj"
    assert mm.targets_for(q + [v[0]]) == r"model\.layers\.\d+\.self_attn\.q_proj|model\.layers\.0\.self_attn\.v_proj"
