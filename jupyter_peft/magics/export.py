"""`%peft export PATH [options]`: the export options as a command line (exports/ does the work)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._errors import PlanError
from ..exports.api import FORMATS, Exported, export, export_all
from ..exports.job import DATA_FORMATS
from ..model.adapt import applied_plan, as_plan


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
    p.add_argument("--overwrite", action="store_true", help="replace files already there (else nothing is written)")
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
        overwrite=opts.overwrite,
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

        found = applied_plan(ns.get(opts.model) if opts.model else None)
        plan = found[1] if found else None
    elif not hasattr(plan, "train"):

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
