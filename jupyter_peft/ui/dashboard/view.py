"""The dashboard's view-model: what a `Run` looks like as text and numbers, computed from its
data (state, tracker, checkpoint, estimate). The live widget and the static snapshot both show
these, so they cannot disagree; the Run itself knows nothing of them."""

from __future__ import annotations

from typing import Any

from ..._format import GiB, MiB

LIVE = ("running", "stopping")
ENDED = ("finished", "stopped", "failed")

# what each logged key is called on the charts (a key not here shows as logged)
LABELS = {
    "loss": "train", "eval_loss": "eval", "learning_rate": "learning rate", "grad_norm": "grad norm",
    "tokens_per_second": "tokens / s", "steps_per_second": "steps / s", "mean_token_accuracy": "token accuracy",
    "eval_mean_token_accuracy": "eval token accuracy", "rewards/chosen": "chosen", "rewards/rejected": "rejected",
    "rewards/margins": "margin", "rewards/accuracies": "reward accuracy", "eval_rewards/chosen": "eval chosen",
    "eval_rewards/rejected": "eval rejected", "eval_rewards/margins": "eval margin",
    "eval_rewards/accuracies": "eval reward accuracy", "reward": "reward", "mean_reward": "mean reward",
}


def status(run: Any) -> dict[str, Any]:
    """The state line (changes with the state, not every step)."""
    return {"state": run.state, "title": f"{run.kind} {run.folder.name}", "folder": str(run.folder),
            "message": message(run), "error": run.error or "", "checkpoint": str(run.checkpoint or ""),
            "resume": resume(run)}


def resume(run: Any) -> dict[str, Any]:
    """The Resume button: shown once the run ended short of its steps, enabled when it can go on
    (a checkpoint, and the data its train block named still in the notebook); `title` says from
    which checkpoint, or why not."""
    from .resume import resumable

    total = run.max_steps if run.max_steps and run.max_steps > 0 else None
    short = run.state in ENDED and (total is None or run.step < total)
    if not short:
        return {"shown": False, "enabled": False, "title": ""}
    why = resumable(run)
    if why:
        return {"shown": True, "enabled": False, "title": why}
    until = f" to step {total}" if total else ""
    return {"shown": True, "enabled": True, "title": f"continue from {run.checkpoint.name}{until}"}


def panels(run: Any) -> list[dict[str, Any]]:
    """The charts to draw (`Tracker.panels()`), titled by what they hold, with each trace's name,
    the axis unit and the factor from logged values to it (memory: bytes to MiB, GiB on CUDA)."""
    out = []
    for panel in run.tracker.panels():
        keys, extra = panel["keys"], {"labels": {k: LABELS.get(k, k) for k in panel["keys"]}, "unit": "",
                                      "scale": 1, "from_zero": False}
        if panel["id"] == "loss":
            evals = [k.startswith("eval_") for k in keys]  # the title names only what is drawn
            kinds = (["train"] if not all(evals) else []) + (["eval"] if any(evals) else [])
            extra["title"] = f"loss ({', '.join(kinds)})"
        elif panel["id"] == "memory":
            unit, size = memory_unit(run)
            extra.update(title=memory_label(run), unit=unit, scale=1 / size, from_zero=True,
                         labels={k: memory_label(run) for k in keys})
        out.append({**panel, **extra})
    return out


def memory_unit(run: Any) -> tuple[str, int]:
    """The unit memory is shown in: MiB for a process on CPU, GiB for CUDA."""
    return ("GiB", GiB) if run.on_cuda else ("MiB", MiB)


def memory_label(run: Any) -> str:
    return "CUDA peak (max_memory_allocated)" if run.on_cuda else "process memory (RSS)"


def memory_text(run: Any, n: float | None) -> str:
    """`n` bytes in the memory chart's unit: 1,234 MiB, or 38.25 GiB on CUDA."""
    if n is None:
        return ""
    unit, size = memory_unit(run)
    return f"{n / size:,.2f} {unit}" if unit == "GiB" else f"{n / size:,.0f} {unit}"


def progress(run: Any) -> dict[str, Any]:
    """The progress bar and line: step, percent, epoch, elapsed, ETA."""
    out = run.tracker.status()
    total = out["max_steps"] if out["max_steps"] and out["max_steps"] > 0 else None
    if out["epoch_text"] and _steps_given(run):  # the epoch count is the trainer's rounding of max_steps
        out["epoch_text"] = out["epoch_text"].split(" / ")[0]
    parts = [f"step {out['step']}" + (f"/{total}" if total else "")]
    parts += [f"epoch {out['epoch_text']}"] if out["epoch_text"] else []
    parts += [f"{out['elapsed_text']} elapsed"] if run.state != "ready" else []
    parts += [f"ETA {out['eta_text']}"] if out["eta_text"] and run.state in LIVE else []
    return {**out, "text": " · ".join(parts)}


def message(run: Any) -> str:
    """What the state means for the adapter: where it is saved, or what happens next."""
    ckpt = run.checkpoint
    if run.state == "ready":
        return "attached: train with dashboard.run.start() (background) or trainer.train()"
    if run.state == "stopping":
        return "stopping at the next step; the adapter will be saved"
    if run.state == "running":
        return "saving at the next step" if run.save_pending else (f"last checkpoint: {ckpt}" if ckpt else "")
    if run.state == "failed":
        return f"last good checkpoint: {ckpt}" if ckpt else (
            "no checkpoint was saved before the failure (save_steps keeps periodic ones)")
    where = getattr(run, "adapter_path", None) or ckpt  # a named adapter is in checkpoint-N/<name>/
    return f"adapter saved to {where}" if ckpt else ""


def memory(run: Any) -> dict[str, Any]:
    """Measured memory (CUDA peak on GPU, process RSS on CPU), and the estimate for the run's
    settings beside it (training/run_memory.py)."""
    measured = next((r["memory_bytes"] for r in reversed(run.tracker.rows) if "memory_bytes" in r), None)
    label = memory_label(run)
    out = {"label": label, "bytes": measured, "text": memory_text(run, measured), "estimate_bytes": None,
           "estimate_text": "", **run.estimate}
    out["line"] = " · ".join(filter(None, [f"{label}: {out['text']}" if measured else "", out["estimate_text"]]))
    return out


def _steps_given(run: Any) -> bool:
    """Whether the run trains for a set number of steps (TRL's `max_steps` > 0), not epochs."""
    steps = getattr(getattr(run.trainer, "args", None), "max_steps", 0)
    return isinstance(steps, int) and steps > 0
