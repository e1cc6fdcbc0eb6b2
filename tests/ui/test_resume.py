"""Resume on the dashboard: a stopped run continues from its checkpoint (the step count and the
charts go on), shown by the same dashboard, and `peft_run` names the continuing run; where it
cannot (the data was passed as an object), the button says how to continue instead."""

from __future__ import annotations

import time

import pytest
import runs
import tiny
from runs import LORA

import jupyter_peft as jp

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def wait_until(predicate, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_resume_continues_a_stopped_run_in_the_same_dashboard(tmp_path, shell):
    shell.user_ns.update(model=tiny.build("llama"), tokenizer=tiny.tokenizer(), ds=runs.sft_data())
    shell.run_line_magic("config", f"PeftMagics.runs_dir = '{tmp_path}'")
    shell.run_cell_magic("peft", "model", LORA + "train: {dataset: ds, max_steps: 100000, logging_steps: 1}")
    first = shell.user_ns["peft_run"]
    dashboard = first.dashboard
    wait_until(lambda: first.tracker.step >= 3, "three steps")
    assert dashboard.status["resume"]["shown"] is False  # nothing to resume while it trains
    assert first.stop().wait(120) == "stopped"
    stopped_at = first.step
    resume = dashboard.status["resume"]
    assert resume == {"shown": True, "enabled": True, "title": f"continue from checkpoint-{stopped_at} to step 100000"}

    dashboard._on_msg(dashboard, {"kind": "resume"}, [])
    second = shell.user_ns["peft_run"]
    assert second is not first and dashboard.run is second and second.dashboard is dashboard
    assert second.folder == first.folder and dashboard.status["error"] == ""
    wait_until(lambda: second.tracker.step > stopped_at, "a step after the checkpoint")
    assert second.state == "running" and dashboard.status["resume"]["shown"] is False
    steps = [row["step"] for row in second.history]
    assert steps[: len(first.history)] == [row["step"] for row in first.history][: len(steps)]  # the charts go on
    assert second.stop().wait(120) == "stopped"


def test_resume_says_how_when_the_data_was_an_object(tmp_path, shell):
    run = jp.train(tiny.build("llama"), LORA + "train: {max_steps: 100000}", dataset=runs.sft_data(),
                   tokenizer=tiny.tokenizer(), runs_dir=tmp_path)
    wait_until(lambda: run.tracker.step >= 1, "a step")
    assert run.stop().wait(120) == "stopped"
    resume = run.dashboard.status["resume"]
    assert resume["shown"] and not resume["enabled"]
    assert f"resume_from={str(run.folder)!r}" in resume["title"]
    run.dashboard._on_msg(run.dashboard, {"kind": "resume"}, [])
    assert "cannot resume" in run.dashboard.status["error"] and run.dashboard.run is run
