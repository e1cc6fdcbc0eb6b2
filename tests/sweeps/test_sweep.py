"""Sweeps on Optuna on one loaded base: trials run, a bad region is pruned, the best plan is the
best trial's, the base is bit-identical after, the study resumes; bad spaces are PlanErrors."""

from __future__ import annotations

import math

import pytest
import runs
import tiny
import wire
from runs import LORA

import jupyter_peft as jp
from jupyter_peft import PlanError

# one choice learns, the other barely moves: the median pruner stops trials of the second
SPACE = {"learning_rate": [0.02, 1.0e-6], "r": [4, 8]}
PLAN = LORA + "train: {max_steps: 8, per_device_train_batch_size: 4}"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _contract():
    """tests/ui/test_contract.py's recorder and TypeScript checker (one contract machinery)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "ui" / "test_contract.py"
    spec = importlib.util.spec_from_file_location("jp_contract_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _base_weights(peft_model):
    """Every weight of the base model (no adapter's), as exact copies."""
    return {k: v.detach().clone() for k, v in peft_model.get_base_model().state_dict().items()
            if "lora_" not in k}


def test_a_seeded_sweep_prunes_the_bad_region_keeps_the_base_and_resumes(tmp_path):
    from optuna.trial import TrialState

    tok, model = tiny.tokenizer(), tiny.build("llama")
    data = {"dataset": runs.sft_data(), "eval_dataset": runs.sft_data(4), "tokenizer": tok}
    peft_model = jp.apply(jp.Plan.from_yaml(LORA), model)
    before = _base_weights(peft_model)
    adapter_before = {k: v.clone() for k, v in peft_model.state_dict().items() if "lora_" in k}
    contract = _contract()
    ts = contract.TsFile("sweep", 'import type { SweepStateTraits, ToPython } from "../../../js/sweep/types";')
    with wire.recording():
        sw = jp.sweep(peft_model, PLAN, SPACE, trials=4, seed=2, runs_dir=tmp_path, name="s", **data)
        dash = sw.widget()  # the live dashboard, fed by every evaluation and trial from here on
    shots = contract.Recorder(ts, "sweep", dash, "SweepStateTraits")
    shots.snapshot("started")
    assert sw.wait(300) == "finished", sw.error
    state = shots.snapshot("finished")
    assert [t["state"] for t in state["trials"]].count("pruned") >= 1 and state["best"]["number"] is not None
    assert state["progress"]["done"] == 4 and state["progress"]["percent"] == 100.0
    assert state["cell"] == sw.best_cell() and state["parcoords"]["axes"][-1]["label"] == "eval_loss"
    pruned = next(t for t in state["trials"] if t["state"] == "pruned")
    assert pruned["curve"]["y"] == list(sw.study.trials[pruned["number"]].intermediate_values.values())
    assert len(state["parcoords"]["lines"]) == sum(t["state"] == "complete" for t in state["trials"])
    assert min(line["t"] for line in state["parcoords"]["lines"]) == 0.0
    page = contract.Page(shots, seq=False)
    page.send(kind="stop")  # the sweep has ended: Stop changes nothing
    assert sw.state == "finished"
    page.sent["plotly"] = [contract.asset_request(shots)]
    shots.sent_values()
    ts.const("commands", '{ [K in ToPython["kind"]]: Extract<ToPython, { kind: K }>[] }', page.sent,
             "the commands the test sent as the page")
    ts.check()
    assert "best: trial" in dash._repr_mimebundle_()[0]["text/html"]
    trials = sw.study.trials
    assert len(trials) == 4 and sw.done == 4
    states = [t.state for t in trials]
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states, [(t.params, t.state) for t in trials]
    assert any(t.params["learning_rate"] == 1.0e-6 for t in trials[1:])
    for t in trials:  # the bad region is pruned (a good trial may be too: the median is strict); the run says stopped
        record = jp.runs(tmp_path)[f"s-trial-{t.number}"]
        if t.number > 0 and t.params["learning_rate"] == 1.0e-6:
            assert t.state == TrialState.PRUNED
        if t.state == TrialState.PRUNED:
            assert record.state == "stopped" and max(t.intermediate_values) < 8
        else:
            assert record.state == "finished" and record.steps == 8
            evals = [r["eval_loss"] for r in record.history if "eval_loss" in r]
            assert t.value == evals[-1] and list(t.intermediate_values.values()) == evals
    best = min((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert sw.best_plan.train["learning_rate"] == best.params["learning_rate"]
    assert sw.best_plan.rank == best.params["r"] and "sweep" not in sw.best_plan.train
    assert sw.best_plan.adapter_name is None and sw.best_cell().startswith("%%peft model\n")
    assert jp.Plan.from_yaml(sw.best_cell().split("\n", 1)[1]) == sw.best_plan
    df = sw.df
    assert list(df["number"]) == [0, 1, 2, 3] and set(df["state"]) >= {"COMPLETE", "PRUNED"}
    assert df["run"].str.endswith("s-trial-0").any()
    # the shared base: bit-identical; the trials' adapters are gone, the model's own is as it was
    after = _base_weights(peft_model)
    assert before.keys() == after.keys() and all(before[k].equal(after[k]) for k in before)
    assert list(peft_model.peft_config) == ["default"] and peft_model.active_adapter == "default"
    assert all(adapter_before[k].equal(v) for k, v in peft_model.state_dict().items() if "lora_" in k)
    # the study is on disk: a new sweep resumes it and runs only the trials left
    again = jp.sweep(peft_model, PLAN, SPACE, trials=5, seed=2, runs_dir=tmp_path, name="s", resume=True, **data)
    assert again.wait(300) == "finished", again.error
    assert len(again.study.trials) == 5 and [t.number for t in again.study.trials][:4] == [0, 1, 2, 3]
    assert (tmp_path / "s" / "study.db").exists() and (tmp_path / "s-trial-4").is_dir()
    assert all(before[k].equal(v) for k, v in _base_weights(peft_model).items())
    names = set(jp.runs(tmp_path).df["name"])
    assert {f"s-trial-{n}" for n in range(5)} <= names and "s" not in names  # the study folder is no run
    with pytest.raises(PlanError, match="exists"):
        jp.sweep(peft_model, PLAN, SPACE, trials=5, runs_dir=tmp_path, name="s", **data)


def test_stopping_the_trial_stops_the_sweep_and_keeps_its_adapter(tmp_path):
    tok = tiny.tokenizer()
    data = {"dataset": runs.sft_data(), "eval_dataset": runs.sft_data(4), "tokenizer": tok}
    plan = LORA + "train: {max_steps: 400}"
    sw = jp.sweep(tiny.build("llama"), plan, {"r": [4, 8]}, trials=3, seed=0, runs_dir=tmp_path, name="t", **data)
    import time

    deadline = time.time() + 120
    while sw.current is None or sw.current.step < 2:
        assert time.time() < deadline and sw.state == "running", sw.error
        time.sleep(0.02)
    from jupyter_peft.training.run import stop_all

    stop_all()  # what %peft stop and a kernel interrupt do: the trial's run stops, and the sweep with it
    assert sw.wait(120) == "stopped"
    assert sw.done == 0 and [t.state.name for t in sw.study.trials] == ["FAIL"]
    assert jp.runs(tmp_path)["t-trial-0"].state == "stopped"  # its adapter saved, as a Stop does
    assert sw.best_plan is None and sw.best_cell() == ""


@pytest.mark.parametrize("space, key, words", [
    ({"rr": [4, 8]}, "train.sweep.rr", "did you mean 'r'"),
    ({"learning_rate": {"log": [0.0, 0.1]}}, "train.sweep.learning_rate", "starts above 0"),
    ({"r": {"int": [4.5, 8]}}, "train.sweep.r", "integers"),
    ({"r": {"int": [8, 4]}}, "train.sweep.r", "low must be below high"),
    ({"r": []}, "train.sweep.r", "no choices"),
    ({"r": [4, 4]}, "train.sweep.r", "repeat"),
    ({"r": {"ranges": [1, 2]}}, "train.sweep.r", "unknown kind of range"),
    ({"dataset": ["a", "b"]}, "train.sweep.dataset", "cannot be swept"),
    ({"r": [8, -1]}, "train.sweep.r", "cannot be swept for r"),
    ({"learning_rate": ["fast"]}, "train.sweep.learning_rate", "cannot be swept"),
    ("r", "train.sweep", "not a search space"),
])
def test_bad_spaces_are_plan_errors_naming_the_key(space, key, words, tmp_path):
    with pytest.raises(PlanError) as err:
        jp.sweep(tiny.build("llama"), PLAN, space, dataset=runs.sft_data(), eval_dataset=runs.sft_data(4),
                 tokenizer=tiny.tokenizer(), runs_dir=tmp_path)
    assert err.value.key == key and words in str(err.value), str(err.value)
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_bad_space_in_a_cell_names_its_line():
    text = PLAN.replace("train: {", "train: {sweep: {learning_rate: {log: [-1, 1]}}, trials: 2, ")
    with pytest.raises(PlanError) as err:
        jp.Plan.from_yaml(text)
    assert err.value.key == "train.sweep.learning_rate" and err.value.line == 5
    plan = jp.Plan.from_yaml(PLAN.replace("train: {", "train: {sweep: {r: [4, 8], lora_dropout: {range: [0, 0.1]}}, "
                                                      "trials: 2, "))
    assert plan.train["sweep"] == {"r": {"choices": [4, 8]}, "lora_dropout": {"range": [0.0, 0.1]}}
    assert jp.Plan.from_yaml(plan.to_yaml()) == plan  # the normal form reads back


def test_a_peft_cell_with_a_sweep_binds_peft_sweep(shell, tmp_path):
    shell.user_ns.update(model=tiny.build("llama"), tokenizer=tiny.tokenizer(), ds=runs.sft_data(),
                         ev=runs.sft_data(4))
    shell.run_line_magic("config", f"PeftMagics.runs_dir = {str(tmp_path)!r}")
    cell = PLAN.replace("train: {", "train: {dataset: ds, eval_dataset: ev, sweep: {r: [4, 8]}, trials: 2, seed: 1, ")
    shell.run_cell_magic("peft", "model", cell.replace("max_steps: 8", "max_steps: 2"))
    sw = shell.user_ns["peft_sweep"]
    assert type(sw).__name__ == "Sweep" and "peft_run" not in shell.user_ns
    assert sw.wait(300) == "finished", sw.error
    assert sw.done == 2 and all(math.isfinite(t.value) for t in sw.study.trials if t.value is not None)
    pm = shell.user_ns["peft_model"]
    assert list(pm.peft_config) == ["default"]  # the cell's adapter; the trials' came and went
    assert sw.best_cell().startswith("%%peft model\n")


def test_a_sweep_whose_trials_all_fail_ends_and_says_why(tmp_path, monkeypatch):
    import jupyter_peft.training.trainer as trainer

    def refuse(*args, **kwargs):
        raise PlanError("TRL could not set up the sft trainer: out of disk")

    monkeypatch.setattr(trainer, "build", refuse)  # every trial's trainer is refused
    model = tiny.build("llama")
    sw = jp.sweep(model, PLAN, {"r": [4, 8]}, trials=8, runs_dir=tmp_path, name="f", dataset=runs.sft_data(),
                  eval_dataset=runs.sft_data(4), tokenizer=tiny.tokenizer())
    assert sw.wait(120) == "failed"
    assert "3 trials in a row failed" in sw.error and "out of disk" in sw.error
    assert list(sw.df["state"]) == ["FAIL"] * 3 and sw.df["why"].str.contains("out of disk").all()
    from jupyter_peft.model.adapt import find_peft_model

    assert list(find_peft_model(model).peft_config) == ["default"]  # each trial's adapter came off again
