"""A seeded run is the same run whatever ran before it or beside it: its seed makes its
adapter and its data order, and nothing jupyter_peft does for the view (estimates, data
previews, peft probes) reseeds or draws from the process's random generators."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
import runs
import tiny
import torch
from runs import LORA

import jupyter_peft as jp
from jupyter_peft.data.batches import batches
from jupyter_peft.plan import methods

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEEDED = LORA + "train: {trainer: sft, max_steps: 4, learning_rate: 0.005, seed: 7, logging_steps: 1}\n"


def _random_state():
    return (torch.random.get_rng_state(), torch.random.initial_seed(), random.getstate(), np.random.get_state()[1])


def _same(a, b):
    return torch.equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2] and np.array_equal(a[3], b[3])


def _losses(run):
    assert run.wait(120) == "finished", run.error
    return run.df["loss"].dropna().tolist()


def test_a_seeded_cell_run_again_trains_the_same_adapter_on_the_same_batches(tok, tmp_path):
    first = jp.train(tiny.build("llama"), SEEDED, dataset=runs.sft_data(), tokenizer=tok, runs_dir=tmp_path)
    losses = _losses(first)
    torch.manual_seed(1234)  # whatever the notebook drew or seeded in between
    torch.rand(1000)
    random.random()
    again = jp.train(tiny.build("llama"), SEEDED, dataset=runs.sft_data(), tokenizer=tok, runs_dir=tmp_path)
    assert _losses(again) == losses
    other = jp.train(tiny.build("llama"), SEEDED.replace("seed: 7", "seed: 8"), dataset=runs.sft_data(),
                     tokenizer=tok, runs_dir=tmp_path)
    assert _losses(other) != losses  # the seed is what decides


def test_the_run_reads_its_data_order_from_its_own_seed_not_the_global_one(tok, tmp_path):
    """The loader is built on the run's thread after the trainer: a reseed meanwhile (a preview
    or another run on another thread) must not change the order its seed gave."""
    from jupyter_peft.training.trainer import build

    model = jp.apply(jp.Plan.from_yaml(LORA), tiny.build("llama"))
    ready = build(model, jp.Plan.from_yaml(SEEDED), dataset=runs.sft_data(), tokenizer=tok, runs_dir=tmp_path)
    order = [b.lengths for b in batches(ready.trainer).items]
    torch.manual_seed(99)
    loader = ready.trainer.get_train_dataloader()  # as Trainer.train builds it
    assert [tuple(int(n) for n in b["attention_mask"].sum(-1)) for b in list(loader)[:4]] == order[:4]
    assert len(set(order)) > 1  # shuffled: the order says something


def test_estimates_previews_and_probes_leave_the_random_state_alone(tok):
    model = tiny.build("llama")
    data = runs.sft_data()
    torch.manual_seed(5)
    before = _random_state()
    jp.estimate(model, SEEDED, dataset=data, tokenizer=tok)  # builds a throwaway TRL trainer
    jp.preview(data, tok, plan=SEEDED)
    methods.can_target.cache_clear()
    assert methods.can_target("lora", "Linear") is True
    assert methods.can_target("boft", "Linear") is True  # peft cannot build BOFT on meta: asked on the CPU
    assert _same(before, _random_state())


def test_a_preview_on_another_thread_does_not_reseed_this_one(tok):
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    done = threading.Event()

    def preview():
        jp.preview(runs.sft_data(), tok, plan=SEEDED)  # its trainer's __init__ calls set_seed(7)
        done.set()

    worker = threading.Thread(target=preview)
    worker.start()
    worker.join(120)
    assert done.is_set()
    assert torch.equal(torch.rand(3), expected) and torch.random.initial_seed() == 11
