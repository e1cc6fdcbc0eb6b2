"""Real training runs on tiny models: SFT, DPO, GRPO; stop, failure, NaN, resume, attach."""

from __future__ import annotations

import json
import time

import pytest
import runs
import tiny
import torch
from runs import LORA

import jupyter_peft as jp
from jupyter_peft import PlanError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _until(predicate, timeout=60.0):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def _lora_weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


def test_sft_loss_decreases_and_the_run_folder_keeps_everything(tok, tmp_path):
    plan = jp.Plan.from_yaml(LORA + "train: {trainer: sft, max_steps: 30, learning_rate: 0.005, "
                                    "eval_strategy: steps, eval_steps: 10}")
    run = jp.train(tiny.build("llama"), plan, dataset=runs.sft_data(), eval_dataset=runs.sft_data(4),
                   tokenizer=tok, runs_dir=tmp_path)
    assert run.state in ("running", "finished")
    assert run.wait(120) == "finished"
    train_rows = run.df[run.df["loss"].notna()]
    losses = train_rows["loss"].tolist()
    assert len(losses) == 30 and train_rows["step"].tolist() == list(range(1, 31))
    evals = run.df[run.df["eval_loss"].notna()]
    assert evals["step"].tolist() == [10, 20, 30] and evals["eval_loss"].iloc[-1] < evals["eval_loss"].iloc[0]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.1
    # the folder: plan, full history, the final checkpoint with a safetensors adapter
    assert run.folder.parent == tmp_path and run.folder.name.endswith("-lora-sft")
    assert jp.Plan.from_yaml((run.folder / "plan.yaml").read_text()).train["max_steps"] == 30
    rows = [json.loads(line) for line in (run.folder / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [r["step"] for r in run.history] and len(rows) == 33
    assert run.checkpoint == run.folder / "checkpoint-30"
    assert (run.checkpoint / "adapter_model.safetensors").exists()
    assert (run.checkpoint / "optimizer.pt").exists()
    # derived values the dashboard shows
    assert run.df["steps_per_second"].dropna().gt(0).all() and run.df["tokens_per_second"].dropna().gt(0).all()
    assert run.dashboard.progress["percent"] == 100.0 and run.dashboard.status["state"] == "finished"
    assert "adapter saved to" in run.dashboard.status["message"]
    assert {p["id"] for p in run.dashboard.panels} >= {"loss", "learning_rate", "grad_norm", "tokens_per_second"}
    assert run.dashboard.panels[0]["keys"] == ["loss", "eval_loss"]
    params = run.dashboard.params  # the studio's chart: every group, frozen and trainable
    assert [r["role"] for r in params["rows"] if r["trainable"]] == ["self_attn.q_proj", "self_attn.v_proj"]
    assert [r["role"] for r in params["rows"]] == [g.role for g in jp.inspect(run.model).groups if g.params]
    assert "data:image/svg+xml;base64," in run.dashboard.static_bundle()["text/html"]
    # use it at once: with the adapter off it is the base model it started from
    from jupyter_peft.training.generation import generate

    side_by_side = run.compare("the cat", max_new_tokens=6)
    assert side_by_side.base == generate(tiny.build("llama"), tok, "the cat", 6)
    assert side_by_side.tuned == run.generate("the cat", max_new_tokens=6)
    assert "adapter off" in side_by_side._repr_html_()
    assert isinstance(run.generate([{"role": "user", "content": "what is two plus two?"}], max_new_tokens=4), str)


def test_dpo_reward_accuracy_rises(tok, tmp_path):
    plan = LORA + "train: {trainer: dpo, max_steps: 12, learning_rate: 0.01, per_device_train_batch_size: 4}"
    run = jp.train(tiny.build("llama"), plan, dataset=runs.dpo_data(), tokenizer=tok, runs_dir=tmp_path)
    assert run.wait(180) == "finished", run.error
    acc = run.df["rewards/accuracies"].tolist()
    margins = run.df["rewards/margins"].tolist()
    assert acc[0] == 0.0 and sum(acc[-4:]) / 4 >= 0.75
    assert margins[-1] > margins[0]
    rewards_panel = next(p for p in run.dashboard.panels if p["id"] == "rewards")
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins"} <= set(rewards_panel["keys"])


def test_grpo_runs_with_a_notebook_reward_function(tok, tmp_path):
    calls = []

    def brevity(completions, **kwargs):
        calls.append(len(completions))
        return [-len(c) / 10 for c in completions]

    plan = LORA + ("train: {trainer: grpo, max_steps: 3, num_generations: 4, max_completion_length: 6, "
                   "per_device_train_batch_size: 4, learning_rate: 0.001}")
    run = jp.train(tiny.build("llama"), plan, dataset=runs.grpo_data(), tokenizer=tok, reward_funcs=[brevity],
                   runs_dir=tmp_path)
    assert run.wait(180) == "finished", run.error
    assert run.df["step"].tolist() == [1, 2, 3]
    assert len(calls) >= 3 and "rewards/brevity/mean" in run.df
    assert any("rewards/brevity/mean" in p["keys"] for p in run.dashboard.panels)


@pytest.mark.parametrize("trainer", ["kto", "orpo", "reward"])
def test_other_trl_trainers_through_the_mapping(trainer, tok, tmp_path):
    from datasets import Dataset

    model, data = tiny.build("llama"), runs.dpo_data(8)
    if trainer == "kto":
        rows = [{"prompt": "the cat is", "completion": " on the mat", "label": True},
                {"prompt": "the cat is", "completion": " lazy jumps", "label": False}]
        data = Dataset.from_list(rows * 4)
    if trainer == "reward":  # a scoring head, sized for the tokenizer
        import transformers

        model = transformers.LlamaForSequenceClassification(tiny.config("llama", vocab_size=300, num_labels=1,
                                                                         pad_token_id=0))
        data = data.remove_columns("prompt")
    run = jp.train(model, LORA + f"train: {{trainer: {trainer}, max_steps: 3, per_device_train_batch_size: 4}}",
                   dataset=data, tokenizer=tok, runs_dir=tmp_path)
    assert run.wait(120) == "finished", run.error
    assert run.df["step"].tolist() == [1, 2, 3] and (run.checkpoint / "adapter_model.safetensors").exists()
    assert "rewards" in {p["id"] for p in run.dashboard.panels}


def test_stop_mid_run_leaves_a_loadable_adapter(tok, tmp_path):
    from peft import PeftModel

    run = jp.train(tiny.build("llama"), LORA + "train: {max_steps: 100000}", dataset=runs.sft_data(),
                   tokenizer=tok, runs_dir=tmp_path)
    _until(lambda: run.tracker.step >= 3)
    assert run.stop().state in ("stopping", "stopped")
    assert run.wait(60) == "stopped"
    step = run.step
    assert 3 <= step < 100000 and run.checkpoint == run.folder / f"checkpoint-{step}"
    loaded = PeftModel.from_pretrained(tiny.build("llama"), run.checkpoint)
    trained, reloaded = _lora_weights(run.model), _lora_weights(loaded)
    assert trained.keys() == reloaded.keys() and all(torch.equal(trained[k], reloaded[k]) for k in trained)
    assert len((run.folder / "history.jsonl").read_text().splitlines()) == len(run.history)
    assert run.generate("the cat", max_new_tokens=4) is not None  # usable at once


def test_a_failing_collator_fails_the_run_and_leaves_the_model_usable(tok, tmp_path):
    from transformers import DataCollatorForLanguageModeling

    tok.pad_token = tok.pad_token or tok.eos_token
    inner = DataCollatorForLanguageModeling(tok, mlm=False)
    seen = []

    def collate(rows):
        seen.append(1)
        if len(seen) == 4:
            raise ValueError("bad row 17")
        return inner([{"input_ids": r["input_ids"]} for r in rows])

    model = tiny.build("llama")
    run = jp.train(model, LORA + "train: {max_steps: 20}", dataset=runs.sft_data(), tokenizer=tok,
                   data_collator=collate, runs_dir=tmp_path)
    assert run.wait(60) == "failed"
    assert run.error == "ValueError: bad row 17" and "collate" in run.traceback
    # the last completed step is saved (the loader fetches a batch ahead: the 4th call is step 3's)
    assert run.step == len(run.history) == 2 and run.checkpoint == run.folder / "checkpoint-2"
    assert "last good checkpoint" in run.dashboard.status["message"]
    assert "ValueError: bad row 17" in run.dashboard.static_bundle()["text/html"]
    assert run.generate("the cat", max_new_tokens=3) is not None
    again = jp.train(model, LORA + "train: {max_steps: 2}", dataset=runs.sft_data(), tokenizer=tok,
                     runs_dir=tmp_path)  # the model is free again
    assert again.wait(60) == "finished"


def test_a_nan_loss_is_flagged_at_its_step_and_fails_the_run(tok, tmp_path):
    model = tiny.build("llama")
    calls = []

    def poison(module, args, output):  # the 3rd training forward turns NaN
        calls.append(1)
        return output * float("nan") if len(calls) == 3 else output

    model.model.norm.register_forward_hook(poison)
    run = jp.train(model, LORA + "train: {max_steps: 20}", dataset=runs.sft_data(), tokenizer=tok,
                   runs_dir=tmp_path)
    assert run.wait(60) == "failed"
    assert {"step": 3, "key": "loss", "value": "nan"} in run.tracker.flags
    assert run.error.startswith("loss became nan at step 3") and run.step == 3
    # where it started (diagnostics/): the backward hooks' first non-finite gradient, named
    assert "; first non-finite gradient at step 3: model.layers." in run.error
    assert run.checkpoint is None  # the NaN weights were not saved as a "good" checkpoint
    assert run.dashboard.flags and "no checkpoint was saved" in run.dashboard.status["message"]


def test_resume_continues_the_step_count_and_the_history(tok, tmp_path):
    first = jp.train(tiny.build("llama"), LORA + "train: {max_steps: 4}", dataset=runs.sft_data(),
                     tokenizer=tok, runs_dir=tmp_path)
    assert first.wait(60) == "finished"
    folder = first.folder
    plan = LORA + f"train: {{max_steps: 8, resume_from: '{folder}'}}"
    resumed = jp.train(tiny.build("llama", seed=1), plan, dataset=runs.sft_data(), tokenizer=tok)
    assert resumed.folder == folder
    assert resumed.wait(60) == "finished"
    assert [r["step"] for r in resumed.history] == list(range(1, 9))
    assert resumed.history[3] == first.history[3]  # the first session's points, as they were
    assert resumed.checkpoint == folder / "checkpoint-8"
    lines = (folder / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 9))
    with pytest.raises(PlanError, match="already reached step 8"):
        jp.train(tiny.build("llama"), plan, dataset=runs.sft_data(), tokenizer=tok)


def test_one_active_run_per_model(tok, tmp_path):
    model = tiny.build("llama")
    run = jp.train(model, LORA + "train: {max_steps: 100000}", dataset=runs.sft_data(), tokenizer=tok,
                   runs_dir=tmp_path)
    try:
        with pytest.raises(PlanError, match="already training"):
            jp.train(run.model, LORA + "train: {max_steps: 5}", dataset=runs.sft_data(), tokenizer=tok)
        with pytest.raises(PlanError, match="already training"):
            jp.apply(LORA, model)
        with pytest.raises(PlanError, match="the model is training"):
            run.generate("the cat")
    finally:
        run.stop().wait(60)
    assert run.state == "stopped"


def test_attach_gives_any_trainer_the_dashboard(tok, tmp_path):
    from trl import SFTConfig, SFTTrainer

    model = jp.apply(LORA, tiny.build("llama"))
    args = SFTConfig(output_dir=str(tmp_path / "mine"), max_steps=5, logging_steps=1, report_to="none",
                     bf16=False, use_cpu=True, save_strategy="no", disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=runs.sft_data(), processing_class=tok)
    dashboard = jp.attach(trainer)
    assert jp.attach(trainer) is dashboard and dashboard.run.state == "ready"
    trainer.train()  # the user's own call, in the foreground
    run = dashboard.run
    assert run.state == "finished" and [r["step"] for r in run.history] == [1, 2, 3, 4, 5]
    assert run.checkpoint == tmp_path / "mine" / "checkpoint-5"
    assert dashboard.progress["step"] == 5 and any(p["id"] == "loss" for p in dashboard.panels)
