"""Export: the notebook's plan as files that train the same thing elsewhere, on many GPUs.

    jp.export(plan, "train.py")                                   # standalone script
    jp.export(plan, "trl_sft.yaml", format="trl")                 # trl sft --config trl_sft.yaml
    jp.export(plan, "accelerate.yaml", format="accelerate", gpus=8, backend="fsdp")
    exports.export_files(plan, "export/", model=model, data=ds)   # all of them, plus data and README
    %peft export train.py --gpus 4 --backend zero3 --offload

The settings come from `export_source.resolve` (literal values of the notebook's peft and
TRL configs); each format has its room (`export_script`, `export_trl`, `export_accelerate`),
and `export_job` runs one export. Everything is resolved and rendered before the first file
is written: a bad argument writes nothing, and neither does an export that would overwrite a
file already there (`overwrite=True` says to). In-memory data (a Dataset, a DataFrame, a list of
rows) is written as JSONL or Parquet next to the files, and the files refer to it by a relative
path. Commands are shell-quoted, strings in code are Python literals or escaped docstrings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import PlanError, unknown
from .job import ACCELERATE, Job
from .options import ExportOptions

FORMATS = ("script", "trl", "accelerate")


@dataclass
class Exported:
    """What an export wrote, how to run it, and what to know (shown after `%peft export`)."""

    files: list[Path]
    folder: Path  # the commands run from here
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # settings a lossy TRL config leaves out

    def __str__(self) -> str:
        lines = ["Wrote:", *(f"  {p}" for p in self.files)]
        if self.commands:
            lines += [f"Run (from {self.folder}):", *(f"  {c}" for c in self.commands)]
        if self.notes:
            lines += ["Notes:", *(f"  - {n}" for n in self.notes)]
        if self.dropped:
            lines += ["NOT carried over:", *(f"  - {d}" for d in self.dropped)]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def export(plan: Any, path: str | os.PathLike[str], format: str = "script", **options: Any) -> Exported:
    """Write `plan` to `path` as a script, a TRL CLI config or an accelerate config.

    `plan` may be None: the plan last applied to `model` (or in this session). The options
    (`ExportOptions`, options.py) by name: `model` (the base or PeftModel) resolves ranks and
    targets as `apply` did and gives the base's path and dtype; `base` overrides the path.
    `data` / `eval_data` (in memory, or a path) are written to `data/train.jsonl` /
    `data/test.jsonl` next to `path`. `on_gpu` picks the training defaults (None: as in this
    notebook, or GPU ones when more than one GPU is asked for). `gpus` per machine, `machines`,
    `backend` (ddp, fsdp, zero2, zero3) and `offload` describe the target for the accelerate
    config and the launch command. `lossy` lets a TRL config leave out what TRL's CLI cannot
    say (listed in the file).
    """
    if format not in FORMATS:
        raise unknown("format", format, FORMATS, key="format")
    path = Path(path)
    job = Job.make(plan, path.parent, ExportOptions.of(**options))
    text, dropped = job.render(format, path.name)
    files = job.write({path: text}, accelerate={path} if format == "accelerate" else set())
    if dropped:
        import warnings

        warnings.warn(f"{path.name} leaves out: " + "; ".join(dropped), stacklevel=2)
    return Exported(files, path.parent, job.commands(format, path.name), job.notes(), dropped)


def export_files(plan: Any, folder: str | os.PathLike[str], **options: Any) -> list[Path]:
    """Everything at once into `folder` (what the studio's and dashboard's Export buttons call):
    train.py, accelerate.yaml, trl_<trainer>.yaml (when TRL's CLI can express the plan; else the
    README says why), the data, and README.md with the launch commands. Options as `export`'s.
    Returns the paths written."""
    return export_all(plan, folder, **options).files


def export_all(plan: Any, folder: str | os.PathLike[str], **options: Any) -> Exported:
    """`export_files`, returning the whole `Exported` (commands and notes too)."""
    folder = Path(folder)
    job = Job.make(plan, folder, ExportOptions.of(**options))
    texts = {folder / job.script_name: job.render("script", job.script_name)[0]}
    texts[folder / ACCELERATE] = job.render("accelerate", ACCELERATE)[0]
    trl_name = f"trl_{job.source.trainer}.yaml"
    try:
        texts[folder / trl_name], dropped = job.render("trl", trl_name)
        job.trl_file, skipped = trl_name, None
    except PlanError as err:  # the script carries everything; the README says why TRL's file is missing
        dropped, skipped = [], f"{trl_name} not written: {err.message}"
    notes = job.notes() + ([skipped] if skipped else [])
    commands = job.commands("all", job.script_name)
    texts[folder / "README.md"] = job.readme(commands, notes)
    files = job.write(texts, accelerate={folder / ACCELERATE})
    return Exported(files, folder, commands, notes, dropped)
