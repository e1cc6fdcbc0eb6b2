"""Plan: YAML in and out (exact round trip), options checked against peft's own dataclasses."""

import pytest

import jupyter_peft as jp

MAIN_METHODS = ["lora", "dora", "qlora", "ia3", "prefix_tuning", "prompt_tuning", "p_tuning", "loha", "lokr",
                "adalora", "vera", "oft"]

ROUND_TRIPS = [
    "method: lora\nr: 16\nlora_alpha: 32\nlora_dropout: 0.05\ntarget_modules: [q_proj, v_proj]\n",
    "method: lora\nr: 8\ntarget_modules: all-linear\nranks: {self_attn.q_proj: 32, mlp.down_proj: 4}\n"
    "alphas: {self_attn.q_proj: 64}\n",
    "method: dora\nr: 4\ntarget_modules: '.*\\.(q|v)_proj'\n",
    "method: qlora\nr: 16\ntarget_modules: all-linear\nbnb_4bit_quant_type: nf4\nbnb_4bit_use_double_quant: true\n"
    "bnb_4bit_compute_dtype: bfloat16\n",
    "method: lora\nquantization: 8bit\ntarget_modules: [q_proj]\n",
    "method: ia3\ntarget_modules: [k_proj, v_proj, down_proj]\nfeedforward_modules: [down_proj]\n",
    "method: prompt_tuning\nnum_virtual_tokens: 8\n",
    "method: prefix_tuning\nnum_virtual_tokens: 8\n",
    "method: p_tuning\nnum_virtual_tokens: 8\nencoder_hidden_size: 32\nencoder_reparameterization_type: LSTM\n",
    "method: loha\nr: 4\nalpha: 8\ntarget_modules: [q_proj]\n",
    "method: lokr\nr: 4\ntarget_modules: [q_proj]\n",
    "method: adalora\ninit_r: 12\ntarget_r: 4\ntotal_step: 100\ntarget_modules: [q_proj, v_proj]\n",
    "method: vera\nr: 32\ntarget_modules: [q_proj, v_proj]\n",
    "method: oft\nr: 0\noft_block_size: 8\ntarget_modules: [q_proj]\n",
    "method: lora\nr: 8\nadapter_name: second\ntarget_modules: [q_proj]\n",
    "method: lora\nbase: ./my-model\n",
    "method: lora\ntarget_modules: [q_proj]\n"
    "train: {trainer: sft, dataset: ds, max_steps: 200, learning_rate: 2e-4, per_device_train_batch_size: 4}\n",
    "method: lora\ntrain:\n  trainer: dpo\n  dataset: prefs\n  beta: 0.1\n  eval_dataset: held_out\n",
]


@pytest.mark.parametrize("text", ROUND_TRIPS)
def test_yaml_round_trip_is_exact(text):
    plan = jp.Plan.from_yaml(text)
    again = jp.Plan.from_yaml(plan.to_yaml())
    assert again == plan
    assert jp.Plan.from_dict(plan.to_dict()) == plan
    assert again.to_yaml() == plan.to_yaml()


def test_reads_the_keys_it_was_given():
    plan = jp.Plan.from_yaml(ROUND_TRIPS[1])
    assert plan.method == "lora" and plan.options == {"r": 8}
    assert plan.target_modules == "all-linear"
    assert plan.ranks == {"self_attn.q_proj": 32, "mlp.down_proj": 4}
    assert plan.alphas == {"self_attn.q_proj": 64.0}
    train = jp.Plan.from_yaml(ROUND_TRIPS[16]).train
    assert train == {"trainer": "sft", "dataset": "ds", "max_steps": 200, "learning_rate": 2e-4,
                     "per_device_train_batch_size": 4}


@pytest.mark.parametrize("method", MAIN_METHODS)
def test_every_main_method_builds_peft_config(method):
    import peft

    options = {"adalora": {"total_step": 10}}.get(method, {})
    config = jp.Plan(method=method, options=options).peft_config(task_type="CAUSAL_LM")
    assert isinstance(config, peft.PeftConfig)
    assert config.peft_type.value.lower() == {"dora": "lora", "qlora": "lora"}.get(method, method)
    if method == "dora":
        assert config.use_dora is True
    if method == "qlora":
        assert jp.Plan(method="qlora").effective_quantization == "4bit"


def test_every_peft_method_is_a_method():
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    names = jp.methods.names()
    for peft_type in PEFT_TYPE_TO_CONFIG_MAPPING:
        assert peft_type.value.lower() in names


def test_options_come_from_peft_dataclass_fields():
    import dataclasses

    from peft import LoraConfig

    options = jp.methods.get("lora").options
    fields = {f.name: f for f in dataclasses.fields(LoraConfig)}
    assert options["r"].default == fields["r"].default
    assert options["lora_dropout"].help == " ".join(fields["lora_dropout"].metadata["help"].split())
    assert options["bias"].choices == ("none", "all", "lora_only")
    assert "target_modules" not in options and "rank_pattern" not in options
    form = options["init_lora_weights"].to_json()
    assert form["widget"] == "choice" and True in form["choices"] and "pissa" in form["choices"]


# (yaml, line, key, words the message must contain)
BAD = [
    ("method: lorra\n", 1, "method", ["unknown method 'lorra'", "did you mean 'lora'"]),
    ("method: lora\nr: 0\n", 2, "r", ["0 is not valid", "positive integer"]),
    ("method: lora\nr: -3\n", 2, "r", ["-3 is not valid"]),
    ("method: lora\nr: 1.5\n", 2, "r", ["1.5 is not valid", "expected int"]),
    ("method: lora\nr: sixteen\n", 2, "r", ["'sixteen' is not valid"]),
    ("method: lora\nrr: 16\n", 2, "rr", ["unknown key 'rr'", "did you mean 'r'"]),
    ("method: lora\nlora_alpah: 16\n", 2, "lora_alpah", ["did you mean 'lora_alpha'"]),
    ("method: lora\nbias: some\n", 2, "bias", ["'some' is not valid", "'lora_only'"]),
    ("method: lora\nlora_dropout: 1.5\n", 2, "lora_dropout", ["dropout is in [0, 1)"]),
    ("method: lora\nuse_dora: yes please\n", 2, "use_dora", ["expected bool"]),
    ("method: lora\ntarget_modules: 12\n", 2, "target_modules", ["expected a list of module names"]),
    ("method: lora\ntarget_modules: '(q_proj'\n", 2, "target_modules", ["not a valid regular expression"]),
    ("method: prompt_tuning\ntarget_modules: [q_proj]\n", 2, "target_modules", ["does not adapt modules"]),
    ("method: lora\nranks: {q_proj: 0}\n", 2, "ranks.q_proj", ["positive integer"]),
    ("method: lora\nranks: [q_proj]\n", 2, "ranks", ["maps groups or patterns"]),
    ("method: ia3\nranks: {q_proj: 4}\n", 2, "ranks", ["no per-module ranks"]),
    ("method: lora\nquantization: 3bit\n", 2, "quantization", ["unknown quantization '3bit'"]),
    ("method: qlora\nquantization: 8bit\n", 2, "quantization", ["means LoRA on a 4bit base"]),
    ("method: lora\nbnb_4bit_quant_type: nf4\n", 2, "bnb_4bit_quant_type", ["does not quantize"]),
    ("method: lora\nquantization: 4bit\nbnb_4bit_quant_type: nf5\n", 3, "bnb_4bit_quant_type", ["'nf5'", "nf4"]),
    ("method: lora\nrank_pattern: {q: 3}\n", 2, "rank_pattern", ["use `ranks:`"]),
    ("method: lora\ntrain: {trainer: sftt}\n", 2, "train.trainer", ["unknown trainer 'sftt'", "did you mean 'sft'"]),
    ("method: lora\ntrain:\n  trainer: sft\n  max_stepz: 10\n", 4, "train.max_stepz", ["did you mean 'max_steps'"]),
    ("method: lora\ntrain:\n  max_steps: ten\n", 3, "train.max_steps", ["'ten' is not valid", "expected int"]),
    ("method: lora\ntrain: [sft]\n", 2, "train", ["train is a mapping"]),
    ("method: adalora\ntarget_modules: [q]\n", None, None, ["total_step"]),
    ("method: lora\n  r: 3\n", 2, None, ["YAML syntax error"]),
    ("[lora, 16]\n", 1, None, ["a plan is a mapping"]),
    ("", 1, None, ["the plan is empty"]),
    ("# just a comment\n", 1, None, ["the plan is empty"]),
]


@pytest.mark.parametrize("text,line,key,words", BAD, ids=[b[0][:40] for b in BAD])
def test_bad_yaml_names_line_key_and_what_is_valid(text, line, key, words):
    with pytest.raises(jp.PlanError) as caught:
        jp.Plan.from_yaml(text)
    err = caught.value
    assert err.line == line
    assert err.key == key
    for word in words:
        assert word in str(err)


def test_float_exponents_without_a_dot_are_floats():
    plan = jp.Plan.from_yaml("train: {learning_rate: 2e-4, weight_decay: 1E-2}\n")
    assert plan.train["learning_rate"] == pytest.approx(2e-4)
    assert plan.train["weight_decay"] == pytest.approx(1e-2)


def test_constructing_a_plan_in_python_checks_it_too():
    with pytest.raises(jp.PlanError, match="r must be a positive integer"):
        jp.Plan(method="lora", options={"r": 0})
    with pytest.raises(jp.PlanError, match="unknown method"):
        jp.Plan(method="lorax")
    plan = jp.Plan(method="lora", options={"r": 4}, target_modules=["q_proj"])
    assert plan.replace(options={"r": 8}).rank == 8


def test_gpu_defaults_leave_checkpointing_off_where_peft_cannot_checkpoint():
    from jupyter_peft.plan.train_config import defaults

    names = defaults("sft", True)
    key = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    assert defaults("sft", on_gpu=True, method="lora")[key] is True
    assert defaults("sft", on_gpu=True, method="prefix_tuning")[key] is False
    assert defaults("sft", on_gpu=False, method="lora")[key] is False
