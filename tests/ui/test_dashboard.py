"""The dashboard's messages, as the kernel would send them (jupyter_client serialization):
only new points, throttled, constant bytes per step; Stop and Save from the page; the static
snapshot the output carries beside the widget, brought up to date when the run ends."""

from __future__ import annotations

import html
import json
import time

import pytest
import runs
import tiny
import wire
from runs import LORA

import jupyter_peft as jp

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _trainer(tmp_path, max_steps, **config):
    from trl import SFTConfig, SFTTrainer

    model = jp.apply(LORA, tiny.build("llama"))
    args = SFTConfig(output_dir=str(tmp_path), max_steps=max_steps, logging_steps=1, report_to="none", bf16=False,
                     use_cpu=True, save_strategy="no", disable_tqdm=True, learning_rate=0.005, **config)
    return SFTTrainer(model=model, args=args, train_dataset=runs.sft_data(), processing_class=tiny.tokenizer())


def _points(dashboard, key):
    steps = []
    for message in wire.custom(dashboard, "points"):
        if key in message["series"]:
            steps.append(message["series"][key][0])
    return steps


def test_each_update_carries_only_new_points_and_a_new_view_gets_the_history(tmp_path):
    with wire.recording():
        dashboard = jp.attach(_trainer(tmp_path, 12))
    dashboard.interval = 0.0  # every tick of the monitor sends what was logged since
    run = dashboard.run.start()
    assert run.wait(60) == "finished"
    batches = _points(dashboard, "loss")
    assert [s for batch in batches for s in batch] == list(range(1, 13))  # each point once, in order
    dashboard.comm.from_page({"kind": "sync"})
    reset = wire.custom(dashboard, "reset")[-1]["series"]
    assert reset["loss"] == [list(range(1, 13)), run.df["loss"].tolist()]


def test_updates_are_batched_and_bytes_per_step_do_not_grow(tmp_path):
    with wire.recording():
        dashboard = jp.attach(_trainer(tmp_path, 1))
    run, comm = dashboard.run, dashboard.comm
    run.tracker.begin(max_steps=20_000, num_epochs=None)
    # memory is sampled at most every 0.25 s of wall time: whether step 10 or step 10,000 carries
    # a sample would depend on how fast this machine runs the loop, so no samples here
    run._sample_memory = lambda: None

    def log(step):  # what the trainer's on_log hands the run
        run._logged(step, {"loss": 1.0, "grad_norm": 0.5, "learning_rate": 1e-4, "num_tokens": 100.0 * step})

    def one_update(step):  # the messages of one step sent on its own
        before = len(comm.messages)
        log(step)
        dashboard.flush()
        return comm.messages[before:]

    # the run is not started: no monitor ticks, nothing is sent until flush(), and the training
    # thread's add only queues (one message for many steps)
    for step in range(1, 10):
        log(step)
    assert _points(dashboard, "loss") == [] and len(dashboard._queue) == 9
    dashboard.flush()
    assert _points(dashboard, "loss") == [list(range(1, 10))]
    early = one_update(10)
    for step in range(11, 10_000):
        log(step)
    dashboard.flush()
    late = one_update(10_000)
    early, late = _parts(early), _parts(late)
    assert set(early) >= {"points", "progress"} and set(late) <= {"points", "progress", "memory"}
    for part in early.keys() & late.keys():  # a few more digits in the step, nothing history-sized
        assert abs(late[part] - early[part]) <= 0.05 * early[part] + 8, part

    for step in range(10_001, 10_031):  # fp16-style overflow: inf grad norm every step, all flagged
        run._logged(step, {"loss": 1.0, "grad_norm": float("inf")})
    dashboard.flush()
    assert len(run.tracker.flags) == 30 and len(dashboard.flags) == 20 and dashboard.flags[-1]["step"] == 10_030


def _parts(messages):
    """JSON bytes of each part of one update: the points message, and each trait that changed."""
    out = {}
    for m in messages:
        data = m["data"]
        if data["method"] == "custom":
            out["points"] = len(json.dumps(data["content"]))
        else:
            out.update({k: len(json.dumps(v)) for k, v in data["state"].items()})
    return out


def test_stop_and_save_from_the_page(tmp_path):
    with wire.recording():
        dashboard = jp.attach(_trainer(tmp_path, 100_000))
    run = dashboard.run.start()
    deadline = time.time() + 60
    while run.tracker.step < 2:
        assert time.time() < deadline
        time.sleep(0.02)
    dashboard.comm.from_page({"kind": "save"})
    run._save_done.wait(30)
    saved = run.checkpoint
    assert saved is not None and (saved / "adapter_model.safetensors").exists()
    dashboard.comm.from_page({"kind": "stop"})
    assert run.wait(60) == "stopped" and run.checkpoint != saved
    assert dashboard.status["state"] == "stopped" and str(run.checkpoint) in dashboard.status["message"]


def test_the_cell_output_carries_the_snapshot_of_the_end_beside_the_live_view(tmp_path, shell):
    from IPython.display import display
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        run = jp.train(tiny.build("llama"), LORA + "train: {max_steps: 100000}", dataset=runs.sft_data(),
                       tokenizer=tiny.tokenizer(), runs_dir=tmp_path)
        display(run)  # while it runs: the live widget
        while run.tracker.step < 2:
            time.sleep(0.02)
        run.stop().wait(60)
    live, final = cap.outputs[0].data, cap.outputs[-1].data
    assert "application/vnd.jupyter.widget-view+json" in live and "jp-peft-static" in live["text/html"]
    # the live view stays (its charts, Resume) while the kernel lives; the snapshot beside it is the end's
    assert final["application/vnd.jupyter.widget-view+json"] == live["application/vnd.jupyter.widget-view+json"]
    assert final["text/html"].count("data:image/svg+xml;base64,") >= 4 and "stopped" in final["text/html"]


def test_the_estimate_for_the_run_beside_the_measured_memory(tmp_path, shell):
    from IPython.display import display
    from IPython.utils.capture import capture_output

    from jupyter_peft._format import format_bytes
    from jupyter_peft.training.run_memory import longest_row, run_settings

    with capture_output() as cap:
        run = jp.train(tiny.build("llama"), LORA + "train: {max_steps: 2, per_device_train_batch_size: 4}",
                       dataset=runs.sft_data(), tokenizer=tiny.tokenizer(), runs_dir=tmp_path)
        display(run)
        assert run.wait(60) == "finished"
    trainer = run.trainer
    longest = max(len(row["input_ids"]) for row in trainer.train_dataset)  # the longest batch sets the peak
    assert longest_row(trainer.train_dataset) == longest
    settings = run_settings(trainer)
    assert settings["batch_size"] == 4 and settings["seq_len"] == min(longest, trainer.args.max_length)
    est = jp.estimate(run.model, jp.Plan.from_yaml(LORA + "train: {trainer: sft}"), **settings)
    memory = run.dashboard.memory
    assert memory["estimate_bytes"] == est.peak_bytes  # what max_memory_allocated would be compared with
    assert f"estimate on a GPU {format_bytes(est.peak_bytes)} peak tensors" in memory["estimate_text"]
    assert "not comparable" in memory["estimate_text"]  # a CPU run measures RSS
    assert memory["line"] == f"process memory (RSS): {memory['text']} · {memory['estimate_text']}"
    assert html.escape(memory["line"]) in cap.outputs[-1].data["text/html"]  # the static snapshot keeps it


def test_a_dpo_run_is_estimated_with_its_paired_rows(tmp_path):
    from trl import DPOConfig, DPOTrainer

    from jupyter_peft._format import format_bytes
    from jupyter_peft.training.run_memory import longest_row, run_estimate, run_settings

    model = jp.apply(LORA, tiny.build("llama"))
    args = DPOConfig(output_dir=str(tmp_path), max_steps=1, report_to="none", bf16=False, use_cpu=True,
                     per_device_train_batch_size=2, max_length=12)
    trainer = DPOTrainer(model=model, args=args, train_dataset=runs.dpo_data(), processing_class=tiny.tokenizer())
    rows = trainer.train_dataset
    longest = max(len(r["prompt_ids"]) + max(len(r["chosen_ids"]), len(r["rejected_ids"])) for r in rows)
    assert longest_row(rows) == longest and run_settings(trainer)["seq_len"] == min(longest, 12)
    shown = run_estimate(trainer, None, cuda=True)  # an attached trainer: the plan jp.apply recorded
    plan = jp.Plan.from_yaml(LORA + "train: {trainer: dpo}")
    est = jp.estimate(model, plan, **run_settings(trainer))
    assert shown["estimate_bytes"] == est.peak_bytes and est.setup.rows == 4  # chosen and rejected
    assert shown["estimate_text"].startswith(f"estimate {format_bytes(est.peak_bytes)} (GPU peak tensors")
