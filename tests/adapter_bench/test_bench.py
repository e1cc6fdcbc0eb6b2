"""The adapter bench on a tiny Llama with real peft: names, compare, merge, load, rename, delete, save."""

from __future__ import annotations

import pytest
import tiny
import torch

import jupyter_peft as jp
from jupyter_peft import PlanError

PROMPTS = ["the cat sat", "a small model is fine tuning the quick brown fox"]  # lengths differ: left padding

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _two(r_b: int = 4, seed_b: int = 2):
    """A tiny Llama with adapters "x" and "y" whose weights are random (not peft's zero B): different outputs."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    model = get_peft_model(tiny.build("llama"), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                          init_lora_weights=False), adapter_name="x")
    torch.manual_seed(seed_b)
    model.add_adapter("y", LoraConfig(r=r_b, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"],
                                      init_lora_weights=False))
    for p in model.parameters():
        if p.requires_grad:
            p.data *= 8  # random tiny models barely move with small LoRA weights: make them matter
    return model.eval()


def _alone(model, tok, name, prompt, n):
    """One prompt, one adapter, unpadded: the reference generation."""
    ids = tok(prompt, return_tensors="pt")
    if name == "base":
        with model.disable_adapter():
            out = model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
    else:
        model.set_adapter(name)
        out = model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_compare_is_one_mixed_batch_and_equals_one_at_a_time(tok):
    model = _two()
    bench = jp.adapters(model, tokenizer=tok)
    assert bench.names == ["x", "y"] and bench.active == "x"
    df = bench.compare(PROMPTS, max_new_tokens=10)
    assert list(df.columns) == ["prompt", "x", "y", "base"] and len(df) == 2
    assert df.attrs["how"].startswith("one batched generate")
    for i, prompt in enumerate(PROMPTS):
        for col in ("x", "y", "base"):
            assert df[col][i] == _alone(model, tok, col, prompt, 10), (col, prompt)
    assert (df["x"] != df["y"]).any() and (df["x"] != df["base"]).any()  # two adapters, different outputs
    # a subset, and the adapters of a non-mixable method (IA3) by a loop, said in attrs
    assert list(bench.compare("hello", adapters=["y"], max_new_tokens=4).columns) == ["prompt", "y", "base"]


def test_activate_disable_rename_delete_keep_the_others(tok):
    model = _two()
    bench = jp.adapters(model, tokenizer=tok)
    ids = tok("the cat sat", return_tensors="pt")

    def logits():
        with torch.no_grad():
            return model(**ids).logits

    bench.activate("y")
    assert bench.active == "y" and model.active_adapter == "y"
    b_logits = logits()
    bench.disable()
    assert bench.active is None
    with model.disable_adapter():
        pass
    base_logits = logits()
    assert not torch.allclose(base_logits, b_logits)
    bench.activate("x")
    a_logits = logits()
    bench.rename("y", "bee")
    assert bench.names == ["x", "bee"] and bench.active == "x"
    assert torch.equal(logits(), a_logits)
    bench.activate("bee")
    assert torch.equal(logits(), b_logits)
    bench.delete("x")
    assert bench.names == ["bee"] and bench.active == "bee" and torch.equal(logits(), b_logits)
    with pytest.raises(PlanError, match="only adapter") as err:
        bench.delete("bee")
    assert err.value.key == "name"
    rows = bench.rows()
    assert rows[0]["ranks"] == "4" and rows[0]["params"] == 2 * 4 * ((64 + 64) + (64 + 32) + (64 + 64))


def test_bad_inputs_name_the_key_and_change_nothing(tok, tmp_path):
    model = _two()
    bench = jp.adapters(model, tokenizer=tok)
    cases = [
        (lambda: bench.activate("c"), "name", "unknown adapter 'c'"),
        (lambda: bench.rename("x", "y"), "new", "already"),
        (lambda: bench.rename("x", "x.y"), "new", "letters"),
        (lambda: bench.compare([]), "prompts", "prompt"),
        (lambda: bench.compare("hi", adapters=["zz"]), "adapters", "unknown adapter"),
        (lambda: bench.compare("hi", max_new_tokens=0), "max_new_tokens", "positive"),
        (lambda: bench.merge({"x": 1, "q": 1}), "weights", "unknown adapter 'q'"),
        (lambda: bench.merge({"x": 0.5, "y": 0.5}, how="blend"), "how", "unknown combination type"),
        (lambda: bench.merge({"x": 0.5, "y": 0.5}, how="ties"), "density", "density"),
        (lambda: bench.merge({"x": 0.5, "y": 0.5}, how="cat", density=0.5), "density", "does not prune"),
        (lambda: bench.merge({"x": "x"}), "weights.x", "finite number"),
        (lambda: bench.merge({"x": 1}, name="x"), "name", "already"),
        (lambda: bench.load(tmp_path / "nope"), "path_or_run", "no folder"),
        (lambda: bench.load(tmp_path), "path_or_run", "no adapter"),
    ]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for call, key, text in cases:
        with pytest.raises(PlanError, match=text) as err:
            call()
        assert err.value.key == key, (key, err.value)
    assert bench.names == ["x", "y"] and bench.active == "x"
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(PlanError, match="valid: .*svd"):
        bench.merge({"x": 0.5, "y": 0.5}, how="blend")
    ranked = jp.adapters(_two(r_b=8), tokenizer=tok)
    with pytest.raises(PlanError, match="one rank.*x: r=4, y: r=8.*valid: svd, cat") as err:
        ranked.merge({"x": 0.5, "y": 0.5}, how="ties", density=0.5)
    assert err.value.key == "how"


def test_merge_equals_peft_add_weighted_adapter_and_its_preview(tok):
    for how, density in [("linear", None), ("cat", None), ("ties", 0.5), ("svd", None)]:
        ours, theirs = _two(), _two()
        bench = jp.adapters(ours, tokenizer=tok)
        shown = bench.merge_preview({"x": 0.7, "y": 0.3}, how=how, density=density, name="m")
        if how.startswith("ties"):
            torch.manual_seed(0)
        assert bench.merge({"x": 0.7, "y": 0.3}, how=how, density=density, name="m") == "m"
        extra = {"density": density} if density is not None else {}
        theirs.add_weighted_adapter(["x", "y"], [0.7, 0.3], "m", combination_type=how, **extra)
        mine = {k: v for k, v in ours.state_dict().items() if ".m." in k}
        ref = {k: v for k, v in theirs.state_dict().items() if ".m." in k}
        assert mine.keys() == ref.keys() and mine
        for k in ref:
            assert torch.allclose(mine[k], ref[k], atol=1e-6), (how, k)
        row = next(r for r in bench.rows() if r["name"] == "m")
        assert (shown["params"], shown["bytes"]) == (row["params"], row["bytes"]), how
        assert bench.sources["m"].kind == "merge"
    assert "dare_ties" in bench.combination_types() and "magnitude_prune_svd" in bench.combination_types()


def test_save_each_adapter_in_its_own_folder_and_load_back(tok, tmp_path):
    from peft import PeftModel

    model = _two()
    bench = jp.adapters(model, tokenizer=tok)
    saved = bench.save(tmp_path / "bench")
    assert sorted(p.name for p in (tmp_path / "bench").iterdir()) == ["x", "y"]
    ref = {"x": _alone(model, tok, "x", "the cat", 8), "y": _alone(model, tok, "y", "the cat", 8)}
    for name, folder in saved.items():
        again = PeftModel.from_pretrained(tiny.build("llama"), str(folder))
        assert _alone(again, tok, "default", "the cat", 8) == ref[name]
    # and onto another bench: load beside its adapter, no base reload; then a wrong base is refused
    other = jp.adapters(_two(), tokenizer=tok)
    assert other.load(saved["y"], name="b2") == "b2"
    assert other.compare("the cat", adapters=["b2"], max_new_tokens=8)["b2"][0] == ref["y"]
    assert other.sources["b2"].kind == "folder"
    wide = jp.adapters(_wider(), tokenizer=tok)
    with pytest.raises(PlanError) as err:
        wide.load(saved["y"])
    assert err.value.key == "shapes" and "takes 96 inputs" in str(err.value) and wide.names == ["x"]
    short = jp.adapters(_wider(hidden_size=64, num_hidden_layers=1), tokenizer=tok)
    with pytest.raises(PlanError, match="target modules missing in the base: model.layers.1") as err:
        short.load(saved["y"])
    assert err.value.key == "target_modules" and short.names == ["x"]
    import json

    config = json.loads((saved["y"] / "adapter_config.json").read_text())
    (saved["y"] / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "org/other"}))
    named = _two()
    named.get_base_model().config._name_or_path = "org/tiny"
    with pytest.raises(PlanError, match="trained on 'org/other', the model here is 'org/tiny'") as err:
        jp.adapters(named, tokenizer=tok).load(saved["y"])
    assert err.value.key == "base_model_name_or_path"


def _wider(**overrides):
    from peft import LoraConfig, get_peft_model

    overrides = overrides or {"hidden_size": 96}
    return get_peft_model(tiny.build("llama", **overrides), LoraConfig(r=4, target_modules=["q_proj"]),
                          adapter_name="x")
