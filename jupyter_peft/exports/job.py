"""One export job: check and resolve once, render each format, write everything at the end.

`Job.make` checks every argument and resolves the plan's literal settings (nothing is
written); `Job.render` gives one file's text; `Job.write` stages the files, has accelerate
read back its config, and only then puts them in place and writes the data (JSONL/Parquet).
"""

from __future__ import annotations

import os
import shlex
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._compat import base_model
from .._errors import PlanError, unknown
from .._hardware import cuda_here
from ..model.adapt import applied_plan
from . import accelerate as acc
from . import script as export_script
from . import trl as export_trl
from .accelerate import Scale, launch_commands, memory_lines, notes, validate
from .options import ExportOptions
from .source import comment, resolve

ACCELERATE = "accelerate.yaml"
DATA_FORMATS = ("jsonl", "parquet")

# ---- one export job: resolve once, render per format, write at the end ------------------------


@dataclass
class Job:
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
    overwrite: bool = False

    @classmethod
    def make(cls, plan: Any, folder: Path, options: ExportOptions) -> Job:
        """Check every argument and resolve the settings; nothing is written here."""
        o = options
        if o.data_format not in DATA_FORMATS:
            raise unknown("data format", o.data_format, DATA_FORMATS, key="data_format")
        plan, model = _plan_and_model(plan, o.model)
        scale = Scale(gpus=o.gpus, machines=o.machines, backend=o.backend, offload=bool(o.offload), main_ip=o.main_ip)
        on_gpu = True if o.on_gpu is None and scale.processes > 1 else o.on_gpu  # several GPUs: GPU settings
        source = resolve(plan, model, base=o.base, on_gpu=on_gpu, user_ns=o.user_ns)
        for value, key in ((o.data, "data"), (o.eval_data, "eval_data")):
            _check_data(value, key)
        return cls(source, scale, Path(folder), model, o.data, o.eval_data, o.data_format, o.output_dir, bool(o.lossy),
                   overwrite=bool(o.overwrite))

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

        cfg = acc.config(self.source, self.scale, _layer_classes(self.model))
        lines = [
            "accelerate config, exported by jupyter_peft. Launch from this folder:",
            *(f"  {c}" for c in self.commands("accelerate", name)),
            "",
            *self.notes(),
        ]
        return comment(lines) + yaml.safe_dump(cfg, sort_keys=False)

    def commands(self, format: str, name: str) -> list[str]:
        """The exact commands that run what `format` wrote (run from the export folder)."""
        trainer = self.source.trainer
        if format == "trl":
            one = shlex.join(["trl", trainer, "--config", name])
            return [one, f"{one} --accelerate_config {ACCELERATE}"] if self.scale.processes > 1 else [one]
        if format == "accelerate":
            return launch_commands(self.scale, name, self.script_name)
        script = name if format == "script" else self.script_name
        trl = (trainer, self.trl_file) if format == "all" and self.trl_file else None
        return [shlex.join(["python", script]), *launch_commands(self.scale, ACCELERATE, script, trl)]

    def notes(self) -> list[str]:
        """What to know before running: defaults taken, scale, memory per GPU."""
        out = [*self.source.notes, *notes(self.source, self.scale)]
        out += memory_lines(self.source, self.scale, self.model)
        kwargs = self.source.train_kwargs
        if self.source.on_gpu and not cuda_here() and not (kwargs.get("bf16") or kwargs.get("fp16")):
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
        """Write the files (accelerate configs checked by accelerate's loader first) and the data:
        every path checked first (`_check_targets`), each file staged beside its place and moved
        there only when all are staged; on any failure nothing is left behind."""
        data = {self.folder / f"data/{split}.{self.data_format}": value
                for split, value in (("train", self.data), ("test", self.eval_data))
                if value is not None and not isinstance(value, (str, os.PathLike))}
        _check_targets([*texts, *data], self.overwrite)
        staged: dict[Path, Path] = {}
        try:
            for path in [*texts, *data]:
                path.parent.mkdir(parents=True, exist_ok=True)
                staged[path] = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # beside it: same disk
                if path in texts:
                    staged[path].write_text(texts[path])
                else:
                    _write_data(data[path], staged[path], self.data_format)
                if path in accelerate:
                    validate(str(staged[path]))
            for path, tmp in staged.items():
                tmp.replace(path)
        except OSError as err:
            raise PlanError(f"cannot write the export: {err}", key="path", value=str(err.filename or "")) from None
        finally:
            for tmp in staged.values():
                tmp.unlink(missing_ok=True)
        return [*texts, *data]


def _plan_and_model(plan: Any, model: Any) -> tuple[Any, Any]:
    """The plan to export and the model it applies to: a given plan, else the one recorded
    when it was applied to `model` (or, with no model, the latest apply in this session)."""
    if plan is not None:
        return plan, model

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
    base = base_model(model)
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


def _write_data(value: Any, path: Path, data_format: str) -> Path:
    from datasets import Dataset

    if isinstance(value, list):
        value = Dataset.from_list(value)
    elif type(value).__name__ == "DataFrame":
        value = Dataset.from_pandas(value, preserve_index=False)
    import datasets

    was = datasets.is_progress_bar_enabled()  # "Creating json from Arrow format" is no news in a cell
    datasets.disable_progress_bars()
    try:
        if data_format == "parquet":
            value.to_parquet(str(path))
        else:
            value.to_json(str(path), lines=True, force_ascii=False)
    finally:
        if was:
            datasets.enable_progress_bars()
    return path


def _check_targets(paths: list[Path], overwrite: bool) -> None:
    """PlanError, before anything is written, when a file cannot go where it should: a folder is
    in its place, a file is where a folder must be, or (without `overwrite`) a file is there."""
    there = []
    for path in paths:
        if path.is_dir():
            raise PlanError(f"{str(path)!r} is a folder; name a file, or export everything into a folder "
                            "(export_files, %peft export FOLDER/)", key="path", value=str(path))
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise PlanError(f"cannot write {str(path)!r}: {str(blocker)!r} is a file, not a folder", key="path",
                            value=str(path))
        if path.exists():
            there.append(str(path))
    if there and not overwrite:
        raise PlanError(
            f"the export would overwrite {len(there)} file(s) already there: {', '.join(there)}; nothing was "
            "written. Export into an empty folder, or pass overwrite=True (%peft export ... --overwrite)",
            key="overwrite",
            choices=["overwrite=True", "--overwrite"],
        )
