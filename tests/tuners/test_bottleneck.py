"""Bottleneck adapters (`method: bottleneck`), a peft tuner of our own, on tiny real models.

The adapter is a no-op at init on Llama, GPT-2, BERT and T5 (max abs difference 0), every
placement; the trainable count is peft's own and the formula's; a short SFT run lowers the loss;
an adapter saved here loads in a fresh process through peft alone after `import jupyter_peft`;
two named adapters are compared side by side; a 4-bit base trains with one on CPU; merging
refuses; the exported script registers the method and trains.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap

import pytest
import runs
import tiny
import torch

import jupyter_peft as jp
from jupyter_peft.model.adapt import check
from jupyter_peft.model.counting import ParamCounter

ARCHS = ["llama", "gpt2", "bert", "t5"]
PLACEMENTS = ["houlsby", "pfeiffer", "parallel"]
# what each placement adapts by default (the issue's table): module paths end like these
SITES = {
    "llama": (("self_attn.o_proj", "mlp.down_proj"), ("mlp.down_proj",)),
    "gpt2": (("attn.c_proj", "mlp.c_proj"), ("mlp.c_proj",)),
    "bert": ((), ()),  # both outputs are called output.dense: checked by position below
    "t5": (("SelfAttention.o", "DenseReluDense.wo"), ("DenseReluDense.wo",)),
}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def inputs(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    ids = torch.randint(3, 256, (2, 10), generator=torch.Generator().manual_seed(seed))
    return {"input_ids": ids, "decoder_input_ids": ids[:, :6]} if arch == "t5" else {"input_ids": ids}


def logits(model, arch: str, seed: int = 0) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**inputs(arch, seed)).logits


def widths(module) -> tuple[int, int]:
    from jupyter_peft._compat import unwrap_layer
    from jupyter_peft.tuners.bottleneck.layer import _widths

    return _widths(unwrap_layer(module))


def formula(model, paths: list[str], placement: str, size: int | None, factor: int | None) -> int:
    """sum over adapted modules f: (n_in, n_out) -> d_in*b + b + b*n_out + n_out, where
    b = size or n_out // factor (16 when neither), d_in = n_out (sequential) or n_in (parallel)."""
    total = 0
    for path in paths:
        n_in, n_out = widths(model.get_submodule(path))
        b = size if size is not None else max(1, n_out // (factor or 16))
        d_in = n_in if placement == "parallel" else n_out
        total += d_in * b + b + b * n_out + n_out
    return total


# ---- registration: cheap, lazy, idempotent ------------------------------------------------------


def test_registered_into_peft_once_and_the_type_behaves_like_peft_s_own():
    import pickle

    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_PREFIX_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING
    from peft.utils import PeftType

    from jupyter_peft import tuners
    from jupyter_peft.tuners.bottleneck import BottleneckConfig, BottleneckModel

    tuners.register()
    tuners.register()  # idempotent (peft itself refuses a second registration)
    tuners.register_when_peft_loads()  # peft is imported: registers at once, installs no hook
    assert not any(isinstance(f, tuners._AfterPeft) for f in sys.meta_path)
    kind = PeftType("BOTTLENECK")
    assert kind is PeftType.BOTTLENECK is PeftType["BOTTLENECK"] and kind in list(PeftType)
    assert pickle.loads(pickle.dumps(kind)) is kind and kind == "BOTTLENECK"
    assert PEFT_TYPE_TO_CONFIG_MAPPING[kind] is BottleneckConfig and PEFT_TYPE_TO_TUNER_MAPPING[kind] is BottleneckModel
    assert PEFT_TYPE_TO_PREFIX_MAPPING[kind] == "bottleneck_"
    assert BottleneckConfig().peft_type is kind


# ---- the method in the table, the Plan and the studio's picker ------------------------------------


def test_bottleneck_is_a_method_with_options_from_its_dataclass():
    assert "bottleneck" in jp.methods.names()
    spec = jp.methods.get("bottleneck")
    assert spec.targets_modules and not spec.is_prompt_learning
    options = spec.options
    for name in ("bottleneck_size", "reduction_factor", "non_linearity", "placement", "scaling", "dropout",
                 "init_weights", "exclude_modules", "layers_to_transform", "modules_to_save"):
        assert options[name].help, name  # every field carries peft-style help metadata
    assert options["non_linearity"].choices == ("relu", "gelu", "silu", "tanh")
    assert options["placement"].choices == ("houlsby", "pfeiffer", "parallel")
    assert all(word in spec.description for word in ("Houlsby", "Pfeiffer", "He et al."))
    plan = jp.Plan.from_yaml("method: bottleneck\nplacement: parallel\nreduction_factor: 8\nscaling: 4\n")
    assert jp.Plan.from_yaml(plan.to_yaml()) == plan and plan.options["scaling"] == 4.0


@pytest.mark.parametrize(
    "text, key, words",
    [
        ("method: bottleneck\nnon_linearity: swish", "non_linearity", ["'relu'", "'gelu'"]),
        ("method: bottleneck\nplacement: sideways", "placement", ["'houlsby'", "'parallel'"]),
        ("method: bottleneck\nbottleneck_size: 0", "bottleneck_size", ["positive"]),
        ("method: bottleneck\ndropout: 1.5", "dropout", ["[0, 1)"]),
        ("method: bottleneck\nreduction: 4", "reduction", ["reduction_factor"]),
    ],
)
def test_bad_options_are_plan_errors_that_name_the_key(text, key, words):
    with pytest.raises(jp.PlanError) as info:
        jp.Plan.from_yaml(text)
    assert info.value.key == key
    message = str(info.value) + " " + " ".join(map(str, getattr(info.value, "choices", []) or []))
    assert all(w in message for w in words), message


def test_size_and_factor_together_are_refused_before_the_model_is_touched():
    model = tiny.build("llama")
    with pytest.raises(jp.PlanError) as info:
        jp.apply("method: bottleneck\nbottleneck_size: 8\nreduction_factor: 4", model)
    assert "not both" in str(info.value)
    assert not hasattr(model, "peft_config")


# ---- at init: the base model, exactly -------------------------------------------------------------


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_outputs_equal_the_base_models_at_init(arch, placement):
    model = tiny.build(arch)
    before = logits(model, arch)
    peft_model = jp.apply(f"method: bottleneck\nplacement: {placement}\nnon_linearity: gelu\n", model)
    adapted = sorted(peft_model.base_model.targeted_module_names)
    assert adapted and (logits(peft_model, arch) - before).abs().max().item() == 0.0
    both, mlp = SITES[arch]
    if arch == "bert":  # both outputs are called output.dense: the MLP's sits right under the layer
        mlp_out = [p for p in adapted if p.split(".")[-3].isdigit()]
        assert len(mlp_out) == 2 and len(adapted) == (4 if placement == "houlsby" else 2)
    else:
        wanted = both if placement == "houlsby" else mlp
        assert {next(s for s in wanted if p.endswith(s)) for p in adapted} == set(wanted)
    # and it is on the path: random up projections change the output
    noisy = jp.apply(f"method: bottleneck\nplacement: {placement}\ninit_weights: false\n", tiny.build(arch))
    assert (logits(noisy, arch) - before).abs().max().item() > 0


def test_a_bf16_base_is_unchanged_at_init_and_its_adapters_are_fp32():
    model = tiny.build("llama").to(torch.bfloat16)
    before = logits(model, "llama")
    peft_model = jp.apply("method: bottleneck\nplacement: parallel\n", model)
    assert torch.equal(logits(peft_model, "llama"), before)
    assert {p.dtype for n, p in peft_model.named_parameters() if "bottleneck_" in n} == {torch.float32}


# ---- counts: the studio's preview equals peft's, and the formula ------------------------------------


@pytest.mark.parametrize("arch, placement", [("bert", "pfeiffer"), ("bert", "houlsby"), ("llama", "parallel")])
def test_layers_to_transform_with_the_default_targets(arch, placement):
    """BERT's MLP output is told apart by a regex, which peft matches without `layers_to_transform`:
    the layer index goes into the regex, and the saved config still loads."""
    model = tiny.build(arch)
    plan = f"method: bottleneck\nplacement: {placement}\nlayers_to_transform: [1]\n"
    checked = check(plan, model)
    peft_model = jp.apply(plan, copy.deepcopy(model))
    adapted = sorted(peft_model.base_model.targeted_module_names)
    assert sorted(checked.targets) == adapted and adapted and all(".1." in p for p in adapted)
    count = ParamCounter(checked.model_map).count(checked.config, checked.targets)
    assert (count.trainable, count.total) == peft_model.get_nb_trainable_parameters()


@pytest.mark.parametrize("sizes", ["bottleneck_size: 8", "reduction_factor: 8", ""], ids=["size8", "factor8", "dflt"])
@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_trainable_count_equals_peft_and_the_formula(arch, placement, sizes):
    model = tiny.build(arch)
    plan = jp.Plan.from_yaml(f"method: bottleneck\nplacement: {placement}\n{sizes}\n")
    checked = check(plan, model)
    count = ParamCounter(checked.model_map).count(checked.config, checked.targets)
    peft_model = jp.apply(plan, copy.deepcopy(model))
    assert sorted(checked.targets) == sorted(peft_model.base_model.targeted_module_names)
    assert (count.trainable, count.total) == peft_model.get_nb_trainable_parameters()
    size = plan.options.get("bottleneck_size")
    expected = formula(model, checked.targets, placement, size, plan.options.get("reduction_factor"))
    head = sum(p.numel() for p in model.classifier.parameters()) if arch == "bert" else 0  # SEQ_CLS saves it
    assert count.trainable == expected + head


# ---- training ------------------------------------------------------------------------------------


def test_a_short_sft_run_lowers_the_loss(tmp_path):
    plan = "method: bottleneck\nbottleneck_size: 16\ntrain: {trainer: sft, max_steps: 20, learning_rate: 0.01}\n"
    run = jp.train(tiny.build("llama"), plan, dataset=runs.sft_data(), tokenizer=tiny.tokenizer(), runs_dir=tmp_path)
    assert run.wait(120) == "finished", run.error
    losses = run.df["loss"].dropna().tolist()
    # the first loss is the base model's (the adapter is a no-op at init); only the adapter trains
    assert len(losses) == 20 and max(losses[-5:]) < losses[0] - 0.2
    assert run.folder.name.endswith("-bottleneck-sft")
    assert (run.checkpoint / "adapter_model.safetensors").exists()
    trainable = [r["role"] for r in run.dashboard.params["rows"] if r["trainable"]]
    assert trainable == ["self_attn.o_proj", "mlp.down_proj"]
    assert run.compare("the cat", max_new_tokens=4).base is not None  # the adapter switches off


def test_dpo_uses_the_adapter_off_as_its_reference(tmp_path):
    plan = ("method: bottleneck\nplacement: pfeiffer\n"
            "train: {trainer: dpo, max_steps: 3, per_device_train_batch_size: 4}\n")
    run = jp.train(tiny.build("llama"), plan, dataset=runs.dpo_data(8), tokenizer=tiny.tokenizer(), runs_dir=tmp_path)
    assert run.wait(120) == "finished", run.error
    assert run.df["step"].tolist() == [1, 2, 3] and "rewards" in {p["id"] for p in run.dashboard.panels}


def _train_steps(peft_model, arch: str, steps: int = 3, seed: int = 0) -> None:
    """A few plain optimizer steps on whatever is trainable now (the active adapter)."""
    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=0.01)
    for step in range(steps):
        batch = inputs(arch, seed + step)
        labels = batch.get("decoder_input_ids", batch["input_ids"])
        peft_model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.eval()


# ---- save and load: peft alone, in a fresh process -----------------------------------------------


def test_save_and_load_in_a_fresh_process_gives_equal_logits(tmp_path):
    base = tiny.save("llama", tmp_path / "base")
    from transformers import AutoModelForCausalLM

    peft_model = jp.apply("method: bottleneck\nplacement: parallel\nnon_linearity: silu\nbottleneck_size: 8\n",
                          AutoModelForCausalLM.from_pretrained(base))
    _train_steps(peft_model, "llama")
    expected = logits(peft_model, "llama")
    peft_model.save_pretrained(tmp_path / "adapter")
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["peft_type"] == "BOTTLENECK" and saved["placement"] == "parallel"

    code = textwrap.dedent(f"""
        import json, sys
        import jupyter_peft
        light = [m for m in ("torch", "peft", "transformers") if m in sys.modules]
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM
        base = AutoModelForCausalLM.from_pretrained({str(base)!r})
        model = PeftModel.from_pretrained(base, {str(tmp_path / "adapter")!r})
        ids = torch.tensor({inputs("llama")["input_ids"].tolist()})
        with torch.no_grad():
            out = model.eval()(input_ids=ids).logits
        kind = type(model.peft_config["default"]).__name__
        print(json.dumps({{"light": light, "type": kind, "logits": out.tolist()}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["light"] == [] and result["type"] == "BottleneckConfig"
    assert torch.equal(torch.tensor(result["logits"]), expected)


# ---- several named adapters ------------------------------------------------------------------------


def test_two_named_adapters_compare_side_by_side(tmp_path):
    from peft import PeftModel

    base = tiny.build("llama")
    before = logits(base, "llama")
    peft_model = jp.apply("method: bottleneck\nadapter_name: houlsby\n", copy.deepcopy(base))
    jp.apply("method: bottleneck\nplacement: parallel\nbottleneck_size: 8\nadapter_name: parallel\n", peft_model)
    assert set(peft_model.peft_config) == {"houlsby", "parallel"} and peft_model.active_adapter == "parallel"
    _train_steps(peft_model, "llama", seed=10)
    peft_model.set_adapter("houlsby")  # only the active adapter trains
    _train_steps(peft_model, "llama", seed=20)
    side = {}
    for name in ("houlsby", "parallel"):
        peft_model.set_adapter(name)
        side[name] = logits(peft_model, "llama")
    with peft_model.disable_adapter():
        assert torch.equal(logits(peft_model, "llama"), before)
    assert not torch.equal(side["houlsby"], before) and not torch.equal(side["parallel"], before)
    assert not torch.equal(side["houlsby"], side["parallel"])

    peft_model.save_pretrained(tmp_path / "both")  # one folder per named adapter; each equals itself alone
    for name in ("houlsby", "parallel"):
        alone = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "both" / name)
        assert torch.equal(logits(alone, "llama"), side[name]), name

    peft_model.set_adapter("houlsby")
    peft_model.delete_adapter("parallel")
    assert list(peft_model.peft_config) == ["houlsby"]
    assert not any("parallel" in n for n, _ in peft_model.named_parameters())
    assert torch.equal(logits(peft_model, "llama"), side["houlsby"])


# ---- a 4-bit base ----------------------------------------------------------------------------------


def test_a_4bit_base_with_a_bottleneck_adapter_trains_on_cpu(tmp_path):
    pytest.importorskip("bitsandbytes")
    from jupyter_peft.quant import kbit, loading

    folder = tiny.save("llama", tmp_path / "base")
    plan = jp.Plan.from_yaml(f"method: bottleneck\nquantization: 4bit\nbottleneck_size: 8\nbase: {folder}\n"
                             "train: {trainer: sft, max_steps: 6, learning_rate: 0.01}\n")
    model, tokenizer = loading.load_base(plan)
    assert kbit.quantization_of(model) == "4bit"
    peft_model = jp.apply(plan, model)
    layer = peft_model.base_model.model.model.layers[0].mlp.down_proj
    assert type(layer.get_base_layer()).__name__ == "Linear4bit"
    assert layer.bottleneck_up["default"].weight.dtype == torch.float32
    weights = {n: p.detach().clone() for n, p in peft_model.named_parameters() if p.requires_grad}
    assert weights and all("bottleneck_" in n for n in weights)
    run = jp.train(peft_model, plan, dataset=runs.sft_data(), tokenizer=tokenizer, runs_dir=tmp_path)
    assert run.wait(180) == "finished", run.error
    losses = run.df["loss"].dropna().tolist()
    assert len(losses) == 6 and all(loss == loss for loss in losses)  # finite, no NaN
    after = dict(peft_model.named_parameters())
    assert any(not torch.equal(after[n].detach(), w) for n, w in weights.items())


# ---- merging refuses; unloading works --------------------------------------------------------------


def test_merging_refuses_with_a_clear_reason_and_unload_gives_the_base_back():
    from jupyter_peft.tuners.bottleneck.layer import MERGE_REFUSAL

    base = tiny.build("llama")
    before = logits(base, "llama")
    peft_model = jp.apply("method: bottleneck\ninit_weights: false\n", copy.deepcopy(base))
    for attempt in (peft_model.merge_and_unload, peft_model.merge_adapter, lambda: jp.merge(peft_model, verbose=False)):
        with pytest.raises((ValueError, jp.PlanError)) as info:
            attempt()
        assert "cannot be merged" in str(info.value) and "not linear" in str(info.value)
    assert peft_model.base_model.merge_refusal == MERGE_REFUSAL
    assert not any(layer.merged for layer in peft_model.modules() if hasattr(layer, "merged_adapters"))
    assert torch.equal(logits(peft_model.unload(), "llama"), before)


# ---- the memory estimate ---------------------------------------------------------------------------


def test_the_estimate_counts_the_adapter_and_its_optimizer_state():
    model = tiny.build("llama")
    trainable = jp.apply("method: bottleneck", copy.deepcopy(model)).get_nb_trainable_parameters()[0]
    est = jp.estimate(model, "method: bottleneck", batch_size=2, seq_len=32)
    assert est.breakdown["adapters"] == 4 * trainable and est.breakdown["optimizer"] == 8 * trainable


def test_the_estimate_runs_and_includes_the_adapters_activations():
    model = tiny.build("llama")
    small = jp.estimate(model, "method: bottleneck\nbottleneck_size: 2", batch_size=2, seq_len=32)
    big = jp.estimate(model, "method: bottleneck\nbottleneck_size: 64", batch_size=2, seq_len=32)
    assert 0 < small.breakdown["activations"] < big.breakdown["activations"]


# ---- export: the script registers the method before get_peft_model ---------------------------------


def test_the_exported_script_registers_the_method_and_trains(tmp_path):
    import importlib.util

    from jupyter_peft import exports

    base = tiny.save("llama", tmp_path / "base")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    plan = jp.Plan.from_yaml("method: bottleneck\nplacement: parallel\nbottleneck_size: 8\n"
                             "train: {trainer: sft, max_steps: 2, per_device_train_batch_size: 2, max_length: 32}\n")
    jp.apply(plan, model)
    data = [{"text": row["text"]} for row in runs.sft_data(8)]
    exports.export(plan, tmp_path / "job" / "train.py", model=model, data=data, on_gpu=False)
    script_path = tmp_path / "job" / "train.py"
    text = script_path.read_text()
    assert "from jupyter_peft.tuners.bottleneck import BottleneckConfig" in text
    compile(text, str(script_path), "exec")
    spec = importlib.util.spec_from_file_location("exported_bottleneck", script_path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    notebook = check(plan, model).config
    skip = ("base_model_name_or_path", "revision", "inference_mode")
    assert {k: v for k, v in script.peft_config().to_dict().items() if k not in skip} == {
        k: v for k, v in notebook.to_dict().items() if k not in skip
    }

    env = {**runs_env(), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script_path), "--output-dir", str(tmp_path / "out")],
                          cwd=script_path.parent, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and "adapter saved to" in done.stdout, done.stderr[-3000:]
    from peft import PeftModel

    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), tmp_path / "out")
    assert type(loaded.peft_config["default"]).__name__ == "BottleneckConfig"
    assert loaded.peft_config["default"].placement == "parallel"


def runs_env() -> dict[str, str]:
    import os

    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# ---- the studio ------------------------------------------------------------------------------------


def test_the_studio_offers_it_with_its_form_and_counts_it_like_peft():
    studio = jp.studio(tiny.build("llama"))
    try:
        assert "bottleneck" in [m["name"] for m in studio.method_choices]
        studio._on_msg(studio, {"kind": "method", "name": "bottleneck"}, None)
        assert studio.method == "bottleneck"
        fields = {f["name"]: f for f in studio.option_fields}
        assert fields["placement"]["widget"] == "choice" and fields["placement"]["choices"] == PLACEMENTS
        assert fields["non_linearity"]["choices"] == ["relu", "gelu", "silu", "tanh"]
        studio._on_msg(studio, {"kind": "preset", "name": "none"}, None)
        for role in ("self_attn.o_proj", "mlp.down_proj"):
            studio._on_msg(studio, {"kind": "pick", "role": role, "members": [0, 1], "on": True}, None)
        studio._on_msg(studio, {"kind": "option", "name": "placement", "value": "parallel", "widget": "choice"}, None)
        studio._on_msg(studio, {"kind": "option", "name": "bottleneck_size", "value": 8, "widget": "int"}, None)
        assert studio.issues == [], studio.issues
        plan = studio.plan
        assert plan.method == "bottleneck" and plan.options["placement"] == "parallel"
        applied = jp.apply(plan, studio.model).get_nb_trainable_parameters()
        assert (studio.numbers["trainable"], studio.numbers["total"]) == applied
        head, _, body = studio.cell.partition("\n")
        assert jp.Plan.from_yaml(body) == plan
    finally:
        studio.close()


def test_a_loaded_plan_ticks_the_placements_own_default_targets():
    from jupyter_peft.ui.studio.draft import Draft

    model_map = jp.inspect(tiny.build("llama"))
    draft = Draft.from_plan(model_map, jp.Plan.from_yaml("method: bottleneck\nplacement: pfeiffer"))
    assert sorted(draft.picked) == ["mlp.down_proj"]


def test_a_percent_peft_cell_applies_it(shell):
    shell.user_ns["model"] = tiny.build("gpt2")
    shell.run_cell_magic("peft", "model", "method: bottleneck\nplacement: pfeiffer\nnon_linearity: tanh\n")
    peft_model = shell.user_ns["peft_model"]
    assert sorted(peft_model.base_model.targeted_module_names) == ["transformer.h.0.mlp.c_proj",
                                                                   "transformer.h.1.mlp.c_proj"]
    assert peft_model.peft_config["default"].non_linearity == "tanh"
