"""`jp.sweep(model, plan, space, trials=8)`: Optuna searches a plan's space on the loaded base.

Trials run one after another on a background thread (the notebook stays usable), each an
ordinary run in the runs folder (trial.py). Optuna does the search: a TPE sampler (seeded) and a
median pruner fed by each evaluation, with the study in `<runs_dir>/<name>/study.db` (Optuna's
SQLite storage), so `jp.sweep(..., name=, resume=True)` continues it after a kernel restart
(trials a dead kernel left running are marked failed and run again). `sweep.stop()` stops the
current trial and keeps every finished one.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from .._errors import PlanError, unknown
from ..plan.plan import Plan
from .space_plan import base_of, decode, distributions, resolve, trial_plan

LIVE = ("running", "stopping")
DIRECTIONS = ("minimize", "maximize")
STUDY = "study.db"
PLAN = "sweep.yaml"
MAX_FAILED = 3
"""Failed trials in a row after which the sweep ends as failed (a failed trial does not count towards
`trials`; its error is in `sweep.df`'s `why`)."""


class Sweep:
    """A running or finished sweep: `.study` (Optuna), `.df` (a row per trial), `.best_plan`,
    `.best_cell()`, `.wait()`, `.stop()`, `.state`, `.dashboard` (the live widget)."""

    def __init__(self, model: Any, plan: Plan, space: dict[str, Any], where: dict[str, str], *, trials: int,
                 metric: str, direction: str, data: dict[str, Any], runs_dir: Path, name: str, study: Any,
                 model_name: str = "model") -> None:
        self.model, self.plan, self.space, self.where = model, plan, space, where
        self.base_plan = base_of(plan)
        self.trials, self.metric, self.direction = trials, metric, direction
        self.data, self.runs_dir, self.name, self.study = data, Path(runs_dir), name, study
        self.folder = self.runs_dir / name
        self.model_name = model_name
        self.state = "ready"
        self.error: str | None = None
        self.traceback: str | None = None
        self.current: Any = None
        """The Run of the trial training now (None between trials)."""
        self.started: float | None = None
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None
        self._durations: list[float] = []
        self.dashboard: Any = None
        """The live sweep dashboard (ui/sweep/), made when the sweep is shown or `jp.sweep` makes one."""

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> Sweep:
        if self.state != "ready":
            raise PlanError(f"this sweep is {self.state}; continue it with jp.sweep(..., name={self.name!r}, "
                            "resume=True)")
        self.state, self.started = "running", time.time()
        self._thread = threading.Thread(target=self._loop, name=f"jupyter_peft sweep {self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Sweep:
        """Stop after (the checkpoint of) the current trial; every finished trial stays in the study."""
        if self.state == "running":
            self.state = "stopping"
            self._stop.set()
            run = self.current
            if run is not None:
                run.stop()
            self.publish()
        return self

    def wait(self, timeout: float | None = None) -> str:
        """Block until the sweep ends (or `timeout` seconds); returns its state. An interrupt stops it."""
        if self._thread is None:
            return self.state
        try:
            self._ended.wait(timeout)
        except KeyboardInterrupt:
            self.stop()
            self._ended.wait()
        return self.state

    def _loop(self) -> None:
        from .trial import run_trial

        failed = 0  # failed trials in a row: failed ones are run again, so a sweep whose every trial fails ends
        try:
            while not self._stop.is_set() and self.done < self.trials:
                trial = self.study.ask(distributions(self.space))
                values = decode(self.space, trial.params)
                began = time.monotonic()
                self.publish()
                outcome, value, why = run_trial(self, trial, values)
                self._tell(trial, outcome, value, why)
                self._durations.append(time.monotonic() - began)
                failed = failed + 1 if outcome == "failed" and not self._stop.is_set() else 0
                if failed >= MAX_FAILED:
                    raise RuntimeError(f"{failed} trials in a row failed; the last: {why}")
                self.publish()
        except BaseException as err:  # noqa: BLE001 - a failed sweep must leave the kernel alive
            self.error = f"{type(err).__name__}: {err}"
            self.traceback = "".join(traceback.format_exception(err))
            self.state = "failed"
        else:
            self.state = "stopped" if self._stop.is_set() else "finished"
        finally:
            try:
                self.publish()  # before the end is told: whoever waited sees the dashboard as it ended
            finally:
                self._ended.set()

    def _tell(self, trial: Any, outcome: str, value: float | None, why: str) -> None:
        from optuna.trial import TrialState

        if why:
            trial.set_user_attr("why", why)
        if outcome == "complete":
            self.study.tell(trial, value)
        elif outcome == "pruned":
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, state=TrialState.FAIL)

    # ---- what it found -------------------------------------------------------------------

    @property
    def done(self) -> int:
        """Trials finished: complete or pruned (failed ones are run again)."""
        from optuna.trial import TrialState

        return len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))

    @property
    def df(self) -> Any:
        """A row per trial: number, state, value, duration, each swept key (`params_<key>`), its run folder."""
        df = self.study.trials_dataframe(attrs=("number", "state", "value", "duration", "params", "user_attrs"))
        return df.rename(columns={"user_attrs_run": "run", "user_attrs_why": "why"})

    @property
    def best_trial(self) -> Any:
        from optuna.trial import TrialState

        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            return None
        pick = min if self.direction == "minimize" else max
        return pick(complete, key=lambda t: t.value)

    @property
    def best_plan(self) -> Plan | None:
        """The plan with the best complete trial's values (None before one completed): the plan
        the sweep started from, its train block without `sweep` and `trials`."""
        best = self.best_trial
        if best is None:
            return None
        return trial_plan(self.base_plan, decode(self.space, best.params), self.where,
                          adapter_name=self.base_plan.adapter_name)

    def best_cell(self, model_name: str | None = None) -> str:
        """The best plan as a `%%peft` cell ("" before a trial completed)."""
        plan = self.best_plan
        if plan is None:
            return ""
        return f"%%peft {model_name or self.model_name}\n{plan.to_yaml()}"

    def progress(self) -> dict[str, Any]:
        """Trials done of all, percent, elapsed and ETA (the mean time of this session's trials)."""
        from .._format import format_duration

        done, total = self.done, self.trials
        elapsed = time.time() - self.started if self.started else 0.0
        mean = sum(self._durations) / len(self._durations) if self._durations else None
        left = max(total - done, 0)
        eta = mean * left if mean is not None and self.state in LIVE else None
        parts = [f"trial {min(done + (1 if self.current is not None else 0), total)} of {total}",
                 f"{done} done"]
        if self.started:
            parts.append(f"{format_duration(elapsed)} elapsed")
        if eta is not None and left:
            parts.append(f"ETA {format_duration(eta)}")
        return {"done": done, "total": total, "percent": round(100.0 * min(done, total) / total, 2),
                "elapsed_text": format_duration(elapsed) if self.started else "",
                "eta_text": format_duration(eta) if eta is not None and left else "", "text": " · ".join(parts)}

    def publish(self) -> None:
        """Bring the dashboard up to date (after each evaluation, trial and state change)."""
        if self.dashboard is not None:
            try:
                self.dashboard.refresh()
            except Exception:  # noqa: BLE001 - a view's failure must not stop the sweep
                pass

    def eval_settings(self, train: dict[str, Any]) -> dict[str, Any]:
        """What a trial adds to its train block so the pruner hears of it: evaluate every quarter
        of the steps unless the plan says when."""
        if train.get("eval_strategy") not in (None, "no"):
            return {}
        steps = train.get("max_steps")
        steps = steps if isinstance(steps, int) and steps > 0 else 100
        return {"eval_strategy": "steps", "eval_steps": max(1, steps // 4)}

    def __repr__(self) -> str:
        return f"<Sweep {self.name} ({self.state}, {self.done}/{self.trials} trials) in {self.folder}>"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget())

    def widget(self) -> Any:
        """The live sweep dashboard (made on first use)."""
        if self.dashboard is None:
            from ..ui.sweep.widget import SweepDashboard

            self.dashboard = SweepDashboard(self)
        return self.dashboard


def sweep(model: Any, plan: Any, space: Any = None, trials: int = 8, metric: str = "eval_loss",
          direction: str = "minimize", *, dataset: Any = None, eval_dataset: Any = None, tokenizer: Any = None,
          reward_funcs: Any = None, seed: int | None = None, resume: bool = False,
          runs_dir: str | Path | None = None, name: str | None = None, pruner: Any = None,
          sampler: Any = None) -> Sweep:
    """Search `space` (default: the plan's `train.sweep`) with Optuna, `trials` trials on `model`'s
    loaded base, one after another in the background; returns the Sweep at once. Everything is
    checked first (PlanError names `train.sweep.<key>`); a model without an adapter gets the
    plan's applied first (as jp.train does), and each trial adds its own beside it and deletes it."""
    from ..model.adapt import apply, as_plan, check_idle, find_peft_model
    from ..training.trainer import check as check_trainer
    from ..training.trainer import check_tokenizer

    plan = as_plan(plan)
    block = plan.train or {"trainer": "sft"}
    space = space if space is not None else block.get("sweep")
    if space is None:
        raise PlanError("a sweep needs a space: jp.sweep(model, plan, {r: [8, 16], learning_rate: "
                        "{log: [1.0e-4, 1.0e-2]}}), or `sweep:` in the train block", key="train.sweep")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise PlanError(f"trials {trials!r} is not valid: a positive integer", key="train.trials", value=trials)
    if direction not in DIRECTIONS:
        raise unknown("direction", str(direction), DIRECTIONS, key="direction")
    if not isinstance(metric, str) or not metric:
        raise PlanError(f"metric {metric!r} is not valid: an evaluation metric's name, e.g. eval_loss", key="metric")
    space, where = resolve(plan, space)
    base = base_of(plan)
    if eval_dataset is None:
        raise PlanError("a sweep compares trials on held-out data: pass eval_dataset=... (or name it in "
                        "`train: {eval_dataset: ds}`)", key="train.eval_dataset")
    check_tokenizer(tokenizer)
    runs_dir = Path(runs_dir if runs_dir is not None else "peft_runs")
    data = {"dataset": dataset, "eval_dataset": eval_dataset, "tokenizer": tokenizer, "reward_funcs": reward_funcs}
    first = trial_plan(base, {k: (s.get("choices") or next(iter(s.values())))[0] for k, s in space.items()}, where)
    check_trainer(first, dataset=dataset, eval_dataset=eval_dataset, reward_funcs=reward_funcs, runs_dir=runs_dir)
    check_idle(model)
    name = _name(runs_dir, name, resume)
    study = _study(runs_dir / name, name, direction, resume, seed, trials, pruner, sampler)
    peft_model = find_peft_model(model)
    if peft_model is None:
        peft_model = apply(base.replace(train=None), model)
    (runs_dir / name / PLAN).write_text(plan.replace(train={**block, "sweep": space, "trials": trials}).to_yaml())
    out = Sweep(peft_model, plan, space, where, trials=trials, metric=metric, direction=direction, data=data,
                runs_dir=runs_dir, name=name, study=study, model_name=_variable_of(model))
    return out.start()


def sweep_from_plan(peft_model: Any, plan: Any, *, runs_dir: str | Path = "peft_runs", dataset: Any = None,
                    eval_dataset: Any = None, tokenizer: Any = None, reward_funcs: Any = None) -> Sweep:
    """A `%%peft` cell's `train: {..., sweep: {...}, trials: N}`: the sweep on the cell's model (the
    cell applied the plan's adapter; trials go beside it). The train block's `seed` seeds the sampler."""
    block = plan.train or {}
    return sweep(peft_model, plan, block.get("sweep"), trials=block.get("trials", 8), dataset=dataset,
                 eval_dataset=eval_dataset, tokenizer=tokenizer, reward_funcs=reward_funcs, seed=block.get("seed"),
                 runs_dir=runs_dir)


def _name(runs_dir: Path, name: str | None, resume: bool) -> str:
    from ..plan.plan import check_adapter_name

    if name is not None:
        try:
            check_adapter_name(name)
        except PlanError:
            raise PlanError(f"sweep name {name!r} is not valid: a letter or `_`, then letters, digits, `_` or `-` "
                            "(it names a folder)", key="name", value=name) from None
        exists = (runs_dir / name / STUDY).exists()
        if resume and not exists:
            raise PlanError(f"no sweep {name!r} in {str(runs_dir)!r} to resume", key="name", value=name,
                            choices=_sweeps(runs_dir))
        if exists and not resume:
            raise PlanError(f"the sweep {name!r} exists in {str(runs_dir)!r}: continue it with resume=True, or "
                            "pick another name", key="name", value=name)
        return name
    if resume:
        found = _sweeps(runs_dir)
        if not found:
            raise PlanError(f"no sweep in {str(runs_dir)!r} to resume", key="resume")
        return found[0]
    stem, n = time.strftime("sweep-%Y%m%d-%H%M%S"), 1
    name = stem
    while (runs_dir / name).exists():
        name, n = f"{stem}-{n}", n + 1
    return name


def _sweeps(runs_dir: Path) -> list[str]:
    """The sweeps in `runs_dir`, newest first."""
    if not runs_dir.is_dir():
        return []
    found = [p for p in runs_dir.iterdir() if (p / STUDY).exists()]
    return [p.name for p in sorted(found, key=lambda p: (p / STUDY).stat().st_mtime, reverse=True)]


def _study(folder: Path, name: str, direction: str, resume: bool, seed: int | None, trials: int, pruner: Any,
           sampler: Any) -> Any:
    """Optuna's study in `folder/study.db`: TPE (seeded) and a median pruner that starts after a
    quarter of the trials (at least one) completed. Resuming marks the trials a dead kernel left
    running as failed, and offsets the seed by the trials already made (else a seeded sampler
    would propose the first trials' values again)."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{folder.resolve() / STUDY}"
    made = 0
    if resume:
        made = len(optuna.load_study(study_name=name, storage=storage).trials)
    if sampler is None:
        sampler = optuna.samplers.TPESampler(seed=None if seed is None else seed + made)
    if pruner is None:
        pruner = optuna.pruners.MedianPruner(n_startup_trials=max(1, trials // 4), n_warmup_steps=0)
    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner,
                                direction=direction, load_if_exists=resume)  # type: ignore[arg-type]
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        study.tell(stale.number, state=TrialState.FAIL, skip_if_finished=True)
    return study


def _variable_of(model: Any) -> str:
    """The notebook variable that holds `model` (or its base), for the written cell; "model" otherwise."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover
        return "model"
    if shell is None:
        return "model"
    from .._compat import base_model

    base = base_model(model)
    for key, value in shell.user_ns.items():
        if not key.startswith("_") and value is base:
            return key
    return "model"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
