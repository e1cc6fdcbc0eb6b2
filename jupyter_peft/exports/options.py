"""`ExportOptions`: everything an export can be told besides the plan and the path, in one place.

`jp.export`, `export_files` / `export_all` and `%peft export` all take these by name and check
them here, so the three cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .._errors import PlanError, did_you_mean


@dataclass(frozen=True)
class ExportOptions:
    model: Any = None
    """The base or PeftModel: resolves ranks and targets as `apply` did; gives the base's path and dtype."""
    data: Any = None
    """Training data in memory (Dataset, DataFrame, rows) or a path; written to data/train.<format>."""
    eval_data: Any = None
    """Evaluation data, like `data`; written to data/test.<format>."""
    data_format: str = "jsonl"
    """jsonl | parquet: how the data files are written."""
    base: str | None = None
    """The base model's path or hub id the files load (default: the plan's or the model's)."""
    output_dir: str = "output"
    """Where the trained adapter goes."""
    on_gpu: bool | None = None
    """Training defaults for a GPU (None: as in this notebook, or GPU ones when several GPUs are asked for)."""
    gpus: int = 1
    """GPUs per machine."""
    machines: int = 1
    backend: str = "ddp"
    """ddp | fsdp | zero2 | zero3."""
    offload: bool = False
    """CPU offload (fsdp, zero2, zero3)."""
    main_ip: str | None = None
    """The address of machine 0 (several machines)."""
    lossy: bool = False
    """Let a TRL config leave out what TRL's command line cannot say (listed in the file)."""
    overwrite: bool = False
    """Replace files that are already there (README.md, train.py, data/...); without it an export
    that would overwrite one writes nothing and says which."""
    user_ns: dict[str, Any] | None = None
    """The notebook's namespace, to find the names a plan's train block gives."""

    @classmethod
    def of(cls, **options: Any) -> ExportOptions:
        """The options given by name; a name that is not an option is a PlanError saying which are."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in options:
            if key not in names:
                raise PlanError(f"{key!r} is not an export option", key=key, choices=did_you_mean(key, names) or names)
        return cls(**options)
