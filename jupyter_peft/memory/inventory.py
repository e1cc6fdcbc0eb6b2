"""What the trained model holds: every parameter and buffer, with dtype, size and whether it
trains.

Base tensors come from the whole base model built on `meta` (exact for any architecture,
cached per config); a quantized base's linear weights are counted packed, as bitsandbytes
stores them. peft's additions (adapters, prompt encoders, modules_to_save copies) are read off
the one-layer model with the plan applied, plus the second layer's share of the two-layer one
for each further adapted layer: peft's own layers, so DoRA's magnitudes, IA3's vectors or
LoKr's factors are counted as built.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from .settings import Setup
from .states import packed_bytes


@dataclass(frozen=True)
class Tensor:
    """One parameter (or buffer) of the model being trained."""
    name: str
    numel: int
    dtype: str
    shape: tuple[int, ...]
    trainable: bool
    nbytes: int
    adapter: bool = False
    """Added by peft (adapters, prompt encoders, modules_to_save copies)."""
    param: bool = True
    """A parameter (a buffer otherwise)."""


def inventory(setup: Setup, one: Any, two: Any, adapted_layers: int) -> list[Tensor]:
    """Every tensor of the trained model: base tensors from the whole base on meta; peft's
    additions from the one-layer model plus the second layer's share of the two-layer one
    for each further adapted layer."""
    base = _base_tensors(setup)
    if setup.full:
        return [_trainable(t) if t.param else t for t in base]
    first, second = _added(one), _added(two)
    per_layer = [t for name, t in second.items() if name not in first]
    out = _frozen(base, _trained_base(one))
    out.extend(first.values())
    extra = max(adapted_layers - 1, 0)
    out.extend(
        Tensor(t.name, t.numel * extra, t.dtype, t.shape, t.trainable, t.nbytes * extra, adapter=True)
        for t in per_layer
    )
    return out


def _trainable(t: Tensor) -> Tensor:
    return Tensor(t.name, t.numel, t.dtype, t.shape, True, t.nbytes, param=t.param)


def _frozen(tensors: list[Tensor], trained: set[str]) -> list[Tensor]:
    """Base tensors under a peft plan: frozen, but for the ones peft trains in place (biases)."""
    return [
        Tensor(
            t.name,
            t.numel,
            t.dtype,
            t.shape,
            t.param and _suffix_in(t.name, trained),
            t.nbytes,
            param=t.param,
        )
        for t in tensors
    ]


def _suffix_in(name: str, trained: set[str]) -> bool:
    plain = re.sub(r"\.\d+\.", ".*.", name)
    return plain in trained


def _trained_base(model: Any) -> set[str]:
    """Base parameters (by path with layer index as *) that peft leaves trainable."""
    out = set()
    adapter_names = _adapter_names(model)
    for name, p in model.named_parameters():
        if p.requires_grad and not _is_added(name, adapter_names):
            out.add(re.sub(r"\.\d+\.", ".*.", _base_name(name)))
    return out


_ADDED = re.compile(
    r"(lora_|ia3_|hada_|lokr_|oft_|boft_|vera_|fourierft|hra_|bone_|prompt_encoder|prefix|"
    r"modules_to_save|trainable_tokens|ln_tuning_layers|adaption_|lambda|magnitude)"
)


def _is_added(name: str, adapter_names: frozenset[str] = frozenset()) -> bool:
    """Whether the parameter `name` is one peft added: under one of the adapter attributes its
    tuner layers declare (`adapter_layer_names`: lora_A, hada_w1, bottleneck_down, ...), or,
    for wrappers that declare none, by the known prefixes."""
    if _ADDED.search(name):
        return True
    return any(part in adapter_names for part in name.split("."))


def _adapter_names(model: Any) -> frozenset[str]:
    """The adapter attribute names peft's tuner layers in `model` declare."""
    from .._compat import adapter_layer_types

    layer_type, _ = adapter_layer_types()
    names: set[str] = set()
    for module in model.modules():
        if isinstance(module, layer_type):
            names.update(getattr(module, "adapter_layer_names", ()))
    return frozenset(names)


def _base_name(name: str) -> str:
    name = re.sub(r"^base_model\.model\.", "", name)
    return name.replace(".base_layer.", ".")


def _added(model: Any) -> dict[str, Tensor]:
    """peft's additions to `model`, by name."""
    out = {}
    seen: set[int] = set()
    adapter_names = _adapter_names(model)
    for name, p in model.named_parameters(remove_duplicate=False):
        if not _is_added(name, adapter_names) or id(p) in seen:
            continue
        seen.add(id(p))
        dtype = str(p.dtype).replace("torch.", "")
        out[name] = Tensor(
            name,
            p.numel(),
            dtype,
            tuple(p.shape),
            p.requires_grad,
            p.numel() * p.element_size(),
            adapter=True,
        )
    return out


def _base_tensors(setup: Setup) -> list[Tensor]:
    return list(
        _base_tensors_cached(
            setup.key[0],
            setup.model_class,
            setup.dtype,
            setup.quantization,
            setup.double_quant,
            _ConfigRef(setup.config),
        )
    )


class _ConfigRef:
    """Carries a config into an lru_cache without taking part in its key."""
    def __init__(self, config: Any) -> None:
        self.config = config

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ConfigRef)


@functools.lru_cache(maxsize=16)
def _base_tensors_cached(
    config_json: str,
    model_class: str | None,
    dtype: str,
    quantization: str,
    double_quant: bool,
    ref: _ConfigRef,
) -> tuple[Tensor, ...]:
    """The base model's parameters and buffers on meta; linear weights inside the stack are
    packed when the base is quantized (bitsandbytes leaves the LM head alone)."""
    import torch.nn as nn

    from .build import build_base

    model = build_base(model_class, ref.config, dtype)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    packed = (
        {id(m.weight) for m in model.modules() if type(m) is nn.Linear and m is not head}
        if quantization != "none"
        else set()
    )
    out = []
    seen: set[int] = set()
    for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers()]:
        if id(t) in seen:
            continue
        seen.add(id(t))
        dtype_name = str(t.dtype).replace("torch.", "")
        nbytes = t.numel() * t.element_size()
        if id(t) in packed:
            nbytes = packed_bytes(t.numel(), quantization, double_quant, rows=t.shape[0])
            dtype_name = "nf4" if quantization == "4bit" else "int8"
        out.append(
            Tensor(name, t.numel(), dtype_name, tuple(t.shape), False, nbytes, param=isinstance(t, nn.Parameter))
        )
    return tuple(out)
