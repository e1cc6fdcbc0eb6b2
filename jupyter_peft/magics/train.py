"""The `train:` block of a `%%peft` cell, and `%peft stop` / `%peft status`: notebook names
resolved, the run started and its dashboard shown; thin text over training/."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import PlanError, did_you_mean
from .._namespace import lookup, public
from ..session import session
from ..training.api import train
from ..training.run import stop_all
from ..training.trainer import check as check_trainer


def train_from_plan(peft_model: Any, plan: Any, user_ns: Mapping[str, Any], runs_dir: str = "peft_runs") -> Any:
    """The `%%peft` cell's train block: resolve the notebook names and start the run (the cell
    shows its dashboard once everything has succeeded). `sweep:` runs a sweep instead
    (sweeps/), `processes:` launches the run on many processes (launching/)."""
    block = plan.train or {}
    if "sweep" in block:
        from ..sweeps import sweep_from_plan  # issue 18

        return sweep_from_plan(peft_model, plan, runs_dir=runs_dir, **_from_notebook(plan, user_ns))
    if "processes" in block or "strategy" in block:
        from ..launching import launch_from_plan  # issue 20

        return launch_from_plan(peft_model, plan, runs_dir=runs_dir, **_from_notebook(plan, user_ns))
    return train(peft_model, plan, runs_dir=runs_dir, **_from_notebook(plan, user_ns))


def check_from_plan(plan: Any, user_ns: Mapping[str, Any], runs_dir: str = "peft_runs") -> None:
    """The train block's names, data and run folder, checked before `%%peft` touches the model."""
    found = _from_notebook(plan, user_ns)
    del found["tokenizer"]  # with `base:` it is loaded after this check
    check_trainer(plan, runs_dir=runs_dir, adapter=plan.adapter_name or "default", **found)


def _from_notebook(plan: Any, user_ns: Mapping[str, Any]) -> dict[str, Any]:
    """dataset, eval_dataset, tokenizer and reward_funcs: the train block's names, looked up."""
    block = plan.train or {}
    found = {key: _lookup(user_ns, block.get(key), key) for key in ("dataset", "eval_dataset")}
    tok_name = block.get("tokenizer", "tokenizer")
    if tok_name not in user_ns and not (plan.base is not None and "tokenizer" not in block):
        raise PlanError(f"no tokenizer: define `{tok_name}` or name one with `train: {{tokenizer: tok}}`",
                        key="train.tokenizer", choices=did_you_mean(tok_name, public(user_ns)))
    # a plain name is a notebook function; anything else (org/model) a reward model's id
    rewards = [lookup(user_ns, n, "train.reward_funcs", "function") if n.isidentifier() else n
               for n in block.get("reward_funcs", [])]
    return {**found, "tokenizer": user_ns.get(tok_name), "reward_funcs": rewards or None}


def _lookup(ns: Mapping[str, Any], name: str | None, key: str) -> Any:
    if name is None:
        if key == "dataset":
            raise PlanError("name the training data: `train: {dataset: ds}`", key="train.dataset")
        return None
    return lookup(ns, name, f"train.{key}")


def stop_active() -> list[Any]:
    """`%peft stop`: stop every active run, wait for its checkpoint, say where it is."""
    runs = stop_all("%peft stop")
    if not runs:
        print("No training run is active.")
    for run in runs:
        if not run._foreground:
            run.wait()
        print(f"Stopped {run.describe()}")
    return runs


def free_runs() -> list[dict[str, Any]]:
    """`%peft free`: close every finished run of this session (`run.close()`), say what came back."""
    runs = [r for r in session().recent_runs() if not r.live and not r.closed]
    if not runs:
        print("No finished run holds memory to give back.")
    reports = [run.close() for run in runs]
    for report in reports:
        print(f"Freed {report['text']}")
    return reports


def runs_status() -> None:
    """`%peft status`: the runs of this session, newest first."""
    runs = session().run_summaries()  # a run the notebook no longer holds is still listed
    if not runs:
        print("No training run in this session.")
    for run in reversed(runs):
        print(run if isinstance(run, str) else run.summary())


