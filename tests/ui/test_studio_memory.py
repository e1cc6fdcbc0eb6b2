"""The studio's memory panel: it shows `jp.estimate` for the studio's plan and inputs, follows
clicks without delaying them (a background thread, the newest request wins), reads the model
only on the kernel's thread, and shows errors as text.

Commands go through the widget's real message handler, as the page sends them.
"""

from __future__ import annotations

import threading
import time

import pytest
import tiny
import torch.nn as nn

import jupyter_peft as jp
from jupyter_peft._format import format_bytes


def send(studio, **msg):
    studio._on_msg(studio, msg, None)


def ready(studio):
    assert studio.wait_estimate(120), "the estimate did not arrive"
    return studio.memory


def expected(studio, **inputs):
    return jp.estimate(studio.model, studio.plan, gpu=inputs.pop("gpu", "A100-80GB"), **inputs)


def assert_shows(studio, est):
    shown = ready(studio)
    data = est.to_json()
    assert shown["state"] == "ready" and not shown["pending"]
    assert shown["total_bytes"] == est.total_bytes
    assert [(p["name"], p["bytes"]) for p in shown["parts"]] == [(p["name"], p["bytes"]) for p in data["parts"]]
    assert shown["gpu"]["fits"] == est.fits() and shown["gpu"]["largest_batch"] == est.largest_batch(exact=False)
    assert shown["setup"] == {k: data["setup"][k] for k in ("batch_size", "seq_len", "gradient_checkpointing")}
    return shown


@pytest.fixture(scope="module")
def model():
    return tiny.build("llama")


def test_the_panel_shows_the_estimate_of_the_plan_and_inputs(model):
    studio = jp.studio(model)
    shown = assert_shows(studio, expected(studio))
    assert shown["setup"]["batch_size"] == 8 and shown["setup"]["seq_len"] == 1024  # memory's defaults
    assert shown["total_text"] == format_bytes(shown["total_bytes"])
    assert sum(p["share"] for p in shown["parts"]) == pytest.approx(100.0, abs=0.01)  # the bar is the step
    assert shown["gpu"]["line"] is None and "% used" in shown["gpu"]["verdict"]  # an A100 holds it all

    send(studio, kind="memory", batch_size="2")
    send(studio, kind="memory", seq_len="256")
    send(studio, kind="memory", gradient_checkpointing=True)
    send(studio, kind="memory", gpu="custom", custom_gib="0.25")
    shown = assert_shows(studio, expected(studio, batch_size=2, seq_len=256, gradient_checkpointing=True, gpu=2**28))
    assert not shown["gpu"]["fits"] and shown["gpu"]["verdict"].startswith("does not fit on 0.25 GiB")
    assert shown["gpu"]["line"] == pytest.approx(100.0 * 2**28 / shown["total_bytes"], abs=0.001)

    send(studio, kind="pick", role="mlp.down_proj")  # a click: the estimate follows the new plan
    assert "down_proj" in studio.plan.target_modules
    assert_shows(studio, expected(studio, batch_size=2, seq_len=256, gradient_checkpointing=True, gpu=2**28))
    send(studio, kind="memory", batch_size="")  # back to the default
    assert_shows(studio, expected(studio, seq_len=256, gradient_checkpointing=True, gpu=2**28))


def test_defaults_come_from_the_plan_train_block(model):
    studio = jp.studio(
        model, "method: lora\ntarget_modules: [q_proj]\ntrain: {per_device_train_batch_size: 3, max_length: 200}"
    )
    shown = assert_shows(studio, expected(studio))
    assert shown["setup"] == {"batch_size": 3, "seq_len": 200, "gradient_checkpointing": True}  # TRL's default: on


def test_what_fits_compares_methods_and_advises(model):
    studio = jp.studio(model)
    send(studio, kind="memory", gpu="custom", custom_gib="0.5", what_fits=True)
    shown = ready(studio)
    est = expected(studio, gpu=2**29)
    rows = est.compare().rows
    assert [(r["label"], r["checkpointing"], r["total_text"]) for r in shown["what_fits"]["rows"]] == [
        (r.label, "on" if r.gradient_checkpointing else "off", format_bytes(r.total_bytes)) for r in rows
    ]
    assert [a["change"] for a in shown["what_fits"]["advice"]] == [a["change"] for a in est.advice()]
    send(studio, kind="memory", what_fits=False)
    assert ready(studio)["what_fits"] is None


def test_bad_inputs_show_inline_and_change_nothing(model):
    studio = jp.studio(model)
    before = dict(studio.memory_inputs)
    send(studio, kind="memory", batch_size="0")
    send(studio, kind="memory", seq_len="many")
    send(studio, kind="memory", custom_gib="-3")
    send(studio, kind="memory", gpu="H900")
    assert studio.memory_inputs == before
    assert set(studio.field_errors) == {"memory.batch_size", "memory.seq_len", "memory.custom_gib", "memory.gpu"}
    assert "positive integer" in studio.field_errors["memory.batch_size"]
    send(studio, kind="memory", batch_size="4")
    assert "memory.batch_size" not in studio.field_errors and studio.memory_inputs["batch_size"] == 4


def test_no_plan_no_estimate_and_errors_are_text(model):
    studio = jp.studio(model)
    send(studio, kind="preset", name="none")
    assert studio.memory == {"state": "off", "pending": False, "message": "no valid plan to estimate"}
    custom = nn.Module()  # no transformers config: nothing to estimate from
    custom.add_module("proj", nn.Linear(8, 8))
    other = jp.studio(custom)
    assert other.memory["state"] == "error"
    assert (
        other.memory["message"]
        == "no memory estimate: Module is not a transformers model (the estimate reads its config)"
    )
    assert other.numbers["trainable"] == 0 and other.issues  # the studio itself works
    send(other, kind="pick", role="proj")
    assert other.numbers["trainable"] == 8 * (8 + 8) and other.memory["state"] == "error"


def test_a_click_does_not_wait_for_the_estimate_and_the_newest_wins(model):
    studio = jp.studio(model)
    ready(studio)
    shown: list[dict] = []
    studio.observe(lambda change: shown.append(change["new"]), names="memory")
    send(studio, kind="rank", role="self_attn.q_proj", value="24")  # a new plan: a probe, not cached
    deadline = time.monotonic() + 60
    while not studio._estimator.running:
        assert time.monotonic() < deadline, "the estimate never started"
        time.sleep(0.002)
    send(studio, kind="rank", role="self_attn.q_proj", value="40")  # clicked while it runs
    assert studio._estimator.running, "the click returned only after the estimate"
    assert studio.memory["pending"] and studio.timing["kind"] == "rank"
    final = assert_shows(studio, expected(studio))
    assert studio.plan.ranks == {"self_attn.q_proj": 40}
    published = [m for m in shown if m.get("state") == "ready" and not m["pending"]]
    assert published and all(m["total_bytes"] == final["total_bytes"] for m in published)  # r=24's was dropped


def test_the_estimator_never_touches_the_model(model):
    calls: list[str] = []
    watched = ("parameters", "named_parameters", "modules", "named_modules", "children", "buffers", "state_dict")
    for name in watched:
        real = getattr(model, name)

        def spy(*args, _real=real, **kwargs):
            calls.append(threading.current_thread().name)
            return _real(*args, **kwargs)

        setattr(model, name, spy)
    try:
        studio = jp.studio(model)
        send(studio, kind="preset", name="all-linear")
        send(studio, kind="memory", what_fits=True)
        ready(studio)
        assert studio.memory["what_fits"]["rows"]
    finally:
        for name in watched:
            delattr(model, name)
    assert calls and set(calls) == {threading.main_thread().name}


def test_latest_runs_only_the_newest_of_a_burst_and_tells_a_stale_job():
    from jupyter_peft.ui.latest import Latest

    latest, ran, stale = Latest(delay=0.1), [], []

    def job(seq):
        ran.append(seq)
        if seq == 5:  # a request made while this job runs makes it stale
            latest.request(lambda s: ran.append(s))
            stale.append(latest.is_current(seq))

    for _ in range(5):  # a burst of clicks: one job, the newest
        latest.request(job)
    assert latest.wait(30)
    assert ran == [5, 6] and stale == [False]
    assert latest.last_seconds > 0
    latest.close()
    latest.request(lambda s: ran.append(s))
    assert latest.wait(5) and ran == [5, 6]  # closed: nothing runs
