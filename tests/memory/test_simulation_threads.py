"""A simulated step on one thread (the studio's estimator) and a real model on another (the
user's, in the kernel) do not see each other: torch's module trackers hook every module of the
process, and ours act only on the thread that simulates."""

from __future__ import annotations

import threading

import tiny
import torch

import jupyter_peft as jp


def test_a_simulation_on_a_thread_leaves_forwards_on_other_threads_alone():
    done, errors = threading.Event(), []
    config, model = tiny.config("llama"), tiny.build("llama")

    def simulate() -> None:
        try:
            while not done.is_set():
                jp.estimate(config, "method: lora\ntarget_modules: [q_proj]", method="simulate",
                            batch_size=1, seq_len=16)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    worker = threading.Thread(target=simulate)
    worker.start()
    try:
        ids = torch.randint(0, 100, (1, 8))
        for _ in range(30):  # the user's forward and backward, while the simulation runs
            model(ids, labels=ids).loss.backward()
    finally:
        done.set()
        worker.join(120)
    assert not errors, errors


def test_the_module_trackers_hooks_do_not_fire_on_other_threads(monkeypatch):
    from torch.distributed._tools.mod_tracker import ModTracker

    from jupyter_peft.memory.trace import PeakTracker

    calls: list[int] = []
    real = ModTracker._fw_pre_hook
    monkeypatch.setattr(ModTracker, "_fw_pre_hook", lambda self, mod, args: calls.append(threading.get_ident())
                        or real(self, mod, args))
    entered, release = threading.Event(), threading.Event()

    def track() -> None:
        with PeakTracker():
            entered.set()
            release.wait(60)

    worker = threading.Thread(target=track)
    worker.start()
    try:
        assert entered.wait(60)
        torch.nn.Linear(4, 4)(torch.ones(1, 4))  # the user's model, on the kernel's thread
    finally:
        release.set()
        worker.join(60)
    assert threading.get_ident() not in calls
