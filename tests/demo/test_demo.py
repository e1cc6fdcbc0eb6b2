"""The embedded demo: it loads offline (quantized too), its data sets have TRL's shapes and a
held-out test split, it fits the wheel's size limit, and the quality claim holds: the
quickstart's short LoRA run makes the story cards measurably better on held-out stories."""

from __future__ import annotations

import pytest

import jupyter_peft as jp
from jupyter_peft import demo

# The measured effect of demo.QUICKSTART on 2 CPU cores (see demo.MEASURED); the asserts leave room
# for run-to-run noise in float summation, not for a different outcome.
BASE_AT_MOST = 0.1
TUNED_AT_LEAST = 0.9


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_the_wheel_carries_the_demo_and_stays_small(tmp_path):
    """The built wheel holds the model (safetensors) and the data, and stays under 20 MB."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True)
    (wheel,) = tmp_path.glob("jupyter_peft-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("model.safetensors", "tokenizer.json", "config.json", "chat_template.jinja"):
        assert f"jupyter_peft/demo/model/{name}" in names
    assert {f"jupyter_peft/demo/data/{k}_{s}.jsonl" for k in demo.KINDS for s in demo.SPLITS} <= names
    assert wheel.stat().st_size < 20 * 10**6, wheel.stat().st_size


def test_load_offline_gives_a_coherent_fp32_model(offline):
    model, tokenizer = demo.load()
    assert 4e6 < model.num_parameters() < 6e6
    assert {p.dtype for p in model.parameters()} == {__import__("torch").float32}
    assert tokenizer.eos_token == "<|end|>" and "{% generation %}" in tokenizer.chat_template
    # it knows its world and answers in prose; it has no notion of story cards
    sounds = {"cow": "moo", "duck": "quack", "owl": "hoot", "frog": "ribbit", "bee": "buzz", "horse": "neigh"}
    facts = demo.ask(model, tokenizer, [f"What does a {animal} say?" for animal in sounds])
    assert facts == [f"A {animal} says {sound}." for animal, sound in sounds.items()]
    story = demo.ask(model, tokenizer, "Tell me a story about Mia and a blue fox.", max_new_tokens=120)[0]
    assert "Mia" in story and "blue fox" in story and story.endswith("."), story


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_quantized_load_on_cpu(offline, quantization):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    model, tokenizer = demo.load(quantization=quantization)
    layer = model.model.layers[0].self_attn.q_proj
    assert isinstance(layer, bnb.nn.Linear4bit if quantization == "4bit" else bnb.nn.Linear8bitLt)
    answer = demo.ask(model, tokenizer, "What does a cow say?", max_new_tokens=12)[0]
    assert "moo" in answer, answer


def test_load_rejects_unknown_quantization():
    with pytest.raises(ValueError, match="4bit"):
        demo.load(quantization="3bit")


@pytest.mark.parametrize(
    "kind, columns",
    [
        ("sft", ["messages"]),
        ("dpo", ["prompt", "chosen", "rejected"]),
        ("grpo", ["prompt", "name", "animal", "color", "place"]),
    ],
)
def test_dataset_shapes(kind, columns):
    train, test = demo.dataset(kind), demo.dataset(kind, split="test")
    assert train.column_names == columns == test.column_names
    assert len(train) >= 500 and len(test) == 100
    first = train[0]
    user = first["messages"][0] if kind == "sft" else first["prompt"][0]
    assert user["role"] == "user" and "story card" in user["content"].lower()
    if kind == "dpo":
        assert first["chosen"] != first["rejected"] and demo.parse_card(first["chosen"][0]["content"])


def test_test_split_is_held_out():
    def stories(kind, split):
        rows = demo.dataset(kind, split)
        return {(r["messages"] if kind == "sft" else r["prompt"])[0]["content"] for r in rows}

    test = stories("grpo", "test")
    assert test == stories("sft", "test") == stories("dpo", "test")
    for kind in demo.KINDS:
        assert not test & stories(kind, "train")


def test_dataset_rejects_unknown_kind_and_split():
    with pytest.raises(ValueError, match="sft, dpo, grpo"):
        demo.dataset("ppo")
    with pytest.raises(ValueError, match="train, test"):
        demo.dataset("sft", split="valid")


def test_card_check_and_reward():
    truth = {"name": "Mia", "animal": "fox", "color": "blue", "place": "river"}
    good = "name: Mia\nanimal: blue fox\nplace: river"
    assert demo.parse_card(good) == {"name": "Mia", "animal": "blue fox", "place": "river"}
    assert demo.card_facts(good) == truth
    assert demo.card_accuracy(good, truth) == 1.0
    assert demo.card_accuracy(good.replace("blue", "red"), truth) == 0.75
    assert demo.card_accuracy("name: Mia\nanimal: fox\nplace: river", truth) == 0.75  # no color given
    assert demo.card_accuracy("name: Mia\nplace: river", truth) == 0.5
    assert demo.card_accuracy("Mia meets a blue fox by the river.", truth) == 0.0
    assert demo.card_accuracy("name: Mia\nand then a fox", truth) == 0.0
    cols = {k: [v, v] for k, v in truth.items()}
    as_messages = [[{"role": "assistant", "content": good}], [{"role": "assistant", "content": "name: Bo"}]]
    assert demo.card_reward(as_messages, **cols) == [1.0, 0.2]
    assert demo.card_reward([good.replace("fox", "owl"), "no"], **cols) == [pytest.approx(0.8), 0.0]


def test_quickstart_is_a_valid_plan():
    plan = jp.Plan.from_dict(demo.QUICKSTART)
    assert plan.method == "lora" and plan.train["trainer"] == "sft"
    assert jp.Plan.from_yaml(plan.to_yaml()) == plan


def test_base_demo_names_the_packaged_model(offline, tmp_path):
    """`base: demo` in a plan loads the demo model (the quickstart and the QLoRA notebook use it),
    and an export of such a plan loads the same folder."""
    from jupyter_peft.quant.loading import load_base

    plan = jp.Plan.from_yaml("method: lora\nr: 4\ntarget_modules: [q_proj]\nbase: demo")
    model, tokenizer = load_base(plan)
    assert model.config.vocab_size == len(tokenizer) and tokenizer.chat_template
    jp.export(plan, tmp_path / "train.py", model=jp.apply(plan, model))
    assert repr(str(demo.MODEL_DIR)) in (tmp_path / "train.py").read_text()
