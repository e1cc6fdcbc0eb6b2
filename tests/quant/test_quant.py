"""Quantized bases for real: bitsandbytes 4-bit and 8-bit on CPU with tiny models.

Loading from a folder with the plan's bnb options, detecting quantization, preparing once,
training with TRL's SFT and DPO trainers, the saved adapter on a freshly quantized base,
merging into a full-precision copy, and the package without bitsandbytes.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tiny
import torch

import jupyter_peft as jp
from jupyter_peft.model import merging
from jupyter_peft.plan.train_config import TRAINERS, trainer_config
from jupyter_peft.quant import kbit, loading

QLORA = "method: qlora\nr: 8\nlora_alpha: 16\nlora_dropout: 0.0\ntarget_modules: all-linear\n"
PLANS = {
    "4bit": QLORA,
    "8bit": QLORA.replace("qlora", "lora") + "quantization: 8bit\n",
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny Llama (fp32) and its tokenizer in a folder, as save_pretrained writes them."""
    return str(tiny.save("llama", tmp_path_factory.mktemp("llama")))


@pytest.fixture(scope="module")
def saved_bf16(tmp_path_factory):
    """The same model stored in bfloat16, as most real checkpoints are."""
    folder = tmp_path_factory.mktemp("llama_bf16")
    tiny.build("llama").to(torch.bfloat16).save_pretrained(folder)
    tiny.tokenizer().save_pretrained(folder)
    return str(folder)


def load(folder: str, bits: str, extra: str = "") -> tuple:
    """A model and tokenizer loaded the way a `base:` cell loads them."""
    return loading.load_base(jp.Plan.from_yaml(PLANS[bits] + f"base: {folder}\n" + extra))


def random_adapter(folder: str, bits: str):
    """A quantized base with a LoRA adapter whose A and B are both random (not a no-op)."""
    model, _ = load(folder, bits)
    return jp.apply(PLANS[bits] + "init_lora_weights: false\n", model)


def tokens(seed: int = 0):
    return torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(seed))


def logits(model, ids, train_mode: bool = True):
    """Logits without grad. Train mode (dropout is 0 here) keeps bitsandbytes on the path the
    adapter trained on: in eval mode its CPU kernel repacks 4-bit weights for bf16 inference."""
    model.train(train_mode)
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


# ---- detection and loading ---------------------------------------------------------------


@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_quantization_is_read_from_layers_of_model_and_peft_model(saved, bits):
    model, _ = load(saved, bits)
    assert kbit.quantization_of(model) == bits
    peft_model = jp.apply(PLANS[bits], model)
    assert kbit.quantization_of(peft_model) == bits
    assert kbit.quantization_of(tiny.build("llama")) == "none"


def test_quantization_falls_back_to_flags_and_config():
    model = tiny.build("llama", device="meta")  # no bitsandbytes weights to look at
    assert kbit.quantization_of(model) == "none"
    model.config.quantization_config = {"quant_method": "bitsandbytes", "load_in_8bit": True}
    assert kbit.quantization_of(model) == "8bit"
    model.config.quantization_config = {"quant_method": "gptq", "bits": 4}
    assert kbit.quantization_of(model) == "gptq"
    model.is_loaded_in_4bit = True  # the flag transformers sets on a 4-bit load wins over the config
    assert kbit.quantization_of(model) == "4bit"


@pytest.mark.parametrize(
    "bits, extra, dtype, compute, nested",
    [
        ("4bit", "bnb_4bit_quant_type: nf4\nbnb_4bit_use_double_quant: true\n", "nf4", torch.float32, True),
        ("4bit", "bnb_4bit_quant_type: fp4\nbnb_4bit_compute_dtype: bfloat16\n", "fp4", torch.bfloat16, False),
        ("8bit", "", "int8", None, False),
    ],
)
def test_base_loads_with_the_plans_bitsandbytes_options(saved, bits, extra, dtype, compute, nested):
    model, tokenizer = load(saved, bits, extra)
    q = jp.inspect(model)["self_attn.q_proj"]
    assert q.dtype == dtype and q.shape == (64, 64)
    layer = model.model.layers[0].self_attn.q_proj
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    if bits == "4bit":
        assert layer.compute_dtype == compute
        assert layer.weight.quant_state.nested is nested
    assert tokenizer is not None and tokenizer("the cat")["input_ids"]


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda tmp: str(tmp / "missing"), ["no folder", "missing"]),
        (lambda tmp: "./not/here", ["no folder", "not/here"]),
        (lambda tmp: str(tmp), ["without config.json", "save_pretrained"]),
        (lambda tmp: str(tmp / "weights.bin"), ["is a file"]),
    ],
)
def test_a_bad_base_path_is_one_clear_error(tmp_path, make, words):
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(jp.PlanError) as info:
        load(make(tmp_path), "4bit")
    assert info.value.key == "base"
    assert all(w in str(info.value) for w in words), str(info.value)


# ---- preparing and checking --------------------------------------------------------------


def test_apply_prepares_a_quantized_base_once(saved_bf16):
    model, _ = load(saved_bf16, "4bit")
    assert model.model.norm.weight.dtype == torch.bfloat16
    peft_model = jp.apply(PLANS["4bit"], model)
    assert kbit.is_prepared(model)
    assert model.model.norm.weight.dtype == torch.float32  # peft's k-bit preparation upcast it
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert not model.is_activation_checkpointing  # CPU: off unless the plan asks

    model.model.norm.weight.data = model.model.norm.weight.data.to(torch.bfloat16)
    plan = PLANS["4bit"] + "train: {trainer: sft, gradient_checkpointing: true}\n"
    again = jp.apply(plan, model)
    assert model.model.norm.weight.dtype == torch.bfloat16  # not prepared a second time
    assert model.is_activation_checkpointing  # but checkpointing follows the new plan
    assert sum("lora_A" in n for n, _ in again.named_parameters()) == 14  # replaced, not stacked
    jp.apply(PLANS["4bit"] + "train: {trainer: sft, activation_checkpointing: false}\n", model)
    assert not model.is_activation_checkpointing


def test_full_precision_models_are_not_prepared():
    model = tiny.build("llama")
    jp.apply("target_modules: [q_proj]\nr: 2", model)
    assert not kbit.is_prepared(model)


@pytest.mark.parametrize(
    "bits, plan, words",
    [
        ("4bit", "method: lora\nquantization: 8bit\ntarget_modules: [q_proj]\n",
         ["asks for a 8bit base", "loaded in 4bit", "quantization: 4bit"]),
        ("8bit", "method: qlora\ntarget_modules: [q_proj]\n",
         ["asks for a 4bit base", "loaded in 8bit", "method: lora"]),
    ],
)
def test_a_plan_with_another_quantization_is_refused_and_changes_nothing(saved, bits, plan, words):
    model, _ = load(saved, bits)
    with pytest.raises(jp.PlanError) as info:
        jp.apply(plan, model)
    assert all(w in str(info.value) for w in words), str(info.value)
    assert not kbit.is_prepared(model)
    assert jp.inspect(model)["self_attn.q_proj"].adapted is False


def test_percent_peft_with_base_loads_prepares_and_applies(shell, saved):
    cell = f"base: {saved}\n{QLORA}"
    shell.run_cell_magic("peft", "", cell)
    ns = shell.user_ns
    model, peft_model = ns["model"], ns["peft_model"]
    assert kbit.quantization_of(model) == "4bit" and kbit.is_prepared(model)
    assert peft_model.get_base_model() is model and ns["tokenizer"] is not None
    shell.run_cell_magic("peft", "", cell)  # running the cell again loads and prepares it again
    assert ns["model"] is not model and kbit.is_prepared(ns["model"])
    assert sum("lora_A" in n for n, _ in ns["peft_model"].named_parameters()) == 14


def test_percent_peft_with_a_missing_base_says_so_in_one_line(shell, tmp_path):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("peft", "", f"base: {tmp_path / 'nope'}\n{QLORA}")
    assert "no folder" in str(info.value) and "\n" not in str(info.value)
    assert "model" not in shell.user_ns


# ---- training, saving, loading back ------------------------------------------------------


def _sft(peft_model, tokenizer, out_dir):
    from datasets import Dataset
    from transformers import PrinterCallback

    trainer_cls, _ = TRAINERS["sft"].load()
    data = Dataset.from_dict({"text": [s for s in tiny._CORPUS[:8]]})
    config = trainer_config({"trainer": "sft", "max_steps": 4, "learning_rate": 5e-3}, out_dir, on_gpu=False,
                            per_device_train_batch_size=4, max_length=32)
    trainer = trainer_cls(model=peft_model, args=config, train_dataset=data, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return trainer


@pytest.fixture(scope="module", params=["4bit", "8bit"])
def trained(request, saved, tmp_path_factory):
    """(bits, peft_model, adapter folder) after a few real SFT steps on a quantized base."""
    bits = request.param
    model, tokenizer = load(saved, bits)
    peft_model = jp.apply(PLANS[bits], model)
    out = tmp_path_factory.mktemp(f"sft_{bits}")
    trainer = _sft(peft_model, tokenizer, out)
    assert all("loss" in row for row in trainer.state.log_history[:4])
    peft_model.save_pretrained(out / "adapter")
    return bits, peft_model, out / "adapter"


def test_sft_trains_only_the_adapter(trained, saved):
    bits, peft_model, _ = trained
    fresh, _ = load(saved, bits)  # the same checkpoint, quantized again: the frozen weights to compare with
    base = peft_model.get_base_model()
    q_trained = base.model.layers[0].self_attn.q_proj
    assert torch.equal(q_trained.base_layer.weight.data, fresh.model.layers[0].self_attn.q_proj.weight.data)
    assert q_trained.lora_B["default"].weight.abs().sum() > 0  # B starts at zero: it learned


def test_saved_adapter_on_a_freshly_quantized_base_gives_the_same_outputs(trained, saved):
    from peft import PeftModel

    bits, peft_model, folder = trained
    assert (folder / "adapter_model.safetensors").exists()
    fresh, _ = load(saved, bits)
    loaded = PeftModel.from_pretrained(fresh, folder)
    mine = {k: v for k, v in merging._tensors(peft_model).items() if "lora_" in k}
    theirs = {k: v for k, v in merging._tensors(loaded).items() if "lora_" in k}
    assert mine.keys() == theirs.keys()
    dtype = next(iter(mine.values())).dtype  # TRL trains QLoRA adapters in bfloat16
    for key, value in mine.items():
        assert torch.equal(theirs[key].to(dtype), value), key  # the file holds exactly the trained weights
        theirs[key].data = theirs[key].data.to(dtype)  # and runs in the dtype it was trained in
    ids = tokens()
    want = logits(peft_model, ids)
    torch.testing.assert_close(logits(loaded, ids), want, rtol=1e-5, atol=1e-5)
    with peft_model.disable_adapter():
        assert (logits(peft_model, ids) - want).abs().max() > 0.05  # the adapter does change them


@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_dpo_trains_on_a_quantized_base(saved, bits, tmp_path):
    from datasets import Dataset
    from transformers import PrinterCallback

    model, tokenizer = load(saved, bits)
    peft_model = jp.apply(PLANS[bits], model)
    data = Dataset.from_dict({
        "prompt": ["the cat sat on", "a small model", "two plus two is"] * 2,
        "chosen": [" the mat", " learns to answer", " four"] * 2,
        "rejected": [" the dog", " jumps over", " five"] * 2,
    })
    trainer_cls, _ = TRAINERS["dpo"].load()
    config = trainer_config({"trainer": "dpo", "max_steps": 3, "learning_rate": 5e-3}, tmp_path, on_gpu=False,
                            per_device_train_batch_size=2, max_length=32)
    trainer = trainer_cls(model=peft_model, args=config, train_dataset=data, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    steps = [row for row in trainer.state.log_history if "loss" in row]
    assert len(steps) == 3 and all("rewards/margins" in row for row in steps)
    assert peft_model.get_base_model().model.layers[0].self_attn.q_proj.lora_B["default"].weight.abs().sum() > 0


def test_int8_cast_message_is_shown_once(saved, caplog):
    peft_model = random_adapter(saved, "8bit")
    with caplog.at_level(logging.WARNING, logger="bitsandbytes"):
        logits(peft_model, tokens(1))
        logits(peft_model, tokens(2))
    assert sum("MatMul8bitLt" in r.getMessage() for r in caplog.records) <= 1


# ---- merging -----------------------------------------------------------------------------


@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_merge_dequantizes_into_a_plain_full_precision_model(saved, bits, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    peft_model = random_adapter(saved, bits)
    ids = tokens(3)
    want = logits(peft_model, ids)
    with peft_model.disable_adapter():
        assert (logits(peft_model, ids) - want).abs().max() > 0.05
    merged = jp.merge(peft_model)
    note = capsys.readouterr().out
    assert type(merged) is LlamaForCausalLM and not hasattr(merged.config, "quantization_config")
    kinds = {type(m).__name__ for m in merged.modules()}
    assert "Linear" in kinds and not kinds & {"Linear4bit", "Linear8bitLt"}
    assert {p.dtype for p in merged.parameters()} == {torch.float32}
    torch.testing.assert_close(logits(merged, ids), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits(peft_model, ids), want, rtol=0, atol=0)  # the adapted model is untouched

    copy_bytes = sum(p.numel() * p.element_size() for p in merged.parameters())
    copy_bytes += sum(b.numel() * b.element_size() for b in merged.buffers())
    adapter_bytes = sum(p.numel() * p.element_size() for n, p in peft_model.named_parameters() if "lora_" in n)
    needed = merging.memory_needed(peft_model)
    assert needed == copy_bytes + adapter_bytes
    assert f"{needed:,} bytes" in note and f"the {bits} model keeps" in note

    merged.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    torch.testing.assert_close(logits(reloaded, ids), logits(merged, ids), rtol=0, atol=0)


@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_merge_puts_gpt2s_quantized_conv1d_weights_back_in_conv1d_layout(bits, tmp_path):
    tiny.build("gpt2", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0).save_pretrained(tmp_path)
    peft_model = random_adapter(str(tmp_path), bits)  # bitsandbytes stores Conv1D (in, out) as Linear (out, in)
    ids = tokens(8)
    merged = jp.merge(peft_model, verbose=False)
    assert type(merged.transformer.h[0].attn.c_proj).__name__ == "Conv1D"  # square: only the values tell
    torch.testing.assert_close(logits(merged, ids), logits(peft_model, ids), rtol=1e-5, atol=1e-5)


def test_merge_of_a_trained_adapter(trained):
    _, peft_model, _ = trained
    ids = tokens(7)
    merged = jp.merge(peft_model, verbose=False)
    # the trained adapter computes in bfloat16 (TRL's QLoRA setting); the merged weights in float32
    torch.testing.assert_close(logits(merged, ids), logits(peft_model, ids), rtol=1e-2, atol=5e-3)


def test_merge_in_bfloat16_halves_the_copy(saved):
    peft_model = random_adapter(saved, "4bit")
    merged = jp.merge(peft_model, dtype="bfloat16", verbose=False)
    assert {p.dtype for p in merged.parameters()} == {torch.bfloat16}
    ids = tokens(4)
    torch.testing.assert_close(logits(merged, ids), logits(peft_model, ids), rtol=0.05, atol=0.05)
    full, half = merging.memory_needed(peft_model), merging.memory_needed(peft_model, "bfloat16")
    assert half < 0.6 * full


def test_merge_can_reload_the_full_precision_checkpoint(trained, saved):
    from peft import get_peft_model, set_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    _, peft_model, _ = trained
    merged = jp.merge(peft_model, reload_base=True, verbose=False)
    # the same adapter on the unquantized checkpoint is what the merge must equal
    reference = get_peft_model(AutoModelForCausalLM.from_pretrained(saved), peft_model.peft_config["default"])
    set_peft_model_state_dict(reference, {k: v for k, v in merging._tensors(peft_model).items() if "lora_" in k})
    ids = tokens(5)
    torch.testing.assert_close(logits(merged, ids), logits(reference, ids), rtol=1e-4, atol=1e-4)


def test_merge_in_place_is_for_full_precision_bases(saved):
    peft_model = random_adapter(saved, "8bit")
    with pytest.raises(jp.PlanError, match="cannot hold merged weights in place.*needs"):
        jp.merge(peft_model, inplace=True)

    model = tiny.build("llama")
    fp = jp.apply("target_modules: [q_proj, v_proj]\nr: 4\ninit_lora_weights: false", model)
    ids = tokens(6)
    want = logits(fp, ids)
    copy = jp.merge(fp, verbose=False)
    torch.testing.assert_close(logits(copy, ids), want, rtol=1e-5, atol=1e-5)
    assert fp.get_base_model().model.layers[0].self_attn.q_proj.lora_A  # the PeftModel still has its adapter
    merged = jp.merge(fp, inplace=True, verbose=False)
    assert merged is model
    torch.testing.assert_close(logits(merged, ids), want, rtol=1e-5, atol=1e-5)
    again = jp.apply("target_modules: [q_proj]\nr: 2", model)  # a fresh adapter on the merged model
    assert again is not fp and again.get_base_model() is model


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: jp.merge(tiny.build("llama")), ["expected a PeftModel"]),
        (lambda: jp.merge(jp.apply("method: prompt_tuning\nnum_virtual_tokens: 4", tiny.build("llama"))),
         ["virtual tokens", "nothing to merge"]),
        (lambda: jp.merge(jp.apply("target_modules: [q_proj]", tiny.build("llama")), dtype="int8"),
         ["not a float dtype"]),
        (lambda: merging._check_free(2**62, torch.device("cpu")), ["needs", "free"]),
    ],
)
def test_merge_refuses_clearly(call, words):
    with pytest.raises(jp.PlanError) as info:
        call()
    assert all(w in str(info.value) for w in words), str(info.value)


# ---- without bitsandbytes ----------------------------------------------------------------


def test_without_bitsandbytes_only_quantized_plans_fail_and_say_what_to_install(saved):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["bitsandbytes"] = None  # `import bitsandbytes` now raises ImportError
        import jupyter_peft as jp, tiny
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.core.error import UsageError
        sh = InteractiveShell.instance()
        sh.run_line_magic("load_ext", "jupyter_peft")
        sh.user_ns["m"] = tiny.build("llama")
        sh.run_cell_magic("peft", "m", "target_modules: [q_proj]\\nr: 2")
        adapted = jp.inspect(sh.user_ns["m"])["self_attn.q_proj"].adapted
        print("applied", type(sh.user_ns["peft_model"]).__name__, adapted)
        print("merged", type(jp.merge(sh.user_ns["peft_model"], verbose=False)).__name__)
        try:
            sh.run_cell_magic("peft", "", "base: {saved}\\nmethod: qlora\\ntarget_modules: [q_proj]")
        except UsageError as err:
            print("error", repr(str(err)))
        print("bnb", "bitsandbytes" in sys.modules and sys.modules["bitsandbytes"] is not None)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    lines = out.stdout.strip().splitlines()
    assert "applied PeftModelForCausalLM True" in lines, out.stdout + out.stderr[-3000:]
    assert "merged LlamaForCausalLM" in lines
    error = next(line for line in lines if line.startswith("error"))
    assert "pip install 'jupyter-peft[quant]'" in error and "\\n" not in error and "4bit" in error
    assert lines[-1] == "bnb False"


# ---- the GPU check script ----------------------------------------------------------------


def test_gpu_check_script_runs_its_steps_on_cpu_and_refuses_without_cuda():
    script = str(Path(__file__).resolve().parents[2] / "bench" / "gpu_quant_check.py")
    # conftest put this checkout on PYTHONPATH for child processes
    smoke = subprocess.run([sys.executable, script, "--cpu-smoke", "--steps", "4"], capture_output=True, text=True,
                           timeout=600)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr[-3000:]
    rows = [line.split() for line in smoke.stdout.splitlines() if line.split()[:1] in (["bf16"], ["4bit"], ["8bit"])]
    assert [r[0] for r in rows] == ["bf16", "4bit", "8bit"] and all(r[-1] == "ok" for r in rows), smoke.stdout
    if not torch.cuda.is_available():
        bare = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300)
        assert bare.returncode == 2 and "needs a CUDA GPU" in bare.stderr
