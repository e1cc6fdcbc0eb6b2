"""The library internals behind one door (_compat), and the state leak they once caused."""

from __future__ import annotations

import threading

import torch
import torch.nn as nn

import jupyter_peft as jp
from jupyter_peft._compat import peft_on_meta


def test_building_adapters_on_meta_never_moves_other_threads_models_to_meta():
    """peft's `low_cpu_mem_usage=True` swaps nn.Module.register_parameter for the whole process:
    with the studio's count and estimate on their own threads, models the user built meanwhile
    landed on meta, and two overlapping swaps left it swapped for good (every later model on
    meta: "Cannot copy out of meta tensor"). Adapters on meta must stay on their own thread."""
    from peft import LoraConfig

    done = threading.Event()

    def build_adapters() -> None:
        while not done.is_set():
            with torch.device("meta"):
                base = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
            peft_model = peft_on_meta(base, LoraConfig(target_modules=["0", "1"], r=2))
            assert all(p.device.type == "meta" for p in peft_model.parameters())

    threads = [threading.Thread(target=build_adapters) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        devices = {nn.Linear(4, 4).weight.device.type for _ in range(3000)}
    finally:
        done.set()
        for t in threads:
            t.join()
    assert devices == {"cpu"}
    assert {p.device.type for p in nn.Linear(4, 4).parameters()} == {"cpu"}  # and after


def test_a_studio_estimating_in_the_background_leaves_new_models_real():
    """The same through the product: a studio re-estimates after each click on its own thread
    while the notebook builds more models."""
    import tiny

    studio = jp.studio(tiny.build("llama"))
    try:
        for value in ("2", "4", "8", "16"):
            role = studio.groups[0]["role"]
            studio._on_msg(studio, {"kind": "rank", "role": role, "value": value}, None)
            fresh = tiny.build("llama", seed=1)
            assert {p.device.type for p in fresh.parameters()} == {"cpu"}
        assert studio.wait_estimate(120), "the estimate did not arrive"
    finally:
        studio.close()
    assert {p.device.type for p in tiny.build("llama").parameters()} == {"cpu"}
