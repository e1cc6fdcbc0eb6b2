"""The dashboard's samples part: what the model generated while training, newest first.

A part of the Dashboard (widget.py `parts`): `tick` sends the rows generated since the last
update, `reset` all of them (a new view), both as `{kind: "samples", rows, reset}` messages drawn
by js/dashboard/samples.ts; `html(run)` is the same table for the static snapshot. The rows are
the Run's (`run.sample_rows`, written by training/samples.py).
"""

from __future__ import annotations

import html
from typing import Any

_MUTED = "var(--jp-ui-font-color2, #555)"
_LINE = "var(--jp-border-color2, #ddd)"
TITLE = "samples while training"


def parts_for(run: Any) -> list[Any]:
    """[SamplesPart()] for a run that samples (its train block has `samples`, or it has rows)."""
    train = getattr(getattr(run, "plan", None), "train", None) or {}
    return [SamplesPart()] if train.get("samples") or getattr(run, "sample_rows", None) else []


class SamplesPart:
    """Streams `run.sample_rows` into the dashboard's samples table."""

    def __init__(self) -> None:
        self._sent = 0

    def tick(self, widget: Any) -> None:
        rows = _rows(widget.run)
        if len(rows) > self._sent:
            new, self._sent = rows[self._sent:], len(rows)
            widget.send({"kind": "samples", "rows": new, "reset": False})

    def reset(self, widget: Any) -> None:
        rows = _rows(widget.run)
        self._sent = len(rows)
        widget.send({"kind": "samples", "rows": rows, "reset": True})

    def html(self, run: Any) -> str:
        rows = _rows(run)
        if not rows:
            return ""
        esc = html.escape
        cell = f"padding:2px 8px;border-bottom:1px solid {_LINE};vertical-align:top;text-align:left"
        body = "".join(
            f"<tr><td style='{cell};white-space:nowrap'>step {r['step']}</td>"
            f"<td style='{cell};color:{_MUTED}'>{esc(str(r['prompt']))}</td>"
            f"<td style='{cell};white-space:pre-wrap'>{esc(str(r['output']))}</td>"
            f"<td style='{cell};color:{_MUTED};white-space:nowrap'>{r['seconds']:.2f} s</td></tr>"
            for r in reversed(rows)
        )
        return (f"<div style='margin-top:8px'><b>{TITLE}</b>"
                f"<table style='border-collapse:collapse;margin-top:4px;font-size:12px'>{body}</table></div>")


def _rows(run: Any) -> list[dict[str, Any]]:
    """The rows as the page reads them: step, prompt (text), output, seconds."""
    out = []
    for r in list(getattr(run, "sample_rows", None) or []):
        prompt = r["prompt"]
        if not isinstance(prompt, str):
            prompt = "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in prompt)
        out.append({"step": int(r["step"]), "prompt": prompt, "output": str(r["output"]),
                    "seconds": float(r["seconds"])})
    return out
