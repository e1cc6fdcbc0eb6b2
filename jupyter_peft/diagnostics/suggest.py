"""`run.modules` and `run.suggest_ranks()`: the modules table, and a `ranks:` map from it.

The suggestion gives each group (or module) a rank proportional to the effective rank its delta
reached (how many directions it really uses; signals.effective_rank), scaled to the parameter
budget: a low-rank module costs r * (in + out) parameters with its real shapes. Rank moves from
modules whose delta uses little of its rank to modules that saturate theirs; the total stays at
or under the budget (default: this run's). `alphas` keep each module's scale alpha / r, so the
only change in the next run is the rank. It is a heuristic from one run, not a proof: a module
with a small or low-rank update may still matter (README: "Which modules learn").
"""

from __future__ import annotations

import html
import math
from typing import Any

from .._errors import PlanError
from . import signals
from .record import ORDER, Diagnostics


def modules_frame(diag: Diagnostics | None, model: Any = None) -> Any:
    """One row per adapted module: path, group, layer, rank, the last sample's signals, and the
    effective rank of its delta now."""
    import pandas as pd

    columns = ["path", "group", "layer", "kind", "rank", "step", "grad_norm", "update_norm", "total_update",
               "relative_update", "effective_rank", "out_features", "in_features"]
    if diag is None:
        raise PlanError("this run has no per-module diagnostics: its train block says `diagnostics: false` (or it "
                        "was loaded from its folder, where they are not kept); train with `diagnostics: N`",
                        key="train.diagnostics")
    modules = diag.modules or (signals.adapted(model) if model is not None else [])
    steps, rows = diag.samples(-1) if len(diag) else ([None], [None])
    last, step = rows[-1], steps[-1]
    records = []
    for i, m in enumerate(modules):
        values = {name: (float(last[k][i]) if last is not None and diag.modules else math.nan)
                  for k, name in enumerate(ORDER)}
        sigma = signals.singular_values(m)
        records.append({"path": m.path, "group": m.group, "layer": m.layer, "kind": m.kind, "rank": m.rank,
                        "step": step,
                        "grad_norm": values["grad"], "update_norm": values["update"],
                        "total_update": values["moved"], "relative_update": values["relative"],
                        "effective_rank": signals.effective_rank(sigma) if sigma is not None else math.nan,
                        "out_features": m.shape[0], "in_features": m.shape[1]})
    return pd.DataFrame(records, columns=columns)


class RankSuggestion:
    """The ranks for the next run (`.ranks`, a plan's `ranks:` map), why (`.reasoning`, `.table`),
    and the `%%peft` cell that uses them (`.cell()`)."""

    def __init__(self, plan: Any, table: Any, ranks: dict[str, int], alphas: dict[str, float], budget: int,
                 used: int, before: int, by: str) -> None:
        self.plan, self.table, self.ranks, self.alphas = plan, table, ranks, alphas
        self.budget, self.params, self.params_before, self.by = budget, used, before, by

    @property
    def reasoning(self) -> str:
        t = self.table
        lines = [f"budget {self.budget:,} adapter parameters (this run: {self.params_before:,}); "
                 f"suggested: {self.params:,}. Rank follows the effective rank each {self.by}'s delta reached."]
        for _, r in t.iterrows():
            move = "same" if r["new_rank"] == r["rank"] else ("more" if r["new_rank"] > r["rank"] else "less")
            lines.append(f"  {r['key']}: r {r['rank']} -> {r['new_rank']} ({move}); uses {r['effective_rank']:.1f} "
                         f"of {r['rank']} directions ({r['use']:.0%})")
        return "\n".join(lines)

    def cell(self, model: str = "model") -> str:
        """The `%%peft` cell of the next run: this run's plan with the suggested ranks."""
        if self.plan is None:
            body = "method: lora\n" + _yaml_map("ranks", self.ranks) + _yaml_map("alphas", self.alphas)
        else:
            body = self.plan.replace(ranks=dict(self.ranks), alphas=dict(self.alphas)).to_yaml()
        return f"%%peft {model}\n{body}"

    def __repr__(self) -> str:
        return f"<RankSuggestion ranks={self.ranks}>\n{self.reasoning}"

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th style='text-align:left;padding:2px 8px'>{esc(c)}</th>"
                       for c in ("key", "rank", "effective rank", "use", "new rank", "params", "new params"))
        body = "".join(
            "<tr>" + "".join(f"<td style='padding:2px 8px'>{esc(v)}</td>" for v in (
                r["key"], str(r["rank"]), f"{r['effective_rank']:.2f}", f"{r['use']:.0%}", str(r["new_rank"]),
                f"{r['params']:,}", f"{r['new_params']:,}")) + "</tr>"
            for _, r in self.table.iterrows())
        cell = esc(self.cell())
        return (f"<div class='jp-peft-rank-suggestion'><div>{esc(self.reasoning.splitlines()[0])}</div>"
                f"<table style='border-collapse:collapse;font-size:12px'><tr>{head}</tr>{body}</table>"
                f"<pre style='font-size:12px'>{cell}</pre></div>")


def suggest(frame: Any, plan: Any, budget: int | None = None, by: str = "group") -> RankSuggestion:
    """Ranks proportional to each key's effective rank, fitted to `budget` parameters."""
    if by not in ("group", "module"):
        raise PlanError(f"by={by!r} is not valid: use 'group' or 'module'", key="by", value=by,
                        choices=["group", "module"])
    lowrank = frame[frame["kind"] == "lowrank"]
    if lowrank.empty:
        raise PlanError("rank suggestions are for LoRA and DoRA adapters (a module costs r x (in + out) parameters, "
                        f"its delta has at most r directions); this run's modules are {sorted(set(frame['kind']))} "
                        "(signals.py says what each kind is)")
    rows = lowrank[lowrank["effective_rank"].notna()]
    if rows.empty:
        raise PlanError("no adapter has moved from its start yet: train some steps first")
    keys: dict[str, dict[str, Any]] = {}
    for _, r in rows.iterrows():
        key = r["group"] if by == "group" else r["path"]
        k = keys.setdefault(key, {"key": key, "rank": int(r["rank"]), "cost": 0, "eranks": [], "cap": 10**9})
        k["cost"] += int(r["in_features"] + r["out_features"])
        k["eranks"].append(float(r["effective_rank"]))
        k["cap"] = min(k["cap"], int(min(r["in_features"], r["out_features"])))
        if int(r["rank"]) != k["rank"]:  # a group with mixed ranks: suggest per module
            return suggest(frame, plan, budget, by="module")
    items = list(keys.values())
    before = sum(k["rank"] * k["cost"] for k in items)
    budget = before if budget is None else int(budget)
    if budget < sum(k["cost"] for k in items):
        raise PlanError(f"budget={budget:,} is below rank 1 everywhere ({sum(k['cost'] for k in items):,} parameters)",
                        key="budget", value=budget)
    for k in items:
        k["want"] = max(sum(k["eranks"]) / len(k["eranks"]), 1e-3)
    scale = budget / sum(k["want"] * k["cost"] for k in items)
    for k in items:
        k["target"] = k["want"] * scale
        k["new"] = int(min(max(1, round(k["target"])), k["cap"]))
    used = sum(k["new"] * k["cost"] for k in items)
    while used > budget:  # the rounding overshot: take from the most over its target
        k = max((k for k in items if k["new"] > 1), key=lambda k: k["new"] / k["target"])
        k["new"] -= 1
        used -= k["cost"]
    while True:  # room left: give to the most under its target that fits
        fits = [k for k in items if used + k["cost"] <= budget and k["new"] < k["cap"]]
        if not fits:
            break
        k = min(fits, key=lambda k: (k["new"] + 1) / k["target"])
        if (k["new"] + 1) / k["target"] > 1.5:
            break
        k["new"] += 1
        used += k["cost"]
    import pandas as pd

    table = pd.DataFrame([{
        "key": k["key"], "rank": k["rank"], "effective_rank": k["want"], "use": k["want"] / k["rank"],
        "new_rank": k["new"], "params": k["rank"] * k["cost"], "new_params": k["new"] * k["cost"]} for k in items])
    ranks = {k["key"]: k["new"] for k in items}
    alphas = _alphas(plan, items)
    return RankSuggestion(plan, table, ranks, alphas, budget, used, before, by)


def _alphas(plan: Any, items: list[dict[str, Any]]) -> dict[str, float]:
    """Alphas that keep alpha / r of each key as this run had it (LoRA's scale), when the plan has one."""
    if plan is None:
        return {}
    alpha = plan.options.get("lora_alpha")
    if alpha is None:  # peft's default, which the next run would keep while its ranks change
        option = plan.method_spec.options.get("lora_alpha")
        alpha = getattr(option, "default", None)
    if not isinstance(alpha, (int, float)):
        return {}
    alphas = dict(getattr(plan, "alphas", {}) or {})
    return {k["key"]: float(alphas.get(k["key"], alpha)) * k["new"] / k["rank"] for k in items}


def _yaml_map(key: str, mapping: dict[str, Any]) -> str:
    if not mapping:
        return ""
    return f"{key}:\n" + "".join(f"  {k}: {v}\n" for k, v in mapping.items())
