"""Checkpoints are adapters too, samples while training, and hot-swap: real SFT runs on a tiny Llama."""

from __future__ import annotations

import json

import pytest
import runs
import tiny
import torch
from runs import LORA

import jupyter_peft as jp
from jupyter_peft import PlanError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run(tok, tmp_path_factory):
    plan = jp.Plan.from_yaml(LORA + "train: {trainer: sft, max_steps: 6, learning_rate: 0.01, save_strategy: steps, "
                                    "save_steps: 3, samples: [the cat sat], sample_tokens: 6}")
    run = jp.train(tiny.build("llama"), plan, dataset=runs.sft_data(8), tokenizer=tok, sample_every=3,  # a keyword too
                   runs_dir=tmp_path_factory.mktemp("runs"))
    assert run.wait(120) == "finished", run.error
    return run


def _logits(model, tok, text="the quick brown fox"):
    with torch.no_grad():
        return model(**tok(text, return_tensors="pt")).logits


def test_run_checkpoints_load_back_as_adapters_equal_to_the_model_at_that_step(run, tok):
    assert [s for s, _ in run.checkpoints] == [3, 6]
    assert all(path.name == f"checkpoint-{s}" for s, path in run.checkpoints)
    model = run.model.eval()
    bench = jp.adapters(model, tokenizer=tok)
    assert bench.tokenizer is run.trainer.processing_class  # found through the run
    trained = _logits(model, tok)
    assert bench.load(run, step=6, name="at6") == "at6"
    bench.activate("at6")
    assert torch.allclose(_logits(model, tok), trained, atol=1e-6)  # the checkpoint is the model at step 6
    name = bench.load(run, step=3)
    assert name == "lora_step3" and bench.sources[name].step == 3 and bench.steps(name) == [3, 6]
    # step 3's weights are what generated step 3's sample during training
    sample3 = run.samples[run.samples["step"] == 3]["output"].iloc[0]
    df = bench.compare("the cat sat", adapters=[name, "at6"], max_new_tokens=6)
    assert df[name][0] == sample3
    assert df["at6"][0] == run.samples[run.samples["step"] == 6]["output"].iloc[0]
    # scrub: checkpoint 6's weights swapped into the step-3 adapter, no new adapter, no base reload
    base = model.get_base_model()
    bench.swap(name, 6)
    assert bench.sources[name].step == 6 and model.get_base_model() is base and len(bench.names) == 3
    bench.activate(name)
    assert torch.allclose(_logits(model, tok), trained, atol=1e-6)
    with pytest.raises(PlanError, match="no checkpoint at step 4") as err:
        bench.load(run, step=4)
    assert err.value.key == "step" and err.value.choices == ["3", "6"]
    with pytest.raises(PlanError, match="not loaded from a run"):
        bench.swap("default", 3)
    # the widget's slider: swap step 3 back in from the page, and the compare table follows
    w = bench.widget()
    w._on_msg(w, {"kind": "compare", "prompts": ["the cat sat"], "max_new_tokens": 6}, [])
    row = next(r for r in w.rows if r["name"] == name)
    assert row["steps"] == [3, 6] and row["step"] == 6 and row["source_kind"] == "checkpoint"
    w._on_msg(w, {"kind": "swap", "name": name, "step": 3}, [])
    assert w.error == "" and next(r for r in w.rows if r["name"] == name)["step"] == 3
    assert w.comparison["cells"][0][w.comparison["columns"].index(name)] == sample3


def test_samples_while_training_are_on_the_run_and_in_its_folder(run):
    df = run.samples
    assert list(df.columns) == ["step", "prompt", "output", "seconds"]
    assert df["step"].tolist() == [3, 6] and set(df["prompt"]) == {"the cat sat"}
    assert (df["seconds"] > 0).all() and df["output"].map(len).gt(0).all()
    lines = [json.loads(x) for x in (run.folder / "samples.jsonl").read_text().splitlines()]
    assert [r["output"] for r in lines] == df["output"].tolist()
    html = run.dashboard.static_bundle()["text/html"]
    assert "samples while training" in html and html.index("step 6</td>") < html.index("step 3</td>")  # newest first
    part = next(p for p in run.dashboard.parts if type(p).__name__ == "SamplesPart")
    sent, dash = [], run.dashboard
    dash.send = lambda msg, *args, **kwargs: sent.append(msg)  # what the page would get
    try:
        part.reset(dash)
        assert sent[-1]["kind"] == "samples" and sent[-1]["reset"] and len(sent[-1]["rows"]) == 2
        part.tick(dash)
        assert len(sent) == 1  # nothing new
        run.sample_rows.append({"step": 7, "prompt": "x", "output": "y", "seconds": 0.1})
        part.tick(dash)
        assert sent[-1] == {"kind": "samples", "reset": False,
                            "rows": [{"step": 7, "prompt": "x", "output": "y", "seconds": 0.1}]}
    finally:
        del dash.send
        run.sample_rows.pop()


def test_hotswap_equals_activating_and_gives_every_adapter_back(tok):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    cfg = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(tiny.build("llama"), LoraConfig(**cfg), adapter_name="x").eval()
    model.add_adapter("y", LoraConfig(**cfg))
    model.add_adapter("wide", LoraConfig(**{**cfg, "r": 8}))
    bench = jp.adapters(model, tokenizer=tok)
    expect = {}
    for name in ("x", "y"):
        bench.activate(name)
        expect[name] = _logits(model, tok)
    bench.activate("x")
    ptrs = {k: p.data_ptr() for k, p in model.named_parameters() if ".x." in k}
    bench.activate("y", hotswap=True)
    assert bench.active == "y" and model.active_adapter == "x"  # y's weights in x's tensors
    assert torch.allclose(_logits(model, tok), expect["y"], atol=1e-6)
    assert {k: p.data_ptr() for k, p in model.named_parameters() if ".x." in k} == ptrs  # same tensors
    with pytest.raises(PlanError, match="cannot hot-swap 'wide'") as err:
        bench.activate("wide", hotswap=True)
    assert err.value.key == "hotswap"
    bench.activate("x", hotswap=True)
    assert torch.allclose(_logits(model, tok), expect["x"], atol=1e-6)
    bench.activate("y", hotswap=True)
    df = bench.compare("the cat", max_new_tokens=4)  # x gets its own weights back first
    bench.activate("x")
    assert torch.allclose(_logits(model, tok), expect["x"], atol=1e-6) and bench.active == "x"
    assert list(df.columns) == ["prompt", "x", "y", "wide", "base"]


def test_methods_peft_cannot_mix_are_compared_one_generate_each(tok):
    from peft import IA3Config, get_peft_model

    model = get_peft_model(tiny.build("llama"), IA3Config(target_modules=["k_proj", "down_proj"],
                                                          feedforward_modules=["down_proj"]), adapter_name="x").eval()
    model.add_adapter("y", IA3Config(target_modules=["k_proj", "down_proj"], feedforward_modules=["down_proj"]))
    for p in model.parameters():
        if p.requires_grad:
            p.data.uniform_(0.0, 3.0)
    bench = jp.adapters(model, tokenizer=tok)
    df = bench.compare(["the cat", "a small model is"], max_new_tokens=6)
    assert "one generate per adapter" in df.attrs["how"] and "ia3" in df.attrs["how"]
    ids = tok("a small model is", return_tensors="pt")
    model.set_adapter("y")
    alone = model.generate(**ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    assert df["y"][1] == tok.decode(alone[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert bench.combination_types() == ["linear"]
    bench.activate("x")
    with pytest.raises(PlanError, match="cannot hot-swap 'y' into 'x'.*Hotswapping only supports") as err:
        bench.activate("y", hotswap=True)  # peft hot-swaps LoRA only: said, and nothing changed
    assert err.value.key == "hotswap" and bench.active == "x"
    shown = bench.merge_preview({"x": 0.5, "y": 0.5}, name="m")
    bench.merge({"x": 0.5, "y": 0.5}, name="m")
    assert next(r for r in bench.rows() if r["name"] == "m")["params"] == shown["params"]


def test_hotswap_keeps_a_compiled_model_compiled(tok):
    """peft's point of hot-swapping: the compiled graph stays (dynamo's eager backend: the graph
    capture is what recompiles; no code generation needed to see it)."""
    from peft import LoraConfig, get_peft_model
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    cfg = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(tiny.build("llama", num_hidden_layers=1), LoraConfig(**cfg), adapter_name="x").eval()
    model.add_adapter("y", LoraConfig(**cfg))
    bench = jp.adapters(model, tokenizer=tok)
    ids = tok("the cat sat", return_tensors="pt")["input_ids"]
    bench.activate("y")
    expect_y = _logits(model, tok, "the cat sat")
    bench.activate("x")
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(model.get_base_model(), backend="eager")
    with torch.no_grad():
        compiled(input_ids=ids)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 1
    bench.activate("y", hotswap=True)
    with torch.no_grad():
        swapped = compiled(input_ids=ids).logits
    assert counters["stats"]["unique_graphs"] == graphs  # no recompile
    assert torch.allclose(swapped, expect_y, atol=1e-5)
    bench.activate("y")  # a plain switch changes what dynamo guards on: it compiles again
    with torch.no_grad():
        compiled(input_ids=ids)
    assert counters["stats"]["unique_graphs"] > graphs
    torch._dynamo.reset()
