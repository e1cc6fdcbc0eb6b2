"""Sweeps on Optuna: many trials of a plan on the one loaded base, searched, pruned and kept.

- `search.py`: `jp.sweep(model, plan, space, trials=)` -> `Sweep` (the study in the runs folder,
  trials on a background thread, `.best_plan`, `.df`, `.stop()`, resume);
- `trial.py`: one trial: its own adapter beside the others, an ordinary Run, its evaluations
  reported to Optuna (pruning), the adapter deleted again;
- `space_plan.py`: the space (plan/space.py checks its shape) against the plan: Optuna's
  distributions, and each trial's Plan.

May import: plan/, model/ (apply), training/ (the trainer, Run), the session and the root
helpers; ui/sweep only for its dashboard. Optuna, torch and TRL inside functions or in modules
imported on use.
"""

from __future__ import annotations

from typing import Any


def sweep(*args: Any, **kwargs: Any) -> Any:
    from .search import sweep as _sweep

    return _sweep(*args, **kwargs)


def sweep_from_plan(*args: Any, **kwargs: Any) -> Any:
    from .search import sweep_from_plan as _from_plan

    return _from_plan(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "Sweep":
        from .search import Sweep

        return Sweep
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["sweep", "Sweep", "sweep_from_plan"]
