"""The sweep dashboard's view-model: what a `Sweep` and its Optuna study look like as JSON.

Everything the page shows is computed here from the study's trials (its storage is the truth,
so trials of an earlier kernel a resumed sweep continues show too): each trial's curve (its
reported values by step), state and values, the best complete trial, and the parallel
coordinates (one axis per swept key, log keys as log10, choices as their index with the value
as tick text, and the metric last).
"""

from __future__ import annotations

import json
import math
from typing import Any

STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


def trials(sweep: Any, frozen: list[Any]) -> list[dict[str, Any]]:
    """One entry per trial: number, state, value, params (as the plan takes them), curve, run, why."""
    from ...sweeps.space_plan import decode

    out = []
    for t in frozen:
        steps = sorted(t.intermediate_values)
        out.append({
            "number": t.number, "state": STATES.get(t.state.name, t.state.name.lower()),
            "value": _num(t.value), "params": {k: _shown(v) for k, v in decode(sweep.space, t.params).items()},
            "curve": {"x": steps, "y": [_num(t.intermediate_values[s]) for s in steps]},
            "run": str(t.user_attrs.get("run", "")), "why": str(t.user_attrs.get("why", "")),
        })
    return out


def best(sweep: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    complete = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    if not complete:
        return {}
    pick = min if sweep.direction == "minimize" else max
    b = pick(complete, key=lambda r: r["value"])
    return {"number": b["number"], "value": b["value"], "params": b["params"], "run": b["run"]}


def parcoords(sweep: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Parallel coordinates of the complete trials, in chart units: `{axes: [{label, ticks: [{y,
    text}]}], lines: [{number, y: [one per axis, 0..1], value, t}], metric}`. One axis per swept key
    (log keys on a log scale, choices evenly spaced), the metric last; `t` is 0 for the best trial
    and 1 for the worst (the page colours by it). {} before two trials completed. Drawn with
    plotly's scatter lines (no WebGL, which plotly's own parcoords trace needs)."""
    complete = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    if len(complete) < 2:
        return {}
    axes, columns = [], []
    for key, spec in sweep.space.items():
        values = [r["params"].get(key) for r in complete]
        if "choices" in spec:
            labels = [_label(c) for c in spec["choices"]]
            n = len(labels)
            pos = [i / (n - 1) if n > 1 else 0.5 for i in range(n)]
            axes.append({"label": key, "ticks": [{"y": y, "text": text} for y, text in zip(pos, labels)]})
            columns.append([pos[labels.index(_label(v))] if _label(v) in labels else 0.5 for v in values])
            continue
        log = "log" in spec
        low, high = spec.get("log") or spec.get("range") or spec.get("int")
        scale = (lambda v: math.log10(v)) if log else (lambda v: float(v))
        a, b = scale(low), scale(high)
        at = [(f, 10 ** (a + f * (b - a)) if log else low + f * (high - low)) for f in (0.0, 0.5, 1.0)]
        axes.append({"label": key, "ticks": [{"y": f, "text": f"{v:.3g}"} for f, v in at]})
        columns.append([(scale(v) - a) / (b - a) for v in values])
    metric = [r["value"] for r in complete]
    low, high = min(metric), max(metric)
    span = high - low or 1.0
    axes.append({"label": sweep.metric, "ticks": [{"y": f, "text": f"{low + f * span:.4g}"} for f in (0.0, 0.5, 1.0)]})
    columns.append([(v - low) / span for v in metric])
    best_is_low = sweep.direction == "minimize"
    lines = [{"number": r["number"], "y": [round(col[i], 6) for col in columns], "value": r["value"],
              "t": round((r["value"] - low) / span if best_is_low else (high - r["value"]) / span, 6)}
             for i, r in enumerate(complete)]
    return {"axes": axes, "lines": lines, "metric": sweep.metric}


def status(sweep: Any) -> dict[str, Any]:
    run = sweep.current
    message = (f"training trial in {run.folder.name} (step {run.step})" if run is not None
               else f"study in {sweep.folder / 'study.db'}")
    return {"state": sweep.state, "title": f"sweep {sweep.name}", "message": message, "error": sweep.error or "",
            "metric": sweep.metric, "direction": sweep.direction}


def _label(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _shown(v: Any) -> Any:
    return v if v is None or isinstance(v, (bool, int, float, str)) else json.dumps(v)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None
