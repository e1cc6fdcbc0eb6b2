"""One trial of a sweep: its adapter beside the others on the shared base, an ordinary Run, its
evaluations reported to Optuna, and the adapter deleted again.

The trial's adapter is named `trial_<number>` and added with peft's `add_adapter` (model/adapt.py
`apply` with `adapter_name`): the base's weights are shared, never copied nor changed. The run is
built like `jp.train` builds one (training/trainer.py, training/run.py) in the runs folder
(`<sweep>-trial-<n>/`), without a dashboard of its own (the sweep's dashboard shows it).
`Reporter` reports the metric at each evaluation (`trial.report(value, step)`); when Optuna's
pruner says so (`trial.should_prune()`) the run stops there, saving its checkpoint like Stop.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from .._errors import PlanError


class Reporter(TrainerCallback):
    """Reports `metric` to the Optuna `trial` at each evaluation; stops the run when it is pruned.
    Also asks for an evaluation at the last step, so every finished trial ends with one."""

    def __init__(self, trial: Any, run: Any, metric: str, on_report: Any = None) -> None:
        self.trial, self.run, self.metric = trial, run, metric
        self.on_report = on_report
        self.pruned = False
        self.last: float | None = None
        self.reports: list[tuple[int, float]] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_evaluate = True

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        metrics = metrics or {}
        value = metrics.get(self.metric, metrics.get(f"eval_{self.metric}"))
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        step = int(state.global_step)
        if self.reports and self.reports[-1][0] == step:
            return  # evaluated twice at one step (the last step and the epoch's end)
        self.trial.report(float(value), step)
        self.last = float(value)
        self.reports.append((step, float(value)))
        if self.on_report is not None:
            self.on_report()
        if not self.pruned and self.trial.should_prune():
            self.pruned = True
            self.run.stop()  # the run says stopped; its checkpoint is written now, then training ends
            control.should_save = True
            control.should_training_stop = True


def run_trial(sweep: Any, trial: Any, values: dict[str, Any]) -> tuple[str, float | None, str]:
    """Train one trial on the sweep's model: ("complete" | "pruned" | "failed", value, why)."""
    from ..model.adapt import check_idle
    from ..training.run import Run
    from ..training.trainer import apply_for_run, build
    from .space_plan import trial_plan

    model = sweep.model
    name = f"trial_{trial.number}"
    folder = Path(sweep.runs_dir) / f"{sweep.name}-trial-{trial.number}"
    n = 1
    while folder.exists():  # left by an earlier sweep of this name whose study was deleted: never mix histories
        folder, n = folder.with_name(f"{sweep.name}-trial-{trial.number}-{n}"), n + 1
    trial.set_user_attr("run", str(folder))
    plan = trial_plan(sweep.base_plan, values, sweep.where, adapter_name=name)
    train = dict(plan.train or {})
    plan = plan.replace(train={**train, **sweep.eval_settings(train)})
    before = model.active_adapter
    run = None
    check_idle(model)  # another run training this base now: the sweep stops (Sweep._loop)
    try:
        apply_for_run(plan, model)  # seeded: trials differ only by their values
        ready = build(model, plan, output_dir=folder, **sweep.data)
        run = Run(ready.trainer, plan=plan.replace(train=ready.train))
        reporter = Reporter(trial, run, sweep.metric, on_report=sweep.publish)
        ready.trainer.add_callback(reporter)
        sweep.current = run
        run.start()
        run.wait()
        if reporter.pruned:
            return "pruned", reporter.last, f"pruned at step {reporter.reports[-1][0]}"
        if run.state == "finished" and reporter.last is not None:
            return "complete", reporter.last, ""
        if run.state == "stopped":  # stopped by the user (%peft stop, an interrupt, sweep.stop()): the sweep too
            sweep.stop()
        why = run.error or (f"stopped at step {run.step}" if run.state == "stopped" else f"no {sweep.metric} logged")
        return "failed", None, why
    except PlanError as err:
        return "failed", None, str(err)
    finally:
        sweep.current = None
        # the run gave back what only training needed when it ended (Run._release_trainer); the
        # sweep keeps no trial's Run, so its trainer and data go with it
        if before in model.peft_config:
            model.set_adapter(before)  # first: deleting the active adapter makes peft warn and pick one
        if name in model.peft_config:
            model.delete_adapter(name)
