"""Export: the notebook's plan as files that train the same thing elsewhere, on many GPUs.

    jp.export(plan, "train.py")                                   # standalone script
    jp.export(plan, "trl_sft.yaml", format="trl")                 # trl sft --config trl_sft.yaml
    jp.export(plan, "accelerate.yaml", format="accelerate", gpus=8, backend="fsdp")
    exports.export_files(plan, "export/", model=model, data=ds)   # all of them, plus data and README
    %peft export train.py --gpus 4 --backend zero3 --offload

The settings come from `export_source.resolve` (literal values of the notebook's peft and
TRL configs); each format has its room (`export_script`, `export_trl`, `export_accelerate`),
and `export_job` runs one export. Everything is resolved and rendered before the first file
is written: a bad argument writes nothing. In-memory data (a Dataset, a DataFrame, a list of
rows) is written as JSONL or Parquet next to the files, and the files refer to it by a relative
path.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import PlanError, unknown
from .export_job import ACCELERATE, DATA_FORMATS, Job

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


def export(
    plan: Any,
    path: str | os.PathLike[str],
    format: str = "script",
    *,
    model: Any = None,
    data: Any = None,
    eval_data: Any = None,
    data_format: str = "jsonl",
    base: str | None = None,
    output_dir: str = "output",
    on_gpu: bool | None = None,
    gpus: int = 1,
    machines: int = 1,
    backend: str = "ddp",
    offload: bool = False,
    main_ip: str | None = None,
    lossy: bool = False,
    user_ns: dict[str, Any] | None = None,
) -> Exported:
    """Write `plan` to `path` as a script, a TRL CLI config or an accelerate config.

    `plan` may be None: the plan last applied to `model` (or in this session). `model` (the
    base or PeftModel) resolves ranks and targets as `apply` did and gives the base's path and
    dtype; `base` overrides the path. `data` / `eval_data` (in memory, or a path) are written to
    `data/train.jsonl` / `data/test.jsonl` next to `path`. `on_gpu` picks the training defaults
    (None: as in this notebook, or GPU ones when more than one GPU is asked for). `gpus` per
    machine, `machines`, `backend` (ddp, fsdp, zero2, zero3) and `offload` describe the target
    for the accelerate config and the launch command.
    `lossy` lets a TRL config leave out what TRL's CLI cannot say (listed in the file).
    """
    if format not in FORMATS:
        raise unknown("format", format, FORMATS, key="format")
    path = Path(path)
    job = Job.make(
        plan,
        path.parent,
        model=model,
        data=data,
        eval_data=eval_data,
        data_format=data_format,
        base=base,
        output_dir=output_dir,
        on_gpu=on_gpu,
        gpus=gpus,
        machines=machines,
        backend=backend,
        offload=offload,
        main_ip=main_ip,
        lossy=lossy,
        user_ns=user_ns,
    )
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
    job = Job.make(plan, folder, **options)
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


# ---- %peft export ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes are PlanErrors (the magic shows them without a traceback)."""

    def error(self, message: str) -> Any:
        raise PlanError(f"%peft export: {message}", choices=["see %peft export --help"])


def _parser() -> _Parser:
    p = _Parser(prog="%peft export", add_help=False, description="The plan as a script, a TRL or accelerate config.")
    p.add_argument("path", help="file to write (.py: script), or a folder for everything")
    p.add_argument("--format", choices=[*FORMATS, "all"], help="script | trl | accelerate | all (a folder)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--plan", help="a notebook variable holding a Plan or YAML text")
    source.add_argument("--model", help="a PeftModel variable: export the plan applied to it")
    p.add_argument("--data", help="variable (Dataset, DataFrame, rows) or .jsonl/.parquet path; default: train.dataset")
    p.add_argument("--eval-data", help="evaluation data, like --data; default: train.eval_dataset")
    p.add_argument("--no-data", action="store_true", help="write no data file; the script takes --data PATH")
    p.add_argument("--data-format", choices=DATA_FORMATS, default="jsonl")
    p.add_argument("--base", help="base model path or hub id the files load (default: the plan's or the model's)")
    p.add_argument("--gpus", type=int, help="GPUs per machine (implies GPU training settings)")
    p.add_argument("--machines", type=int, default=1)
    p.add_argument("--backend", default="ddp", help="ddp | fsdp | zero2 | zero3")
    p.add_argument("--offload", action="store_true", help="CPU offload (fsdp, zero2, zero3)")
    p.add_argument("--main-ip", help="address of machine 0 (multi-machine)")
    p.add_argument("--lossy", action="store_true", help="write a TRL config even if it cannot carry everything")
    p.add_argument("--output-dir", default="output", help="where the trained adapter goes")
    return p


def export_magic(args: list[str], user_ns: dict[str, Any]) -> Exported | None:
    """`%peft export PATH [--format ...] [--plan VAR | --model VAR] [--data VAR] [--gpus N ...]`."""
    parser = _parser()
    if any(a in ("-h", "--help") for a in args):
        parser.print_help()
        return None
    opts = parser.parse_args(args)
    fmt = opts.format or _format_for(opts.path)
    plan, model = _magic_source(opts, user_ns)
    data, eval_data = _magic_data(opts, plan, user_ns)
    kwargs = dict(
        model=model,
        data=data,
        eval_data=eval_data,
        data_format=opts.data_format,
        base=opts.base,
        output_dir=opts.output_dir,
        on_gpu=True if opts.gpus is not None else None,
        gpus=1 if opts.gpus is None else opts.gpus,
        machines=opts.machines,
        backend=opts.backend,
        offload=opts.offload,
        main_ip=opts.main_ip,
        lossy=opts.lossy,
        user_ns=user_ns,
    )
    if fmt == "all":
        return export_all(plan, opts.path, **kwargs)
    return export(plan, opts.path, fmt, **kwargs)


def _format_for(path: str) -> str:
    suffix = Path(path).suffix
    if suffix == ".py":
        return "script"
    if not suffix or path.endswith("/"):
        return "all"
    raise PlanError(
        f"which format is {path!r}? add --format trl or --format accelerate (a .py is a script, a folder gets all)",
        key="format",
        choices=[*FORMATS, "all"],
    )


def _magic_source(opts: argparse.Namespace, ns: dict[str, Any]) -> tuple[Any, Any]:
    """(plan, model) named by --plan / --model; (None, None) means the latest apply."""
    if opts.plan:
        if opts.plan not in ns:
            raise PlanError(f"no variable named {opts.plan!r}", key="--plan", value=opts.plan)
        return ns[opts.plan], None
    if opts.model:
        if opts.model not in ns:
            raise PlanError(f"no variable named {opts.model!r}", key="--model", value=opts.model)
        return None, ns[opts.model]
    return None, None


def _magic_data(opts: argparse.Namespace, plan: Any, ns: dict[str, Any]) -> tuple[Any, Any]:
    """--data / --eval-data as variables or paths; by default the plan's train.dataset."""
    if opts.no_data:
        return None, None
    if plan is None:
        from .adapt import applied_plan

        found = applied_plan(ns.get(opts.model) if opts.model else None)
        plan = found[1] if found else None
    elif not hasattr(plan, "train"):
        from .adapt import as_plan

        plan = as_plan(plan)
    train = getattr(plan, "train", None) or {}
    out: list[Any] = []
    for given, key in ((opts.data, "dataset"), (opts.eval_data, "eval_dataset")):
        name = given or train.get(key)
        if name is None:
            out.append(None)
        elif name in ns:
            out.append(ns[name])
        elif given and Path(given).suffix in (".jsonl", ".json", ".parquet"):
            out.append(given)
        else:
            raise PlanError(f"no variable named {name!r} (nor a .jsonl/.parquet path)", key=f"--{key}", value=name)
    return out[0], out[1]
