"""The dashboard's Resume button: continue a stopped run from its last checkpoint, in place.

What `jp.train(peft_model, plan, ..., resume_from=run.folder)` does (the README's resume: the
adapter, the optimizer and the step count from the checkpoint, the charts from the history),
with the same model, the train block's own data (the notebook variables it names) and the
run's tokenizer. The new run is shown by the same dashboard, and a notebook name that held the
old run (`peft_run`) now holds the new one.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from ..._errors import PlanError


def resumable(run: Any) -> str:
    """"" when Resume can continue `run`; else why not, with what to do instead."""
    if run.checkpoint is None:
        return "no checkpoint was saved, so there is nothing to continue from"
    block = (run.plan.train or {}) if run.plan is not None else {}
    if not isinstance(block.get("dataset"), str):
        return (f"the data was passed as an object: continue with jp.train(peft_model, plan, dataset=..., "
                f"tokenizer=..., resume_from={str(run.folder)!r})")
    ns = user_ns()
    missing = [block[k] for k in ("dataset", "eval_dataset") if isinstance(block.get(k), str) and block[k] not in ns]
    if missing:
        return f"the notebook no longer has {', '.join(missing)}, the data the run trained on"
    return ""


def resume(dashboard: Any) -> Any:
    """Start the run that continues `dashboard.run`; the dashboard follows it. Returns it."""
    from ...training.api import train

    old = dashboard.run
    why = resumable(old)
    if why:
        raise PlanError(f"cannot resume: {why}")
    block, ns = dict(old.plan.train), user_ns()
    plan = old.plan.replace(train={**block, "resume_from": str(old.folder)})
    data = {k: ns[block[k]] for k in ("dataset", "eval_dataset") if isinstance(block.get(k), str)}
    new = train(old.model, plan, tokenizer=old.trainer.processing_class,
                reward_funcs=getattr(old.trainer, "reward_funcs", None) or None, **data)
    spare = new.dashboard  # jp.train made one; this dashboard shows the new run instead
    dashboard.follow(new)
    if spare is not None and spare is not dashboard:
        spare.close()
    rebind(ns, old, new)
    return new


def rebind(ns: MutableMapping[str, Any], old: Any, new: Any) -> None:
    """Notebook names that held `old` (`peft_run`) hold `new` from now on."""
    for name, value in list(ns.items()):
        if value is old and not name.startswith("_"):
            ns[name] = new


def user_ns() -> MutableMapping[str, Any]:
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a dependency
        shell = None
    return shell.user_ns if shell is not None else {}
