"""A training run's folder: what is kept on disk so that nothing is lost and a run can resume.

    peft_runs/20250101-120000-lora-sft/
        plan.yaml              the plan the run was started with
        history.jsonl          one JSON object per logged step (what the charts show)
        run.json               how it went: state, error, started, ended, steps, max_steps
                               (written at the start and when the run settles; records/ reads it)
        checkpoint-40/         written on Stop, Save now, the end of training and failures:
            adapter_model.safetensors, adapter_config.json   (load with PeftModel.from_pretrained;
                                   a named adapter is in checkpoint-40/<name>/: `run.adapter_path`)
            optimizer.pt, scheduler.pt, rng_state.pth, trainer_state.json   (for resume)

Checkpoints are the trainer's own (`Trainer._save_checkpoint`), so `resume_from` is TRL's
own resume: step count, optimizer, scheduler and data order continue. A resume takes the newest
*complete* checkpoint (`problem` finds none of its files missing or cut short: a disk that filled
up mid-save leaves a folder with a README and nothing else) and says which it skipped.
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
import zipfile
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


RUN_INFO = "run.json"
"""How the run ended, for a later kernel (records/): {state, error, started, ended, steps, max_steps}."""


def write_run_info(run: Any) -> None:
    """Write `run.json` for `run`: when it starts (state running) and when it settles (finished,
    stopped or failed, with its error). `started` is kept from the first write (a resume keeps
    the first start). Written whole to a temporary file and renamed, so a crash leaves the old
    one or the new one, never half of either; a disk that refuses it does not fail the run."""
    folder = Path(run.folder)
    path = folder / RUN_INFO
    now = time.time()
    try:
        old = read_run_info(folder) or {}
    except ValueError:
        old = {}
    live = run.state in ("running", "stopping")
    info = {"state": run.state, "error": run.error, "started": old.get("started") or now,
            "ended": None if live else now, "steps": int(run.step), "max_steps": run.max_steps}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (RUN_INFO + ".tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, path)
    except OSError:
        pass


def read_run_info(folder: str | Path) -> dict[str, Any] | None:
    """`run.json` of `folder` (None when there is none: an older version, or a run that never
    started); ValueError when it cannot be read as a JSON object."""
    path = Path(folder) / RUN_INFO
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{RUN_INFO} is damaged ({err})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{RUN_INFO} holds {type(info).__name__}, not an object")
    return info


def read_history_lenient(folder: str | Path) -> tuple[list[dict[str, Any]], str | None]:
    """(rows of history.jsonl, what was wrong with it or None): the lines that read back, and
    the first that did not (a run that crashed mid-write cuts its last line short)."""
    path = Path(folder) / HISTORY
    if not path.exists():
        return [], None
    rows, problem_ = [], None
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as err:
        return [], f"{HISTORY} cannot be read ({err})"
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            problem_ = problem_ or f"{HISTORY} line {n} is cut short or damaged"
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows, problem_


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


def resume_point(folder: str | Path, max_steps: int | None, adapter: str | None = None) -> Path:
    """The newest complete checkpoint to continue `folder` from (`adapter`: the name the model's
    adapter has); PlanError if there is none or nothing is left to do. `skipped` says which
    newer ones were incomplete."""
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
    broken = {}
    for last in reversed(found):
        why = problem(last, adapter)
        if why is None:
            break
        broken[last.name] = why
    else:
        raise PlanError(
            f"no checkpoint in {str(path)!r} is complete: " + "; ".join(f"{k}: {v}" for k, v in broken.items()),
            key="train.resume_from",
            value=str(folder),
        )
    if max_steps is not None and max_steps > 0 and checkpoint_step(last) >= max_steps:
        raise PlanError(
            f"the run in {str(path)!r} already reached step {checkpoint_step(last)}; "
            f"raise max_steps above it (now {max_steps}) to continue",
            key="train.max_steps",
            value=max_steps,
        )
    return last


def skipped(folder: str | Path, checkpoint: Path, adapter: str | None = None) -> list[str]:
    """Why each checkpoint of `folder` newer than `checkpoint` was not resumed from."""
    newer = [c for c in checkpoints(folder) if checkpoint_step(c) > checkpoint_step(checkpoint)]
    return [f"{c.name}: {problem(c, adapter)}" for c in newer]


# The files a checkpoint needs to resume from: the adapter (at the top, or in <name>/ for a named
# adapter), the optimizer and scheduler (torch's zip format), the trainer's state (JSON).
_TRAINER_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def adapter_dir(checkpoint: str | Path, adapter: str | None = None) -> Path:
    """Where the adapter files of `checkpoint` are: the folder itself, or peft's `<name>/`
    subfolder for an adapter not called "default"."""
    path = Path(checkpoint)
    if adapter and adapter != "default" and not (path / "adapter_config.json").exists():
        return path / adapter
    return path


def problem(checkpoint: str | Path, adapter: str | None = None, adapter_only: bool = False) -> str | None:
    """What is wrong with `checkpoint` (a file missing, empty, or cut short), or None when it is
    complete. Headers are read, not the weights: safetensors' JSON header and its data length,
    the zip directory at the end of torch's files, the JSON files."""
    path = Path(checkpoint)
    where = adapter_dir(path, adapter)
    weights = next((where / n for n in ("adapter_model.safetensors", "adapter_model.bin") if (where / n).exists()),
                   None)
    needed = [where / "adapter_config.json", weights or where / "adapter_model.safetensors"]
    needed += [] if adapter_only else [path / n for n in _TRAINER_FILES]
    for file in needed:
        rel = file.relative_to(path)
        if not file.is_file():
            return f"no {rel}"
        try:
            _readable(file)
        except (OSError, ValueError, zipfile.BadZipFile, struct.error) as err:
            return f"{rel} is damaged ({err})"
    return None


def _readable(file: Path) -> None:
    """Raise unless the header of `file` reads back whole (its kind by its name)."""
    if file.suffix == ".json":
        json.loads(file.read_text())
    elif file.suffix == ".safetensors":
        size = file.stat().st_size
        with open(file, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                raise ValueError(f"the header says {n} bytes, the file has {size}")
            header = json.loads(f.read(n))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        if size != 8 + n + end:
            raise ValueError(f"{size} bytes, the header describes {8 + n + end}")
    elif file.suffix in (".pt", ".pth", ".bin"):
        if file.stat().st_size == 0:
            raise ValueError("empty file")
        with zipfile.ZipFile(file) as z:  # torch.save's zip: its directory is at the end
            z.infolist()


def check_writable(folder: str | Path, key: str = "runs_dir") -> None:
    """PlanError unless `folder` exists as a writable folder or can be made: every existing part
    of the path a folder, the nearest one writable (and not on a read-only file system)."""
    path = Path(folder).absolute()
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise PlanError(f"cannot make the run folder {str(path)!r}: {str(probe)!r} is a file", key=key,
                        value=str(folder))
    read_only = bool(os.statvfs(probe).f_flag & os.ST_RDONLY) if hasattr(os, "statvfs") else False
    if read_only or not os.access(probe, os.W_OK | os.X_OK):
        raise PlanError(
            f"cannot write the run folder {str(path)!r}: {str(probe)!r} is read-only; choose another folder "
            "(%config PeftMagics.runs_dir = '...', or runs_dir= / output_dir=)",
            key=key,
            value=str(folder),
        )
