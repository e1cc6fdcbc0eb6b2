"""What `Adapters.load` is given, found on disk and checked against the base before peft sees it.

A source is an adapter folder (what `save_pretrained` writes), a run folder or a `Run` (its newest
checkpoint, or the one at `step`), or a checkpoint folder of a run. The check reads the adapter's
config and its weight file's header (names and shapes, not the weights) and refuses, naming the
mismatch, an adapter made for another base model, one whose target modules the base lacks, and
one whose weights do not fit the base's layers.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import PlanError
from ..training import folders

CONFIG = "adapter_config.json"
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass
class Source:
    """Where an adapter came from: `kind` is "trained" (on the model already), "folder", "checkpoint"
    (of a run: `run_folder` and `step` are set) or "merge"."""

    kind: str
    path: Path | None = None
    run_folder: Path | None = None
    step: int | None = None
    note: str = ""

    @property
    def text(self) -> str:
        if self.kind == "checkpoint" and self.run_folder is not None:
            return f"{self.run_folder.name} @ step {self.step}"
        if self.kind == "folder" and self.path is not None:
            return str(self.path)
        return self.note or self.kind

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "path": str(self.path or ""),
                "run_folder": str(self.run_folder or ""), "step": self.step}


def resolve(source: Any, step: int | None = None) -> tuple[Path, Source]:
    """(the folder holding adapter_config.json, where it came from) for a folder, run folder or Run."""
    run = source if hasattr(source, "trainer") and hasattr(source, "folder") else None
    if run is not None:
        return _from_run_folder(Path(run.folder), step, getattr(run.model, "active_adapter", None))
    if not isinstance(source, (str, Path)):
        raise PlanError(f"load takes an adapter folder, a run folder or a Run, got {type(source).__name__}",
                        key="path_or_run")
    path = Path(source).expanduser()
    if not path.is_dir():
        raise PlanError(f"no folder {str(path)!r}", key="path_or_run", value=str(source))
    if folders.checkpoints(path):  # a run folder
        return _from_run_folder(path, step, None)
    if step is not None:
        raise PlanError(f"{str(path)!r} is not a run folder (no checkpoint-N inside): step= is for runs",
                        key="step", value=step)
    found = adapter_folder(path)
    if folders.checkpoint_step(path) and path.parent.is_dir():
        return found, Source("checkpoint", found, path.parent, folders.checkpoint_step(path))
    return found, Source("folder", found)


def _from_run_folder(folder: Path, step: int | None, adapter: str | None) -> tuple[Path, Source]:
    found = folders.checkpoints(folder)
    if not found:
        raise PlanError(f"the run in {str(folder)!r} has no checkpoint yet (Stop, Save now or the end of a run "
                        "writes one)", key="path_or_run", value=str(folder))
    steps = {folders.checkpoint_step(c): c for c in found}
    if step is None:
        step = max(steps)
    if step not in steps:
        raise PlanError(f"the run in {str(folder)!r} has no checkpoint at step {step}", key="step", value=step,
                        choices=[str(s) for s in sorted(steps)])
    checkpoint = steps[step]
    where = folders.adapter_dir(checkpoint, adapter)
    path = adapter_folder(where if where.is_dir() else checkpoint)
    return path, Source("checkpoint", path, folder, step)


def adapter_folder(path: Path) -> Path:
    """`path`, or its one subfolder that holds an adapter (peft's `<name>/` for named adapters)."""
    if (path / CONFIG).is_file():
        return path
    inner = [p for p in sorted(path.iterdir()) if (p / CONFIG).is_file()] if path.is_dir() else []
    if len(inner) == 1:
        return inner[0]
    if inner:
        raise PlanError(f"{str(path)!r} holds several adapters: load one of its subfolders", key="path_or_run",
                        value=str(path), choices=[str(p) for p in inner])
    raise PlanError(f"{str(path)!r} holds no adapter (no {CONFIG})", key="path_or_run", value=str(path))


def default_name(source: Source, taken: list[str]) -> str:
    """A name for a loaded adapter: the folder's, or `<run>_step<N>`, unique among `taken`."""
    if source.kind == "checkpoint" and source.run_folder is not None:
        stem = f"{source.run_folder.name.split('-')[-2] if '-' in source.run_folder.name else 'run'}_step{source.step}"
    else:
        stem = source.path.name if source.path is not None else "adapter"
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", stem) or "adapter"
    name, n = stem, 2
    while name in taken:
        name, n = f"{stem}_{n}", n + 1
    return name


# ---- does it fit the base? ----------------------------------------------------------------


def check_fits(peft_model: Any, path: Path) -> Any:
    """The adapter's PeftConfig, after checking it against the base; PlanError naming the mismatch."""
    from peft import PeftConfig

    try:
        config = PeftConfig.from_pretrained(str(path))
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise PlanError(f"cannot read {str(path / CONFIG)!r}: {err}", key="path_or_run", value=str(path)) from None
    base = peft_model.get_base_model()
    ours = getattr(base, "name_or_path", "") or getattr(base.config, "_name_or_path", "")
    theirs = config.base_model_name_or_path or ""
    if ours and theirs and _norm(ours) != _norm(theirs):
        raise PlanError(f"this adapter was trained on {theirs!r}, the model here is {ours!r}",
                        key="base_model_name_or_path", value=theirs, choices=[ours])
    if config.is_prompt_learning:
        return config
    shapes = _weight_shapes(path)
    modules = dict(base.named_modules())
    missing = sorted({m for m in (_module_of(k) for k in shapes) if m is not None and m not in modules})
    if missing:
        raise PlanError(f"target modules missing in the base: {', '.join(missing[:5])}"
                        + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""),
                        key="target_modules", value=missing[:5])
    for key, shape in shapes.items():
        module = _module_of(key)
        why = _shape_problem(modules.get(module), key, shape) if module else None
        if why:
            raise PlanError(f"the adapter's {key} is {tuple(shape)} but {module} {why}", key="shapes",
                            value=tuple(shape))
    return config


def _norm(name: str) -> str:
    return str(Path(name).expanduser().resolve()) if Path(name).expanduser().exists() else name.rstrip("/")


def _module_of(key: str) -> str | None:
    """`base_model.model.model.layers.0.q_proj.lora_A.weight` -> `model.layers.0.q_proj`."""
    key = key.removeprefix("base_model.model.")
    m = re.match(r"^(.*?)\.(lora_[A-Za-z_]+|ia3_l|hada_\w+|lokr_\w+|vera_\w+|oft_\w+)\b", key)
    return m.group(1) if m else None


def _shape_problem(layer: Any, key: str, shape: list[int]) -> str | None:
    """For LoRA weights: lora_A reads the layer's inputs, lora_B writes its outputs."""
    if layer is None:
        return None
    base = getattr(layer, "base_layer", layer)
    fan_in = getattr(base, "in_features", None)
    fan_out = getattr(base, "out_features", None)
    if fan_in is None and hasattr(base, "weight") and base.weight.dim() == 2 and type(base).__name__ == "Linear":
        fan_out, fan_in = base.weight.shape
    if ".lora_A." in key and fan_in is not None and len(shape) == 2 and shape[1] != fan_in:
        return f"takes {fan_in} inputs"
    if ".lora_B." in key and fan_out is not None and len(shape) == 2 and shape[0] != fan_out:
        return f"gives {fan_out} outputs"
    return None


def _weight_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor names and shapes of the adapter's weights, from the safetensors header alone."""
    file = path / WEIGHTS[0]
    if file.is_file():
        with open(file, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}
    if (path / WEIGHTS[1]).is_file():
        import torch

        state = torch.load(path / WEIGHTS[1], map_location="cpu", weights_only=True)
        return {k: list(v.shape) for k, v in state.items()}
    raise PlanError(f"{str(path)!r} has {CONFIG} but no adapter weights ({' or '.join(WEIGHTS)})",
                    key="path_or_run", value=str(path))
