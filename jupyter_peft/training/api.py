"""`jp.train` and `jp.attach`: a Run of a TRL trainer, wrapped in its live dashboard.

This is the one place where training meets its view: the Run (run.py) knows nothing of widgets;
these entry points make the trainer (trainer.py), the Run, and the dashboard that watches it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..model.adapt import apply, as_plan, check_idle, find_peft_model
from ..model.summary import method_name
from .run import Run
from .trainer import build as build_trainer


def train(peft_model: Any, plan: Any = None, *, dataset: Any = None, tokenizer: Any = None, eval_dataset: Any = None,
          reward_funcs: Any = None, output_dir: str | Path | None = None, runs_dir: str | Path = "peft_runs",
          stop_on_nan: bool = True, **trainer_kwargs: Any) -> Run:
    """Start training `peft_model` with `plan`'s train block in the background; returns the Run.

    `plan` is a Plan, YAML text or a mapping (default: SFT with our defaults; the adapter a
    PeftModel already has is trained as it is, only the plan's train block is used). Keyword
    arguments that are fields of the trainer's TRL config (`max_steps=50`, `learning_rate=...`)
    join the train block; others go to the trainer (`data_collator=`, `formatting_func=`...).
    A model without an adapter gets the plan applied first. `stop_on_nan` ends a run whose loss
    becomes NaN/inf (state failed, the NaN weights not saved).
    """
    model = find_peft_model(peft_model)
    if plan is None:  # train the adapter the model has, with the default train block

        plan = {"method": method_name(model.peft_config[model.active_adapter]) if model is not None else "lora"}
    plan = as_plan(plan)
    check_idle(peft_model)
    if model is None:
        model = apply(plan, peft_model)
    ready = build_trainer(model, plan, dataset=dataset, tokenizer=tokenizer, eval_dataset=eval_dataset,
                          reward_funcs=reward_funcs, output_dir=output_dir, runs_dir=runs_dir, **trainer_kwargs)
    run = Run(ready.trainer, plan=plan.replace(train=ready.train), resume=ready.resume, prior=ready.prior,
              stop_on_nan=stop_on_nan)
    _dashboard(run)
    return run.start()


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


