"""The TRL trainer a run would build, on a one-layer stand-in model: TRL's own data path.

Tokenizing, the chat template, `assistant_only_loss` / completion-only masks, truncation,
packing, the collator and the sampler (its seed) are the trainer's, not a re-implementation:
the stand-in is a 1-layer, 16-wide Llama with the tokenizer's vocabulary (built in
milliseconds, never trained). The config is `trainer_config` of the plan's `train:` block
with the run-only fields (precision, saving, reporting) set for a CPU and no files. Building
it leaves the process's random state alone (`_threads.private_random`): a preview on the
studio's thread must not move the data order or init of a run training on another.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
from collections.abc import Iterator
from typing import Any

from .._errors import PlanError
from .._threads import private_random


def train_block(plan: Any, trainer: str | None, max_length: int | None, **fields: Any) -> dict[str, Any]:
    """The plan's `train:` block (or an empty one) with `trainer` and `max_length` set."""
    train: dict[str, Any] = {}
    if plan is not None:
        from ..model.adapt import as_plan

        train = dict(getattr(as_plan(plan), "train", None) or {})
    if trainer is not None:
        train["trainer"] = trainer
    train.setdefault("trainer", "sft")
    if max_length is not None:
        train["max_length"] = max_length
    train.update(fields)
    return train


def stand_in_model(tokenizer: Any) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, vocab_size=max(len(tokenizer), 1), max_position_embeddings=1 << 20)
    with torch.device("meta"):  # no weights drawn from torch's generator (_threads.private_random)
        model = LlamaForCausalLM(config)
    return model.to_empty(device="cpu")  # its values are never read: only the data path is TRL's


def build(dataset: Any, tokenizer: Any, train: dict[str, Any]) -> Any:
    """The TRL trainer for `train` over `dataset`, on the stand-in (PlanError on TRL's complaints)."""
    from ..plan.train_config import TRAINERS, trainer_config

    name = train["trainer"]
    if name not in ("sft", "dpo", "orpo", "cpo", "reward", "kto"):
        raise PlanError(f"previews cover the sft, dpo, orpo, cpo, reward and kto trainers, not {name}",
                        key="trainer", value=name)
    trainer_cls, _ = TRAINERS[name].load()
    run_only = dict(bf16=False, fp16=False, use_cpu=True, report_to="none", save_strategy="no",
                    disable_tqdm=True, dataloader_num_workers=0)
    block = {k: v for k, v in train.items() if k not in run_only}
    with tempfile.TemporaryDirectory() as folder:
        # a GPU run's defaults (batch size, max_length), with nothing that needs a GPU here
        config = trainer_config(block, folder, on_gpu=True, **run_only)
        model = stand_in_model(tokenizer)
        extra = {"ref_model": copy.deepcopy(model)} if name in ("dpo", "kto") else {}
        with _quiet(), _progress(dataset, name), private_random():
            try:
                return trainer_cls(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                                   **extra)
            except Exception as err:  # TRL rejects the data: say so in the one error type
                raise PlanError(f"TRL could not prepare the data for {name}: {type(err).__name__}: {err}") from err


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No tqdm bars from TRL's dataset maps (a preview prints nothing but itself)."""
    import datasets

    on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if on:
            datasets.enable_progress_bars()


@contextlib.contextmanager
def _progress(dataset: Any, trainer: str, after: float = 1.0) -> Iterator[None]:
    """A progress line in the cell once preparing the data has taken `after` seconds (a large
    data set: TRL tokenizes every row): what is being done, for how long so far, then how long
    it took. Nothing is shown for data prepared within the second. Outside IPython: nothing."""
    import sys
    import threading
    import time

    if "IPython" not in sys.modules or threading.current_thread() is not threading.main_thread():
        yield  # a studio's estimator thread: the panel says it is pending
        return
    from IPython import get_ipython
    from IPython.display import DisplayHandle

    if get_ipython() is None:
        yield
        return
    rows = f"{len(dataset):,} rows" if hasattr(dataset, "__len__") else "the rows"
    what = f"tokenizing {rows} as TRL's {trainer} trainer will"
    start, done, shown = time.monotonic(), threading.Event(), []

    def tick() -> None:
        while not done.wait(after if not shown else 1.0):
            text = f"{what}: {time.monotonic() - start:.0f} s so far"
            if not shown:
                shown.append(DisplayHandle())
                shown[0].display({"text/plain": text}, raw=True)
            else:
                shown[0].update({"text/plain": text}, raw=True)

    thread = threading.Thread(target=tick, name="jupyter_peft data progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        if shown:
            shown[0].update({"text/plain": f"{what}: done in {time.monotonic() - start:.1f} s"}, raw=True)

