"""Runs looked back on: jp.runs over a folder with a finished, a stopped, a failed and half-written
runs; jp.Run.load after the fact; jp.compare_runs' traces are the runs' histories; %peft runs."""

from __future__ import annotations

import json
import math
import time

import pytest
import runs
import tiny
from runs import LORA

import jupyter_peft as jp
from jupyter_peft import PlanError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _until(predicate, timeout=120.0):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


class _Boom:
    """A data collator that fails on its first batch: the run fails, as a bug in user code would."""

    def __call__(self, rows):
        raise ValueError("boom in the collator")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One runs folder holding every kind of run (made once for the module)."""
    root = tmp_path_factory.mktemp("runs")
    tok, model = tiny.tokenizer(), tiny.build("llama")
    with runs.one_thread():
        plan = LORA + "train: {max_steps: 6, learning_rate: 0.005, eval_strategy: steps, eval_steps: 3}"
        done = jp.train(model, plan, dataset=runs.sft_data(), eval_dataset=runs.sft_data(4), tokenizer=tok,
                        runs_dir=root)
        assert done.wait(120) == "finished", done.error
        long = jp.train(tiny.build("llama"), LORA.replace("r: 8", "r: 4") + "train: {max_steps: 400}",
                        dataset=runs.sft_data(), tokenizer=tok, runs_dir=root)
        _until(lambda: long.step >= 2)
        while_live = jp.runs(root)[long.folder.name].state  # the run training in this kernel
        long.stop()
        assert long.wait(120) == "stopped"
        bad = jp.train(tiny.build("llama"), LORA + "train: {max_steps: 5}", dataset=runs.sft_data(), tokenizer=tok,
                       runs_dir=root, data_collator=_Boom())
        assert bad.wait(120) == "failed"
    # a crash mid-run: run.json still says running, the last history line cut short
    crashed = root / "20200101-000000-lora-sft"
    crashed.mkdir()
    (crashed / "plan.yaml").write_text(jp.Plan.from_yaml(LORA + "train: {max_steps: 50}").to_yaml())
    (crashed / "history.jsonl").write_text('{"step": 1, "time": 0.1, "loss": 3.0}\n{"step": 2, "ti')
    (crashed / "run.json").write_text(json.dumps({"state": "running", "error": None, "started": 1577836800.0,
                                                  "ended": None, "steps": 0, "max_steps": 50}))
    # an older version's folder: no run.json; and a folder that is no run at all; and a damaged run.json
    old = root / "20190101-000000-lora-sft"
    old.mkdir()
    (old / "plan.yaml").write_text("method: lora\nr: 8\nan_old_key: 3\n")
    (old / "history.jsonl").write_text('{"step": 1, "time": 0.5, "loss": 2.5}\n')
    (root / "notes").mkdir()
    damaged = root / "20180101-000000-lora-sft"
    damaged.mkdir()
    (damaged / "run.json").write_text("{not json")
    return {"root": root, "finished": done, "stopped": long, "failed": bad, "while_live": while_live}


def test_jp_runs_lists_every_folder_with_its_state_newest_first(folder):
    table = jp.runs(folder["root"])
    df = table.df
    by_name = {r["name"]: r for r in df.to_dict("records")}
    done, long, bad = folder["finished"], folder["stopped"], folder["failed"]
    assert by_name[done.folder.name]["state"] == "finished"
    assert by_name[long.folder.name]["state"] == "stopped" and folder["while_live"] == "running"
    assert by_name[bad.folder.name]["state"] == "failed"
    assert "boom in the collator" in by_name[bad.folder.name]["reason"]
    assert by_name["20200101-000000-lora-sft"]["state"] == "incomplete"
    assert "says running" in by_name["20200101-000000-lora-sft"]["reason"]
    assert "cut short" in by_name["20200101-000000-lora-sft"]["reason"]
    assert by_name["20190101-000000-lora-sft"]["state"] == "incomplete"
    assert "no run.json" in by_name["20190101-000000-lora-sft"]["reason"]
    assert by_name["20190101-000000-lora-sft"]["r"] == 8  # read as YAML: listing needs no peft
    old = jp.Run.load(folder["root"] / "20190101-000000-lora-sft")
    assert old.state == "incomplete" and old.plan is None and "does not read as a plan" in old.reason
    assert "an_old_key" in old.reason and old.history == [{"step": 1, "time": 0.5, "loss": 2.5}]
    assert by_name["notes"]["state"] == "unreadable" and "not a run folder" in by_name["notes"]["reason"]
    assert by_name["20180101-000000-lora-sft"]["state"] == "unreadable"
    assert "run.json is damaged" in by_name["20180101-000000-lora-sft"]["reason"]
    # the numbers are the runs' own
    row = by_name[done.folder.name]
    evals = [(r["eval_loss"], r["step"]) for r in done.history if "eval_loss" in r]
    assert (row["eval_loss"], row["eval_step"]) == min(evals)
    assert row["train_loss"] == [r["loss"] for r in done.history if "loss" in r][-1]
    assert (row["steps"], row["max_steps"], row["trainer"], row["method"], row["r"]) == (6, 6, "sft", "lora", 8)
    assert row["learning_rate"] == 0.005 and row["targets"] == "q_proj, v_proj"
    assert row["duration_s"] == pytest.approx(done.history[-1]["time"], abs=0.01)
    assert by_name[long.folder.name]["steps"] == long.step and by_name[long.folder.name]["max_steps"] == 400
    # newest first: the three real runs, in reverse order of their start
    real = [bad.folder.name, long.folder.name, done.folder.name]
    assert [n for n in df["name"] if n in real] == real
    assert list(df["name"][-3:]) == ["20200101-000000-lora-sft", "20190101-000000-lora-sft", "20180101-000000-lora-sft"]
    assert len(df) == 7 and table[done.folder.name].state == "finished"
    with pytest.raises(PlanError, match="unknown run"):
        table["no-such-run"]
    assert jp.runs(folder["root"] / "missing").df.empty  # no folder: no runs, no exception


def test_run_load_gives_a_finished_run_back(folder):
    done = folder["finished"]
    loaded = jp.Run.load(done.folder)
    assert loaded.state == "finished" and loaded.error is None
    assert loaded.history == json.loads(json.dumps(done.history))
    assert loaded.df["loss"].dropna().tolist() == done.df["loss"].dropna().tolist()
    assert loaded.plan == done.plan and loaded.folder == done.folder
    assert loaded.checkpoint == done.checkpoint and (loaded.adapter_path / "adapter_model.safetensors").exists()
    assert loaded.step == 6 and loaded.max_steps == 6 and loaded.kind == "sft"
    html = loaded.dashboard._repr_html_()
    assert "finished" in html and html.count("data:image/svg+xml;base64,") >= 2  # its charts as they ended
    assert "adapter saved to" in html
    with pytest.raises(PlanError, match="from_pretrained"):
        loaded.generate("the cat")
    failed = jp.Run.load(folder["failed"].folder)
    assert failed.state == "failed" and "boom" in failed.error
    with pytest.raises(PlanError, match="no run folder"):
        jp.Run.load(folder["root"] / "nothing-here")


def test_compare_traces_equal_the_histories_and_the_plan_diff(folder):
    done, long = folder["finished"], folder["stopped"]
    cmp = jp.compare_runs(done, long.folder, metric="loss")
    fig = cmp.figure
    assert [t.name for t in fig.data] == [done.folder.name, long.folder.name]
    for trace, run in zip(fig.data, (done, long)):
        rows = [r for r in run.history if "loss" in r]
        assert list(trace.x) == [r["step"] for r in rows] and list(trace.y) == [r["loss"] for r in rows]
    assert {"loss", "eval_loss", "learning_rate", "grad_norm"} <= set(cmp.metrics)
    diff = cmp.diff
    assert diff.loc["r"].tolist() == [8, 4]
    assert diff.loc["train.max_steps"].tolist() == [6, 400] and "method" not in diff.index
    by_time = jp.compare_runs(done, long, metric="loss", x="time", smooth=0.5, log_y=True)
    first = by_time.data["traces"][0]
    assert first["x"] == [r["time"] for r in done.history if "loss" in r]
    raw = first["raw"]
    assert first["y"][0] == pytest.approx(raw[0]) and first["y"][1] == pytest.approx((0.5 * raw[0] + raw[1]) / 1.5)
    assert by_time.figure.layout.yaxis.type == "log"
    with pytest.raises(PlanError, match="unknown metric") as err:
        jp.compare_runs(done, metric="eval_los")
    assert "eval_loss" in str(err.value) and err.value.key == "metric"
    with pytest.raises(PlanError, match="key 'x'"):
        jp.compare_runs(done, x="epoch")


def test_the_widget_compares_the_ticked_runs(folder):
    table = jp.runs(folder["root"])
    widget = table.widget
    assert [c["key"] for c in widget.columns][:3] == ["name", "trainer", "method"]
    assert [r["name"] for r in widget.rows] == list(table.df["name"])
    json.dumps(widget.rows)  # JSON-safe: what the page gets
    done, long = folder["finished"].folder.name, folder["stopped"].folder.name
    widget._on_msg(widget, {"kind": "compare", "names": [done, long]}, [])
    assert widget.error == "" and [t["name"] for t in widget.overlay["traces"]] == [done, long]
    widget.metric = "eval_loss"  # the picker: the overlay follows
    assert widget.overlay["metric"] == "eval_loss"
    assert widget.overlay["traces"][0]["y"] == [r["eval_loss"] for r in folder["finished"].history if "eval_loss" in r]
    assert widget.overlay["traces"][1]["y"] == []  # the stopped run never evaluated
    widget.smooth = 0.9
    assert widget.overlay["smooth"] == 0.9
    widget._on_msg(widget, {"kind": "compare", "names": []}, [])
    assert widget.overlay == {} and "tick at least one run" in widget.error
    assert all(math.isfinite(v) for v in widget.rows[0].values() if isinstance(v, float))


def test_peft_runs_magic(shell, folder, capsys):
    table = shell.run_line_magic("peft", f"runs --runs-dir {folder['root']}")
    assert len(table) == 7
    shell.run_line_magic("config", f"PeftMagics.runs_dir = {str(folder['root'])!r}")
    assert len(shell.run_line_magic("peft", "runs")) == 7
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="unrecognized arguments"):
        shell.run_line_magic("peft", "runs --bogus")


def _contract():
    """tests/ui/test_contract.py's recorder and TypeScript checker (one contract machinery)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "ui" / "test_contract.py"
    spec = importlib.util.spec_from_file_location("jp_contract_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_runs_widget_sends_what_its_typescript_types_declare(folder):
    import wire

    contract = _contract()
    if not contract.TSC.exists():
        pytest.skip("node_modules is missing: no TypeScript compiler to judge")
    ts = contract.TsFile("runs", 'import type { RunsState, ToPython } from "../../../js/runs/types";')
    with wire.recording():
        widget = jp.runs(folder["root"]).widget
    shots = contract.Recorder(ts, "runs", widget, "RunsState")
    shots.snapshot("listed")
    page = contract.Page(shots, seq=False)
    done, long = folder["finished"].folder.name, folder["stopped"].folder.name
    page.send(kind="compare", names=[done, long])
    assert widget.overlay["names"] == [done, long]
    shots.snapshot("compared")
    widget.smooth, widget.log_y, widget.x = 0.6, True, "time"  # as the page sets them
    shots.snapshot("smoothed")
    page.send(kind="compare", names=[])
    shots.snapshot("nothing_ticked")
    page.send(kind="refresh")
    page.sent["plotly"] = [contract.asset_request(shots)]
    shots.sent_values()
    ts.const("commands", '{ [K in ToPython["kind"]]: Extract<ToPython, { kind: K }>[] }', page.sent,
             "the commands the test sent as the page")
    ts.check()
