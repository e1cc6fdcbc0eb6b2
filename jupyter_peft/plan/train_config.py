"""The `train:` block of a Plan: which TRL trainer, which data, and the trainer config's fields.

Trainer options are checked against TRL's own config dataclass for that trainer (SFTConfig,
DPOConfig, ...), by their field names and types: unknown keys get "did you mean".
"""

from __future__ import annotations

import functools
import importlib
import typing
import warnings
from dataclasses import dataclass, fields
from typing import Any

from .._compat import keep_accelerate_state
from .._errors import PlanError, unknown
from .._hardware import bf16_gpu, cuda_here
from .methods import Mismatch, coerce, type_name


@dataclass(frozen=True)
class TrainerSpec:
    """Where TRL keeps a trainer and its config, and what its data must look like."""
    name: str
    module: str
    trainer: str
    config: str
    columns: str  # the data set's shape, for messages and docs

    def load(self) -> tuple[type, type]:
        """(Trainer class, Config class), imported on first use."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # trl.experimental warns on import
            mod = importlib.import_module(self.module)
        return getattr(mod, self.trainer), getattr(mod, self.config)


# The documented mapping from `trainer:` names to TRL. Experimental trainers live in
# trl.experimental and may move between TRL releases.
TRAINERS: dict[str, TrainerSpec] = {
    "sft": TrainerSpec("sft", "trl", "SFTTrainer", "SFTConfig", "text, or messages (chat), or prompt/completion"),
    "dpo": TrainerSpec("dpo", "trl", "DPOTrainer", "DPOConfig", "prompt, chosen, rejected"),
    "grpo": TrainerSpec("grpo", "trl", "GRPOTrainer", "GRPOConfig", "prompt (+ columns your reward functions read)"),
    "rloo": TrainerSpec("rloo", "trl", "RLOOTrainer", "RLOOConfig", "prompt (+ columns your reward functions read)"),
    "kto": TrainerSpec("kto", "trl", "KTOTrainer", "KTOConfig", "prompt, completion, label (bool)"),
    "reward": TrainerSpec("reward", "trl", "RewardTrainer", "RewardConfig", "chosen, rejected"),
    "orpo": TrainerSpec("orpo", "trl.experimental.orpo", "ORPOTrainer", "ORPOConfig", "prompt, chosen, rejected"),
    "cpo": TrainerSpec("cpo", "trl.experimental.cpo", "CPOTrainer", "CPOConfig", "prompt, chosen, rejected"),
}

# Keys of the train block that are ours, not the trainer config's.
RUN_KEYS: dict[str, str] = {
    "trainer": "which TRL trainer: " + ", ".join(TRAINERS),
    "dataset": "the name of a notebook variable holding the training data",
    "eval_dataset": "the name of a notebook variable holding evaluation data",
    "reward_funcs": "names of notebook functions (or reward model ids) that score completions (grpo, rloo)",
    "tokenizer": "the name of a notebook variable holding the tokenizer (default: `tokenizer`)",
    "resume_from": "a run folder to continue from (its adapter, optimizer and step count)",
    # samples while training (training/samples.py)
    "samples": "prompts to generate from while training (a text or a list of texts)",
    "sample_every": "generate the samples every N steps (a positive integer; default 50)",
    "sample_tokens": "tokens generated per sample (a positive integer; default 48)",
    # per-module diagnostics (diagnostics/)
    "diagnostics": "per-module gradient and update norms every N steps (a positive integer), or false for none",
    # sweeps (plan/space.py, sweeps/)
    "sweep": "a search space: {key: [choices] | {log: [low, high]} | {range: [low, high]} | {int: [low, high]}}",
    "trials": "how many sweep trials to run (a positive integer)",
    # launching on many processes (launching/)
    "processes": "how many training processes `accelerate launch` starts (a positive integer)",
    "strategy": "how the processes share the work: ddp, fsdp, zero2 or zero3",
}
STRATEGIES = ("ddp", "fsdp", "zero2", "zero3")
# Config fields a run sets itself: a train block that set them would be ignored (and recorded).
OWN_FIELDS: dict[str, str] = {
    "output_dir": "each run writes its own folder under the runs folder (%config PeftMagics.runs_dir = "
                  "'...', or jp.train(..., runs_dir=... | output_dir=...))",
    "resume_from_checkpoint": "continue a run with `resume_from: <its folder>`",
}


@functools.cache
def config_fields(trainer: str) -> dict[str, Any]:
    """Field name -> resolved type for `trainer`'s TRL config dataclass."""
    _, config_cls = TRAINERS[trainer].load()
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints.get(f.name, Any) for f in fields(config_cls) if f.init}


def check_train(train: Any, lines: dict[tuple[str, ...], int]) -> dict[str, Any]:
    """The train block, checked and coerced; PlanError names the line and key."""
    line = lines.get(("train",))
    if isinstance(train, str):  # `train: sft` is short for `train: {trainer: sft}`
        train = {"trainer": train}
    if not isinstance(train, dict):
        raise PlanError(
            f"{train!r} is not valid: train is a mapping, e.g. {{trainer: sft, dataset: ds, max_steps: 100}}",
            key="train",
            line=line,
        )
    out: dict[str, Any] = {}
    name = str(train.get("trainer", "sft")).lower()
    if name not in TRAINERS:
        raise unknown("trainer", name, TRAINERS, key="train.trainer", line=lines.get(("train", "trainer"), line))
    out["trainer"] = name
    known = config_fields(name)
    for key, value in train.items():
        where = {"key": f"train.{key}", "line": lines.get(("train", str(key)), line)}
        if key == "trainer":
            continue
        if key in RUN_KEYS:
            out[key] = _check_run_key(str(key), value, where)
            continue
        if key in OWN_FIELDS:
            raise PlanError(f"{key} is not set in the train block: {OWN_FIELDS[key]}", value=value, **where)
        if key not in known:
            raise unknown("option", key, [*known, *RUN_KEYS], f" for trainer {name!r}", **where)
        try:
            out[key] = coerce(value, known[key])
        except Mismatch:
            raise PlanError(
                f"{value!r} is not valid: expected {type_name(known[key])}", value=value, **where
            ) from None
    return out


def _positive_int(name: str, value: Any, where: dict[str, Any]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PlanError(f"{value!r} is not valid: {RUN_KEYS[name]}", value=value, **where)
    return value


def _check_run_key(name: str, value: Any, where: dict[str, Any]) -> Any:
    if name in ("sample_every", "sample_tokens", "trials", "processes"):
        return _positive_int(name, value, where)
    if name == "diagnostics":
        if value is False:
            return False
        return _positive_int(name, value, where)
    if name == "samples":
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list) and items and all(isinstance(v, str) and v.strip() for v in items):
            return list(items)
        raise PlanError(f"{value!r} is not valid: expected a prompt or a list of prompts (non-empty texts)",
                        value=value, **where)
    if name == "strategy":
        if value in STRATEGIES:
            return value
        raise unknown("strategy", str(value), STRATEGIES, **where)
    if name == "sweep":
        from .space import check_space  # the search space's own rules (plan/space.py)

        return check_space(value, where)
    if name == "reward_funcs":
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list) and items and all(isinstance(v, str) and v for v in items):
            return list(items)
        raise PlanError(f"{value!r} is not valid: expected a name or a list of names", value=value, **where)
    if not isinstance(value, str) or not value.strip():
        raise PlanError(f"{value!r} is not valid: {RUN_KEYS[name]}", value=value, **where)
    return value


# peft refuses these with gradient checkpointing (their prefix lives in the KV cache)
NO_CHECKPOINTING = ("prefix_tuning", "cartridge")


def defaults(trainer: str, on_gpu: bool, method: str | None = None) -> dict[str, Any]:
    """Settings we choose when the plan is silent: sensible on CPU and on GPU, per TRL's fields.

    TRL defaults to bf16 and gradient checkpointing; on CPU bf16 is ~2x slower and
    checkpointing costs ~15% on small models, so both are off there (and for `method`s peft
    cannot checkpoint). Logging every step feeds the dashboard; tqdm and TRL's printer are
    replaced by it.
    """
    known = config_fields(trainer)
    chosen: dict[str, Any] = {
        "logging_steps": 1,
        "report_to": "none",
        "save_strategy": "no",
        "disable_tqdm": True,
        # the dashboard flags a NaN/inf loss the step it appears; transformers would hide it
        "logging_nan_inf_filter": False,
        "bf16": on_gpu and bf16_gpu(),
        "fp16": False,
        # transformers 5 renamed gradient_checkpointing; set whichever this version has
        "activation_checkpointing" if "activation_checkpointing" in known else "gradient_checkpointing": on_gpu
        and method not in NO_CHECKPOINTING,
        "use_cpu": not on_gpu,
        "per_device_train_batch_size": 4 if not on_gpu else 8,
        "max_steps": 100,
    }
    if "max_length" in known and not on_gpu:
        chosen["max_length"] = 512
    return {k: v for k, v in chosen.items() if k in known}


def trainer_kwargs(
    train: dict[str, Any], output_dir: str, on_gpu: bool | None = None, method: str | None = None, **overrides: Any
) -> dict:
    """The keyword arguments `trainer_config` gives TRL's config class: our defaults, then the
    plan's fields, then `overrides` (the export writes exactly these into a script)."""
    name = train.get("trainer", "sft")
    gpu = cuda_here() if on_gpu is None else on_gpu
    fields_ = {k: v for k, v in train.items() if k not in RUN_KEYS}
    return {**defaults(name, gpu, method), **fields_, **overrides, "output_dir": str(output_dir)}


def trainer_config(
    train: dict[str, Any], output_dir: str, on_gpu: bool | None = None, method: str | None = None, **overrides: Any
) -> Any:
    """TRL's config object for a checked train block: our defaults, then the plan's fields,
    then `overrides`. TRL's own __post_init__ complaints become PlanErrors."""
    name = train.get("trainer", "sft")
    _, config_cls = TRAINERS[name].load()
    fields_ = {k: v for k, v in train.items() if k not in RUN_KEYS}
    kwargs = trainer_kwargs(train, output_dir, on_gpu, method, **overrides)
    # A config for GPUs written on a machine without one (an export): TRL would refuse bf16/fp16
    # for want of this machine's GPU, so it checks the rest and the flags are set back after.
    elsewhere = {}
    if on_gpu and not cuda_here():
        elsewhere = {k: kwargs[k] for k in ("bf16", "fp16") if kwargs.get(k)}
        kwargs.update(dict.fromkeys(elsewhere, False))  # False, not absent: TRL's own default is bf16
    if _runs_training():  # building a config must not reset accelerate's state under a running trainer
        kwargs["accelerator_config"] = keep_accelerate_state(kwargs.get("accelerator_config"))
    try:
        config = config_cls(**kwargs)
    except (ValueError, TypeError) as err:
        message = str(err)
        key = next((k for k in fields_ if k in message), None) or next(
            (k for k, v in fields_.items() if len(f"{v}") > 2 and f"{v}" in message), None
        )
        raise PlanError(f"TRL rejects this {name} config: {message}", key=f"train.{key}" if key else "train") from None
    for key, value in elsewhere.items():
        setattr(config, key, value)
    return config


def _runs_training() -> bool:
    """Whether a run trains in this kernel now (session.py; imported here, plan/ sees no runs)."""
    from ..session import session

    return bool(session().active_runs())

