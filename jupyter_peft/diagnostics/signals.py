"""The adapted modules of a PeftModel and the numbers measured on each (torch; imported on use).

`adapted(peft_model)` finds every peft adapter layer (`BaseTunerLayer`) carrying the active
adapter and says how its effective weight delta can be measured:

- `lowrank`: LoRA and DoRA on linear layers: delta = scale * B @ A (out x in, rank r). Its norm,
  the norm of its change and its singular values come from the r x r factors, never the
  out x in matrix: ||B A||_F^2 = tr((B^T B)(A A^T)), and B A - B0 A0 = [B, B0] [A; -A0].
  DoRA's magnitude vector rescales the columns of W + B A afterwards; it is not in this delta.
- `dense`: any other layer with peft's `get_delta_weight(adapter)` (LoHa, LoKr, LoRA on convs
  and embeddings, ...): the delta is materialised when sampled; the start and the previous
  sample are kept on the CPU (in float32: as big as the adapted weights, twice).
- `grads`: a tuner layer without a weight delta (IA3's vectors, ...): gradient norms only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Module:
    """One adapted module: where it is, what it is, and the tensors its signals are read from."""
    path: str
    """The module's path in the base model (`model.layers.3.self_attn.q_proj`)."""
    group: str
    """Its role (`self_attn.q_proj`): a `ranks:` key of a plan."""
    layer: int | None
    kind: str
    """lowrank | dense | grads (see the module docstring)."""
    rank: int | None
    shape: tuple[int, int]
    """(out, in) of the base weight; (0, 0) when unknown."""
    layer_obj: Any = field(repr=False, default=None)
    params: list[Any] = field(repr=False, default_factory=list)
    """The module's trainable adapter parameters (of the active adapter)."""
    base_norm: float = math.nan
    adapter: str = "default"


def adapted(peft_model: Any) -> list[Module]:
    """Every adapter layer of `peft_model`'s active adapter, in model (forward) order."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    from .._compat import base_model
    from ..model.modelmap import inspect

    adapter = peft_model.active_adapter if hasattr(peft_model, "active_adapter") else "default"
    adapter = adapter[0] if isinstance(adapter, (list, tuple)) else adapter
    model_map = inspect(peft_model)
    out = []
    for path, layer in base_model(peft_model).named_modules():
        if not isinstance(layer, BaseTunerLayer):
            continue
        params = _adapter_params(layer, adapter)
        if not params:
            continue
        group = model_map.group_of(path)
        index = group.paths.index(path) if group is not None and path in group.paths else None
        layer_no = group.layers[index] if group is not None and index is not None else _layer_number(path)
        out.append(Module(
            path=path, group=group.role if group is not None else path.rsplit(".", 1)[-1], layer=layer_no,
            kind=_kind(layer, adapter), rank=_rank(layer, adapter), shape=_shape(layer),
            layer_obj=layer, params=params, base_norm=_base_norm(layer), adapter=adapter))
    return out


def _adapter_params(layer: Any, adapter: str) -> list[Any]:
    params: list[Any] = []
    for name in getattr(layer, "adapter_layer_names", ()):
        holder = getattr(layer, name, None)
        if holder is None or not hasattr(holder, "keys") or adapter not in holder.keys():
            continue
        item = holder[adapter]
        params.extend(item.parameters() if isinstance(item, torch.nn.Module) else [item])
    return [p for p in params if isinstance(p, torch.Tensor)]


def _kind(layer: Any, adapter: str) -> str:
    a = getattr(layer, "lora_A", None)
    if a is not None and adapter in a and isinstance(a[adapter], torch.nn.Linear):
        return "lowrank"
    if hasattr(layer, "get_delta_weight"):
        return "dense"
    return "grads"


def _rank(layer: Any, adapter: str) -> int | None:
    r = getattr(layer, "r", None)
    return int(r[adapter]) if isinstance(r, dict) and adapter in r else None


def _shape(layer: Any) -> tuple[int, int]:
    base = layer.get_base_layer()
    out_f, in_f = getattr(base, "out_features", None), getattr(base, "in_features", None)
    if out_f is None and hasattr(base, "weight") and base.weight.dim() >= 2:
        out_f, in_f = base.weight.shape[0], math.prod(base.weight.shape[1:])
    return (int(out_f or 0), int(in_f or 0))


def _layer_number(path: str) -> int | None:
    found = re.search(r"\.(\d+)\.", f".{path}.")
    return int(found.group(1)) if found else None


def _base_norm(layer: Any) -> float:
    """||W||_F of the frozen base weight (dequantized for 4/8-bit layers), once per run."""
    base = layer.get_base_layer()
    weight = getattr(base, "weight", None)
    if weight is None:
        return math.nan
    with torch.no_grad():
        if weight.dtype in (torch.uint8, torch.int8) or type(weight).__name__ in ("Params4bit", "Int8Params"):
            try:
                from peft.utils.integrations import dequantize_module_weight

                weight = dequantize_module_weight(base)
            except Exception:  # noqa: BLE001 - a backend we cannot dequantize: no relative update
                return math.nan
        return float(torch.linalg.vector_norm(weight.float()))


# ---- the delta ------------------------------------------------------------------------------


def factors(m: Module) -> tuple[Any, Any]:
    """(scale * B, A) of a low-rank module, detached (B: out x r, A: r x in)."""
    layer, adapter = m.layer_obj, m.adapter
    b = layer.lora_B[adapter].weight.detach().float()
    a = layer.lora_A[adapter].weight.detach().float()
    return b * float(layer.scaling[adapter]), a


def lowrank_norm(b: Any, a: Any) -> Any:
    """||B A||_F from the factors: sqrt(tr((B^T B)(A A^T))), both r x r (a 0-d tensor: no sync)."""
    return ((b.T @ b) * (a @ a.T)).sum().clamp_min(0).sqrt()


def lowrank_diff_norm(b1: Any, a1: Any, b0: Any, a0: Any) -> Any:
    """||B1 A1 - B0 A0||_F without the out x in matrices: [B1, B0] [A1; -A0] is rank 2r."""
    return lowrank_norm(torch.cat([b1, b0], dim=1), torch.cat([a1, -a0], dim=0))


def lowrank_singular_values(b: Any, a: Any) -> Any:
    """Singular values of B A (min(r, out, in) of them) from two thin QRs and an r x r SVD."""
    qb, rb = torch.linalg.qr(b)
    qa, ra = torch.linalg.qr(a.T)
    return torch.linalg.svdvals(rb @ ra.T)


def dense_delta(m: Module) -> Any:
    """The module's delta weight as peft computes it, as a 2-D float32 matrix (out x rest)."""
    with torch.no_grad():
        delta = m.layer_obj.get_delta_weight(m.adapter).detach().float()
    return delta.reshape(delta.shape[0], -1) if delta.dim() != 2 else delta


def singular_values(m: Module) -> Any | None:
    """The singular values of the module's delta now (None for a module without one)."""
    with torch.no_grad():
        if m.kind == "lowrank":
            return lowrank_singular_values(*factors(m))
        if m.kind == "dense":
            return torch.linalg.svdvals(dense_delta(m))
    return None


def effective_rank(sigma: Any) -> float:
    """Roy & Vetterli (2007): exp of the Shannon entropy of the normalised singular values.

    1 for a rank-one delta, k for k equal singular values, between them otherwise; NaN for a
    zero (or non-finite) delta, which has no direction to count."""
    s = torch.as_tensor(sigma, dtype=torch.float64).abs()
    total = float(s.sum())
    if not math.isfinite(total) or total <= 0:
        return math.nan
    p = s[s > 0] / total
    return float(torch.exp(-(p * p.log()).sum()))
