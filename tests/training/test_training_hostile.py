"""Unlucky and hostile training (issue 15): runs of two models side by side, an interrupt
during `run.wait()`, broken checkpoints on resume, bad data found before the model changes,
TRL refusing a trainer after the apply, a failure before the first step, named adapters."""

from __future__ import annotations

import signal
import sys
import threading
import time

import pytest
import runs
import tiny
import torch
from runs import LORA

import jupyter_peft as jp
from jupyter_peft import PlanError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _until(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _state(model):
    """What a bad call must leave as it was: the module objects, the trainable flags, the wrapper."""
    from jupyter_peft.model.adapt import find_peft_model

    return ({name: id(m) for name, m in model.named_modules()},
            {name: p.requires_grad for name, p in model.named_parameters()},
            find_peft_model(model), "peft_config" in model.__dict__)


# ---- runs of different models side by side ----------------------------------------------------


def test_runs_of_two_models_train_side_by_side_and_neither_kills_the_other(tok, tmp_path):
    first = jp.train(tiny.build("llama"), LORA + "train: {max_steps: 100000}", dataset=runs.sft_data(),
                     tokenizer=tok, runs_dir=tmp_path)
    try:  # a second run with no gap, then a third while the first is well under way
        second = jp.train(tiny.build("llama", seed=1), LORA + "train: {max_steps: 3}", dataset=runs.sft_data(),
                          tokenizer=tok, runs_dir=tmp_path)
        assert second.wait(120) == "finished", second.error
        _until(lambda: first.tracker.step >= 4)
        third = jp.train(tiny.build("gpt2"), "method: lora\nr: 4\ntarget_modules: [c_attn]\ntrain: {max_steps: 3}",
                         dataset=runs.sft_data(), tokenizer=tok, runs_dir=tmp_path)
        assert third.wait(120) == "finished", third.error
        after = first.tracker.step
        _until(lambda: first.tracker.step > after + 2)  # the first still trains after both ended
        assert first.state == "running" and first.error is None
    finally:
        first.stop().wait(120)
    assert first.state == "stopped" and first.error is None
    assert (first.checkpoint / "adapter_model.safetensors").exists()


def test_a_run_that_cannot_share_accelerate_with_a_running_one_is_refused_and_changes_nothing(tok, tmp_path):
    first = jp.train(tiny.build("llama"), LORA + "train: {max_steps: 100000}", dataset=runs.sft_data(),
                     tokenizer=tok, runs_dir=tmp_path)
    try:
        other = tiny.build("llama", seed=1)
        before = _state(other)
        with pytest.raises(PlanError, match="gradient accumulation"):
            jp.train(other, LORA + "train: {max_steps: 3, gradient_accumulation_steps: 2}",
                     dataset=runs.sft_data(), tokenizer=tok, runs_dir=tmp_path / "second")
        assert _state(other) == before and not (tmp_path / "second").exists()
        step = first.tracker.step
        _until(lambda: first.tracker.step > step + 2)
        assert first.state == "running"
    finally:
        first.stop().wait(120)
    assert first.state == "stopped" and first.error is None


# ---- an interrupt during wait() ---------------------------------------------------------------


def _interrupt_when_waiting(run) -> threading.Thread:
    """SIGINT to the main thread once it is blocked inside `run.wait` (not before): in the wait on
    the run's end (`Event.wait`), which `Run.wait` guards."""
    main = threading.main_thread()

    def waiting() -> bool:
        frame = sys._current_frames().get(main.ident)
        inner = False
        while frame is not None:
            inner = inner or (frame.f_code.co_name in ("wait", "join")
                              and frame.f_locals.get("self") in (getattr(run, "_ended", None), run._thread))
            if inner and frame.f_code.co_name == "wait" and frame.f_locals.get("self") is run:
                return True
            frame = frame.f_back
        return False

    def send() -> None:
        _until(lambda: waiting() and run.tracker.step >= 2)
        time.sleep(0.1)  # into the blocking wait itself
        signal.pthread_kill(main.ident, signal.SIGINT)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread")
def test_an_interrupt_during_wait_stops_the_run_and_waits_for_its_checkpoint(tok, tmp_path):
    from jupyter_peft.training import folders

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        model = tiny.build("llama")
        run = jp.train(model, LORA + "train: {max_steps: 100000}", dataset=runs.sft_data(), tokenizer=tok,
                       runs_dir=tmp_path)
        sender = _interrupt_when_waiting(run)
        state = run.wait(300)
        sender.join(10)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert state == "stopped" and run.checkpoint is not None
    assert folders.problem(run.checkpoint) is None  # complete: adapter, optimizer, scheduler, state
    assert run.wait() == "stopped"  # and again, at once
    again = jp.train(run.model, LORA + "train: {max_steps: 2}", dataset=runs.sft_data(), tokenizer=tok,
                     runs_dir=tmp_path)  # the model is free: not refused as busy
    assert again.wait(120) == "finished", again.error


# ---- resume takes only complete checkpoints ------------------------------------------------------


def test_resume_skips_broken_checkpoints_and_says_so(tok, tmp_path):
    import shutil

    first = jp.train(tiny.build("llama"), LORA + "train: {max_steps: 3}", dataset=runs.sft_data(), tokenizer=tok,
                     runs_dir=tmp_path)
    assert first.wait(120) == "finished"
    folder = first.folder
    (folder / "checkpoint-10").mkdir()  # a disk that filled up mid-save: a README and nothing else
    (folder / "checkpoint-10" / "README.md").write_text("# model card\n")
    shutil.copytree(folder / "checkpoint-3", folder / "checkpoint-7")  # cut short while being written
    weights = folder / "checkpoint-7" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    shutil.copytree(folder / "checkpoint-3", folder / "checkpoint-5")
    optimizer = folder / "checkpoint-5" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])
    plan = LORA + f"train: {{max_steps: 6, resume_from: '{folder}'}}"
    with pytest.warns(UserWarning, match="resuming from checkpoint-3") as warned:
        resumed = jp.train(tiny.build("llama", seed=1), plan, dataset=runs.sft_data(), tokenizer=tok)
    text = str(warned[0].message)
    assert "checkpoint-10: no adapter_config.json" in text and "checkpoint-7: adapter_model.safetensors" in text
    assert "checkpoint-5: optimizer.pt" in text
    assert resumed.wait(120) == "finished", resumed.error
    assert [r["step"] for r in resumed.history] == list(range(1, 7))


def test_a_run_with_no_complete_checkpoint_is_refused_before_the_model_changes(tok, tmp_path):
    folder = tmp_path / "run"
    (folder / "checkpoint-10").mkdir(parents=True)
    (folder / "checkpoint-10" / "README.md").write_text("# model card\n")
    model = tiny.build("llama")
    before = _state(model)
    with pytest.raises(PlanError, match="no checkpoint .* is complete") as caught:
        jp.train(model, LORA + f"train: {{max_steps: 20, resume_from: '{folder}'}}", dataset=runs.sft_data(),
                 tokenizer=tok)
    assert caught.value.key == "train.resume_from" and _state(model) == before


# ---- mistakes found before the model changes -----------------------------------------------------


def _bad_data():
    from datasets import Dataset, DatasetDict

    rows = runs.sft_data(4).to_list()
    return {
        "int text": (Dataset.from_list([{"text": i} for i in range(4)]), "holds int64 values"),
        "None text": (Dataset.from_list([*rows, {"text": None}]), "row 4 of dataset has no 'text'"),
        "empty": (runs.sft_data(4).select([]), "empty"),
        "list": (rows, "Dataset.from_list"),
        "DataFrame": (runs.sft_data(4).to_pandas(), "Dataset.from_pandas"),
        "DatasetDict": (DatasetDict(train=runs.sft_data(4)), "pass one split"),
    }


@pytest.mark.parametrize("case", list(_bad_data()))
def test_bad_data_is_refused_before_the_adapter_is_applied(case, tok, tmp_path):
    data, words = _bad_data()[case]
    model = tiny.build("llama")
    before = _state(model)
    with pytest.raises(PlanError, match=words) as caught:
        jp.train(model, LORA + "train: {max_steps: 2}", dataset=data, tokenizer=tok, runs_dir=tmp_path)
    assert caught.value.key == "train.dataset"
    assert _state(model) == before and list(tmp_path.iterdir()) == []


def test_a_runs_folder_that_cannot_be_made_is_refused_before_the_adapter_is_applied(tok, tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the runs folder should be")
    model = tiny.build("llama")
    before = _state(model)
    with pytest.raises(PlanError, match="is a file") as caught:
        jp.train(model, LORA + "train: {max_steps: 2}", dataset=runs.sft_data(), tokenizer=tok,
                 runs_dir=blocker / "inner")
    assert caught.value.key == "runs_dir" and _state(model) == before


def test_when_trl_refuses_the_trainer_the_applied_adapter_is_taken_off_again(tok, tmp_path):
    from datasets import Dataset

    no_template = tiny.tokenizer()
    no_template.chat_template = None  # chat rows cannot be formatted: TRL finds out while building
    chats = Dataset.from_list([{"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}] * 4)
    model = tiny.build("llama")
    before = _state(model)
    with pytest.raises(PlanError, match="TRL could not set up"):
        jp.train(model, LORA + "train: {max_steps: 2}", dataset=chats, tokenizer=no_template, runs_dir=tmp_path)
    assert _state(model) == before  # no LoRA layers left without a PeftModel anyone holds
    run = jp.train(model, LORA + "train: {max_steps: 2}", dataset=runs.sft_data(), tokenizer=tok,
                   runs_dir=tmp_path)  # and the model takes a plan again as a fresh one
    assert run.wait(120) == "finished"


# ---- failures, and where the adapter is ---------------------------------------------------------


def test_a_failure_before_the_first_step_says_only_what_failed(tok, tmp_path):
    def collate(rows):
        raise ValueError("bad first batch")

    run = jp.train(tiny.build("llama"), LORA + "train: {max_steps: 5}", dataset=runs.sft_data(), tokenizer=tok,
                   data_collator=collate, runs_dir=tmp_path)
    assert run.wait(120) == "failed"
    assert run.error == "ValueError: bad first batch" and run.checkpoint is None
    assert "saving the adapter failed" not in run.dashboard.status["message"] + run.error


def test_a_named_adapter_is_found_where_peft_saved_it(tok, tmp_path):
    from peft import PeftModel

    run = jp.train(tiny.build("llama"), LORA + "adapter_name: second\ntrain: {max_steps: 2}",
                   dataset=runs.sft_data(), tokenizer=tok, runs_dir=tmp_path)
    assert run.wait(120) == "finished", run.error
    assert run.adapter_path == run.checkpoint / "second"
    assert f"adapter saved to {run.adapter_path}" in run.dashboard.status["message"]
    loaded = PeftModel.from_pretrained(tiny.build("llama"), run.adapter_path)
    trained = {k.replace(".second", ""): v for k, v in run.model.state_dict().items() if "lora_" in k}
    reloaded = {k.replace(".default", ""): v for k, v in loaded.state_dict().items() if "lora_" in k}
    assert trained.keys() == reloaded.keys() and all(torch.equal(trained[k], reloaded[k]) for k in trained)
