"""Numbers and words the widgets show agree with each other and say only true things: one
percent format everywhere, totals that say what they count, chart titles and legends named by
what they hold, memory in one unit from zero, no epoch count on a run set by steps, and "what
fits" naming the plan's per-group ranks."""

from __future__ import annotations

from types import SimpleNamespace

import tiny

import jupyter_peft as jp
from jupyter_peft.training.metrics import Tracker
from jupyter_peft.ui.dashboard import view
from jupyter_peft.ui.param_chart import percent_text
from jupyter_peft.ui.studio.memory_panel import plan_label


def send(studio, **msg):
    studio._on_msg(studio, msg, None)


def test_one_percent_format():
    assert [percent_text(p) for p in (0.0, 1.78561, 12.5, 100.0, 0.0421, 0.00012)] == [
        "0.00%", "1.79%", "12.50%", "100.00%", "0.042%", "0.00012%"]


def test_the_studio_says_what_its_totals_count():
    studio = jp.studio(tiny.build("llama"))
    n, info = studio.numbers, studio.model_info
    added = n["total"] - info["total"]
    assert added == n["trainable"] > 0  # LoRA adds what it trains
    assert n["share_text"] == (f"{n['percent_text']} of {n['total_text']} with the adapter "
                               f"(the model's {info['total_text']} + {added:,})")
    title = f"trainable: {n['trainable_text']} of {n['total_text']} parameters ({n['percent_text']})"
    assert studio.chart["title"] == title
    studio.apply()
    assert studio.summary["percent_text"] == studio.numbers["percent_text"]  # peft's count, the same digits


def test_what_fits_names_the_plans_ranks():
    plan = jp.Plan.from_yaml("method: lora\nr: 8\ntarget_modules: [q_proj, v_proj]\nranks: {self_attn.q_proj: 32}")
    assert plan_label(plan, "lora r=8") == "lora r=8 (self_attn.q_proj 32)"
    assert plan_label(jp.Plan.from_yaml("method: lora\nr: 8"), "lora r=8") == "lora r=8"
    assert plan_label(plan, "full fine-tuning") == "full fine-tuning"


def fake_run(rows, on_cuda=False, max_steps=10, state="running"):
    tracker = Tracker()
    tracker.begin(max_steps=max_steps, num_epochs=2)
    for step, logs in rows:
        tracker.record(step, logs, memory=logs.pop("memory", None))
    trainer = SimpleNamespace(args=SimpleNamespace(max_steps=max_steps))
    return SimpleNamespace(tracker=tracker, on_cuda=on_cuda, state=state, trainer=trainer, estimate={})


def test_chart_titles_and_legends_name_what_they_draw():
    run = fake_run([(1, {"loss": 2.0, "epoch": 0.96, "memory": 600 * 2**20}), (2, {"loss": 1.5, "epoch": 1.92})])
    panels = {p["id"]: p for p in view.panels(run)}
    assert panels["loss"]["title"] == "loss (train)"  # no eval loss was logged
    assert panels["loss"]["labels"] == {"loss": "train"}
    memory = panels["memory"]
    assert memory["title"] == "process memory (RSS)" and memory["labels"] == {"memory_bytes": "process memory (RSS)"}
    assert (memory["unit"], memory["scale"], memory["from_zero"]) == ("MiB", 1 / 2**20, True)
    assert view.memory(run)["text"] == "600 MiB"  # the text in the chart's unit
    both = fake_run([(1, {"loss": 2.0}), (1, {"eval_loss": 2.1})])
    assert {p["id"]: p for p in view.panels(both)}["loss"]["title"] == "loss (train, eval)"
    cuda = fake_run([(1, {"loss": 2.0, "memory": 3 * 2**30})], on_cuda=True)
    assert {p["id"]: p for p in view.panels(cuda)}["memory"]["unit"] == "GiB"
    assert view.memory(cuda)["text"] == "3.00 GiB"
    tps = fake_run([(1, {"loss": 2.0, "num_tokens": 10.0}), (2, {"loss": 1.0, "num_tokens": 30.0})])
    labels = {k: v for p in view.panels(tps) for k, v in p["labels"].items()}
    assert labels["tokens_per_second"] == "tokens / s"


def test_no_epoch_count_on_a_run_set_by_steps():
    run = fake_run([(1, {"loss": 2.0, "epoch": 0.96}), (2, {"loss": 1.5, "epoch": 1.92})])
    assert "epoch 1.92 ·" in view.progress(run)["text"] + " ·" and "/ 2" not in view.progress(run)["text"]
    by_epochs = fake_run([(1, {"loss": 2.0, "epoch": 0.5})], max_steps=-1)
    assert "epoch 0.50 / 2" in view.progress(by_epochs)["text"]
