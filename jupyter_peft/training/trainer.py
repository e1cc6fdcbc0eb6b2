"""From a plan, a model and the notebook's data to a ready TRL trainer and its run folder.

Everything a user can get wrong is checked here, before any thread starts or any folder is
written: the trainer and its config fields (`train_config`), the data's columns, the
tokenizer, the reward functions, extra trainer arguments, the folder to resume from.
"""

from __future__ import annotations

import inspect as _inspect
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._compat import silence_library_noise
from .._errors import PlanError, unknown
from ..plan.plan import Plan
from ..plan.train_config import RUN_KEYS, TRAINERS, check_train, config_fields, trainer_config
from . import folders

# Columns each trainer reads, as alternatives (any one set must be present). SFT's text
# column is its config's `dataset_text_field`, filled in below.
_COLUMNS: dict[str, tuple[tuple[str, ...], ...]] = {
    "sft": (("messages",), ("prompt", "completion")),
    "dpo": (("chosen", "rejected"),),
    "orpo": (("chosen", "rejected"),),
    "cpo": (("chosen", "rejected"),),
    "reward": (("chosen", "rejected"),),
    "kto": (("prompt", "completion", "label"),),
    "grpo": (("prompt",),),
    "rloo": (("prompt",),),
}
# Trainer arguments we pass ourselves.
_OURS = ("model", "args", "train_dataset", "eval_dataset", "processing_class", "reward_funcs", "callbacks")


@dataclass
class Launch:
    """A trainer ready to train, and where its run lives."""

    trainer: Any
    folder: Path
    train: dict[str, Any]
    resume: Path | None = None
    prior: list[dict[str, Any]] = field(default_factory=list)


def check(plan: Plan, *, dataset: Any, eval_dataset: Any = None, reward_funcs: Any = None,
          **trainer_kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Everything that needs neither the model nor its tokenizer: (the checked train block, the
    trainer's arguments)."""
    train, init_kwargs = _split_kwargs(plan, trainer_kwargs)
    name = train["trainer"]
    trainer_cls, _ = TRAINERS[name].load()
    init_kwargs = _check_init_kwargs(trainer_cls, name, init_kwargs)
    _check_data(name, dataset, "dataset", train, init_kwargs)
    if eval_dataset is not None:
        _check_data(name, eval_dataset, "eval_dataset", train, init_kwargs)
    if name in ("grpo", "rloo"):
        init_kwargs["reward_funcs"] = _check_rewards(reward_funcs)
    elif reward_funcs:
        raise PlanError(f"reward_funcs are for grpo and rloo, not {name}", key="train.reward_funcs")
    if train.get("resume_from"):
        max_steps = trainer_config(train, train["resume_from"], method=plan.method).max_steps
        folders.resume_point(train["resume_from"], max_steps)
    return train, init_kwargs


def build(
    peft_model: Any,
    plan: Plan,
    *,
    dataset: Any,
    tokenizer: Any,
    eval_dataset: Any = None,
    reward_funcs: Any = None,
    output_dir: str | Path | None = None,
    runs_dir: str | Path = "peft_runs",
    **trainer_kwargs: Any,
) -> Launch:
    """Check everything, then build the trainer. PlanError (and nothing written) on any mistake."""
    silence_library_noise()
    if tokenizer is None:
        raise PlanError(
            "training needs the model's tokenizer: pass tokenizer=..., or name it in `train: {tokenizer: tok}`",
            key="train.tokenizer",
        )
    train, init_kwargs = check(plan, dataset=dataset, eval_dataset=eval_dataset, reward_funcs=reward_funcs,
                               **trainer_kwargs)
    name = train["trainer"]
    trainer_cls, _ = TRAINERS[name].load()
    resume, prior, created = None, [], False
    if train.get("resume_from"):
        folder = Path(train["resume_from"])
        config = trainer_config(train, str(folder), method=plan.method)
        resume = folders.resume_point(folder, config.max_steps)
        _check_resume_adapter(peft_model, resume)
        prior = folders.read_history(folder, until_step=folders.checkpoint_step(resume))
    else:
        folder = Path(output_dir) if output_dir is not None else folders.fresh_path(runs_dir, plan.method, name)
        config = trainer_config(train, str(folder), method=plan.method)  # TRL's checks, before the folder exists
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
    trainer = _construct(trainer_cls, name, peft_model, config, dataset, eval_dataset, tokenizer, init_kwargs,
                         cleanup=folder if created else None)
    folders.write_plan(folder, plan.replace(train=train))
    return Launch(trainer, folder, train, resume, prior)


def _split_kwargs(plan: Plan, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The train block (the plan's, plus keyword arguments that are config fields), checked;
    and the remaining keyword arguments, meant for the trainer's constructor."""
    train = dict(plan.train or {"trainer": "sft"})
    known = config_fields(train.get("trainer", "sft"))
    config_part = {k: v for k, v in kwargs.items() if k in known or k in RUN_KEYS}
    rest = {k: v for k, v in kwargs.items() if k not in config_part}
    return check_train({**train, **config_part}, {}), rest


def _check_init_kwargs(trainer_cls: type, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    params = [p for p in _inspect.signature(trainer_cls).parameters if p not in _OURS]
    for key in kwargs:
        if key not in params:
            known = [*config_fields(name), *params]
            raise unknown("argument", key, known, f" for the {name} trainer (neither a config field nor a "
                          f"{trainer_cls.__name__} argument)", key=f"train.{key}")
    return dict(kwargs)


def _check_data(name: str, data: Any, key: str, train: dict[str, Any], init_kwargs: dict[str, Any]) -> None:
    if data is None:
        raise PlanError(f"training needs data: pass {key}=..., or name a variable in `train: {{{key}: ds}}`",
                        key=f"train.{key}")
    columns = getattr(data, "column_names", None)
    if isinstance(columns, dict):  # a DatasetDict: its splits share columns
        columns = next(iter(columns.values()), None)
    if not isinstance(columns, list) or init_kwargs.get("formatting_func") or init_kwargs.get("data_collator"):
        return  # streaming data, or the user maps rows themselves
    options = _COLUMNS[name]
    if name == "sft":
        options = ((train.get("dataset_text_field", "text"),), *options)
    if not any(set(option) <= set(columns) for option in options):
        wanted = " or ".join("(" + ", ".join(o) + ")" for o in options)
        raise PlanError(
            f"the {name} trainer reads columns {wanted}; {key} has ({', '.join(columns)}). "
            f"Expected shape: {TRAINERS[name].columns}",
            key=f"train.{key}",
            choices=[", ".join(o) for o in options],
        )


def _check_rewards(reward_funcs: Any) -> list[Any]:
    funcs = reward_funcs if isinstance(reward_funcs, (list, tuple)) else [reward_funcs] if reward_funcs else []
    if not funcs:
        raise PlanError("grpo and rloo need reward functions: reward_funcs=[f, ...], or "
                        "`train: {reward_funcs: [f]}` naming notebook functions", key="train.reward_funcs")
    for f in funcs:
        if not (callable(f) or isinstance(f, str)):
            raise PlanError(f"{f!r} is not a reward function (a callable, or a reward model id)",
                            key="train.reward_funcs", value=f)
    return list(funcs)


def _check_resume_adapter(peft_model: Any, checkpoint: Path) -> None:
    """The checkpoint's adapter must fit the model's: same method, rank and targets."""
    path = checkpoint / "adapter_config.json"
    if not path.exists():
        return
    saved = json.loads(path.read_text())
    config = peft_model.peft_config[peft_model.active_adapter].to_dict()
    for key in ("peft_type", "r", "target_modules"):
        a, b = saved.get(key), config.get(key)
        a, b = (sorted(x) if isinstance(x, (list, set, tuple)) else x for x in (a, b))
        if a != b and not (a is None or b is None):
            raise PlanError(
                f"the adapter in {checkpoint} has {key} {a!r} but this model's adapter has {b!r}: "
                "resume with the plan that run was started with",
                key="train.resume_from",
                value=str(checkpoint.parent),
            )


def _construct(trainer_cls: type, name: str, model: Any, config: Any, dataset: Any, eval_dataset: Any,
               tokenizer: Any, init_kwargs: dict[str, Any], cleanup: Path | None) -> Any:
    """The trainer; its complaints about data or arguments become a PlanError."""
    import datasets
    from transformers import PrinterCallback

    bars_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # TRL maps the data set with tqdm bars: noise in a cell
    try:
        trainer = trainer_cls(model=model, args=config, train_dataset=dataset, eval_dataset=eval_dataset,
                              processing_class=tokenizer, **init_kwargs)
    except Exception as err:  # TRL rejects the data or an argument: say so, change nothing
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
        raise PlanError(f"TRL could not set up the {name} trainer: {type(err).__name__}: {err}") from err
    finally:
        if bars_on:
            datasets.enable_progress_bars()
    trainer.remove_callback(PrinterCallback)  # the dashboard shows every log; no dicts printed in the cell
    return trainer
