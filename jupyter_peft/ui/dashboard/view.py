"""The dashboard's view-model: what a `Run` looks like as text and numbers, computed from its
data (state, tracker, checkpoint, estimate). The live widget and the static snapshot both show
these, so they cannot disagree; the Run itself knows nothing of them."""

from __future__ import annotations

from typing import Any

from ..._format import format_bytes

LIVE = ("running", "stopping")


def status(run: Any) -> dict[str, Any]:
    """The state line (changes with the state, not every step)."""
    return {"state": run.state, "title": f"{run.kind} {run.folder.name}", "folder": str(run.folder),
            "message": message(run), "error": run.error or "", "checkpoint": str(run.checkpoint or "")}


def progress(run: Any) -> dict[str, Any]:
    """The progress bar and line: step, percent, epoch, elapsed, ETA."""
    out = run.tracker.status()
    total = out["max_steps"] if out["max_steps"] and out["max_steps"] > 0 else None
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
    return f"adapter saved to {ckpt}" if ckpt else ""


def memory(run: Any) -> dict[str, Any]:
    """Measured memory (CUDA peak on GPU, process RSS on CPU), and the estimate for the run's
    settings beside it (training/run_memory.py)."""
    measured = next((r["memory_bytes"] for r in reversed(run.tracker.rows) if "memory_bytes" in r), None)
    label = "CUDA peak (max_memory_allocated)" if run.on_cuda else "process memory (RSS)"
    out = {"label": label, "bytes": measured, "text": format_bytes(measured), "estimate_bytes": None,
           "estimate_text": "", **run.estimate}
    out["line"] = " · ".join(filter(None, [f"{label}: {out['text']}" if measured else "", out["estimate_text"]]))
    return out
