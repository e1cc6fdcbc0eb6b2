"""The embedded demo: a small model and data sets that ship with the package, so every feature can
be shown and tested offline, on a laptop CPU, in minutes.

    model, tokenizer = jp.demo.load()            # or load(quantization="4bit")
    ds = jp.demo.dataset("sft")                  # "sft" | "dpo" | "grpo", split="train" | "test"
    jp.demo.score(model, tokenizer)              # the task metric on held-out stories, 0..1

The model (`model/`, built by `scripts/pretrain_demo.py`) is a 4.7 M parameter Llama
pretrained from scratch on a generated world of children's stories, animal facts and chats; it
tells stories and answers questions about them in prose. The task it lacks is the *story card*:
given a short story, answer with exactly

    name: Mia
    animal: blue fox
    place: river

A short LoRA run (QUICKSTART) teaches it; `score` checks the cards field by field on held-out
stories, and `card_reward` is the same check as a GRPO reward. The data (`data/`) is made by
`scripts/make_demo_data.py`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._hardware import default_device_map
from ..plan.plan import Plan
from ..quant.kbit import quantization_config

MODEL_DIR = Path(__file__).parent / "model"
DATA_DIR = Path(__file__).parent / "data"
KINDS = ("sft", "dpo", "grpo")
SPLITS = ("train", "test")
CARD_KEYS = ("name", "animal", "color", "place")  # the four facts a card is checked on

# The quickstart's run, in a Plan's shape (the keys of a `%%peft` cell). Measured on 2 CPU cores
# (tests/test_demo.py asserts the gain): see MEASURED.
QUICKSTART: dict[str, Any] = {
    "method": "lora",
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "target_modules": "all-linear",
    # TRL's SFTConfig fields; jupyter_peft's CPU defaults add bf16=False, no checkpointing,
    # no saving and no reporting (train_config.defaults)
    "train": {
        "trainer": "sft",
        "max_steps": 360,
        "per_device_train_batch_size": 8,
        "learning_rate": 2e-3,
        "lr_scheduler_type": "constant_with_warmup",
        "warmup_steps": 10,
        "assistant_only_loss": True,
        "max_length": 256,
        "seed": 0,
    },
}
MEASURED = (
    "2 CPU cores, torch 2.13: base model 0.00 on the 100 held-out stories (it answers in prose, never "
    "a card); after QUICKSTART's 360 steps (about 1.2 min of training) 1.00, and 0.00 with the adapter "
    "switched off. Seeds 0-4 (bench/demo_seeds.py): 1.00, 1.00, 0.99, 0.99, 1.00. At 240 steps seeds 2 "
    "and 3 still guessed the animal's color (0.78): the copy is learnt late, and at a seed's own step."
)


def load(dtype: Any = None, quantization: Any = None, **kwargs: Any) -> tuple[Any, Any]:
    """(model, tokenizer) from the package's folder, offline.

    dtype: a torch dtype or its name; default float32 (the weights ship as bf16 to halve the
    wheel; fp32 is the dtype CPU training is safe and fast in). quantization: None/"none",
    "4bit" (nf4, double quant), "8bit", or a `BitsAndBytesConfig`. Other keyword arguments go
    to `AutoModelForCausalLM.from_pretrained`.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.float32 if dtype is None else dtype
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    quant = _quantization_config(quantization, dtype)
    if quant is not None:
        kwargs["quantization_config"] = quant
        # bitsandbytes places the layers itself; without a device map it would wait for .to()
        kwargs.setdefault("device_map", default_device_map())
    with _quiet_loading():
        model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=dtype, local_files_only=True, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
    return model, tokenizer


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """No "Loading weights: 100% 56/56" bar in the cell: a 9.5 MB model loads at once (the
    user's own setting is put back after)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _quantization_config(quantization: Any, dtype: Any) -> Any:
    """The BitsAndBytesConfig for `quantization`, built as a plan's `quantization:` is
    (quant.kbit.quantization_config), with 4-bit compute in the dtype the model loads in."""
    if quantization is None or quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if isinstance(quantization, BitsAndBytesConfig):
        return quantization
    if quantization not in ("4bit", "8bit"):
        raise ValueError(
            f"quantization={quantization!r} is not valid: use None, 'none', '4bit', '8bit' "
            "or a transformers.BitsAndBytesConfig"
        )

    options: dict[str, Any] = {"quantization": quantization}
    if quantization == "4bit":
        options.update(
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=str(dtype).removeprefix("torch."),
        )
    return quantization_config(Plan.from_dict(options))


def dataset(kind: str = "sft", split: str = "train") -> Any:
    """The story-card data as a `datasets.Dataset`, in TRL's conversational formats.

    sft: `messages` (user: request + story, assistant: card). dpo: `prompt`, `chosen` (the card),
    `rejected` (a prose answer or a card with one wrong field). grpo: `prompt` and the card's
    fields `name`, `animal`, `color`, `place`, which `card_reward` reads. The test split's
    stories (the same 100 for every kind) never occur in training.
    """
    from datasets import Dataset

    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not valid: choose one of {', '.join(KINDS)}")
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not valid: choose one of {', '.join(SPLITS)}")
    lines = (DATA_DIR / f"{kind}_{split}.jsonl").read_text().splitlines()
    return Dataset.from_list([json.loads(line) for line in lines])


# --- the check: one function behind the metric and the reward -----------------------------------


def parse_card(text: str) -> dict[str, str] | None:
    """The reply as a card: nothing but `key: value` lines, or None."""
    card = {}
    for line in text.strip().splitlines():
        key, sep, value = line.partition(": ")
        if not sep or not key.isidentifier() or not value.strip():
            return None
        card[key] = value.strip()
    return card or None


def card_facts(text: str) -> dict[str, str | None] | None:
    """The four facts a card states (`animal: blue fox` is the color and the animal), or None
    when the reply is not a card."""
    card = parse_card(text)
    if card is None:
        return None
    color, _, animal = (card.get("animal") or "").rpartition(" ")
    return {"name": card.get("name"), "animal": animal or None, "color": color or None, "place": card.get("place")}


def card_accuracy(text: str, truth: dict[str, Any]) -> float:
    """Fraction of the four facts (name, animal, color, place) the reply gets right; 0 if the reply
    is not a card."""
    facts = card_facts(text)
    if facts is None:
        return 0.0
    return sum(facts[k] == truth[k] for k in CARD_KEYS) / len(CARD_KEYS)


def card_reward(
    completions: list[Any],
    name: list[str],
    animal: list[str],
    color: list[str],
    place: list[str],
    **kwargs: Any,
) -> list[float]:
    """GRPO reward (TRL's signature): 0.2 for a reply that is a card (`key: value` lines), plus
    0.8 x the fraction of correct fields. The format term gives a signal before any field is right."""
    rewards = []
    for completion, *truth in zip(completions, name, animal, color, place):
        text = completion[-1]["content"] if isinstance(completion, list) else completion
        fmt = 0.2 if parse_card(text) is not None else 0.0
        rewards.append(fmt + 0.8 * card_accuracy(text, dict(zip(CARD_KEYS, truth))))
    return rewards


# --- generation and the metric --------------------------------------------------------------------


def ask(
    model: Any, tokenizer: Any, prompts: str | list[str], max_new_tokens: int = 64, batch_size: int = 50
) -> list[str]:
    """Greedy answers to user messages (one string or a list), through the chat template."""
    import torch

    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    was_training = model.training
    model.eval()
    answers: list[str] = []
    try:
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(
                texts[i : i + batch_size],
                add_special_tokens=False,
                padding=True,
                padding_side="left",
                return_tensors="pt",
            ).to(model.device)
            with torch.no_grad():
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
            answers += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        model.train(was_training)
    return answers


def score(model: Any, tokenizer: Any, split: str = "test", n: int | None = None) -> float:
    """The demo skill, 0..1: mean `card_accuracy` of greedy answers on `split`'s stories
    (the first `n`, default all 100 held-out ones)."""
    rows = dataset("grpo", split)
    rows = rows.select(range(min(n, len(rows)))) if n is not None else rows
    answers = ask(model, tokenizer, [r["prompt"][0]["content"] for r in rows])
    return sum(card_accuracy(a, r) for a, r in zip(answers, rows)) / len(rows)
