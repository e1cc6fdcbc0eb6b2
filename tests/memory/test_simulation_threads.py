"""A simulated step on one thread (the studio's estimator) and a real model on another (the
user's, in the kernel) do not see each other: torch's module trackers hook every module of the
process, and ours act only on the thread that simulates."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import tiny
import torch

import jupyter_peft as jp


@contextlib.contextmanager
def _held_on_another_thread(context: Callable[[], Any]) -> Iterator[None]:
    """`context()` entered on a worker thread and held there while the body runs on this one."""
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with context():
            entered.set()
            release.wait(60)

    worker = threading.Thread(target=hold)
    worker.start()
    try:
        assert entered.wait(60)
        yield
    finally:
        release.set()
        worker.join(60)


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
    with _held_on_another_thread(PeakTracker):
        torch.nn.Linear(4, 4)(torch.ones(1, 4))  # the user's model, on the kernel's thread
    assert threading.get_ident() not in calls


def test_what_a_simulation_stands_in_for_stays_real_on_other_threads():
    # TRL's fused-head kernels run in place and packed rows are not looked for, but only on the
    # simulating thread: a run training meanwhile gets the real ones (memory.trace.gate)
    from transformers import masking_utils
    from trl.kernels import chunked_logprob as kernels

    from jupyter_peft.memory.simulate import _gpu_kernels
    from jupyter_peft.memory.trace import batch_rows

    seen = {}

    @contextlib.contextmanager
    def simulating() -> Iterator[None]:
        with _gpu_kernels(), batch_rows():
            seen["packed there"] = masking_utils.find_packed_sequence_indices(torch.tensor([[0, 1, 0, 1]]))
            seen["tile there"] = kernels._addmm_fp32(None)
            yield

    with _held_on_another_thread(simulating):
        packed = masking_utils.find_packed_sequence_indices(torch.tensor([[0, 1, 0, 1]]))
        assert packed is not None and packed.tolist() == [[0, 0, 1, 1]]  # the real look for packed rows
        out = torch.zeros(2, 2)
        kernels._addmm_fp32(out, torch.ones(2, 3), torch.ones(3, 2))  # the real accumulation
        assert out.sum().item() == 12.0
    assert seen == {"packed there": None, "tile there": None}
    assert masking_utils.find_packed_sequence_indices(torch.tensor([[0, 1, 0, 1]])) is not None
