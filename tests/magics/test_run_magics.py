"""`%%peft` with a train block, `%peft stop` and `%peft status` in a real IPython shell."""

from __future__ import annotations

import time

import pytest
import runs
import tiny
from IPython.core.error import UsageError
from runs import LORA

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def ns(shell, tmp_path):
    shell.run_line_magic("config", f"PeftMagics.runs_dir = '{tmp_path}'")
    shell.user_ns.update(model=tiny.build("llama"), tokenizer=tiny.tokenizer(), ds=runs.sft_data(),
                         prompts=runs.grpo_data())
    yield shell.user_ns
    for name in ("peft_run",):
        run = shell.user_ns.get(name)
        if run is not None:
            run.stop().wait(60)
    shell.run_line_magic("config", "PeftMagics.runs_dir = 'peft_runs'")


def test_a_train_block_starts_a_background_run_and_stop_saves_it(shell, ns, capsys, tmp_path):
    shell.run_cell_magic("peft", "model", LORA + "train: {trainer: sft, dataset: ds, max_steps: 100000}")
    run = ns["peft_run"]
    assert run.state == "running" and run.folder.parent == tmp_path
    deadline = time.time() + 60
    while run.tracker.step < 2:
        assert time.time() < deadline
        time.sleep(0.02)
    with pytest.raises(UsageError, match="already training"):  # nothing changes under a running run
        shell.run_cell_magic("peft", "model", LORA + "r: 4\n")
    shell.run_line_magic("peft", "status")
    assert "running at step" in capsys.readouterr().out
    shell.run_line_magic("peft", "stop")
    out = capsys.readouterr().out
    assert run.state == "stopped" and f"checkpoint {run.checkpoint}" in out and "Stopped run" in out
    shell.run_line_magic("peft", "stop")
    assert "No training run is active" in capsys.readouterr().out


def test_grpo_reward_functions_come_from_the_notebook(shell, ns):
    calls = []
    ns["brevity"] = lambda completions, **kw: calls.append(1) or [-len(c) / 10 for c in completions]
    shell.run_cell_magic("peft", "model", LORA + (
        "train: {trainer: grpo, dataset: prompts, reward_funcs: [brevity], max_steps: 2, num_generations: 4, "
        "max_completion_length: 4, per_device_train_batch_size: 4}"))
    assert ns["peft_run"].wait(120) == "finished" and len(calls) >= 2


def test_train_block_mistakes_change_nothing(shell, ns):
    with pytest.raises(UsageError, match=r"'train.dataset'.*no variable named 'dss'"):
        shell.run_cell_magic("peft", "model", LORA + "train: {trainer: sft, dataset: dss}")
    with pytest.raises(UsageError, match=r"train.max_step.*did you mean 'max_steps'"):
        shell.run_cell_magic("peft", "model", LORA + "train: {trainer: sft, dataset: ds, max_step: 3}")
    with pytest.raises(UsageError, match="reads columns"):
        shell.run_cell_magic("peft", "model", LORA + "train: {trainer: dpo, dataset: ds}")
    from jupyter_peft.model.adapt import find_peft_model

    assert "peft_run" not in ns and "peft_model" not in ns and find_peft_model(ns["model"]) is None


def test_a_plan_with_base_loads_the_model_and_tokenizer_then_trains(shell, tmp_path):
    folder = tiny.save("llama", tmp_path / "base")
    shell.run_line_magic("config", f"PeftMagics.runs_dir = '{tmp_path / 'runs'}'")
    shell.user_ns["ds"] = runs.sft_data()
    try:
        shell.run_cell_magic("peft", "", f"base: {folder}\n" + LORA + "train: {dataset: ds, max_steps: 3}")
        run = shell.user_ns["peft_run"]
        assert run.wait(60) == "finished" and run.trainer.processing_class is shell.user_ns["tokenizer"]
    finally:
        shell.run_line_magic("config", "PeftMagics.runs_dir = 'peft_runs'")
