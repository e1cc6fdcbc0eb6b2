"""Samples while training: `train: {samples: [prompt, ...], sample_every: 50, sample_tokens: 48}`.

A TrainerCallback (added by `Run.__init__` when the train block has `samples`) that, on the
training thread between steps, every `sample_every` steps and at the last step, generates greedily
from the model as trained so far (eval mode and no gradients for the moment, then back to
training) with the trainer's own tokenizer. Each output is kept on the Run (`run.sample_rows`,
`run.samples` as a DataFrame), appended to `samples.jsonl` in the run folder, and shown by the
dashboard's samples part (ui/dashboard/samples.py). The seconds it took are recorded with it:
sampling is time the run does not train.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from .generation import generate

SAMPLES = "samples.jsonl"
EVERY, TOKENS = 50, 48


class Sampler(TrainerCallback):
    """Generates `train["samples"]` every `sample_every` steps into its Run."""

    def __init__(self, run: Any, train: dict[str, Any]) -> None:
        prompts = train["samples"]
        self.run = run
        self.prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        self.every = int(train.get("sample_every") or EVERY)
        self.tokens = int(train.get("sample_tokens") or TOKENS)
        self._done: set[int] = set()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = int(state.global_step)
        last = bool(state.max_steps) and step >= state.max_steps
        if step in self._done or not (step % self.every == 0 or last or control.should_training_stop):
            return
        self._done.add(step)
        self.sample(step)

    def sample(self, step: int) -> list[dict[str, Any]]:
        """Generate every prompt now; the rows are added to the run and its folder."""
        tokenizer = self.run.trainer.processing_class
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor's text half
        rows = []
        for prompt in self.prompts:
            began = time.perf_counter()
            output = generate(self.run.model, tokenizer, prompt, max_new_tokens=self.tokens)
            rows.append({"step": step, "prompt": prompt, "output": output,
                         "seconds": round(time.perf_counter() - began, 4)})
        self.run.sample_rows.extend(rows)
        append(Path(self.run.folder), rows)
        return rows


def append(folder: Path, rows: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / SAMPLES, "a") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)


def read(folder: str | Path) -> list[dict[str, Any]]:
    """The rows of a run folder's samples.jsonl (for a run read back from disk)."""
    path = Path(folder) / SAMPLES
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
