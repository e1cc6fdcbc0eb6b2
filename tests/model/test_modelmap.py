"""ModelMap: groups by role on every architecture family, and `match` agrees with what peft adapts."""

import copy

import pytest
import tiny
import torch

import jupyter_peft as jp


def adapted_paths(model, targets, **config):
    """The module paths peft really wraps for `targets` (ground truth for `match`)."""
    from peft import LoraConfig, get_peft_model
    from peft.tuners.tuners_utils import BaseTunerLayer

    from jupyter_peft.model.summary import adapted_path

    mm = jp.inspect(model)
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(target_modules=targets, r=2,
                                                                 task_type=mm.task_type, **config))
    base = peft_model.get_base_model()
    return sorted(adapted_path(p, m) for p, m in base.named_modules() if isinstance(m, BaseTunerLayer))


# arch -> target values to check (names, a regex, all-linear)
TARGETS = {
    "llama": [["q_proj", "v_proj"], ".*\\.mlp\\..*_proj", "all-linear", ["self_attn.o_proj"]],
    "mistral": [["k_proj"], "all-linear"],
    "qwen2": [["q_proj", "down_proj"], "all-linear"],
    "gpt2": [["c_attn"], ["attn.c_proj"], "all-linear"],
    "gpt_neox": [["query_key_value"], "all-linear"],
    "falcon": [["query_key_value", "dense"], "all-linear"],
    "phi3": [["qkv_proj", "gate_up_proj"], "all-linear"],
    "mixtral": [["q_proj", "v_proj"], "all-linear"],
    "t5": [["q", "v"], ".*decoder.*\\.(q|v)", "all-linear"],
    "bart": [["q_proj", "v_proj"], ".*encoder\\..*fc1", "all-linear"],
    "bert": [["query", "value"], "all-linear"],
    "vit": [["q_proj", "v_proj"], ".*mlp\\.fc1", "all-linear"],
}


@pytest.mark.parametrize("arch", tiny.ARCHS)
def test_match_is_exactly_what_peft_adapts(arch):
    model = tiny.build(arch)
    mm = jp.inspect(model)
    for targets in TARGETS[arch]:
        matched = sorted(mm.match(targets))
        assert matched, (arch, targets)
        assert matched == adapted_paths(model, targets), (arch, targets)


@pytest.mark.parametrize("arch", tiny.ARCHS)
def test_groups_cover_every_parameter_once_with_unique_roles(arch):
    model = tiny.build(arch)
    mm = jp.inspect(model)
    roles = [g.role for g in mm.groups]
    assert len(roles) == len(set(roles))
    assert mm.total_params == sum(p.numel() for p in model.parameters())
    # every parameter lives in exactly one group; tied weights (lm_head = embeddings) count once
    assert sum(g.params for g in mm.groups if not g.shared) == mm.total_params
    for g in mm.groups:
        assert g.count == len(g.paths) == len(g.layers) > 0
        assert all(mm.group_of(p) is g for p in g.paths) or g.parameter is not None
        for p in g.paths:
            assert __import__("re").fullmatch(g.pattern, p) or g.parameter is not None


def test_llama_groups_read_like_the_model():
    mm = jp.inspect(tiny.build("llama"))
    q = mm["self_attn.q_proj"]
    assert (q.name, q.kind, q.count, q.shape, q.dtype, q.section) == ("q_proj", "Linear", 2, (64, 64), "float32",
                                                                       "language")
    assert q.layers == [0, 1] and q.params == 2 * 64 * 64 and q.linear
    assert mm["self_attn.k_proj"].shape == (32, 64)  # grouped-query attention
    assert mm["lm_head"].section == "head" and not mm["lm_head"].linear
    assert mm["model.embed_tokens"].section == "embedding"
    assert "lora" in q.methods and "ia3" in q.methods
    assert mm.task_type == "CAUSAL_LM"


def test_gpt2_conv1d_shapes_are_out_by_in():
    mm = jp.inspect(tiny.build("gpt2"))
    attn = mm["attn.c_attn"]
    assert attn.kind == "Conv1D" and attn.shape == (3 * 64, 64) and attn.linear
    assert "lora" in attn.methods and "lokr" not in attn.methods  # peft's LoKr has no Conv1D layer


def test_mixtral_experts_are_parameter_groups():
    mm = jp.inspect(tiny.build("mixtral"))
    experts = [g for g in mm.groups if g.parameter]
    assert {g.parameter for g in experts} == {"gate_up_proj", "down_proj"}
    assert experts[0].shape[0] == 4 and experts[0].section == "experts"
    assert mm["mlp.gate"].kind == "MixtralTopKRouter"  # routers are not nn.Linear
    # peft adapts the fused experts for all-linear (transformers 5 MoE conversion); match says so
    assert "model.layers.0.mlp.experts.gate_up_proj" in mm.match("all-linear")
    assert mm.match(["q_proj"]) == ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"]


def test_encoder_decoder_roles_tell_encoder_from_decoder():
    mm = jp.inspect(tiny.build("t5"))
    assert "encoder.block.*.layer.*.SelfAttention.q" in mm.roles
    assert "decoder.block.*.layer.*.SelfAttention.q" in mm.roles
    assert "EncDecAttention.q" in mm.roles
    assert mm.task_type == "SEQ_2_SEQ_LM"


def test_classifier_heads():
    mm = jp.inspect(tiny.build("bert"))
    assert mm.task_type == "SEQ_CLS" and mm["classifier"].section == "head"
    assert "classifier" not in mm.match("all-linear")  # peft excludes the SEQ_CLS head


def test_targets_for_gives_the_simplest_exact_value():
    mm = jp.inspect(tiny.build("llama"))
    q = mm["self_attn.q_proj"].paths
    v = mm["self_attn.v_proj"].paths
    assert mm.targets_for(q + v) == ["q_proj", "v_proj"]
    one_layer = [q[1]]
    pattern = mm.targets_for(one_layer)
    assert isinstance(pattern, str) and mm.match(pattern) == one_layer
    mixed = q + [v[0]]
    assert sorted(mm.match(mm.targets_for(mixed))) == sorted(mixed)
    with pytest.raises(jp.PlanError, match="no modules selected"):
        mm.targets_for([])


def test_targets_for_uses_regex_when_names_would_hit_a_second_tower():
    mm = jp.inspect(tiny.build("t5"))
    enc_q = mm["encoder.block.*.layer.*.SelfAttention.q"].paths
    value = mm.targets_for(enc_q)
    assert sorted(mm.match(value)) == sorted(enc_q)


def test_meta_model_inspects_without_memory():
    model = tiny.build("llama", device="meta")
    mm = jp.inspect(model)
    assert mm["mlp.down_proj"].shape == (64, 128)
    assert sorted(mm.match("all-linear")) == sorted(p for g in mm.groups if g.linear for p in g.paths)


@pytest.fixture(scope="module")
def saved_llama(tmp_path_factory):
    return tiny.save("llama", tmp_path_factory.mktemp("llama"))


@pytest.mark.parametrize("bits", [4, 8])
def test_bitsandbytes_layers_show_storage_and_are_targetable(saved_llama, bits):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4") if bits == 4 else \
        BitsAndBytesConfig(load_in_8bit=True)
    model = AutoModelForCausalLM.from_pretrained(saved_llama, quantization_config=quant, device_map="cpu")
    mm = jp.inspect(model)
    q = mm["self_attn.q_proj"]
    assert q.kind == ("Linear4bit" if bits == 4 else "Linear8bitLt")
    assert q.dtype == ("nf4" if bits == 4 else "int8")
    assert q.shape == (64, 64) and q.params == 2 * 64 * 64
    assert q.nbytes < q.params * 2  # packed: well under 16-bit storage
    assert q.linear and "lora" in q.methods
    assert sorted(mm.match(["q_proj", "v_proj"])) == adapted_paths(model, ["q_proj", "v_proj"])
    assert sorted(mm.match("all-linear")) == adapted_paths(model, "all-linear")


def test_inspecting_a_peft_model_sees_the_base_layers():
    model = tiny.build("llama")
    peft_model = jp.apply("target_modules: [q_proj]\nr: 2", model)
    mm = jp.inspect(peft_model)
    q = mm["self_attn.q_proj"]
    assert q.adapted and q.kind == "Linear" and q.paths == ["model.layers.0.self_attn.q_proj",
                                                             "model.layers.1.self_attn.q_proj"]
    assert not mm["self_attn.v_proj"].adapted
    assert not any("lora_A" in g.role or "base_layer" in g.role for g in mm.groups)


def test_rejects_what_is_not_a_model():
    with pytest.raises(jp.PlanError, match="expected a torch model"):
        jp.inspect({"not": "a model"})
    assert isinstance(torch.nn.Linear(2, 2), torch.nn.Module)
