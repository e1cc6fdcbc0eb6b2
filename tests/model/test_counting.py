"""counting.py: the studio's numbers equal peft's own count after `jp.apply`, exactly.

Table-driven over architectures and methods: check the plan, count it without touching the
model, apply it for real, and compare with `PeftModel.get_nb_trainable_parameters()` and
with the bytes of the parameters peft added.
"""

from __future__ import annotations

import pytest
import tiny

import jupyter_peft as jp
from jupyter_peft.model.adapt import check
from jupyter_peft.model.counting import ParamCounter, meta_twin

CASES = [
    ("llama", "method: lora\nr: 8\ntarget_modules: [q_proj, v_proj]"),
    ("llama", "method: lora\nr: 8\ntarget_modules: all-linear\n"
              "ranks: {self_attn.q_proj: 4}\nalphas: {up_proj: 3}"),
    ("llama", "method: dora\nr: 4\ntarget_modules: [q_proj, down_proj]"),
    ("llama", "method: lora\nr: 4\nbias: all\ntarget_modules: [q_proj]"),
    ("llama", "method: lora\nr: 4\nbias: lora_only\ntarget_modules: [q_proj]"),
    ("llama", "method: lora\nr: 4\nmodules_to_save: [lm_head]\ntarget_modules: [q_proj]"),
    ("llama", "method: lora\nr: 4\ntrainable_token_indices: [1, 2, 3]\ntarget_modules: [q_proj]"),
    ("llama", "method: ia3\ntarget_modules: [k_proj, down_proj]\nfeedforward_modules: [down_proj]"),
    ("llama", "method: ia3"),  # peft fills targets and feedforward_modules from the model type
    ("llama", "method: loha\nr: 4\ntarget_modules: [q_proj, v_proj]"),
    ("llama", "method: lokr\nr: 4\ntarget_modules: [q_proj, v_proj]"),
    ("llama", "method: vera\nr: 4\ntarget_modules: [q_proj, o_proj]"),
    ("llama", "method: adalora\nr: 4\ntotal_step: 10\ntarget_modules: [q_proj, v_proj]"),
    ("llama", "method: vblora\nr: 4\nvector_length: 32\nnum_vectors: 16\ntarget_modules: [q_proj, v_proj]"),
    ("llama", "method: prompt_tuning\nnum_virtual_tokens: 5"),
    ("llama", "method: prefix_tuning\nnum_virtual_tokens: 5"),
    ("llama", "method: p_tuning\nnum_virtual_tokens: 5\nencoder_hidden_size: 32"),
    ("gpt2", "method: lora\nr: 8\ntarget_modules: all-linear"),
    ("t5", "method: lora\nr: 8\ntarget_modules: [q, v, wo]"),
    ("t5", "method: prompt_tuning\nnum_virtual_tokens: 5"),
    ("bert", "method: lora\nr: 8\ntarget_modules: [query, value]"),  # SEQ_CLS: the classifier is saved too
    ("bert", "method: prompt_tuning\nnum_virtual_tokens: 5"),
    ("mixtral", "method: lora\nr: 8\ntarget_modules: [q_proj, v_proj]"),
    (
        "mixtral",
        "method: lora\nr: 8\ntarget_modules: [q_proj]\n"
        "target_parameters: [mlp.experts.gate_up_proj, model.layers.1.mlp.experts.down_proj]",
    ),
    ("mixtral", "method: lora\nr: 8\ntarget_modules: [q_proj, w1, w3, gate]"),  # peft's v4 -> v5 renaming
    ("mixtral", "method: lora\nr: 8\ntarget_modules: 'model\\.layers\\.0\\.self_attn\\.q_proj'"),
    ("falcon", "method: lora\nr: 8\ntarget_modules: all-linear"),
]


def _added_bytes(peft_model, before: set[int]) -> int:
    return sum(p.numel() * p.element_size() for p in peft_model.parameters() if id(p) not in before)


@pytest.mark.parametrize("arch,text", CASES, ids=[f"{a}-{i}" for i, (a, _) in enumerate(CASES)])
def test_count_equals_peft_after_apply(arch, text):
    model = tiny.build(arch)
    plan = jp.Plan.from_yaml(text)
    checked = check(plan, model)
    count = ParamCounter(checked.model_map).count(checked.config, checked.targets)
    before = {id(p) for p in model.parameters()}
    peft_model = jp.apply(plan, model)
    assert (count.trainable, count.total) == peft_model.get_nb_trainable_parameters()
    assert count.added_bytes == _added_bytes(peft_model, before)
    if "vblora" not in text:  # every VB-LoRA layer holds the shared vector bank: summary counts it per group
        rows = {row.role: row.added for row in jp.summarize(peft_model).rows}
        both = set(rows) & set(count.per_group)
        assert {r: rows[r] for r in both} == {r: count.per_group[r].trainable for r in both}


def test_count_on_a_4bit_base(tmp_path):
    pytest.importorskip("bitsandbytes")
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    tiny.save("llama", tmp_path)
    model = AutoModelForCausalLM.from_pretrained(
        tmp_path, quantization_config=BitsAndBytesConfig(load_in_4bit=True), device_map="cpu"
    )
    plan = jp.Plan.from_yaml("method: qlora\nr: 8\ntarget_modules: all-linear")
    checked = check(plan, model)
    count = ParamCounter(checked.model_map).count(checked.config, checked.targets)
    assert (count.trainable, count.total) == jp.apply(plan, model).get_nb_trainable_parameters()


def test_counting_leaves_the_model_alone():
    model = tiny.build("bert")
    modules = dict(model.named_modules())
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    checked = check(jp.Plan.from_yaml("method: lora\nr: 4\nbias: all\ntarget_modules: [query]"), model)
    ParamCounter(checked.model_map).count(checked.config, checked.targets)
    assert dict(model.named_modules()) == modules
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads
    assert not model._forward_hooks and not hasattr(model, "peft_config")


def test_meta_twin_keeps_structure_and_tied_weights():
    model = tiny.build("llama", tie_word_embeddings=True)
    twin = meta_twin(model)
    assert [n for n, _ in twin.named_modules()] == [n for n, _ in model.named_modules()]
    assert all(p.is_meta for p in twin.parameters())
    assert twin.lm_head.weight is twin.model.embed_tokens.weight
    assert sum(p.numel() for p in twin.parameters()) == sum(p.numel() for p in model.parameters())
