"""`Summary`: what an applied adapter trains, as a rich display that survives a saved notebook.

Counts come from the PeftModel itself (peft's own trainable/total count), split by the
ModelMap's groups: which modules are adapted, at which rank, with how many parameters.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from .._compat import adapter_layer_types, base_model
from .._format import format_percent
from .modelmap import inspect


@dataclass
class GroupRow:
    role: str
    kind: str
    count: int
    targeted: int
    rank: str
    added: int


@dataclass
class Summary:
    """Trainable and total parameters of a PeftModel, overall and per group."""
    model: str
    method: str
    adapter: str
    trainable: int
    total: int
    rows: list[GroupRow] = field(default_factory=list)
    other: dict[str, int] = field(default_factory=dict)
    """Trainable parameters outside adapted layers (virtual tokens, modules_to_save...)."""
    untouched: list[str] = field(default_factory=list)
    """Linear groups left frozen."""
    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def __repr__(self) -> str:
        head = (
            f"{self.method} adapter {self.adapter!r} on {self.model}: trainable {self.trainable:,} of "
            f"{self.total:,} parameters ({format_percent(self.percent)})"
        )
        lines = [head]
        for r in self.rows:
            lines.append(f"  {r.role:<40} {r.targeted}/{r.count} {r.kind:<14} rank {r.rank:<6} +{r.added:,}")
        for name, n in self.other.items():
            lines.append(f"  {name:<40} +{n:,}")
        if self.untouched:
            lines.append(f"  frozen: {', '.join(self.untouched)}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = "".join(
            f"<tr><td style='text-align:left'><code>{esc(r.role)}</code></td><td style='text-align:left'>"
            f"{esc(r.kind)}</td><td>{r.targeted} / {r.count}</td>"
            f"<td>{esc(r.rank)}</td><td style='text-align:right'>{r.added:,}</td></tr>"
            for r in self.rows
        )
        rows += "".join(
            f"<tr><td colspan='4'>{esc(name)}</td><td style='text-align:right'>{n:,}</td></tr>"
            for name, n in self.other.items()
        )
        frozen = (
            f"<div style='color:#666'>frozen: {esc(', '.join(self.untouched))}</div>" if self.untouched else ""
        )
        return (
            "<div class='jp-peft-summary' style='font-family:var(--jp-ui-font-family,sans-serif)'>"
            f"<div><b>{esc(self.method)}</b> adapter <code>{esc(self.adapter)}</code> on {esc(self.model)}: "
            f"<b>{self.trainable:,}</b> trainable of {self.total:,} parameters "
            f"(<b>{format_percent(self.percent)}</b>)</div>"
            "<table style='border-collapse:collapse;margin-top:4px'>"
            "<thead><tr><th style='text-align:left'>group</th><th style='text-align:left'>kind</th>"
            "<th>targeted</th><th>rank</th><th style='text-align:right'>added params</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>{frozen}</div>"
        )


def summarize(peft_model: Any) -> Summary:
    """The Summary of a PeftModel's active adapter."""
    BaseTunerLayer = adapter_layer_types()[0]

    adapter = peft_model.active_adapter
    config = peft_model.peft_config[adapter]
    trainable, total = peft_model.get_nb_trainable_parameters()
    model_map = inspect(peft_model)
    base = base_model(peft_model)
    per_group: dict[str, list[Any]] = {}
    counted: set[int] = set()
    for path, module in base.named_modules():
        if isinstance(module, BaseTunerLayer) and (group := model_map.group_of(adapted_path(path, module))):
            per_group.setdefault(group.role, []).append(module)
            counted.update(id(p) for p in _own_trainable(module))
    rows = []
    for group in model_map.groups:
        layers = per_group.get(group.role, [])
        if not layers:
            continue
        added = sum(p.numel() for m in layers for p in _own_trainable(m))
        rows.append(GroupRow(group.role, group.kind, group.count, len(layers), _ranks(layers, adapter), added))
    other: dict[str, int] = {}
    for name, p in peft_model.named_parameters():
        if p.requires_grad and id(p) not in counted:
            label = _other_label(name)
            other[label] = other.get(label, 0) + p.numel()
    untouched = [g.role for g in model_map.groups if g.linear and g.role not in per_group]
    return Summary(
        model=type(base).__name__,
        method=method_name(config),
        adapter=adapter,
        trainable=trainable,
        total=total,
        rows=rows,
        other=other,
        untouched=untouched,
    )


def adapted_path(path: str, layer: Any) -> str:
    """The ModelMap path an adapter layer stands for: its module path, or for peft's wrappers
    of fused expert tensors (nested as `.base_layer`), the parameter path."""
    name = getattr(layer, "parameter_name", None)
    if name is None:
        return path
    return ".".join(part for part in path.split(".") if part != "base_layer") + "." + name


def _own_trainable(layer: Any) -> list[Any]:
    """Trainable parameters of an adapter layer, not of adapter layers nested in its base_layer."""
    return [p for n, p in layer.named_parameters() if p.requires_grad and not n.startswith("base_layer.")]


def _ranks(layers: list[Any], adapter: str) -> str:
    ranks = set()
    for m in layers:
        r = getattr(m, "r", None)
        if isinstance(r, dict) and adapter in r:
            ranks.add(int(r[adapter]))
    if not ranks:
        return "-"
    return str(ranks.pop()) if len(ranks) == 1 else f"{min(ranks)}-{max(ranks)}"


def _other_label(name: str) -> str:
    if "prompt_encoder" in name:
        return "virtual tokens (prompt encoder)"
    if "modules_to_save" in name:
        return "modules_to_save: " + name.split(".modules_to_save")[0].split("model.", 1)[-1]
    if "trainable_tokens" in name or "token_adapter" in name:
        return "trainable tokens"
    return name


def method_name(config: Any) -> str:
    name = config.peft_type.value.lower()
    if name == "lora" and getattr(config, "use_dora", False):
        return "dora"
    return name
