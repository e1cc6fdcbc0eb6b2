"""Small data sets and settings for real training runs on tiny models (tests and benchmarks)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import tiny

LORA = "method: lora\nr: 8\nlora_alpha: 16\ntarget_modules: [q_proj, v_proj]\n"


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread: on a shared 2-core machine more threads only contend (10x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def sft_data(n: int = 20) -> Any:
    from datasets import Dataset

    return Dataset.from_list([{"text": tiny._CORPUS[i % len(tiny._CORPUS)]} for i in range(n)])


def dpo_data(n: int = 16) -> Any:
    """Preferences with one clear rule: the chosen answer repeats the prompt's subject."""
    from datasets import Dataset

    subjects = ["the cat", "the dog", "a small model", "the quick fox"]
    rows = [{"prompt": f"{s} is", "chosen": f" {s} on the mat", "rejected": " lazy jumps over brown"}
            for s in subjects]
    return Dataset.from_list([rows[i % len(rows)] for i in range(n)])


def grpo_data(n: int = 8) -> Any:
    from datasets import Dataset

    prompts = ["the cat", "a small model", "fine tuning", "the quick"]
    return Dataset.from_list([{"prompt": prompts[i % len(prompts)]} for i in range(n)])
