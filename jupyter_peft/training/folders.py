"""A training run's folder: what is kept on disk so that nothing is lost and a run can resume.

    peft_runs/20250101-120000-lora-sft/
        plan.yaml              the plan the run was started with
        history.jsonl          one JSON object per logged step (what the charts show)
        checkpoint-40/         written on Stop, Save now, the end of training and failures:
            adapter_model.safetensors, adapter_config.json   (load with PeftModel.from_pretrained)
            optimizer.pt, scheduler.pt, rng_state.pth, trainer_state.json   (for resume)

Checkpoints are the trainer's own (`Trainer._save_checkpoint`), so `resume_from` is TRL's
own resume: step count, optimizer, scheduler and data order continue.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from .._errors import PlanError

HISTORY = "history.jsonl"
PLAN = "plan.yaml"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def fresh_path(runs_dir: str | Path, method: str, trainer: str) -> Path:
    """A new `<runs_dir>/<timestamp>-<method>-<trainer>/` path, not yet created (suffixed if taken)."""
    root = Path(runs_dir)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{method}-{trainer}"
    folder, n = root / stem, 1
    while folder.exists():
        folder, n = root / f"{stem}-{n}", n + 1
    return folder


def checkpoints(folder: str | Path) -> list[Path]:
    """The folder's checkpoints, oldest step first."""
    found = []
    for path in Path(folder).iterdir() if Path(folder).is_dir() else ():
        m = _CHECKPOINT.match(path.name)
        if m and path.is_dir():
            found.append((int(m.group(1)), path))
    return [p for _, p in sorted(found)]


def checkpoint_step(path: str | Path) -> int:
    m = _CHECKPOINT.match(Path(path).name)
    return int(m.group(1)) if m else 0


def write_plan(folder: Path, plan: Any) -> None:
    (folder / PLAN).write_text(plan.to_yaml())


def append_history(folder: Path, rows: list[dict[str, Any]]) -> None:
    """Append rows to history.jsonl (NaN/inf written as JSON's NaN/Infinity, as Python reads them)."""
    if rows:
        with open(folder / HISTORY, "a") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)


def read_history(folder: str | Path, until_step: int | None = None) -> list[dict[str, Any]]:
    """The rows of history.jsonl, up to `until_step` (the checkpoint a resume starts from)."""
    path = Path(folder) / HISTORY
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if until_step is None or r.get("step", 0) <= until_step]


def resume_point(folder: str | Path, max_steps: int | None) -> Path:
    """The checkpoint to continue `folder` from; PlanError if there is none or nothing is left to do."""
    path = Path(folder)
    if not path.is_dir():
        raise PlanError(f"no run folder {str(path)!r}", key="train.resume_from", value=str(folder))
    found = checkpoints(path)
    if not found:
        raise PlanError(
            f"{str(path)!r} has no checkpoint to resume from (Stop, Save now or the end of a run writes one)",
            key="train.resume_from",
            value=str(folder),
        )
    last = found[-1]
    if max_steps is not None and max_steps > 0 and checkpoint_step(last) >= max_steps:
        raise PlanError(
            f"the run in {str(path)!r} already reached step {checkpoint_step(last)}; "
            f"raise max_steps above it (now {max_steps}) to continue",
            key="train.max_steps",
            value=max_steps,
        )
    return last
