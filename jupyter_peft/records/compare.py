"""`jp.compare_runs(a, b, ..., metric="loss")`: one metric of several runs overlaid, and their plans' diff.

Runs are `Run`s (live or loaded), `Record`s (catalog.py) or run folders. The maths is here and
only here: the points of each trace (by step or by seconds since the start), the EMA smoothing,
the metrics every run logged (the picker), the plan keys that differ. The runs widget
(ui/runs/) draws exactly `overlay(...)`; `Comparison.figure` is the same as a plotly figure.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .._errors import PlanError, unknown

XS = ("step", "time")


def entry(item: Any) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """(name, history rows, flat plan mapping) of a Run, Record or folder."""
    from .catalog import Record, read

    if isinstance(item, (str, Path)):
        if not Path(item).is_dir():
            raise PlanError(f"no run folder {str(item)!r}", key="runs", value=str(item))
        item = read(item)
    if isinstance(item, Record):
        return item.name, item.history, item.plan_data
    history, folder = getattr(item, "history", None), getattr(item, "folder", None)
    if history is None or folder is None:
        raise PlanError(f"{type(item).__name__} is not a run: compare Runs (jp.train, jp.Run.load), rows of "
                        "jp.runs() or run folders", key="runs")
    plan = getattr(item, "plan", None)
    return Path(folder).name, list(history), plan.to_dict() if plan is not None else {}


def series(rows: list[dict[str, Any]], metric: str, x: str = "step") -> tuple[list[float], list[float]]:
    """(xs, ys) of `metric` in `rows`: the rows that logged a finite value, x their step or time."""
    xs, ys = [], []
    for row in rows:
        value = row.get(metric)
        if _finite(value) and _finite(row.get(x)):
            xs.append(row[x])
            ys.append(float(value))  # type: ignore[arg-type]  # _finite checked it
    return xs, ys


def ema(ys: list[float], smooth: float) -> list[float]:
    """Exponential moving average with weight `smooth` on the past (0: the values themselves), debiased
    like TensorBoard's so the first points are not pulled towards 0."""
    if not smooth:
        return list(ys)
    out, last, weight = [], 0.0, 0.0
    for y in ys:
        last = smooth * last + (1 - smooth) * y
        weight = smooth * weight + (1 - smooth)
        out.append(last / weight)
    return out


def metrics_of(histories: list[list[dict[str, Any]]]) -> list[str]:
    """Every numeric key any of the runs logged (not step, time or epoch), in first-seen order."""
    seen: dict[str, None] = {}
    for rows in histories:
        for row in rows:
            for key, value in row.items():
                if key not in ("step", "time", "epoch") and isinstance(value, (int, float)) and \
                        not isinstance(value, bool):
                    seen.setdefault(key, None)
    return list(seen)


def flatten(plan: dict[str, Any]) -> dict[str, Any]:
    """A plan's flat YAML mapping with the train block's keys as `train.<key>`."""
    out = {k: v for k, v in plan.items() if k != "train"}
    for key, value in (plan.get("train") or {}).items():
        out[f"train.{key}"] = value
    return out


def plan_diff(plans: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The plan keys whose values differ between the runs: `[{key, values: [one per run]}]`
    (None where a run's plan does not set the key)."""
    flat = {name: flatten(p) for name, p in plans.items()}
    keys = list(dict.fromkeys(k for p in flat.values() for k in p))
    rows = []
    for key in keys:
        values = [p.get(key) for p in flat.values()]
        if any(v != values[0] for v in values[1:]):
            rows.append({"key": key, "values": values})
    return rows


def overlay(items: list[Any], metric: str = "loss", x: str = "step", smooth: float = 0.0,
            log_y: bool = False) -> dict[str, Any]:
    """Everything the comparison shows, as JSON: `{metric, x, smooth, log_y, metrics, traces:
    [{name, x, y, raw}], names, diff: [{key, values}]}` (`y` smoothed, `raw` as logged)."""
    if x not in XS:
        raise unknown("x", str(x), XS, " (x is the step or the seconds since the start)", key="x")
    if not isinstance(smooth, (int, float)) or isinstance(smooth, bool) or not 0 <= smooth < 1:
        raise PlanError(f"smooth {smooth!r} is not valid: a weight from 0 (no smoothing) to below 1", key="smooth",
                        value=smooth, choices=["0.0", "0.6", "0.9"])
    entries = [entry(i) for i in items]
    if not entries:
        raise PlanError("name at least one run to compare", key="runs")
    names = _unique([name for name, _, _ in entries])
    metrics = metrics_of([rows for _, rows, _ in entries])
    if metric not in metrics:
        raise unknown("metric", metric, metrics, " (none of these runs logged it)", key="metric")
    traces = []
    for name, (_, rows, _) in zip(names, entries):
        xs, ys = series(rows, metric, x)
        traces.append({"name": name, "x": xs, "y": ema(ys, float(smooth)), "raw": ys})
    diff = plan_diff({name: plan for name, (_, _, plan) in zip(names, entries)})
    return {"metric": metric, "x": x, "smooth": float(smooth), "log_y": bool(log_y), "metrics": metrics,
            "traces": traces, "names": names, "diff": diff}


class Comparison:
    """What `jp.compare_runs` returns: `.figure` (plotly), `.diff` (DataFrame: a row per differing
    plan key, a column per run), `.metrics` (every metric the runs logged), `.data` (overlay)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.metrics: list[str] = data["metrics"]

    @property
    def figure(self) -> Any:
        import plotly.graph_objects as go

        d = self.data
        fig = go.Figure()
        for trace in d["traces"]:
            fig.add_trace(go.Scatter(x=trace["x"], y=trace["y"], mode="lines", name=trace["name"]))
        title = d["metric"] + (f" (EMA {d['smooth']:g})" if d["smooth"] else "")
        fig.update_layout(title=title, xaxis_title="step" if d["x"] == "step" else "seconds", yaxis_title=d["metric"],
                          yaxis_type="log" if d["log_y"] else "linear", height=360, margin={"t": 40})
        return fig

    @property
    def diff(self) -> Any:
        import pandas as pd

        rows = {r["key"]: [_shown(v) for v in r["values"]] for r in self.data["diff"]}
        return pd.DataFrame.from_dict(rows, orient="index", columns=self.data["names"]).rename_axis("key")

    def _repr_html_(self) -> str:
        diff = self.diff
        table = diff.to_html() if len(diff) else "<p>The plans are the same.</p>"
        return f"<div><b>plan diff</b>{table}</div>"

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, display

        display(self.figure)
        display(HTML(self._repr_html_()))


def compare_runs(*runs: Any, metric: str = "loss", x: str = "step", smooth: float = 0.0,
                 log_y: bool = False) -> Comparison:
    """See the module docstring. PlanError for a metric no run logged, a bad `x` or `smooth`."""
    items = list(runs[0]) if len(runs) == 1 and isinstance(runs[0], (list, tuple)) else list(runs)
    return Comparison(overlay(items, metric, x, smooth, log_y))


def _unique(names: list[str]) -> list[str]:
    out: list[str] = []
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def _shown(value: Any) -> Any:
    return "" if value is None else value if isinstance(value, (int, float, str, bool)) else str(value)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
