"""Export: the notebook's plan as files that train the same thing elsewhere, on many GPUs.

    jp.export(plan, "train.py")                                   # standalone script
    jp.export(plan, "trl_sft.yaml", format="trl")                 # trl sft --config trl_sft.yaml
    jp.export(plan, "accelerate.yaml", format="accelerate", gpus=8, backend="fsdp")
    exports.export_files(plan, "export/", model=model, data=ds)   # all of them, plus data and README
    %peft export train.py --gpus 4 --backend zero3 --offload

The settings come from `export_source.resolve` (literal values of the notebook's peft and
TRL configs); each format has its room (`export_script`, `export_trl`, `export_accelerate`).
Everything is resolved and rendered before the first file is written: a bad argument writes
nothing. In-memory data (a Dataset, a DataFrame, a list of rows) is written as JSONL or
Parquet next to the files, and the files refer to it by a relative path.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import PlanError, unknown

FORMATS = ("script", "trl", "accelerate")
DATA_FORMATS = ("jsonl", "parquet")


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
    job = _Job.make(
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
    job = _Job.make(plan, folder, **options)
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


ACCELERATE = "accelerate.yaml"


# ---- one export job: resolve once, render per format, write at the end ------------------------


@dataclass
class _Job:
    source: Any
    scale: Any
    folder: Path
    model: Any
    data: Any
    eval_data: Any
    data_format: str
    output_dir: str
    lossy: bool
    script_name: str = "train.py"
    trl_file: str | None = None

    @classmethod
    def make(
        cls,
        plan: Any,
        folder: Path,
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
    ) -> _Job:
        """Check every argument and resolve the settings; nothing is written here."""
        from .export_accelerate import Scale
        from .export_source import resolve

        if data_format not in DATA_FORMATS:
            raise unknown("data format", data_format, DATA_FORMATS, key="data_format")
        plan, model = _plan_and_model(plan, model)
        scale = Scale(gpus=gpus, machines=machines, backend=backend, offload=bool(offload), main_ip=main_ip)
        if on_gpu is None and scale.processes > 1:
            on_gpu = True  # several GPUs asked for: GPU training settings, whatever this machine has
        source = resolve(plan, model, base=base, on_gpu=on_gpu, user_ns=user_ns)
        for value, key in ((data, "data"), (eval_data, "eval_data")):
            _check_data(value, key)
        return cls(source, scale, Path(folder), model, data, eval_data, data_format, output_dir, bool(lossy))

    # -- paths as the files spell them (relative to the folder when inside it)

    def data_path(self, split: str, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, (str, os.PathLike)):
            return self._relative(Path(value))
        return f"data/{split}.{self.data_format}"

    def _relative(self, path: Path) -> str:
        rel = os.path.relpath(path.resolve(), self.folder.resolve())
        return str(path.resolve()) if rel.startswith("..") else rel

    # -- rendering

    def render(self, format: str, name: str) -> tuple[str, list[str]]:
        """(text, settings left out) of one file called `name` in the folder."""
        from . import export_script, export_trl

        train, evaluation = self.data_path("train", self.data), self.data_path("test", self.eval_data)
        if format == "script":
            text = export_script.render(
                self.source,
                data=train,
                eval_data=evaluation,
                output_dir=self.output_dir,
                commands=self.commands("script", name),
                notes=self.notes(),
            )
            compile(text, name, "exec")  # a syntax error here is our bug, never the user's file
            return text, []
        if format == "trl":
            header = [
                "TRL command line config, exported by jupyter_peft. Run from this folder:",
                *(f"  {c}" for c in self.commands("trl", name)),
                "",
                *self.notes(),
            ]
            return export_trl.render(
                self.source,
                train_file=train,
                eval_file=evaluation,
                output_dir=self.output_dir,
                lossy=self.lossy,
                header=header,
            )
        return self._accelerate_text(name), []

    def _accelerate_text(self, name: str) -> str:
        import yaml

        from . import export_accelerate as acc

        cfg = acc.config(self.source, self.scale, _layer_classes(self.model))
        lines = [
            "accelerate config, exported by jupyter_peft. Launch from this folder:",
            *(f"  {c}" for c in self.commands("accelerate", name)),
            "",
            *self.notes(),
        ]
        head = "".join(f"# {line}\n" if line else "#\n" for line in lines)
        return head + yaml.safe_dump(cfg, sort_keys=False)

    def commands(self, format: str, name: str) -> list[str]:
        """The exact commands that run what `format` wrote (run from the export folder)."""
        from .export_accelerate import launch_commands

        trainer = self.source.trainer
        if format == "trl":
            one = f"trl {trainer} --config {name}"
            return [one, f"{one} --accelerate_config {ACCELERATE}"] if self.scale.processes > 1 else [one]
        if format == "accelerate":
            return launch_commands(self.scale, name, self.script_name)
        script = name if format == "script" else self.script_name
        trl = (trainer, self.trl_file) if format == "all" and self.trl_file else None
        return [f"python {script}", *launch_commands(self.scale, ACCELERATE, script, trl)]

    def notes(self) -> list[str]:
        """What to know before running: defaults taken, scale, memory per GPU."""
        from .export_accelerate import memory_lines, notes

        out = [*self.source.notes, *notes(self.source, self.scale)]
        out += memory_lines(self.source, self.scale, self.model)
        if self.source.on_gpu and not _has_cuda():
            out.append(
                "bf16 is off: this machine has no GPU to check it on; add `bf16: true` to train: for "
                "Ampere or newer GPUs"
            )
        return out

    def readme(self, commands: list[str], notes: list[str]) -> str:
        plan = self.source.plan
        lines = [
            "# Exported training",
            "",
            f"Plan ({plan.method}, base `{self.source.base}`):",
            "",
            "```yaml",
            plan.to_yaml().rstrip(),
            "```",
            "",
            "## Run (from this folder)",
            "",
            "```sh",
            *commands,
            "```",
            "",
            "## Notes",
            "",
            *(f"- {n}" for n in notes),
        ]
        return "\n".join(lines) + "\n"

    # -- writing

    def write(self, texts: dict[Path, str], accelerate: set[Path]) -> list[Path]:
        """Write the files (accelerate configs checked by accelerate's loader first) and the data."""
        from .export_accelerate import validate

        staged: dict[Path, Path] = {}
        try:
            for path, text in texts.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                staged[path] = path.with_name(path.name + ".tmp")
                staged[path].write_text(text)
                if path in accelerate:
                    validate(str(staged[path]))
        except BaseException:
            for tmp in staged.values():
                tmp.unlink(missing_ok=True)
            raise
        for path, tmp in staged.items():
            tmp.replace(path)
        written = list(texts)
        for split, value in (("train", self.data), ("test", self.eval_data)):
            if value is not None and not isinstance(value, (str, os.PathLike)):
                written.append(_write_data(value, self.folder / f"data/{split}.{self.data_format}"))
        return written


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _plan_and_model(plan: Any, model: Any) -> tuple[Any, Any]:
    """The plan to export and the model it applies to: a given plan, else the one recorded
    when it was applied to `model` (or, with no model, the latest apply in this session)."""
    if plan is not None:
        return plan, model
    from .adapt import applied_plan

    found = applied_plan(model)
    if found is None:
        raise PlanError(
            "nothing to export: no plan has been applied"
            + (" to this model" if model is not None else " yet")
            + " (write a %%peft cell, or pass the plan)",
            key="plan",
        )
    peft_model, plan = found
    return plan, peft_model


def _layer_classes(model: Any) -> list[str] | None:
    """The decoder layer classes FSDP wraps one by one (transformers' `_no_split_modules`)."""
    from .export_source import _base_model

    base = _base_model(model)
    names = getattr(base, "_no_split_modules", None) if base is not None else None
    return sorted(set(names)) if names else None


# ---- data -------------------------------------------------------------------------------------


def _check_data(value: Any, key: str) -> None:
    """Data is a JSONL/Parquet path that exists, or rows in memory a Dataset can hold."""
    if value is None:
        return
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if path.suffix not in (".jsonl", ".json", ".parquet"):
            raise PlanError(f"{str(value)!r} is not a data file: expected .jsonl or .parquet", key=key, value=value)
        if not path.is_file():
            raise PlanError(f"no file {str(value)!r}", key=key, value=value)
        return
    kind = type(value).__name__
    if kind in ("DatasetDict", "IterableDatasetDict"):
        raise PlanError(f"{key} is a {kind}: pass one split, e.g. ds['train']", key=key, choices=list(value))
    rows = isinstance(value, list) and all(isinstance(r, dict) for r in value)
    if kind not in ("Dataset", "DataFrame") and not rows:
        raise PlanError(
            f"{key} must be a datasets.Dataset, a pandas DataFrame, a list of dicts or a .jsonl/.parquet path; "
            f"got {kind}",
            key=key,
        )


def _write_data(value: Any, path: Path) -> Path:
    from datasets import Dataset

    if isinstance(value, list):
        value = Dataset.from_list(value)
    elif type(value).__name__ == "DataFrame":
        value = Dataset.from_pandas(value, preserve_index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        value.to_parquet(str(path))
    else:
        value.to_json(str(path), lines=True, force_ascii=False)
    return path


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
        on_gpu=True if opts.gpus else None,
        gpus=opts.gpus or 1,
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
