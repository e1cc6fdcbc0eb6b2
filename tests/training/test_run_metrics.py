"""What the dashboard shows, computed in Python: history rows, rates, ETA, flags, panels, the
static snapshot's charts, the run folder's rules and the checks made before training."""

from __future__ import annotations

import math

import pytest
import runs
import tiny
from runs import LORA

import jupyter_peft as jp
from jupyter_peft import PlanError
from jupyter_peft._format import format_bytes, format_duration
from jupyter_peft.training import folders as runfolder
from jupyter_peft.training.metrics import Tracker, decimate, panel_of
from jupyter_peft.ui.dashboard import snapshot


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_tracker_rows_rates_eta_and_summary():
    clock = Clock()
    tr = Tracker(window=2, clock=clock)
    tr.begin(max_steps=10, num_epochs=2)
    for step in range(1, 5):
        clock.now += 0.5  # 2 steps/s, 100 tokens a step
        tr.record(step, {"loss": 2.0 - step / 10, "num_tokens": 100.0 * step, "epoch": step / 5, "note": "x"})
    assert [r["step"] for r in tr.rows] == [1, 2, 3, 4]
    assert "note" not in tr.rows[0] and tr.rows[-1]["time"] == 2.0
    assert tr.rows[-1]["steps_per_second"] == 2.0 and tr.rows[-1]["tokens_per_second"] == 200.0
    assert "steps_per_second" not in tr.rows[0]  # no rate from a single point
    assert tr.eta() == 3.0  # 6 steps left at 2 steps/s
    status = tr.status()
    assert status["percent"] == 40.0 and status["epoch_text"] == "0.80 / 2" and status["eta_text"] == "0:03"
    assert tr.record(4, {"train_runtime": 2.0, "train_loss": 1.8}) is None and tr.summary["train_loss"] == 1.8
    eval_row = tr.record(4, {"eval_loss": 1.9})
    assert "steps_per_second" not in eval_row
    assert [p["id"] for p in tr.panels()] == ["loss", "tokens_per_second", "steps_per_second"]
    assert tr.panels()[0]["keys"] == ["loss", "eval_loss"]


def test_non_finite_values_are_flagged_and_become_gaps():
    tr = Tracker()
    tr.begin(max_steps=None, num_epochs=None)
    tr.record(1, {"loss": 1.0, "grad_norm": 0.5})
    tr.record(2, {"loss": float("nan"), "grad_norm": float("inf"), "learning_rate": float("nan")})
    assert tr.flags == [{"step": 2, "key": "loss", "value": "nan"}, {"step": 2, "key": "grad_norm", "value": "inf"}]
    assert tr.series("loss") == ([1, 2], [1.0, None])
    assert tr.series("loss", until=1) == ([1], [1.0])
    assert tr.status()["percent"] is None and tr.eta() is None


def test_resume_keeps_prior_rows_and_time():
    clock = Clock()
    tr = Tracker(clock=clock)
    tr.begin(max_steps=8, num_epochs=None, prior=[{"step": 1, "time": 5.0, "loss": 2.0}])
    clock.now += 1.0
    row = tr.record(2, {"loss": 1.5})
    assert row["time"] == 6.0 and tr.step == 2 and tr.keys == ["loss"]


def test_panels_take_the_trainers_keys():
    assert panel_of("rewards/margins").id == "rewards" and panel_of("rewards/brevity/mean").id == "rewards"
    assert panel_of("rewards/accuracies").id == "accuracy" and panel_of("eval_loss").id == "loss"
    assert panel_of("rewards/brevity/std") is None and panel_of("entropy") is None


def test_decimate_and_formats():
    xs = list(range(1001))
    dx, dy = decimate(xs, xs, 100)
    assert len(dx) <= 100 and dx[0] == 0 and dx[-1] == 1000 and dx == dy
    assert decimate([1, 2], [3, 4], 100) == ([1, 2], [3, 4])
    assert [format_duration(s) for s in (7, 125, 3723, None, math.inf)] == ["0:07", "2:05", "1:02:03", "", ""]
    assert format_bytes(512) == "512 B" and format_bytes(3 * 1024**3) == "3.00 GiB"


def test_line_chart_breaks_at_gaps_and_marks_flags():
    svg = snapshot.line_chart("loss", [("loss", [1, 2, 3, 4, 5], [3.0, 2.0, None, 1.5, 1.0])], flags=[3])
    assert svg.count("<polyline") == 2 and "stroke-dasharray" in svg and ">loss<" in svg
    assert snapshot.nice_ticks(0.0, 1.0) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert snapshot.nice_ticks(5853, 14125) == [7500.0, 10000.0, 12500.0]
    ticks = [snapshot.format_tick(v) for v in (0.0003, 1.25, 1500, 15000, 3.4e6, 1.2e9)]
    assert ticks == ["0.0003", "1.25", "1500", "15k", "3.4M", "1.2G"]
    lr = snapshot.nice_ticks(0.00099965, 0.001)
    assert len({snapshot.format_tick(t, lr[1] - lr[0]) for t in lr}) == len(lr) == 4
    empty = snapshot.line_chart("x", [("x", [], [])])
    assert "<polyline" not in empty


def test_launch_checks_before_anything_is_written(tmp_path):
    tok = tiny.tokenizer()
    model = jp.apply(LORA, tiny.build("llama"))
    data = runs.sft_data()
    cases = [
        (dict(dataset=data, tokenizer=tok, max_step=3), r"unknown argument 'max_step'.*did you mean 'max_steps'"),
        (dict(dataset=data.rename_column("text", "body"), tokenizer=tok), r"reads columns \(text\) or \(messages\)"),
        (dict(dataset=data, tokenizer=None), "needs the model's tokenizer"),
        (dict(dataset=None, tokenizer=tok), "training needs data"),
        (dict(dataset=data, tokenizer=tok, reward_funcs=[len]), "reward_funcs are for grpo and rloo"),
        (dict(dataset=data, tokenizer=tok, learning_rate="fast"), r"train.learning_rate.*expected"),
    ]
    for kwargs, message in cases:
        with pytest.raises(PlanError, match=message):
            jp.train(model, LORA, runs_dir=tmp_path, **kwargs)
    with pytest.raises(PlanError, match="need reward functions"):
        jp.train(model, LORA + "train: grpo", dataset=runs.grpo_data(), tokenizer=tok, runs_dir=tmp_path)
    with pytest.raises(PlanError, match="no run folder"):
        jp.train(model, LORA + f"train: {{resume_from: '{tmp_path / 'nope'}'}}", dataset=data, tokenizer=tok)
    assert list(tmp_path.iterdir()) == []  # nothing written by any of them


def _complete(folder):
    """A checkpoint folder with every file a resume reads, headers that read back whole."""
    import struct

    import torch

    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    (folder / "trainer_state.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(struct.pack("<Q", 2) + b"{}")
    for name in ("optimizer.pt", "scheduler.pt"):
        torch.save({}, folder / name)


def test_resume_point_rules(tmp_path):
    _complete(tmp_path / "checkpoint-3")
    _complete(tmp_path / "checkpoint-12")
    (tmp_path / "checkpoint-15").mkdir()  # incomplete: skipped
    (tmp_path / "checkpoint-x").mkdir()
    assert runfolder.checkpoints(tmp_path) == [tmp_path / f"checkpoint-{n}" for n in (3, 12, 15)]
    assert runfolder.resume_point(tmp_path, 20) == tmp_path / "checkpoint-12"
    assert runfolder.skipped(tmp_path, tmp_path / "checkpoint-12") == ["checkpoint-15: no adapter_config.json"]
    with pytest.raises(PlanError, match="raise max_steps above it"):
        runfolder.resume_point(tmp_path, 12)
    with pytest.raises(PlanError, match="has no checkpoint"):
        runfolder.resume_point(tmp_path / "checkpoint-3", 20)
    first = runfolder.fresh_path(tmp_path, "lora", "sft")
    first.mkdir()
    assert runfolder.fresh_path(tmp_path, "lora", "sft") != first
