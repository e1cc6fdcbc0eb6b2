"""`jp.train` and `jp.attach`: a Run of a TRL trainer, wrapped in its live dashboard.

This is the one place where training meets its view: the Run (run.py) knows nothing of widgets;
these entry points make the trainer (trainer.py), the Run, and the dashboard that watches it.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._compat import base_model
from ..model.adapt import Snapshot, as_plan, check_idle, find_peft_model
from ..model.summary import method_name
from ..session import session
from .run import Run
from .trainer import apply_for_run, check_tokenizer
from .trainer import build as build_trainer
from .trainer import check as check_trainer


def train(peft_model: Any, plan: Any = None, *, dataset: Any = None, tokenizer: Any = None, eval_dataset: Any = None,
          reward_funcs: Any = None, output_dir: str | Path | None = None, runs_dir: str | Path = "peft_runs",
          stop_on_nan: bool = True, **trainer_kwargs: Any) -> Run:
    """Start training `peft_model` with `plan`'s train block in the background; returns the Run.

    `plan` is a Plan, YAML text or a mapping (default: SFT with our defaults; the adapter a
    PeftModel already has is trained as it is, only the plan's train block is used). Keyword
    arguments that are fields of the trainer's TRL config (`max_steps=50`, `learning_rate=...`)
    join the train block; others go to the trainer (`data_collator=`, `formatting_func=`...).
    A model without an adapter gets the plan applied first. `stop_on_nan` ends a run whose loss
    becomes NaN/inf (state failed, the NaN weights not saved). Everything is checked before the
    model changes (the data, TRL's config, the run folder); if TRL still refuses the trainer,
    the adapter this call applied is taken off again.
    """
    model = find_peft_model(peft_model)
    if plan is None:  # train the adapter the model has, with the default train block

        plan = {"method": method_name(model.peft_config[model.active_adapter]) if model is not None else "lora"}
    plan = as_plan(plan)
    check_idle(peft_model)
    check_tokenizer(tokenizer)
    adapter = model.active_adapter if model is not None else plan.adapter_name or "default"
    check_trainer(plan, dataset=dataset, eval_dataset=eval_dataset, reward_funcs=reward_funcs, runs_dir=runs_dir,
                  output_dir=output_dir, adapter=adapter, **trainer_kwargs)
    with undo_on_error(peft_model) if model is None else contextlib.nullcontext():
        if model is None:
            model = apply_for_run(plan, peft_model)
        ready = build_trainer(model, plan, dataset=dataset, tokenizer=tokenizer, eval_dataset=eval_dataset,
                              reward_funcs=reward_funcs, output_dir=output_dir, runs_dir=runs_dir, **trainer_kwargs)
        run = Run(ready.trainer, plan=plan.replace(train=ready.train), resume=ready.resume, prior=ready.prior,
                  stop_on_nan=stop_on_nan)
        run.notes = list(ready.notes)
        _dashboard(run)
        run.start()
    for note in run.notes:
        warnings.warn(note, stacklevel=2)
    return run


@contextlib.contextmanager
def undo_on_error(model: Any) -> Iterator[None]:
    """Apply, then what needs the applied model (build the trainer, start the run), as one step:
    if the block raises, `model` gets back the modules, trainable flags and adapters it had, and
    the session forgets the apply (nothing is left half-done: no adapter layers without a
    PeftModel anyone holds). An adapter added beside others by name is deleted again."""
    existing = find_peft_model(model)
    base = base_model(existing if existing is not None else model)
    names = set(existing.peft_config) if existing is not None else set()
    active = existing.active_adapter if existing is not None else None
    snapshot, known, attrs = Snapshot(base), session().wrapping(base), dict(base.__dict__)
    try:
        yield
    except BaseException:
        if existing is not None and find_peft_model(base) is existing:  # added by name beside the others
            for name in set(existing.peft_config) - names:
                existing.delete_adapter(name)
            if active in existing.peft_config:
                existing.set_adapter(active)
        snapshot.restore()
        # what the apply set on the base about peft (its config, its link to the PeftModel) goes, what
        # it replaced comes back; a k-bit preparation stays (done once per base, the session knows)
        for key in [k for k in base.__dict__ if k not in attrs and "peft" in k]:
            del base.__dict__[key]
        base.__dict__.update({k: v for k, v in attrs.items() if base.__dict__.get(k) is not v})
        session().restore_wrapping(base, known)
        raise


def attach(trainer: Any) -> Any:
    """The live dashboard for a Trainer you built: adds a callback and returns the Dashboard.

    Train in the background with `dashboard.run.start()` (the notebook stays usable and Stop
    works), or call `trainer.train()` yourself (the first interrupt then stops at the next step
    and saves; the Stop button answers only when the cell is done).
    """
    handler = getattr(trainer, "callback_handler", None)
    for callback in handler.callbacks if handler is not None else []:
        if isinstance(getattr(callback, "run", None), Run):
            return callback.run.dashboard  # attached already
    return _dashboard(Run(trainer))


def _dashboard(run: Run) -> Any:
    """The live dashboard that watches `run` (it becomes `run.dashboard`)."""
    from ..ui.dashboard.widget import Dashboard

    run.dashboard = Dashboard(run)
    return run.dashboard


