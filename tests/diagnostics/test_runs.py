"""Per-module diagnostics on real tiny runs: what is sampled, frozen modules, where a NaN starts,
the modules table, the rank suggestion and the dashboard's heatmap messages."""

from __future__ import annotations

import json

import pytest
import runs
import tiny
import torch

import jupyter_peft as jp
from jupyter_peft import PlanError

ALL_LINEAR = "method: lora\nr: 4\nlora_alpha: 8\ntarget_modules: all-linear\n"
FROZEN = "model.layers.1.self_attn.v_proj"  # its adapter is frozen from step 11 on
WAIT = 180
SENT: list = []  # heatmap messages the tests below made, checked against js/dashboard/types.ts at the end

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _lora_paths(peft_model):
    from peft.tuners.lora import LoraLayer

    return [p for p, m in peft_model.get_base_model().named_modules() if isinstance(m, LoraLayer)]


@pytest.fixture(scope="module")
def trained(tok, tmp_path_factory):
    """16 steps of SFT on all-linear LoRA, sampled every 2 steps; one module frozen from step 11."""
    with runs.one_thread():
        model = jp.apply(jp.Plan.from_yaml(ALL_LINEAR), tiny.build("llama"))
        layer = model.get_base_model().get_submodule(FROZEN)
        forwards = []

        def freeze(module, args):  # the 11th training forward: this adapter stops learning
            forwards.append(1)
            if len(forwards) == 11:
                for p in (layer.lora_A["default"].weight, layer.lora_B["default"].weight):
                    p.requires_grad_(False)

        layer.register_forward_pre_hook(freeze)
        plan = ALL_LINEAR + "train: {trainer: sft, max_steps: 16, learning_rate: 0.01, diagnostics: 2}"
        run = jp.train(model, plan, dataset=runs.sft_data(), tokenizer=tok, runs_dir=tmp_path_factory.mktemp("runs"))
        assert run.wait(WAIT) == "finished", run.error
        return run


class Page:
    """The dashboard as a part sees it: its run, and `send` (through JSON, as over the wire)."""

    def __init__(self, run):
        self.run, self.sent = run, []

    def send(self, message):
        self.sent.append(json.loads(json.dumps(message, allow_nan=False)))


def test_every_adapted_module_is_sampled_every_n_steps(trained):
    run = trained
    diag = run.diagnostics
    assert diag.steps == list(range(2, 17, 2))
    paths = _lora_paths(run.model)
    frame = run.modules
    assert frame["path"].tolist() == paths and len(paths) == 14  # 2 layers x 7 linear roles, nothing else
    assert set(frame["group"]) == {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                   "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}
    assert frame["layer"].tolist() == [0] * 7 + [1] * 7 and (frame["rank"] == 4).all()
    learning = frame[frame["path"] != FROZEN]
    assert (learning["grad_norm"] > 0).all() and (learning["update_norm"] > 0).all()
    assert (frame["relative_update"] > 0).all() and frame["effective_rank"].between(1, 4).all()
    # the relative update is the delta's norm over the base weight's, from the module's own tensors
    layer = run.model.get_base_model().get_submodule(paths[0])
    delta = layer.get_delta_weight("default").detach()
    expected = float(torch.linalg.norm(delta) / torch.linalg.norm(layer.base_layer.weight.detach()))
    assert frame["relative_update"].iloc[0] == pytest.approx(expected, rel=1e-4)
    long = diag.df
    assert len(long) == 8 * 14 and set(long.columns) >= {"step", "path", "grad", "update", "moved", "relative"}


def test_a_frozen_adapter_stays_flat_while_the_others_move(trained):
    df = trained.diagnostics.df
    frozen, other = df[df["path"] == FROZEN], df[df["path"] == "model.layers.1.self_attn.q_proj"]
    after = frozen[frozen["step"] >= 12]
    assert (after["update"] == 0).all() and (after["grad"] == 0).all()
    assert after["moved"].nunique() == 1 and after["moved"].iloc[0] > 0  # it moved before, then stayed put
    assert (frozen[frozen["step"] <= 10]["update"] > 0).all()
    assert (other[other["step"] >= 12]["update"] > 0).all()


def test_suggested_ranks_keep_the_budget_and_make_a_plan_that_applies(trained):
    run = trained
    s = run.suggest_ranks()
    frame = run.modules
    budget = int((frame["rank"] * (frame["in_features"] + frame["out_features"])).sum())
    assert s.budget == s.params_before == budget and s.params <= budget
    assert set(s.ranks) == set(frame["group"]) and all(r >= 1 for r in s.ranks.values())
    assert "uses" in s.reasoning and "<table" in s._repr_html_()
    cell = s.cell()
    assert cell.startswith("%%peft model\n")
    plan = jp.Plan.from_yaml(cell.split("\n", 1)[1])
    assert plan.ranks == s.ranks and plan.alphas == pytest.approx(
        {k: 8 * r / 4 for k, r in s.ranks.items()})  # alpha / r as this run had it
    applied = jp.apply(plan.replace(train=None), tiny.build("llama"))
    assert sum(p.numel() for p in applied.parameters() if p.requires_grad) == s.params
    bigger = run.suggest_ranks(budget=2 * budget, by="module")
    assert len(bigger.ranks) == 14 and budget < bigger.params <= 2 * budget
    with pytest.raises(PlanError, match="budget"):
        run.suggest_ranks(budget=10)


def test_the_heatmap_part_sends_only_new_samples_of_a_constant_size(trained):
    from jupyter_peft.ui.dashboard.modules import ModulesPart

    page, part = Page(trained), ModulesPart()
    part.tick(page)  # the first tick: the columns and everything so far; the run has ended: its suggestion
    assert [m["kind"] for m in page.sent] == ["modules-reset", "modules-suggest"]
    reset, suggest = page.sent
    assert reset["meta"]["paths"] == _lora_paths(trained.model) and len(reset["samples"]) == 8
    assert suggest["cell"] == trained.suggest_ranks().cell() and "uses" in suggest["reasoning"]
    part.tick(page)
    assert len(page.sent) == 2  # nothing new
    diag = trained.diagnostics
    steps, rows = diag.samples()
    for i in range(3):  # more samples arrive: each tick sends only those
        diag.add(100 + i, rows[i])
        part.tick(page)
    news = page.sent[2:]
    assert [[s[0] for s in m["samples"]] for m in news] == [[100], [101], [102]]
    sizes = {len(json.dumps(m)) for m in news}
    assert max(sizes) - min(sizes) < 0.1 * max(sizes)  # a value per module and signal, whatever the step
    SENT.extend(page.sent)
    html = part.html(trained)
    assert "data:image/svg+xml;base64," in html and "not proof of a useless module" in html
    del diag.steps[8:], diag.rows[8:]


def test_diagnostics_false_adds_nothing(tok, tmp_path):
    model = jp.apply(jp.Plan.from_yaml(ALL_LINEAR), tiny.build("llama"))
    run = jp.train(model, ALL_LINEAR + "train: {trainer: sft, max_steps: 2, diagnostics: false}",
                   dataset=runs.sft_data(8), tokenizer=tok, runs_dir=tmp_path)
    assert run.wait(WAIT) == "finished"
    assert run.diagnostics is None
    with pytest.raises(PlanError, match="diagnostics: false"):
        _ = run.modules
    lora_b = model.get_base_model().get_submodule("model.layers.0.self_attn.q_proj").lora_B["default"].weight
    assert not lora_b._post_accumulate_grad_hooks


def test_the_nan_report_names_the_module_whose_gradient_broke_first(tok, tmp_path):
    target = "model.layers.0.mlp.up_proj"  # early in forward order: the report must not just name the last
    model = jp.apply(jp.Plan.from_yaml(ALL_LINEAR), tiny.build("llama"))
    weight = model.get_base_model().get_submodule(target).lora_B["default"].weight
    calls = []

    def poison(grad):  # the 5th backward: this one module's gradient is infinite
        calls.append(1)
        return grad * float("inf") if len(calls) == 5 else grad

    weight.register_hook(poison)
    run = jp.train(model, ALL_LINEAR + "train: {trainer: sft, max_steps: 20, learning_rate: 0.01, diagnostics: 2}",
                   dataset=runs.sft_data(), tokenizer=tok, runs_dir=tmp_path)
    assert run.wait(WAIT) == "failed"
    report = run.diagnostics.nan
    assert report["step"] == 5 and report["path"] == target and report["modules"] == [target]
    assert report["input_norm"] > 0 and report["first_bad_input"] is None
    # the loss turns NaN a step later (the clipped step wrote NaN into that adapter): run.error says both
    assert run.error.startswith("loss became nan at step 6")
    assert f"first non-finite gradient at step 5: {target} (input norm " in run.error
    assert target in run.dashboard.status["error"]
    from jupyter_peft.ui.dashboard.modules import ModulesPart

    page = Page(run)
    ModulesPart().reset(page)
    reset = page.sent[0]
    assert reset["nan"]["path"] == target and [s[0] for s in reset["samples"]] == [2, 4, 6]
    column = reset["meta"]["paths"].index(target)
    assert reset["samples"][-1][1][1][column] is None  # its weights are NaN since step 5: null on the wire
    SENT.extend(page.sent)
    # its hooks are gone with the run
    assert not weight._post_accumulate_grad_hooks


def test_the_heatmap_messages_are_what_the_typescript_types_declare():
    """tests/ui/test_contract.py's check (tsc over typed constants) on the messages made above."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "ui" / "test_contract.py"
    spec = importlib.util.spec_from_file_location("_contract", path)
    contract = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(contract)
    if not contract.TSC.exists():
        pytest.skip("node_modules is missing: no TypeScript compiler to judge")
    assert {m["kind"] for m in SENT} >= {"modules", "modules-reset"} and any(m.get("nan") for m in SENT)
    ts = contract.TsFile("heatmap", 'import type { FromPython } from "../../../js/dashboard/types";')
    ts.const("messages", "FromPython[]", SENT, "the heatmap messages Python sent (modules, modules-reset)")
    ts.check()


@pytest.mark.parametrize(("method", "kind"), [("dora", "lowrank"), ("loha", "dense"), ("lokr", "dense"),
                                              ("ia3", "grads")])
def test_other_methods_get_their_signals(tok, tmp_path, method, kind):
    """DoRA from its factors, LoHa and LoKr from peft's get_delta_weight, IA3 gradient norms only."""
    head = f"method: {method}\ntarget_modules: [q_proj, v_proj]\n" + ("r: 4\n" if method != "ia3" else
                                                                     "feedforward_modules: []\n")
    train = "train: {trainer: sft, max_steps: 2, learning_rate: 0.01, diagnostics: 1}"
    run = jp.train(tiny.build("llama"), head + train,
                   dataset=runs.sft_data(8), tokenizer=tok, runs_dir=tmp_path)
    assert run.wait(WAIT) == "finished", run.error
    frame = run.modules
    assert len(frame) == 4 and set(frame["kind"]) == {kind} and (frame["grad_norm"] > 0).all()
    moved = frame[["update_norm", "total_update", "relative_update"]]
    if kind == "grads":
        assert moved.isna().all().all()
    else:
        layer = run.model.get_base_model().get_submodule(frame["path"].iloc[0])
        expected = float(torch.linalg.norm(layer.get_delta_weight("default").detach()))
        assert frame["total_update"].iloc[0] == pytest.approx(expected, rel=1e-4)  # the adapters start at zero
        assert (moved > 0).all().all() and (frame["effective_rank"] >= 1).all()
    if kind != "lowrank":
        with pytest.raises(PlanError, match="LoRA and DoRA"):
            run.suggest_ranks()


def test_the_default_interval_widens_when_a_sample_costs_more_than_its_budget(tok, tmp_path, monkeypatch):
    """Without `diagnostics: N`, samples take at most 0.5% of the time: a sample made slow (50 ms
    against steps of a few ms) pushes the next far away; the last step is still sampled."""
    import time

    from jupyter_peft.diagnostics import callback

    real = callback.Sampler.sample

    def slow(self, grads):
        time.sleep(0.05)
        return real(self, grads)

    monkeypatch.setattr(callback.Sampler, "sample", slow)
    run = jp.train(tiny.build("llama"), ALL_LINEAR + "train: {trainer: sft, max_steps: 40}", dataset=runs.sft_data(8),
                   tokenizer=tok, runs_dir=tmp_path)
    assert run.wait(120) == "finished" and run.diagnostics.adaptive
    assert list(run.diagnostics.df["step"].unique()) == [10, 40]  # every 10 would have been 10, 20, 30, 40
