"""apply: every main method end to end, re-applying replaces, named adapters add, failures undo."""

import pytest
import tiny
import torch

import jupyter_peft as jp

# method -> plan text that should work on the tiny Llama
PLANS = {
    "lora": "method: lora\nr: 4\ntarget_modules: [q_proj, v_proj]\n",
    "dora": "method: dora\nr: 4\ntarget_modules: [q_proj, v_proj]\n",
    "ia3": "method: ia3\ntarget_modules: [k_proj, v_proj, down_proj]\nfeedforward_modules: [down_proj]\n",
    "prefix_tuning": "method: prefix_tuning\nnum_virtual_tokens: 4\n",
    "prompt_tuning": "method: prompt_tuning\nnum_virtual_tokens: 4\n",
    "p_tuning": "method: p_tuning\nnum_virtual_tokens: 4\nencoder_hidden_size: 16\n",
    "loha": "method: loha\nr: 4\ntarget_modules: [q_proj, v_proj]\n",
    "lokr": "method: lokr\nr: 4\ntarget_modules: [q_proj, v_proj]\n",
    "adalora": "method: adalora\ninit_r: 6\ntarget_r: 2\ntotal_step: 20\ntarget_modules: [q_proj, v_proj]\n",
    "vera": "method: vera\nr: 8\ntarget_modules: [q_proj, o_proj]\n",
    "oft": "method: oft\nr: 0\noft_block_size: 8\ntarget_modules: [q_proj, v_proj]\n",
    "lora-all-linear": "method: lora\nr: 2\ntarget_modules: all-linear\nranks: {mlp.down_proj: 6}\n",
}


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def one_step(peft_model):
    """Forward and backward on a real batch; returns the loss."""
    ids = torch.randint(0, 200, (2, 12))
    out = peft_model(input_ids=ids, labels=ids)
    out.loss.backward()
    return out.loss


@pytest.mark.parametrize("name", list(PLANS))
def test_method_applies_trains_and_counts_like_peft(name):
    model = tiny.build("llama")
    frozen_before = {k: v.clone() for k, v in model.state_dict().items() if "embed" in k}
    peft_model = jp.apply(PLANS[name], model)
    summary = jp.summarize(peft_model)
    assert (summary.trainable, summary.total) == tuple(peft_model.get_nb_trainable_parameters())
    assert summary.trainable == trainable(peft_model) > 0
    assert sum(r.added for r in summary.rows) + sum(summary.other.values()) == summary.trainable
    loss = one_step(peft_model)
    assert torch.isfinite(loss)
    grads = [p.grad for p in peft_model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in peft_model.parameters() if not p.requires_grad)
    for k, v in frozen_before.items():
        assert torch.equal(model.state_dict()[k], v)


def test_ranks_by_group_role_reach_peft():
    peft_model = jp.apply(PLANS["lora-all-linear"], tiny.build("llama"))
    layer = peft_model.base_model.model.model.layers[0]
    assert layer.mlp.down_proj.r["default"] == 6
    assert layer.mlp.up_proj.r["default"] == 2
    rows = {r.role: r for r in jp.summarize(peft_model).rows}
    assert rows["mlp.down_proj"].rank == "6" and rows["mlp.up_proj"].rank == "2"


def test_ranks_for_roles_with_layer_stars_on_an_encoder_decoder():
    model = tiny.build("t5")
    plan = "target_modules: [q, v]\nr: 2\nranks: {'decoder.block.*.layer.*.SelfAttention.q': 8}\n"
    peft_model = jp.apply(plan, model)
    dec = peft_model.get_base_model().decoder.block[1].layer[0].SelfAttention
    enc = peft_model.get_base_model().encoder.block[1].layer[0].SelfAttention
    assert dec.q.r["default"] == 8 and dec.v.r["default"] == 2 and enc.q.r["default"] == 2


def test_reapplying_replaces_instead_of_stacking():
    model = tiny.build("llama")
    first = jp.apply(PLANS["lora"], model)
    again = jp.apply(PLANS["lora"], model)  # same plan on the base: same count, no nesting
    assert trainable(again) == trainable(first)
    fresh = jp.apply(PLANS["lora-all-linear"], tiny.build("llama"))
    other = jp.apply(PLANS["lora-all-linear"], again)  # a new plan on the PeftModel replaces it
    assert trainable(other) == trainable(fresh)
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    assert not isinstance(other.get_base_model(), PeftModel)
    for _, module in other.named_modules():
        if isinstance(module, BaseTunerLayer):
            assert not isinstance(module.get_base_layer(), BaseTunerLayer)
    ia3 = jp.apply(PLANS["ia3"], other)  # and a different method replaces it too
    assert jp.summarize(ia3).method == "ia3" and trainable(ia3) == trainable(
        jp.apply(PLANS["ia3"], tiny.build("llama"))
    )
    prompt = jp.apply(PLANS["prompt_tuning"], ia3)  # from module adapters to virtual tokens
    assert not any(isinstance(m, BaseTunerLayer) for m in prompt.get_base_model().modules())
    back = jp.apply(PLANS["lora"], prompt)
    assert trainable(back) == trainable(first)


def test_named_adapter_is_added_beside_the_existing_one():
    model = tiny.build("llama")
    peft_model = jp.apply(PLANS["lora"], model)
    both = jp.apply(PLANS["lora"] + "adapter_name: second\n", model)
    assert both is peft_model
    assert set(both.peft_config) == {"default", "second"}
    assert both.active_adapter == "second"
    again = jp.apply(PLANS["lora"].replace("r: 4", "r: 8") + "adapter_name: second\n", both)
    assert set(again.peft_config) == {"default", "second"}
    assert again.base_model.model.model.layers[0].self_attn.q_proj.r["second"] == 8
    with pytest.raises(jp.PlanError, match="one method per model"):
        jp.apply(PLANS["ia3"] + "adapter_name: third\n", again)


def test_a_failure_inside_peft_leaves_the_model_and_its_adapter_as_they_were():
    model = tiny.build("llama")
    first = jp.apply("target_modules: [q_proj]\nr: 2\n", model)
    before = [(n, type(m).__name__) for n, m in model.named_modules()]
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    # only peft finds out that this model has 2 layers, after it started changing the model
    with pytest.raises(jp.PlanError, match="model is unchanged"):
        jp.apply("target_modules: [v_proj]\nr: 2\nlayer_replication: [[0, 5]]\n", model)
    assert [(n, type(m).__name__) for n, m in model.named_modules()] == before
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads
    assert jp.summarize(first).trainable == 2 * 2 * (64 + 64)  # the old adapter still works
    assert torch.isfinite(one_step(first))


def test_moe_router_and_experts_are_adapted_through_parameters():
    model = tiny.build("mixtral")
    peft_model = jp.apply("target_modules: [gate]\nr: 2\n", model)  # peft maps `gate` to gate.weight
    summary = jp.summarize(peft_model)
    assert [r.role for r in summary.rows] == ["mlp.gate"]
    assert summary.trainable == tuple(peft_model.get_nb_trainable_parameters())[0]
    experts = jp.apply("target_modules: all-linear\nr: 2\n", model)
    roles = {r.role for r in jp.summarize(experts).rows}
    assert {"mlp.experts.gate_up_proj", "mlp.experts.down_proj", "self_attn.q_proj"} <= roles


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neox", "falcon", "phi3", "mixtral", "bart", "bert", "vit"])
def test_all_linear_lora_on_every_family_counts_like_peft(arch):
    model = tiny.build(arch)
    model_map = jp.inspect(model)
    expected = set(model_map.match("all-linear"))
    peft_model = jp.apply("target_modules: all-linear\nr: 2\n", model)
    summary = jp.summarize(peft_model)
    assert (summary.trainable, summary.total) == tuple(peft_model.get_nb_trainable_parameters())
    targeted = {p for r in summary.rows for p in model_map[r.role].paths}
    if arch == "mixtral":  # the router's weight is adapted as a parameter: its path names the module
        expected = {p.removesuffix(".weight") if ".mlp.gate." in p else p for p in expected}
    assert targeted == expected


# (plan, model arch, words in the error) for mistakes only a model can reveal
BAD = [
    ("target_modules: [qproj]\n", "llama", ["matches no module", "q_proj"]),
    ("target_modules: 'q_proj'\n", "llama", ["a string is a regex", "'.*\\.q_proj'"]),
    ("target_modules: [mlp]\n", "llama", ["holds layers", "mlp.gate_proj"]),
    ("method: lokr\ntarget_modules: [embed_tokens]\n", "llama", ["cannot adapt Embedding"]),
    ("method: vera\ntarget_modules: [c_attn]\n", "gpt2", []),
    (
        "target_modules: [q_proj]\nranks: {self_attn.v_proj: 8}\n",
        "llama",
        ["selects none of the targeted", "self_attn.q_proj"],
    ),
    ("method: qlora\ntarget_modules: [q_proj]\n", "llama", ["asks for a 4bit base", "base:"]),
    ("method: lora\nquantization: 8bit\ntarget_modules: [q_proj]\n", "llama", ["asks for a 8bit base"]),
    ("method: lora\n", "vit", ["no default targets"]),
]


@pytest.mark.parametrize("text,arch,words", BAD, ids=[b[0][:40] for b in BAD])
def test_model_dependent_mistakes_change_nothing(text, arch, words):
    model = tiny.build(arch)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    kinds = [type(m).__name__ for m in model.modules()]
    try:
        jp.apply(text, model)
    except jp.PlanError as err:
        for word in words:
            assert word in str(err), str(err)
    else:
        assert not words, "expected a PlanError"
        return
    assert [type(m).__name__ for m in model.modules()] == kinds
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_default_targets_come_from_peft_per_architecture():
    peft_model = jp.apply("method: lora\nr: 2\n", tiny.build("llama"))
    assert {r.role for r in jp.summarize(peft_model).rows} == {"self_attn.q_proj", "self_attn.v_proj"}
