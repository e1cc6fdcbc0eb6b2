"""`merge(peft_model)`: the adapter folded into the base weights, as a plain transformers model.

A full-precision base: peft's `merge_and_unload` on a copy (the PeftModel keeps working), or
in place with `inplace=True`. A 4-bit or 8-bit base cannot hold merged weights: its layers are
dequantized with bitsandbytes (the very weights the adapter was trained against) into a new
full-precision model, and the adapter is merged into that. `reload_base=True` instead reloads
the original checkpoint in full precision (the weights before quantization).

The memory the merged copy needs is computed before anything is built and printed; when the
device has less free, nothing is done and a PlanError says so.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

from .._compat import dequantize_int8, unwrap_layer
from .._errors import PlanError
from .._format import format_bytes
from ..quant.kbit import quantization_of
from . import adapt
from .modelmap import quant_state_bytes, tensor_bytes


def merge(
    peft_model: Any,
    *,
    dtype: Any = None,
    device: Any = None,
    inplace: bool = False,
    reload_base: bool | str = False,
    adapter: str | None = None,
    verbose: bool = True,
) -> Any:
    """The base model with `adapter` (default: the active one) merged in, as a plain model.

    dtype: of the merged weights (default: the checkpoint's, `config.dtype`). device: where the
    copy goes (default: where the base is). reload_base: True (the folder the base was loaded
    from) or a path: merge into that full-precision checkpoint instead of dequantizing.
    """
    adapter = _check_mergeable(peft_model, adapter)
    base = peft_model.get_base_model()
    quant = quantization_of(base)
    if inplace:
        return _merge_in_place(peft_model, base, quant, adapter, dtype, verbose)
    dtype = _dtype(dtype, base)
    device = _single_device(base, device)
    needed = memory_needed(peft_model, dtype, adapter)
    free = _check_free(needed, device)
    if verbose:
        print(_note(base, quant, dtype, device, needed, free))
    if reload_base:
        plain = _reload(base, reload_base, dtype, device)
    else:
        plain = _plain_copy(base, dtype, device)
    return _merge_into(plain, peft_model, adapter)


def memory_needed(peft_model: Any, dtype: Any = None, adapter: str | None = None) -> int:
    """Bytes the merged full-precision copy takes: every base weight at `dtype` (buffers as they
    are), plus the adapter's own weights, which exist beside it until they are merged."""
    import torch
    from peft import get_peft_model_state_dict

    base = peft_model.get_base_model()
    itemsize = torch.empty((), dtype=_dtype(dtype, base)).element_size()
    total = 0
    for _, tensor, is_param, _layer in _unique(_base_tensors(base)):
        numel = _logical_numel(tensor)
        total += numel * itemsize if is_param and _is_float(tensor) else numel * tensor.element_size()
    name = adapter or peft_model.active_adapter
    weights = get_peft_model_state_dict(peft_model, _tensors(peft_model), adapter_name=name).values()
    return total + sum(t.numel() * t.element_size() for t in weights)


# ---- checks ------------------------------------------------------------------------------


def _check_mergeable(peft_model: Any, adapter: str | None) -> str:
    from peft import PeftModel

    if not isinstance(peft_model, PeftModel):
        raise PlanError(
            f"expected a PeftModel (what jp.apply or %%peft returns), got {type(peft_model).__name__}",
            key="peft_model",
        )
    name = adapter or peft_model.active_adapter
    if name not in peft_model.peft_config:
        raise PlanError(f"no adapter named {name!r}", key="adapter", value=name, choices=list(peft_model.peft_config))
    config = peft_model.peft_config[name]
    method = str(getattr(config.peft_type, "value", config.peft_type)).lower()
    if config.is_prompt_learning:
        raise PlanError(
            f"{method} learns virtual tokens, not weight changes: there is nothing to "
            "merge. Keep the PeftModel, or save the adapter with save_pretrained",
            key="method",
        )
    refusal = getattr(type(peft_model.base_model), "merge_refusal", None)  # non-linear tuners (tuners/)
    if refusal:
        raise PlanError(refusal, key="method")
    if not hasattr(peft_model.base_model, "merge_and_unload"):
        raise PlanError(f"peft cannot merge {method} adapters", key="method")
    return name


def _single_device(base: Any, device: Any) -> Any:
    import torch

    if device is not None:
        return torch.device(device)
    devices = {p.device for p in base.parameters()}
    if len(devices) > 1:
        raise PlanError(
            f"this model is spread over {', '.join(sorted(map(str, devices)))}: pass device='cpu' (or one GPU) "
            "for the merged copy",
            key="device",
        )
    return devices.pop()


def _check_free(needed: int, device: Any) -> int | None:
    """The free bytes on `device` (None if unknown); PlanError when `needed` is more."""
    free = _free_bytes(device)
    if free is not None and needed > free:
        raise PlanError(
            f"the merged copy needs {format_bytes(needed)} but {device} has {format_bytes(free)} free; "
            "merge onto another device (device='cpu'), in a smaller dtype, or free memory first",
            key="device",
        )
    return free


def _free_bytes(device: Any) -> int | None:
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        import psutil  # an accelerate dependency

        return int(psutil.virtual_memory().available)
    return None


def _note(base: Any, quant: str, dtype: Any, device: Any, needed: int, free: int | None) -> str:
    held = sum(_stored_bytes(t) for _, t, _, _ in _unique(_base_tensors(base)))
    what = f"the {quant} model" if quant != "none" else "the adapted model"
    room = f", {format_bytes(free)} free there" if free is not None else ""
    return (
        f"merge: a {str(dtype).removeprefix('torch.')} copy of {type(base).__name__} needs {format_bytes(needed)} "
        f"on {device} ({needed:,} bytes{room}); {what} keeps its {format_bytes(held)}"
    )


# ---- building the full-precision base ----------------------------------------------------


def _base_tensors(module: Any, prefix: str = "") -> Iterator[tuple[str, Any, bool, Any]]:
    """(path, tensor, is_parameter, owning layer) of the base model's own weights and buffers,
    under the paths of the plain model (adapter layers and wrappers are looked through)."""
    layer = unwrap_layer(module)
    for name, tensor in layer._parameters.items():
        if tensor is not None:
            yield prefix + name, tensor, True, layer
    for name, tensor in layer._buffers.items():
        if tensor is not None:
            yield prefix + name, tensor, False, layer
    for name, child in layer._modules.items():
        if child is not None:
            yield from _base_tensors(child, f"{prefix}{name}.")


def _unique(items: Iterator[tuple[str, Any, bool, Any]]) -> Iterator[tuple[str, Any, bool, Any]]:
    seen: set[int] = set()
    for item in items:
        if id(item[1]) not in seen:  # tied weights count once
            seen.add(id(item[1]))
            yield item


def _plain_copy(base: Any, dtype: Any, device: Any) -> Any:
    """A new model of the base's class, built on the meta device (no allocation, no random init),
    whose tensors are the base's: dequantized, cast to `dtype`, on `device`. Tied weights stay tied."""
    import torch

    config = copy.deepcopy(base.config)
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    config.dtype = dtype
    with torch.device("meta"):
        plain = type(base)(config)
    made: dict[int, Any] = {}
    for path, tensor, is_param, layer in _base_tensors(base):
        owner_path, _, leaf = path.rpartition(".")
        owner = plain.get_submodule(owner_path)
        new = made.get(id(tensor))
        if new is None:
            new = made[id(tensor)] = _converted(tensor, layer, dtype, device, is_param)
        slots = owner._parameters if is_param else owner._buffers
        if is_param and type(owner).__name__ == "Conv1D" and _is_bnb(tensor):
            # transformers quantizes GPT-2's Conv1D (in, out) into a bnb Linear (out, in)
            new = torch.nn.Parameter(new.data.t().contiguous(), requires_grad=False)
        if slots[leaf] is not None and slots[leaf].shape != new.shape:  # never a silently wrong layout
            raise RuntimeError(f"merge: {path} is {tuple(new.shape)}, the model wants {tuple(slots[leaf].shape)}")
        slots[leaf] = new
    left = [n for n, t in [*plain.named_parameters(), *plain.named_buffers()] if t.is_meta]
    if left:  # a tensor the walk did not see: a bug here, never silently random weights
        raise RuntimeError(f"merge: no source for {left[:5]}")
    if getattr(base, "generation_config", None) is not None:
        plain.generation_config = copy.deepcopy(base.generation_config)
    return plain.eval()


def _converted(tensor: Any, layer: Any, dtype: Any, device: Any, is_param: bool) -> Any:
    """One tensor for the plain model: bitsandbytes weights dequantized; never sharing storage
    with the source (merging must not touch the adapted model)."""
    import torch

    if _is_bnb(tensor):
        value = _dequantized(tensor, layer)
    else:
        value = tensor.detach()
    target_dtype = dtype if is_param and _is_float(value) else value.dtype
    out = value.to(device=device, dtype=target_dtype)
    if out.data_ptr() == tensor.data_ptr():
        out = out.clone()
    return torch.nn.Parameter(out, requires_grad=False) if is_param else out


def _dequantized(weight: Any, layer: Any) -> Any:
    """A bitsandbytes weight in the dtype it was quantized from, without changing the layer."""
    if type(weight).__name__ == "Params4bit":
        import bitsandbytes.functional as F

        data, state = weight.data, weight.quant_state
        if getattr(state, "packing_format_for_cpu", False):
            # bitsandbytes repacks 4-bit weights in place for CPU inference; undo that on a copy
            data, state = F._convert_weight_packed_for_cpu_inverse(data.clone(), copy.deepcopy(state))
        return F.dequantize_4bit(data, state)

    return dequantize_int8(weight, layer.state)  # 8-bit: int8 rows x their scales


def _reload(base: Any, reload_base: bool | str, dtype: Any, device: Any) -> Any:
    """The base's own full-precision checkpoint, loaded again."""
    path = reload_base if isinstance(reload_base, str) else getattr(base, "name_or_path", "")
    if not path:
        raise PlanError("this model does not say where it was loaded from: pass reload_base='path'", key="reload_base")
    try:
        plain = type(base).from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as err:
        raise PlanError(f"cannot reload {path!r}: {err}", key="reload_base", value=path) from None
    if quantization_of(plain) != "none":
        raise PlanError(f"{path!r} holds a quantized checkpoint; reload_base needs full precision", key="reload_base")
    return plain.to(device).eval()


def _merge_into(plain: Any, peft_model: Any, adapter: str) -> Any:
    """The trained adapter, put on `plain` with peft and merged into its weights."""
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    config = copy.deepcopy(peft_model.peft_config[adapter])
    fresh = get_peft_model(plain, config, adapter_name=adapter)
    state = get_peft_model_state_dict(peft_model, _tensors(peft_model), adapter_name=adapter)
    result: Any = set_peft_model_state_dict(fresh, state, adapter_name=adapter)
    if result.unexpected_keys:
        raise RuntimeError(f"merge: adapter weights without a place: {result.unexpected_keys[:5]}")
    merged = fresh.merge_and_unload(safe_merge=True, adapter_names=[adapter])
    for param in merged.parameters():
        param.requires_grad_(True)  # a plain model, as from_pretrained gives it
    return merged.eval()


def _merge_in_place(peft_model: Any, base: Any, quant: str, adapter: str, dtype: Any, verbose: bool) -> Any:
    if quant != "none":
        needed = memory_needed(peft_model, dtype, adapter)
        raise PlanError(
            f"a {quant} base cannot hold merged weights in place: jp.merge(peft_model) returns a full-precision "
            f"copy (it needs {format_bytes(needed)})",
            key="inplace",
        )

    merged = peft_model.merge_and_unload(safe_merge=True, adapter_names=[adapter])
    adapt.forget(base)  # the adapters are gone: apply must not find the old PeftModel
    if dtype is not None:
        merged = merged.to(_dtype(dtype, base))
    if verbose:
        print(f"merge: {adapter!r} merged into {type(base).__name__} in place (no extra memory)")
    return merged


# ---- small helpers -----------------------------------------------------------------------


def _tensors(model: Any) -> dict[str, Any]:
    """state_dict() by name, without calling it: bitsandbytes' state_dict repacks CPU 4-bit
    weights in place (lossily), which would change the adapted model's outputs."""
    out = dict(model.named_parameters(remove_duplicate=False))
    out.update(model.named_buffers(remove_duplicate=False))
    return out


def _dtype(dtype: Any, base: Any) -> Any:
    """A torch dtype from a name or dtype; default the checkpoint's (float32 if unknown)."""
    import torch

    if dtype is None:
        dtype = getattr(base.config, "dtype", None)
        dtype = dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else torch.float32
    if isinstance(dtype, str):
        found = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(found, torch.dtype) or not found.is_floating_point:
            raise PlanError(f"{dtype!r} is not a float dtype", key="dtype", choices=["bfloat16", "float16", "float32"])
        dtype = found
    return dtype


def _is_bnb(tensor: Any) -> bool:
    return type(tensor).__name__ in ("Params4bit", "Int8Params")


def _is_float(tensor: Any) -> bool:
    return bool(tensor.dtype.is_floating_point) or _is_bnb(tensor)


def _logical_numel(tensor: Any) -> int:
    """Elements of the weight as the model sees it (a 4-bit weight is stored packed)."""
    shape = getattr(getattr(tensor, "quant_state", None), "shape", None)
    return int(math.prod(shape)) if shape is not None else int(tensor.numel())


def _stored_bytes(tensor: Any) -> int:
    qs = getattr(tensor, "quant_state", None)
    return tensor_bytes(tensor) + (quant_state_bytes(qs) if qs is not None else 0)


