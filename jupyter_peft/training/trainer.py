"""From a plan, a model and the notebook's data to a ready TRL trainer and its run folder.

Everything a user can get wrong is checked here, before any thread starts or any folder is
written (`check` needs no model: `jp.train` and `%%peft` call it before they apply a plan): the
trainer and its config fields (`train_config`), the data (a Dataset with rows, its columns, text
where text is read, no missing rows), the tokenizer, the reward functions, extra trainer
arguments, the run folder (it can be written), the complete checkpoint to resume from, and the
runs of other models training beside it (`_check_beside`: accelerate's one state per process).
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
from ..data.checks import COLUMNS
from ..plan.plan import Plan
from ..plan.train_config import RUN_KEYS, TRAINERS, check_train, config_fields, trainer_config
from . import folders

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
    notes: list[str] = field(default_factory=list)
    """What to tell the user (the newer checkpoints a resume skipped, and why)."""


def check(plan: Plan, *, dataset: Any, eval_dataset: Any = None, reward_funcs: Any = None,
          runs_dir: str | Path = "peft_runs", output_dir: str | Path | None = None, adapter: str | None = None,
          **trainer_kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Everything that needs neither the model nor its tokenizer: (the checked train block, the
    trainer's arguments). The data, TRL's config, the folder the run will write (or the complete
    checkpoint it resumes from, for the adapter named `adapter`), and the runs training beside it."""
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
    resume = train.get("resume_from")
    folder = resume or output_dir or runs_dir
    config = trainer_config(train, str(folder), method=plan.method)  # TRL's own checks
    if resume:
        folders.resume_point(resume, config.max_steps, adapter)
    key = "train.resume_from" if resume else "output_dir" if output_dir is not None else "runs_dir"
    folders.check_writable(folder, key=key)
    _check_beside(config)
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
    check_tokenizer(tokenizer)
    adapter = getattr(peft_model, "active_adapter", None)
    train, init_kwargs = check(plan, dataset=dataset, eval_dataset=eval_dataset, reward_funcs=reward_funcs,
                               runs_dir=runs_dir, output_dir=output_dir, adapter=adapter, **trainer_kwargs)
    name = train["trainer"]
    trainer_cls, _ = TRAINERS[name].load()
    resume, prior, created, notes = None, [], False, []
    if train.get("resume_from"):
        folder = Path(train["resume_from"])
        config = trainer_config(train, str(folder), method=plan.method)
        resume = folders.resume_point(folder, config.max_steps, adapter)
        _check_resume_adapter(peft_model, resume)
        prior = folders.read_history(folder, until_step=folders.checkpoint_step(resume))
        notes = [f"resuming from {resume.name}, the newest complete checkpoint; skipped " + "; ".join(skips)
                 for skips in [folders.skipped(folder, resume, adapter)] if skips]
    else:
        folder = Path(output_dir) if output_dir is not None else folders.fresh_path(runs_dir, plan.method, name)
        config = trainer_config(train, str(folder), method=plan.method)  # TRL's checks, before the folder exists
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
    trainer = _construct(trainer_cls, name, peft_model, _own_data_seed(config), dataset, eval_dataset, tokenizer,
                         init_kwargs, cleanup=folder if created else None)
    folders.write_plan(folder, plan.replace(train=train))
    return Launch(trainer, folder, train, resume, prior, notes)


def apply_for_run(plan: Plan, model: Any) -> Any:
    """`apply(plan, model)` for a run: torch, Python and NumPy are seeded with the train block's
    `seed` (TRL's default 42) first, as TRL's own trainers seed before they make an adapter, so a
    cell run again gives the same adapter and the same run, whatever ran before it."""
    from transformers import TrainingArguments, set_seed

    from ..model.adapt import apply

    seed = (plan.train or {}).get("seed")
    set_seed(int(TrainingArguments.__dataclass_fields__["seed"].default if seed is None else seed))
    return apply(plan, model)


def _own_data_seed(config: Any) -> Any:
    """The sampler seeded from the config itself (`data_seed`, else `seed`, what TRL documents),
    not from torch's global seed when the loader is built on the run's thread, which other
    threads could have reseeded meanwhile (a preview's trainer, another run's)."""
    if getattr(config, "data_seed", None) is None and hasattr(config, "seed"):
        config.data_seed = config.seed
    return config


def check_tokenizer(tokenizer: Any) -> None:
    if tokenizer is None:
        raise PlanError(
            "training needs the model's tokenizer: pass tokenizer=..., or name it in `train: {tokenizer: tok}`",
            key="train.tokenizer",
        )


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
    """The data is a datasets.Dataset (eval data: also a mapping of them) with rows, the columns the
    trainer reads, and text where it reads text: what TRL would otherwise find only after the
    adapter was applied (an int or None text, an empty set, a list of rows)."""
    if data is None:
        raise PlanError(f"training needs data: pass {key}=..., or name a variable in `train: {{{key}: ds}}`",
                        key=f"train.{key}")
    if key == "eval_dataset" and isinstance(data, dict):  # TRL evaluates each split of a mapping
        for part in data.values():
            _check_data(name, part, key, train, init_kwargs)
        return
    _check_kind(data, key)
    columns = getattr(data, "column_names", None)
    if isinstance(columns, list) and hasattr(data, "__len__") and len(data) == 0:
        raise PlanError(f"{key} is empty (0 rows): there is nothing to train on", key=f"train.{key}")
    if not isinstance(columns, list) or init_kwargs.get("formatting_func") or init_kwargs.get("data_collator"):
        return  # streaming data, or the user maps rows themselves
    options = COLUMNS[name]  # the one table of the columns each trainer reads (data/checks.py)
    if name == "sft":  # SFT's text column is its config's `dataset_text_field`, tried first
        options = ((train.get("dataset_text_field", "text"),), *(o for o in options if o != ("text",)))
    found = next((option for option in options if set(option) <= set(columns)), None)
    if found is None:
        wanted = " or ".join("(" + ", ".join(o) + ")" for o in options)
        raise PlanError(
            f"the {name} trainer reads columns {wanted}; {key} has ({', '.join(columns)}). "
            f"Expected shape: {TRAINERS[name].columns}",
            key=f"train.{key}",
            choices=[", ".join(o) for o in options],
        )
    for column in found:
        _check_column(data, column, key)


def _check_kind(data: Any, key: str) -> None:
    """A datasets.Dataset or IterableDataset; anything else is refused with the way to make one."""
    import datasets

    if isinstance(data, (datasets.Dataset, datasets.IterableDataset)):
        return
    kind = type(data).__name__
    how = {"list": "datasets.Dataset.from_list(rows)", "DataFrame": "datasets.Dataset.from_pandas(df)",
           "dict": "datasets.Dataset.from_dict(columns)"}.get(kind)
    if isinstance(data, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        raise PlanError(f"{key} is a {kind} with splits {list(data)}: pass one split, e.g. ds['train']",
                        key=f"train.{key}", choices=[f"ds[{s!r}]" for s in data])
    raise PlanError(f"{key} is a {kind}; TRL's trainers read a datasets.Dataset"
                    + (f": make one with {how}" if how else ""), key=f"train.{key}", choices=[how] if how else [])


def _check_column(data: Any, column: str, key: str) -> None:
    """A column the trainer reads as text (or chat turns, or KTO's label): the right type in
    every row, no row missing it. Read as Arrow batches: no Python object per row."""
    import datasets

    feature = getattr(data, "features", None) and data.features.get(column)
    if isinstance(feature, datasets.Value) and column != "label":  # KTO's label: left to TRL
        if column == "messages":
            raise PlanError(f"column 'messages' of {key} holds {feature.dtype} values; chat rows are lists of "
                            "{role, content} turns", key=f"train.{key}")
        if feature.dtype not in ("string", "large_string"):
            raise PlanError(f"column {column!r} of {key} holds {feature.dtype} values; the trainer reads text "
                            "(str) there", key=f"train.{key}")
    if not isinstance(data, datasets.Dataset):
        return
    seen = 0
    for batch in data.select_columns([column]).with_format("arrow").iter(batch_size=65536):
        values = batch.column(0)
        if values.null_count:
            row = seen + values.is_null().to_pylist().index(True)
            raise PlanError(f"row {row} of {key} has no {column!r} (None): every row needs one "
                            f"({values.null_count} in rows {seen}-{seen + len(values) - 1})", key=f"train.{key}")
        seen += len(values)


def _check_beside(config: Any) -> None:
    """A run may start while another model trains in this kernel only if both can share
    accelerate's one training state per process: the same precision and device, and neither
    accumulating gradients (the flag that says "step the optimizer now" is shared too)."""
    from ..session import session

    def precision(args: Any) -> str:
        return "bf16" if getattr(args, "bf16", False) else "fp16" if getattr(args, "fp16", False) else "fp32"

    for run in session().active_runs():
        other = run.trainer.args
        settings = [("precision", precision(config), precision(other)),
                    ("use_cpu", bool(config.use_cpu), bool(other.use_cpu))]
        for what, mine, theirs in settings:
            if mine != theirs:
                raise PlanError(
                    f"{run.describe()} trains beside it with {what} {theirs}, this run asks for {mine}: "
                    f"accelerate keeps one {what} per process. Use the same setting, or wait for that run "
                    "(run.wait()) or stop it (%peft stop)", key=f"train.{'bf16' if what == 'precision' else what}")
        steps = max(config.gradient_accumulation_steps, other.gradient_accumulation_steps)
        if steps > 1:
            raise PlanError(
                f"{run.describe()} trains beside it, and gradient accumulation ({steps} steps) cannot run "
                "beside another run: accelerate keeps one 'step the optimizer now' flag per process. "
                "Use gradient_accumulation_steps: 1 in both, or wait for that run (run.wait())",
                key="train.gradient_accumulation_steps",
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
    path = folders.adapter_dir(checkpoint, peft_model.active_adapter) / "adapter_config.json"
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
