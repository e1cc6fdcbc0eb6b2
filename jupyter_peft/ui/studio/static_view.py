"""The studio as static HTML: what the saved notebook shows where the widget cannot be drawn.

The studio's output carries this beside the widget (widget.py keeps it up to date as the
studio changes): reopened without its kernel, the notebook shows the model, the method and
what it trains, every group with what is ticked, its rank and alpha, the trainable-parameter
chart, the memory estimate, the `%%peft` cell and the Apply summary, as the widget last showed
them. It is built from the studio's own traits (the numbers are the ones the page showed) with
inline styles on JupyterLab's theme variables: no stylesheet of ours is on a page that never
drew the widget.
"""

from __future__ import annotations

import html
from typing import Any

from ..svg import img, param_chart

_MUTED = "var(--jp-ui-font-color2,#666)"
_WARN, _ERROR = "var(--jp-warn-color1,#b26a00)", "var(--jp-error-color1,#c62828)"
_OK = "var(--jp-success-color1,#2e7d32)"
_BORDER = "var(--jp-border-color2,#ddd)"
_TD = "padding:2px 8px;border-bottom:1px solid var(--jp-border-color3,#eee);white-space:nowrap"
_LEFT, _RIGHT = f"{_TD};text-align:left", f"{_TD};text-align:right"  # JupyterLab right-aligns cells by default


def studio_html(state: dict[str, Any]) -> str:
    """The static studio for `state`: the studio's synced traits by name (Studio.get_state())."""
    esc = html.escape
    info, numbers = state["model_info"], state["numbers"]
    head = (f"<div style='font-size:13px'><b>{esc(info['cls'])}</b> <span style='color:{_MUTED}'>"
            f"{esc(info['name'])} · {esc(info['total_text'])} parameters · {info['modules']} modules"
            + (f" · task {esc(info['task_type'])}" if info.get("task_type") else "") + "</span></div>")
    note = (f"<div style='color:{_MUTED};font-size:11px'>the studio as it was last shown: run its cell "
            "with a kernel to change it</div>")
    if numbers.get("trainable") is not None:
        count = (f"<div style='margin:4px 0'>method <b>{esc(state['method'])}</b> · <b>{esc(numbers['trainable_text'])}"
                 f"</b> trainable · {esc(numbers['share_text'])} · adapter weights +{esc(numbers['added_text'])}</div>")
    else:
        count = f"<div style='margin:4px 0'>method <b>{esc(state['method'])}</b> · no valid plan</div>"
    messages = "".join(f"<div style='color:{_WARN}'>⚠ {esc(w)}</div>" for w in state.get("warnings", []))
    messages += "".join(f"<div style='color:{_ERROR}'>{esc(i['message'])}</div>" for i in state.get("issues", []))
    parts = [head, note, count, messages, _groups(state), _chart(state), _memory(state.get("memory") or {}),
             _cell(state.get("cell", "")), summary_html(state.get("summary") or {})]
    return ("<div class='jp-peft-static jp-peft-studio-static' style='font-size:12px;"
            "font-family:var(--jp-ui-font-family,sans-serif);color:var(--jp-ui-font-color1,#222);"
            "display:flex;flex-direction:column;gap:6px'>" + "".join(parts) + "</div>")


def studio_text(state: dict[str, Any]) -> str:
    """The studio as plain text (front ends that show neither widgets nor HTML)."""
    info, numbers = state["model_info"], state["numbers"]
    what = (f"{numbers['trainable_text']} trainable ({numbers['share_text']})" if numbers.get("trainable") is not None
            else "no valid plan")
    cell = state.get("cell") or ""
    head = f"jupyter_peft studio: {state['method']} on {info['cls']} {info['name']}, {what}"
    return head + (f"\n{cell}" if cell else "")


def _groups(state: dict[str, Any]) -> str:
    esc = html.escape
    per_group = (state["numbers"] or {}).get("per_group", {})
    method: dict[str, Any] = next((m for m in state["method_choices"] if m["name"] == state["method"]), {})
    rank_col, alpha_col = bool(method.get("per_group_rank")), bool(method.get("per_group_alpha"))
    heads = ["group", "module", "×", "params", "adapted"] + (["rank"] if rank_col else []) + (
        ["alpha"] if alpha_col else []) + ["trainable"]
    aligns = [_LEFT, _LEFT, _RIGHT, _RIGHT, _LEFT] + [_RIGHT] * (len(heads) - 5)
    rows = []
    for g in state["groups"]:
        picked = state["picked"].get(g["role"], [])
        cells = [f"<code>{esc(g['role'])}</code>", esc(" ".join(filter(None, [g["kind"], g["shape"], g["dtype"]]))),
                 str(g["count"]), esc(g["params_text"]), esc(adapted_text(g, picked))]
        if rank_col:
            cells.append(_per_group(state, "ranks", "rank", g["role"], picked))
        if alpha_col:
            cells.append(_per_group(state, "alphas", "alpha", g["role"], picked))
        cells.append(esc(per_group.get(g["role"], {}).get("text", "")))
        shade = "background:var(--jp-layout-color2,#f3f6fb);" if picked else ""
        rows.append(f"<tr style='{shade}'>" + "".join(f"<td style='{a}'>{c}</td>" for a, c in zip(aligns, cells))
                    + "</tr>")
    head = "".join(f"<th style='{a};font-weight:600'>{h}</th>" for a, h in zip(aligns, heads))
    return (f"<table style='border-collapse:collapse;margin:0'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}"
            "</tbody></table>")


def adapted_text(group: dict[str, Any], picked: list[int]) -> str:
    """What is ticked of a group: "all 6", "layers 1–5 (5 of 6)", "" for nothing."""
    if not picked:
        return ""
    if len(picked) == group["count"]:
        return f"all {group['count']}" if group["count"] > 1 else "yes"
    layers = [group["layers"][i] for i in picked]
    if any(layer is None for layer in layers):
        return f"{len(picked)} of {group['count']}"
    return f"{layer_ranges(layers)} ({len(picked)} of {group['count']})"


def layer_ranges(layers: list[int]) -> str:
    """[1, 2, 3, 5] -> "layers 1–3, 5"."""
    runs: list[list[int]] = []
    for n in sorted(set(layers)):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    text = ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)
    return ("layer " if len(layers) == 1 else "layers ") + text


def _per_group(state: dict[str, Any], key: str, default_key: str, role: str, picked: list[int]) -> str:
    if not picked:
        return ""
    own = state[key].get(role)
    fallback = state["defaults"].get(default_key)
    value = own if own is not None else fallback
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _chart(state: dict[str, Any]) -> str:
    chart = state.get("chart") or {}
    if not chart.get("rows"):
        return ""
    svg, w, h = param_chart(chart)
    return f"<div>{img(svg, 'trainable parameters', w, h, 'width:100%;max-width:1200px;height:auto')}</div>"


def _memory(m: dict[str, Any]) -> str:
    esc = html.escape
    if m.get("state") != "ready":
        return f"<div style='color:{_MUTED}'>memory estimate: {esc(m.get('message', '') or 'not computed')}</div>"
    gpu = m.get("gpu") or {}
    verdict = (f" · <span style='color:{_OK if gpu.get('fits') else _ERROR}'>{esc(gpu['verdict'])}</span>"
               if gpu else "")
    largest = f" · {esc(gpu['largest_batch_text'])}" if gpu else ""
    return (f"<div>memory estimate (one training step): <b>{esc(m['total_text'])}</b>{verdict}{largest}"
            f"<div style='color:{_MUTED};font-size:11px'>{esc(m['setup_text'])} · {esc(m['peak_text'])}</div></div>")


def _cell(cell: str) -> str:
    if not cell:
        return ""
    return ("<pre style='font-family:var(--jp-code-font-family,monospace);background:var(--jp-cell-editor-background,"
            f"#f7f7f7);border:1px solid {_BORDER};padding:6px 8px;margin:0;white-space:pre-wrap'>"
            f"{html.escape(cell)}</pre>")


def summary_html(s: dict[str, Any]) -> str:
    """The Apply summary (state.summary_record), as the widget shows it."""
    if not s.get("rows"):
        return ""
    esc = html.escape
    title = f"applied at {esc(s['applied_at'])}" + (f" → {esc(s['bound_to'])}" if s.get("bound_to") else "")
    stale = (f"<div style='color:{_WARN}'>no longer true: {esc(s['stale'])}. Below is what was applied at "
             f"{esc(s['applied_at'])}.</div>") if s.get("stale") else ""
    aligns = [_LEFT, _LEFT, _RIGHT, _RIGHT, _RIGHT]
    rows = "".join("<tr>" + "".join(f"<td style='{a}'>{esc(c)}</td>" for a, c in zip(
        aligns, (r["role"], r["kind"], r["targeted"], r["rank"], r["added"]))) + "</tr>" for r in s["rows"])
    rows += "".join(f"<tr><td style='{_LEFT}' colspan='4'>{esc(name)}</td><td style='{_RIGHT}'>{esc(n)}</td></tr>"
                    for name, n in s.get("other", []))
    head = "".join(f"<th style='{a};font-weight:600'>{h}</th>" for a, h in zip(
        aligns, ("group", "kind", "targeted", "rank", "added")))
    frozen = f"<div style='color:{_MUTED}'>frozen: {esc(', '.join(s['untouched']))}</div>" if s.get("untouched") else ""
    return (f"<div style='border-top:1px solid {_BORDER};padding-top:4px'><div style='font-weight:600'>{title}</div>"
            f"{stale}<div>{esc(s['method'])} adapter '{esc(s['adapter'])}' on {esc(s['model'])}: "
            f"<b>{esc(s['trainable_text'])}</b> trainable of {esc(s['total_text'])} ({esc(s['percent_text'])})</div>"
            f"<table style='border-collapse:collapse;margin:0'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>"
            f"</table>{frozen}</div>")
