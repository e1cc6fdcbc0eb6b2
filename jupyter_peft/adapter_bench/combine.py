"""New adapters from weighted combinations of others, through peft's own `add_weighted_adapter`.

The combination types offered are the ones the method's `add_weighted_adapter` declares (read
from its signature, not retyped: LoRA's linear, cat, svd, ties, dare_*, magnitude_prune and their
_svd forms; IA3 a weighted sum, called "linear" here). Everything is checked before peft runs,
and `preview` says the rank, parameter count and bytes of the result first (peft's own rules for
the new rank: the common rank for linear/ties/dare/magnitude_prune, the sum for cat, the largest
or `svd_rank` for the SVD forms). Merging into the base weights is model/merging.py (`jp.merge`).
"""

from __future__ import annotations

import inspect as _inspect
import math
import typing
from typing import Any

from .._errors import PlanError, unknown
from .._format import format_bytes

NEEDS_DENSITY = ("ties", "dare", "magnitude_prune")  # prefixes: their types prune to `density`


def combination_types(peft_model: Any, method: str) -> list[str]:
    """The combination types peft offers for `method` on this model ([] when it cannot combine)."""
    tuner = peft_model.base_model
    fn = getattr(tuner, "add_weighted_adapter", None)
    if fn is None:
        return []
    param = _inspect.signature(fn).parameters.get("combination_type")
    if param is None:  # IA3: a weighted sum of the vectors
        return ["linear"]
    hints = typing.get_type_hints(fn) if param.annotation is _inspect.Parameter.empty else {}
    annotation = hints.get("combination_type", param.annotation)
    if isinstance(annotation, str):  # postponed annotations: evaluate in peft's module
        annotation = typing.get_type_hints(fn).get("combination_type")
    return [str(a) for a in typing.get_args(annotation)] or [str(param.default)]


def check(peft_model: Any, weights: Any, how: str, density: float | None, name: str,
          svd_rank: int | None = None) -> tuple[list[str], list[float], str]:
    """(adapters, weights, method) after every check; PlanError naming the key otherwise."""
    if not isinstance(weights, dict) or not weights:
        raise PlanError("merge takes a mapping of adapter names to weights, e.g. {'a': 0.7, 'b': 0.3}",
                        key="weights", value=weights)
    names = list(weights)
    for n in names:
        if n not in peft_model.peft_config:
            raise unknown("adapter", n, list(peft_model.peft_config), key="weights")
        w = weights[n]
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise PlanError(f"the weight of {n!r} must be a finite number, got {w!r}", key=f"weights.{n}", value=w)
    methods = {n: _method(peft_model.peft_config[n]) for n in names}
    if len(set(methods.values())) > 1:
        raise PlanError("peft combines adapters of one method only: "
                        + ", ".join(f"{n} is {m}" for n, m in methods.items()), key="weights")
    method = methods[names[0]]
    offered = combination_types(peft_model, method)
    if not offered:
        raise PlanError(f"peft cannot combine {method} adapters (add_weighted_adapter is LoRA and IA3 only)",
                        key="weights")
    if how not in offered:
        raise unknown("combination type", str(how), offered, f" for {method}", key="how")
    if not isinstance(name, str) or not name or "." in name:
        raise PlanError(f"an adapter name is a non-empty text without dots, got {name!r}", key="name", value=name)
    if name in peft_model.peft_config:
        raise PlanError(f"there is already an adapter named {name!r}: choose another name (or delete it first)",
                        key="name", value=name)
    pruning = how.startswith(NEEDS_DENSITY)
    if pruning and density is None:
        raise PlanError(f"{how} keeps a fraction of each weight: pass density= (0 < density <= 1)", key="density")
    if density is not None:
        if not pruning:
            raise PlanError(f"{how} does not prune: density is for "
                            + ", ".join(t for t in offered if t.startswith(NEEDS_DENSITY)), key="density",
                            value=density)
        if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 < density <= 1:
            raise PlanError(f"density must be in (0, 1], got {density!r}", key="density", value=density)
    if method == "lora":
        for n in names:
            if peft_model.peft_config[n].target_parameters:
                raise PlanError(f"{n!r} targets parameters (target_parameters): peft cannot combine it", key="weights")
        ranks = {n: _max_rank(peft_model.peft_config[n]) for n in names}
        if len(names) > 1 and how in ("linear", "ties", "dare_ties", "dare_linear", "magnitude_prune") \
                and len(set(ranks.values())) > 1:
            raise PlanError(f"{how} needs adapters of one rank, these have "
                            + ", ".join(f"{n}: r={r}" for n, r in ranks.items())
                            + "; use cat or an _svd type", key="how", value=how,
                            choices=[t for t in offered if t == "cat" or t.endswith("svd")])
        kinds = {type(peft_model.peft_config[n].target_modules) for n in names}
        if len(kinds) > 1:
            raise PlanError("peft cannot combine adapters whose target_modules are a regex and a list", key="weights")
    if svd_rank is not None and (isinstance(svd_rank, bool) or not isinstance(svd_rank, int) or svd_rank < 1):
        raise PlanError(f"svd_rank must be a positive integer, got {svd_rank!r}", key="svd_rank", value=svd_rank)
    return names, [float(weights[n]) for n in names], method


def new_rank(peft_model: Any, names: list[str], how: str, svd_rank: int | None) -> int | None:
    """The rank peft gives the result (None for IA3, which has no rank)."""
    configs = [peft_model.peft_config[n] for n in names]
    if _method(configs[0]) != "lora":
        return None
    ranks = [_max_rank(c) for c in configs]
    if len(names) == 1:
        return ranks[0]
    if how == "cat":
        return sum(ranks)
    if how.endswith("svd"):
        return svd_rank or max(ranks)
    return ranks[0]


def preview(peft_model: Any, weights: Any, how: str = "linear", density: float | None = None,
            name: str = "merged", svd_rank: int | None = None) -> dict[str, Any]:
    """What the merge makes, before it runs: {adapters, how, rank, params, bytes, layers, text}."""
    names, values, method = check(peft_model, weights, how, density, name, svd_rank)
    rank = new_rank(peft_model, names, how, svd_rank)
    params = itemsize = layers = 0
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in peft_model.modules():
        if not isinstance(module, BaseTunerLayer):
            continue
        tensors = _adapter_tensors(module, names)
        if not tensors:
            continue
        layers += 1
        itemsize = itemsize or tensors[0].element_size()
        if rank is not None:
            fan_in, fan_out = _fans(module, names)
            params += rank * (fan_in + fan_out)
        else:  # IA3: one vector per layer, as big as the adapters'
            params += max(t.numel() for t in tensors)
    size = params * itemsize
    shown_rank = f", rank {rank}" if rank is not None else ""
    mix = " + ".join(f"{w:g} x {n}" for n, w in zip(names, values))
    text = (f"{name} = {how}({mix}){shown_rank}: {params:,} parameters in {layers} layers, "
            f"{format_bytes(size)}")
    return {"adapters": names, "weights": values, "how": how, "density": density, "name": name, "method": method,
            "rank": rank, "params": params, "bytes": size, "layers": layers, "text": text}


def run(peft_model: Any, weights: Any, how: str, density: float | None, name: str,
        svd_rank: int | None = None) -> dict[str, Any]:
    """Add the combined adapter with peft; returns the preview it was checked against."""
    shown = preview(peft_model, weights, how, density, name, svd_rank)
    tuner = peft_model.base_model
    if shown["method"] == "lora":
        options: dict[str, Any] = {"combination_type": how}
        if density is not None:
            options["density"] = density
        if svd_rank is not None:
            options["svd_rank"] = svd_rank
        tuner.add_weighted_adapter(shown["adapters"], shown["weights"], name, **options)
    else:
        tuner.add_weighted_adapter(shown["adapters"], shown["weights"], name)
    return shown


def _method(config: Any) -> str:
    return str(getattr(config.peft_type, "value", config.peft_type)).lower()


def _max_rank(config: Any) -> int:
    """As peft sizes the result: the largest of r and the rank_pattern's ranks."""
    return max(config.r, *config.rank_pattern.values()) if config.rank_pattern else config.r


def _adapter_tensors(module: Any, names: list[str]) -> list[Any]:
    out = []
    for attr in ("lora_A", "lora_embedding_A", "ia3_l"):
        holder = getattr(module, attr, None)
        for n in names:
            if holder is not None and n in holder:
                item = holder[n]
                out.append(item.weight if hasattr(item, "weight") else item)
    return out


def _fans(module: Any, names: list[str]) -> tuple[int, int]:
    """(inputs, outputs) of a LoRA layer: what lora_A reads and lora_B writes."""
    for n in names:
        if n in getattr(module, "lora_A", {}):
            a, b = module.lora_A[n].weight, module.lora_B[n].weight
            return int(a.shape[1]), int(b.shape[0])
        if n in getattr(module, "lora_embedding_A", {}):
            a, b = module.lora_embedding_A[n], module.lora_embedding_B[n]
            return int(a.shape[1]), int(b.shape[0])
    return 0, 0
