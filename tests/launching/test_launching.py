"""Launching: the exported script on two CPU processes over gloo (DDP), watched from this process.

Three launches, each about 15 s on two cores: one that streams, is stopped mid-run (a rank
then hangs at exit and is killed after the grace period) and loads back; one whose rank 1
raises at step 3; one from a `%%peft` cell's `processes:` that runs to its max_steps. The
failure and the hang are real processes misbehaving: a sitecustomize on the workers' path
(`_hooks`) makes rank 1 raise in the trainer's step-end, or sleep at interpreter exit.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import pytest
import runs
import tiny

import jupyter_peft as jp
from jupyter_peft.training import folders
from jupyter_peft.training.run import stop_all

PLAN = ("method: lora\nr: 4\nlora_alpha: 8\ntarget_modules: [q_proj, v_proj]\n"
        "train: {trainer: sft, per_device_train_batch_size: 2, max_length: 32, learning_rate: 1.0e-2, "
        "max_steps: %d}\n")
ROWS = 16  # with 2 ranks x 2 per device: 4 rows a step, 4 steps an epoch

HOOKS = '''
import os, sys
if os.environ.get("RANK") == "1":
    if os.environ.get("JP_TEST_FAIL_AT"):
        import transformers.trainer_callback as tc

        at, original = int(os.environ["JP_TEST_FAIL_AT"]), tc.CallbackHandler.on_step_end

        def on_step_end(self, args, state, control):
            if state.global_step >= at:
                raise RuntimeError(f"rank 1 gives up at step {state.global_step}")
            return original(self, args, state, control)

        tc.CallbackHandler.on_step_end = on_step_end
    if os.environ.get("JP_TEST_HANG_AT_EXIT"):
        import atexit, time

        atexit.register(time.sleep, 600)  # the work is done, the process does not go
'''


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tiny.save("llama", tmp_path_factory.mktemp("base") / "llama")


@pytest.fixture(scope="module")
def hooks(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hooks")
    (folder / "sitecustomize.py").write_text(HOOKS)
    return folder


@pytest.fixture(autouse=True)
def _no_strays():
    """No worker outlives its test (the run kills them; this says so if it did not)."""
    yield
    from jupyter_peft.session import session

    for run in session().recent_runs():
        if hasattr(run, "kill"):
            run.kill()
            run.wait(60)


def peft_model(base: Path):
    from transformers import AutoModelForCausalLM

    with runs.one_thread():
        model = AutoModelForCausalLM.from_pretrained(base)
    return jp.apply(jp.Plan.from_yaml(PLAN % 100), model)


def env(hooks: Path, **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1",
            **extra}


def until(check, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def gone(pids: list[int]) -> bool:
    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    return not any(alive(p) for p in pids)


def test_a_launch_streams_stops_at_a_step_and_loads_back(base, hooks, tmp_path):
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    model = peft_model(base)
    data = runs.sft_data(ROWS)
    run = jp.launch(model, jp.Plan.from_yaml(PLAN % 2000), processes=2, dataset=data, tokenizer=tiny.tokenizer(),
                    runs_dir=tmp_path, env=env(hooks, JP_TEST_HANG_AT_EXIT="1"), exit_grace=2)
    assert run.state == "running" and run.processes == 2
    assert run.command.startswith("accelerate launch --config_file accelerate.yaml --main_process_port ")
    assert run.command.endswith(" --tee 3 --log_dir logs train.py")
    written = {str(p.relative_to(run.folder)) for p in run.folder.rglob("*") if p.is_file()}
    assert {"train.py", "accelerate.yaml", "README.md", "data/train.jsonl", "plan.yaml", "control.json"} <= written
    assert "accelerate launch --config_file accelerate.yaml train.py" in (run.folder / "README.md").read_text()

    until(lambda: len(run.history) >= 3 or not run.live)
    assert run.live, run.error  # the history grows while the processes train
    saved = run.save(timeout=120)  # Save now: a checkpoint at the next step, training goes on
    assert saved is not None and folders.problem(saved) is None and run.live
    seen = len(run.history)
    assert stop_all("kernel interrupt") == [run]  # what a kernel interrupt calls: it reaches launched runs
    assert run.wait(120) == "stopped", run.error
    assert gone(run.pids) and len(run.pids) >= 3  # the launcher and both ranks
    assert not (run.folder / "control.json").exists()  # run again by hand, the folder trains as exported
    assert any("hung in teardown" in n for n in run.notes), run.notes

    step = folders.checkpoint_step(run.checkpoint)
    assert folders.checkpoint_step(saved) <= seen <= step < 2000 and run.step == step
    trainer_state = json.loads((run.checkpoint / "trainer_state.json").read_text())
    assert trainer_state["global_step"] == step and trainer_state["max_steps"] == 2000
    assert trainer_state["train_batch_size"] == 2 and run.global_batch == 4
    logs = [r for r in run.history if "loss" in r]
    assert [r["epoch"] for r in logs[:4]] == [0.25, 0.5, 0.75, 1.0]  # 4 rows a step: 2 ranks x 2
    assert all(r["memory_rank0"] > 0 and r["memory_rank1"] > 0 for r in logs)
    assert logs[-1]["memory_bytes"] == max(logs[-1]["memory_rank0"], logs[-1]["memory_rank1"])
    assert folders.read_history(run.folder)[-1]["step"] == run.history[-1]["step"]  # the run folder's history

    run.load_into(model)
    on_disk = load_file(run.adapter_path / "adapter_model.safetensors")
    loaded = get_peft_model_state_dict(model)
    assert set(loaded) == set(on_disk) and all(loaded[k].equal(on_disk[k]) for k in on_disk)
    assert any(v.abs().sum() > 0 for k, v in on_disk.items() if "lora_B" in k)  # it trained
    assert run.dashboard.status["state"] == "stopped" and run.dashboard.progress["step"] == step
    assert f"sft x2 {run.folder.name}" in run.dashboard.static_bundle()["text/html"]  # the saved snapshot too
    run.dashboard._on_msg(run.dashboard, {"kind": "resume"}, [])
    assert "trained in 2 processes" in run.dashboard.status["error"]


def test_a_rank_that_raises_fails_the_run_with_its_traceback(base, hooks, tmp_path):
    model = peft_model(base)
    run = jp.launch(model, jp.Plan.from_yaml(PLAN % 2000), processes=2, dataset=runs.sft_data(ROWS),
                    runs_dir=tmp_path, env=env(hooks, JP_TEST_FAIL_AT="3"))
    assert run.wait(120) == "failed"
    assert run.failed_rank == 1
    assert run.error == f"rank 1 failed: RuntimeError: rank 1 gives up at step 3 (its log: {run.logs[1]['stderr']})"
    assert run.traceback.startswith("Traceback (most recent call last):") and "on_step_end" in run.traceback
    assert str(run.logs[1]["stderr"]) in " ".join(run.notes)  # the logs are named
    assert run.logs[1]["stderr"].is_file() and gone(run.pids)
    assert "rank 1 failed" in run.dashboard.status["error"]
    with pytest.raises(jp.PlanError, match="no adapter to load"):
        run.load_into(model)


def test_a_peft_cell_with_processes_runs_to_max_steps(shell, base, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    shell.user_ns.update(model=AutoModelForCausalLM.from_pretrained(base), tokenizer=tiny.tokenizer(),
                         ds=runs.sft_data(ROWS))
    shell.run_line_magic("config", f"PeftMagics.runs_dir = {str(tmp_path)!r}")
    cell = PLAN.replace("max_steps: %d}", "max_steps: 5, dataset: ds, processes: 2}")
    shell.run_cell_magic("peft", "model", cell)
    run = shell.user_ns["peft_run"]
    assert run.state == "running" and run.kind == "sft x2"
    assert f"Launched 2 processes in {run.folder}" in capsys.readouterr().out  # and the command, by hand
    assert run.wait(120) == "finished", run.error
    assert run.step == 5 and run.checkpoint.name == "checkpoint-5"  # max_steps, and a checkpoint at the end
    trainer_state = json.loads((run.checkpoint / "trainer_state.json").read_text())
    assert trainer_state["global_step"] == 5 and trainer_state["max_steps"] == 5
    assert [r["step"] for r in run.history if "loss" in r] == [1, 2, 3, 4, 5]
    assert "processes: 2" in (run.folder / "plan.yaml").read_text()
    assert json.loads((run.folder / "run.json").read_text())["state"] == "finished"  # the folder says how it ended
    assert run.describe().startswith(f"run {run.folder} (sft x2, finished at step 5/5")


def test_mistakes_launch_nothing_and_write_nothing(shell, base, tmp_path, capsys):
    from IPython.core.error import UsageError

    shell.run_line_magic("peft", "launch --help")
    assert "--processes" in capsys.readouterr().out
    shell.user_ns.update(peft_model=peft_model(base), ds=runs.sft_data(ROWS))
    shell.run_line_magic("config", f"PeftMagics.runs_dir = {str(tmp_path)!r}")
    with pytest.raises(UsageError, match="no variable named 'nope'"):
        shell.run_line_magic("peft", "launch nope --processes 2")
    with pytest.raises(UsageError, match="invalid choice: 'zero4'"):
        shell.run_line_magic("peft", "launch peft_model --strategy zero4")
    with pytest.raises(UsageError, match="name the training data"):
        shell.run_line_magic("peft", "launch peft_model --processes 2")
    with pytest.raises(UsageError, match="fsdp shards over GPUs"):  # this machine has none
        shell.run_line_magic("peft", "launch peft_model --data ds --processes 2 --strategy fsdp")
    model = shell.user_ns["peft_model"]
    for wrong, match in (({"processes": 0}, "positive whole number"), ({"machines": 2}, "main_ip"),
                         ({"processes": 3, "machines": 2, "main_ip": "10.0.0.1"}, "split evenly"),
                         ({"learning_rat": 1e-3}, "learning_rate"), ({"samples": ["the cat"]}, "runs in this kernel")):
        with pytest.raises(jp.PlanError, match=match):
            jp.launch(model, dataset=shell.user_ns["ds"], runs_dir=tmp_path, **wrong)
    assert list(tmp_path.iterdir()) == [] and "peft_run" not in shell.user_ns


# ---- which rank failed, read from the logs (no processes) ---------------------------------------

SCRIPT_ERROR = """Traceback (most recent call last):
  File "/runs/x/train.py", line 269, in <module>
    main()
ValueError: the data has no 'text' column
"""
ACCELERATE_ERROR = """Traceback (most recent call last):
  File "/venv/bin/accelerate", line 10, in <module>
    sys.exit(main())
subprocess.CalledProcessError: Command '['/venv/bin/python', 'train.py']' returned non-zero exit status 1.
"""
ROOT_CAUSE = """torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
train.py FAILED
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-01_12:08:42
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 16079)
  error_file: <N/A>
"""


def test_the_failing_rank_and_its_traceback_are_read_from_the_logs(tmp_path):
    from jupyter_peft.launching import process

    one = tmp_path / "one"  # one process: its traceback and accelerate's share launch.log
    one.mkdir()
    (one / "launch.log").write_text("loading\n" + SCRIPT_ERROR + "\n" + ACCELERATE_ERROR)
    assert process.failure(one) == (0, "ValueError: the data has no 'text' column", SCRIPT_ERROR.rstrip())

    two = tmp_path / "two"  # rank 1 was killed (no traceback); rank 0 only saw its peer go
    for rank, text in ((0, "[rank0]: Traceback (most recent call last):\n[rank0]:   File \"x\"\n"
                           "[rank0]: RuntimeError: Connection closed by peer\n"), (1, "loading\n")):
        (two / "logs" / "none_abc" / "attempt_0" / str(rank)).mkdir(parents=True)
        (two / "logs" / "none_abc" / "attempt_0" / str(rank) / "stderr.log").write_text(text)
    (two / "launch.log").write_text(ROOT_CAUSE)
    rank, error, _ = process.failure(two)
    assert (rank, error) == (1, "killed by SIGKILL (out of memory?)")
    assert set(process.rank_logs(two)) == {0, 1}
