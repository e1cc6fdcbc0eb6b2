"""The adapter bench as a widget: `jp.adapters(model)` displayed, or `%peft adapters MODEL`.

A row per adapter (name, method, targets, ranks, trainable parameters, bytes, source, active)
with Activate, Delete and Rename; Disable for the base alone; a compare box (prompts in, the
table out, cells that differ from the base marked); merge controls whose preview (rank,
parameters, bytes) is computed before the merge runs; and for adapters loaded from a run a
slider over its checkpoints that swaps each checkpoint's weights in and compares again, without
reloading the base. Python owns every value (`Adapters`, adapter_bench/); js/adapters/ draws
the traits and sends commands routed on `kind`: activate, disable, delete, rename, compare,
preview, merge, swap. A mistake from the page is shown in `error`, never raised into a cell.
The output carries the bench as static HTML beside the widget (a notebook without its kernel).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from ..._errors import PlanError

_STATIC = Path(__file__).resolve().parents[2] / "static"


class AdaptersWidget(anywidget.AnyWidget):
    """The widget of one `Adapters` bench (`bench.widget()`)."""
    _esm = _STATIC / "adapters.js"

    rows: t.List[dict[str, Any]] = t.List().tag(sync=True)
    """`Adapters.rows()`: name, method, targets, ranks, params, bytes, bytes_text, source, source_kind,
    run_folder, step, steps (a run's checkpoint steps), active."""
    active = t.Unicode("").tag(sync=True)
    """The active adapter, "" when the adapters are disabled (the base alone)."""
    comparison = t.Dict().tag(sync=True)
    """The last compare: {prompts, columns, cells (a row per prompt), differs (same shape: the cell is
    not the base's), how, max_new_tokens}; {} before the first."""
    merging = t.Dict().tag(sync=True)
    """{types: the combination types peft offers for the active adapter's method, preview: what the
    merge would make (combine.preview) or {}}."""
    error = t.Unicode("").tag(sync=True)
    """What the last command from the page got wrong ("" when it worked)."""
    busy = t.Bool(False).tag(sync=True)
    """Whether a command is running (a compare generates)."""

    def __init__(self, bench: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bench = bench
        self._prompts: list[Any] = []
        self._tokens = 32
        self.on_msg(self._on_msg)
        bench.on_change(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        bench = self.bench
        with self.hold_sync():
            self.rows = bench.rows()
            self.active = bench.active or ""
            types = bench.combination_types() if bench.names else []
            self.merging = {**self.merging, "types": types, "preview": self.merging.get("preview", {})}
            if bench.last_compare is not None:
                self.comparison = comparison_of(bench.last_compare, self._tokens)

    # ---- from the page -------------------------------------------------------------------

    def _on_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        kind = content.get("kind") if isinstance(content, dict) else None
        bench = self.bench
        commands = {
            "activate": lambda c: bench.activate(c.get("name"), hotswap=bool(c.get("hotswap"))),
            "disable": lambda c: bench.disable(),
            "delete": lambda c: bench.delete(c.get("name")),
            "rename": lambda c: bench.rename(c.get("old"), c.get("new")),
            "compare": self._compare,
            "preview": self._preview,
            "merge": self._merge,
            "swap": self._swap,
        }
        if kind not in commands:
            return
        self.busy = True
        try:
            commands[kind](content)
            self.error = ""
        except PlanError as err:
            self.error = str(err)
        finally:
            self.busy = False
            self.refresh()

    def _compare(self, content: dict[str, Any]) -> None:
        prompts = content.get("prompts")
        if isinstance(prompts, str):
            prompts = [p for p in prompts.splitlines() if p.strip()]
        tokens = content.get("max_new_tokens", self._tokens)
        self.bench.compare(prompts, max_new_tokens=tokens)  # checks the prompts first
        self._prompts, self._tokens = list(prompts or []), tokens

    def _merge_args(self, content: dict[str, Any]) -> dict[str, Any]:
        weights = content.get("weights") or {}
        density = content.get("density")
        return {"weights": {k: v for k, v in weights.items() if v not in (0, None)},
                "how": content.get("how", "linear"), "density": None if density in ("", None) else density,
                "name": content.get("name") or "merged"}

    def _preview(self, content: dict[str, Any]) -> None:
        try:
            shown = self.bench.merge_preview(**self._merge_args(content))
        except PlanError:
            self.merging = {**self.merging, "preview": {}}
            raise
        self.merging = {**self.merging, "preview": _jsonable(shown)}

    def _merge(self, content: dict[str, Any]) -> None:
        self.bench.merge(**self._merge_args(content))
        self.merging = {**self.merging, "preview": {}}

    def _swap(self, content: dict[str, Any]) -> None:
        self.bench.swap(content.get("name"), content.get("step"))
        if self._prompts:
            self.bench.compare(self._prompts, max_new_tokens=self._tokens)

    # ---- display -------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The widget's view, and the bench as static HTML and text beside it."""
        data: dict[str, Any] = {"text/plain": repr(self.bench), "text/html": static_html(self.rows, self.comparison)}
        widget = super()._repr_mimebundle_(**kwargs) if self.comm is not None else None
        return ({**widget[0], **data} if widget else data), {}


def comparison_of(df: Any, max_new_tokens: int) -> dict[str, Any]:
    """The compare DataFrame for the page: cells by row, and which differ from the base's."""
    columns = [c for c in df.columns if c != "prompt"]
    cells = [[str(df[c].iloc[i]) for c in columns] for i in range(len(df))]
    differs = [[c != "base" and row[j] != row[-1] for j, c in enumerate(columns)] for row in cells]
    return {"prompts": [str(p) for p in df["prompt"]], "columns": columns, "cells": cells, "differs": differs,
            "how": str(df.attrs.get("how", "")), "max_new_tokens": int(max_new_tokens)}


def _jsonable(shown: dict[str, Any]) -> dict[str, Any]:
    return {"adapters": list(shown["adapters"]), "weights": [float(w) for w in shown["weights"]],
            "how": shown["how"], "name": shown["name"], "method": shown["method"], "rank": shown["rank"],
            "params": int(shown["params"]), "bytes": int(shown["bytes"]), "layers": int(shown["layers"]),
            "text": shown["text"]}


_CELL = "padding:2px 8px;border-bottom:1px solid var(--jp-border-color2,#ddd);text-align:left;vertical-align:top"
_DIFF = "background:var(--jp-warn-color3,#fff3cd)"


def static_html(rows: list[dict[str, Any]], comparison: dict[str, Any]) -> str:
    """The bench without a kernel: the adapters table and the last compare (inline styles only)."""
    esc = html.escape
    head = "".join(f"<th style='{_CELL}'>{h}</th>" for h in
                   ("adapter", "method", "targets", "ranks", "parameters", "bytes", "source", "active"))
    body = "".join(
        f"<tr><td style='{_CELL};font-weight:600'>{esc(r['name'])}</td><td style='{_CELL}'>{esc(r['method'])}</td>"
        f"<td style='{_CELL}'>{esc(r['targets'])}</td><td style='{_CELL}'>{esc(r['ranks'])}</td>"
        f"<td style='{_CELL};text-align:right'>{r['params']:,}</td><td style='{_CELL}'>{esc(r['bytes_text'])}</td>"
        f"<td style='{_CELL}'>{esc(r['source'])}</td><td style='{_CELL}'>{'active' if r['active'] else ''}</td></tr>"
        for r in rows)
    out = (f"<div class='jp-peft-static jp-peft-adapters-snapshot' style='font-size:12px;"
           f"font-family:var(--jp-ui-font-family,sans-serif)'><b>adapters</b>"
           f"<table style='border-collapse:collapse'><tr>{head}</tr>{body}</table>")
    if comparison.get("columns"):
        cols = "".join(f"<th style='{_CELL}'>{esc(c)}</th>" for c in ["prompt", *comparison["columns"]])
        lines = []
        for prompt, cells, differs in zip(comparison["prompts"], comparison["cells"], comparison["differs"]):
            tds = "".join(f"<td style='{_CELL};white-space:pre-wrap{';' + _DIFF if d else ''}'>{esc(c)}</td>"
                          for c, d in zip(cells, differs))
            lines.append(f"<tr><td style='{_CELL};color:var(--jp-ui-font-color2,#555)'>{esc(prompt)}</td>{tds}</tr>")
        out += (f"<div style='margin-top:6px'><b>compare</b> <span style='color:var(--jp-ui-font-color2,#555)'>"
                f"{esc(comparison.get('how', ''))}</span></div>"
                f"<table style='border-collapse:collapse'><tr>{cols}</tr>{''.join(lines)}</table>")
    return out + "</div>"
