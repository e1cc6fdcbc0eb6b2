"""The studio's state as the browser receives it: compact JSON built from the Python rooms.

Everything here is computed in Python (counts, percentages, byte sizes, chart arrays,
warnings) so that the browser only lays it out. Sizes: a group is one record with its layer
indices, never one record per module, so a 70B model (80 layers, 12 groups) is a few KB.
"""

from __future__ import annotations

from typing import Any

from ...model.counting import Count
from ...model.modelmap import Group, ModelMap
from ...plan import methods
from ..param_chart import percent_text
from .draft import Draft, block_of

_OUTSIDE = {
    "vision": "vision tower",
    "audio": "audio tower",
    "projector": "projector",
    "head": "output head",
    "embedding": "embeddings",
}
# options worth showing first whatever the method (the rest fold under "more options")
_PRIMARY = (
    "r",
    "lora_alpha",
    "alpha",
    "lora_dropout",
    "module_dropout",
    "rank_dropout",
    "use_rslora",
    "init_lora_weights",
    "bias",
    "num_virtual_tokens",
    "feedforward_modules",
    "encoder_hidden_size",
    "prompt_tuning_init",
    "init_weights",
    "oft_block_size",
    "target_r",
    "init_r",
    "total_step",
    "vector_length",
    "num_vectors",
)
# set by the tree, never typed in the form
_TREE_OWNED = ("target_parameters",)


def count_text(n: int) -> str:
    return f"{n:,}"


def short_count(n: int) -> str:
    """1.2B, 67.1M, 4.1K: a compact count for table cells."""
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def bytes_text(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def model_info(model_map: ModelMap, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "cls": type(model_map.base_model).__name__,
        "task_type": model_map.task_type,
        "total": model_map.total_params,
        "total_text": count_text(model_map.total_params),
        "total_short": short_count(model_map.total_params),
        "modules": sum(g.count for g in model_map.groups),
    }


def group_record(g: Group) -> dict[str, Any]:
    """One group for the tree. `layers`: the layer index of each member (None outside a
    stack); per-member parameter counts only when the members differ in shape."""
    uniform = len(set(g.shapes)) <= 1
    each = g.params // g.count if g.count and uniform else None
    return {
        "role": g.role,
        "kind": g.kind,
        "section": g.section,
        "block": block_of(g),
        "count": g.count,
        "layers": g.layers,
        "shape": "×".join(str(d) for d in g.shape),
        "dtype": g.dtype,
        "params": g.params,
        "params_text": short_count(g.params),
        "each_text": short_count(each) if each is not None else None,
        "linear": g.linear,
        "parameter": g.parameter,
        "adapted": g.adapted,
        "template": g.template,
    }


def method_records() -> list[dict[str, Any]]:
    out = []
    for name in methods.names():
        spec = methods.get(name)
        out.append(
            {
                "name": name,
                "prompt_learning": spec.is_prompt_learning,
                "targets_modules": spec.targets_modules,
                "per_group_rank": spec.has_rank_pattern and spec.rank_option is not None,
                "per_group_alpha": spec.has_alpha_pattern and spec.alpha_option is not None,
                "description": spec.description,
            }
        )
    return out


def option_fields(spec: methods.Method) -> list[dict[str, Any]]:
    """The options form of `spec`, from peft's dataclass: primary fields first."""
    fields = []
    for name, option in spec.options.items():
        if name in _TREE_OWNED or name in spec.fixed:
            continue
        record = option.to_json()
        record["primary"] = name in _PRIMARY
        fields.append(record)
    order = {n: i for i, n in enumerate(_PRIMARY)}
    fields.sort(key=lambda f: (not f["primary"], order.get(f["name"], 0)))
    return fields


def targetable(model_map: ModelMap, spec: methods.Method) -> dict[str, bool | None]:
    """Group role -> whether the method can adapt it (None: peft was not asked / unknown)."""
    out: dict[str, bool | None] = {}
    for g in model_map.groups:
        if not spec.targets_modules:
            out[g.role] = False
        elif g.parameter is not None:
            out[g.role] = "target_parameters" in spec.options
        else:
            out[g.role] = methods.can_target(spec.name, g.kind)
    return out


def numbers(count: Count, base_total: int) -> dict[str, Any]:
    """The live count of a plan; `base_total`: the model's parameters without an adapter (the
    header's number), which the total with the adapter is explained by."""
    per_group = {
        role: {
            "targeted": count.targeted.get(role, 0),
            "trainable": cost.trainable,
            "text": count_text(cost.trainable),
        }
        for role, cost in count.per_group.items()
    }
    return {
        "trainable": count.trainable,
        "total": count.total,
        "percent": count.percent,
        "added_bytes": count.added_bytes,
        "trainable_text": count_text(count.trainable),
        "total_text": count_text(count.total),
        "percent_text": percent_text(count.percent),
        "share_text": share_text(count.percent, count.total, base_total),
        "added_text": bytes_text(count.added_bytes),
        "other_text": count_text(count.other.trainable) if count.other.trainable else "",
        "per_group": per_group,
    }


def share_text(percent: float, total: int, base_total: int) -> str:
    """"1.79% of 4,817,152 with the adapter (the model's 4,731,136 + 86,016)": the share of the
    total peft reports, and how it relates to the model's own count in the header."""
    added = total - base_total
    if added <= 0:
        return f"{percent_text(percent)} of {total:,}"
    return f"{percent_text(percent)} of {total:,} with the adapter (the model's {base_total:,} + {added:,})"


def warnings(draft: Draft, adapted: list[str] | None) -> list[str]:
    """What the user should know about the ticks: modules outside the language model, names
    that would reach further than the ticks, and where peft adapts other modules than ticked."""
    model_map = draft.model_map
    ticked = draft.paths()
    out = []
    if not draft.spec.targets_modules:
        out.append(f"{draft.method} learns virtual tokens and adapts no modules: the ticks are not used.")
        return out
    outside = _sections(model_map, ticked)
    if outside:
        out.append("Ticked outside the language model: " + _sections_text(outside) + ".")
    if ticked:
        names = sorted({p.rsplit(".", 1)[-1] for p in ticked})
        further = _sections(model_map, sorted(set(model_map.match(names)) - set(ticked)))
        if further:
            out.append(
                f"target_modules: [{', '.join(names)}] would also adapt the {_sections_text(further)} "
                "(peft matches names as path suffixes); the cell names the ticked modules exactly."
            )
    if adapted is not None:  # expert tensors are ticked and written one to one: modules only
        adapted = [p for p in adapted if (g := model_map.group_of(p)) is None or g.parameter is None]
        extra, missing = set(adapted) - set(ticked), set(ticked) - set(adapted)
        if extra:
            out.append(f"peft will also adapt {len(extra)} module(s) you did not tick, e.g. {min(extra)}.")
        if missing:
            out.append(
                f"peft will not adapt {len(missing)} ticked module(s), e.g. {min(missing)} "
                "(layers_to_transform / exclude_modules)."
            )
    return out


def _sections(model_map: ModelMap, paths: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for path in paths:
        group = model_map.group_of(path)
        if group is not None and group.section in _OUTSIDE:
            found[group.section] = found.get(group.section, 0) + 1
    return found


def _sections_text(found: dict[str, int]) -> str:
    return ", ".join(f"{_OUTSIDE[s]} ({n} module{'s' if n > 1 else ''})" for s, n in found.items())


def summary_record(summary: Any) -> dict[str, Any]:
    """A Summary (summary.py) as JSON; names stay text, the page never parses them as HTML."""
    return {
        "model": summary.model,
        "method": summary.method,
        "adapter": summary.adapter,
        "trainable": summary.trainable,
        "trainable_text": count_text(summary.trainable),
        "total_text": count_text(summary.total),
        "percent_text": percent_text(summary.percent),
        "rows": [
            {
                "role": r.role,
                "kind": r.kind,
                "targeted": f"{r.targeted} / {r.count}",
                "rank": r.rank,
                "added": count_text(r.added),
            }
            for r in summary.rows
        ],
        "other": [[name, count_text(n)] for name, n in summary.other.items()],
        "untouched": summary.untouched,
    }
