"""Which modules learn: per-module signals while training, and a better plan from them.

- `signals.py`: the adapted modules of a PeftModel (peft's tuner layers, active adapter) and the
  maths on each: delta norms from LoRA's factors, peft's `get_delta_weight` otherwise, singular
  values and the effective rank;
- `nan.py`: gradient hooks that say where a NaN started (first non-finite gradient, input norm);
- `callback.py`: the TrainerCallback sampling every N steps on the training thread;
- `record.py`: `Diagnostics`, the samples a Run keeps (`run.diagnostics`);
- `suggest.py`: `run.modules` (a DataFrame) and `run.suggest_ranks()` (a `ranks:` map).

The Run adds the callback with `watch(run)` (on by default; `diagnostics: false` in the train
block turns it off). May import: model/ (the module map), the root helpers; torch, transformers
and pandas only inside the submodules, which are imported when a run is made.
"""

from __future__ import annotations

from typing import Any

DEFAULT_EVERY = 10
"""Steps between samples when the plan does not say (bench/diagnostics_overhead.py: under 1%)."""


def watch(run: Any) -> Any:
    """Add the diagnostics callback to `run`'s trainer; returns the `Diagnostics` it fills (None
    with `diagnostics: false`)."""
    train = (run.plan.train or {}) if run.plan is not None else {}
    given = train.get("diagnostics")
    if given is False:
        return None
    from .callback import DiagnosticsCallback
    from .record import Diagnostics

    diagnostics = Diagnostics(int(given) if given is not None else DEFAULT_EVERY)
    diagnostics.adaptive = given is None  # the default: every 10 steps, sparser where a sample costs more
    run.trainer.add_callback(DiagnosticsCallback(diagnostics, run.model))
    return diagnostics


def modules(run: Any) -> Any:
    """`run.modules`: one row per adapted module (suggest.modules_frame)."""
    from .suggest import modules_frame

    return modules_frame(getattr(run, "diagnostics", None), run.model)


def suggest_ranks(run: Any, budget: int | None = None, by: str = "group") -> Any:
    """`run.suggest_ranks()`: the next run's `ranks:` at the same (or `budget`) parameters."""
    from .suggest import suggest

    return suggest(modules(run), run.plan, budget, by)
