"""Running training steps on FakeTensors as a CUDA device would run them, and counting bytes.

The simulation (`simulate.py`) and the layer probe (`probe.py`) share these tools:

- `fused_attention`: a custom op with flash attention's memory behaviour (saves q, k, v, the
  output and the fp32 log-sum-exp; nothing of size s^2). CPU's SDPA would take its math path
  on fake tensors and materialise the s^2 scores, which no CUDA kernel does.
- `batch_rows(masked)`: the simulated batch's rows. Rows of one length (or one row, or packed rows
  under flash attention's varlen kernels) give transformers no mask: SDPA runs causal flash with
  GQA's few key/value heads. Padded rows (the trainer pads each batch to its longest row) and
  packed ones (one row of many sequences, told apart by their position ids) give it a boolean
  mask, and then (transformers' `use_gqa_in_sdpa`) keys and values are repeated to every query
  head, and CUDA's SDPA, which has no flash kernel with a mask, runs the memory-efficient kernel:
  it keeps the repeated keys and values and the mask converted to the query's dtype
  (`convert_boolean_attn_mask` in aten/src/ATen/native/transformers/attention.cpp), rows x s x s
  per layer.
- `CudaLike`: a TorchFunctionMode that routes `scaled_dot_product_attention` to that op and,
  under autocast, applies CUDA's fp32 op list (layer_norm, softmax, pow, exp, ...), which CPU
  autocast does not have. Matmuls are cast by CPU autocast itself, as CUDA's would be.
- `to_fake`: a model built on `meta` gets fake CPU parameters and buffers (ties kept).
- `PeakTracker`: PyTorch's MemTracker with the fixes from the notes (grad hooks only on
  parameters that train; only the global and phase peaks, not a deep copy per module call),
  recording every allocation and free in order for the caching allocator model (allocator.py).
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributed._tools.mem_tracker import MemTracker, _MemRefType
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from .._threads import gate

# ---- flash-style attention ---------------------------------------------------------------


def _scores(q: torch.Tensor, k: torch.Tensor, causal: bool, scale: float) -> torch.Tensor:
    """Attention scores in at least fp32 (b, a, s, t), keys repeated to the query heads."""
    work = torch.promote_types(q.dtype, torch.float32)  # the kernels accumulate in fp32
    k = k.repeat_interleave(q.shape[1] // k.shape[1], 1)
    scores = (q.to(work) @ k.to(work).transpose(-1, -2)) * scale
    if causal:
        s, t = q.shape[2], k.shape[2]
        future = torch.ones(s, t, dtype=torch.bool, device=q.device).triu(t - s + 1)
        scores = scores.masked_fill(future, float("-inf"))
    return scores


def _reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float) -> Any:
    """(out (b, a, s, d), lse (b, a, s) fp32) in plain ops."""
    scores = _scores(q, k, causal, scale)
    lse = scores.logsumexp(-1)
    v = v.repeat_interleave(q.shape[1] // v.shape[1], 1)
    return ((scores - lse[..., None]).exp() @ v.to(scores.dtype)).to(q.dtype), lse.float()


@torch.library.custom_op("jupyter_peft::fused_attention", mutates_args=())
def fused_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float, bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, lse) for q (b, a, s, d) and k, v (b, a_kv, t, d); out laid out (b, s, a, d) like flash's.
    `bias`: a masked batch's mask in the query's dtype (b, 1, s, t), kept for backward as the
    memory-efficient kernel keeps it (its values, all zeros here, do not change the answer)."""
    out, lse = _reference(q, k, v, causal, scale)
    return out.transpose(1, 2).contiguous().transpose(1, 2), lse


@fused_attention.register_fake
def _(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float, bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    b, a, s, d = q.shape
    out = q.new_empty((b, s, a, v.shape[-1])).transpose(1, 2)
    return out, q.new_empty((b, a, s), dtype=torch.float32)


@torch.library.custom_op("jupyter_peft::fused_attention_backward", mutates_args=())
def fused_attention_backward(
    grad: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv), recomputing the probabilities from q and k as flash's backward does."""
    scores = _scores(q, k, causal, scale)
    probs = (scores - scores.logsumexp(-1, keepdim=True)).exp()
    rep = q.shape[1] // k.shape[1]
    v_full = v.repeat_interleave(rep, 1).to(probs.dtype)
    g = grad.to(probs.dtype)
    d_probs = g @ v_full.transpose(-1, -2)
    d_scores = probs * (d_probs - (d_probs * probs).sum(-1, keepdim=True)) * scale
    dq = d_scores @ k.repeat_interleave(rep, 1).to(probs.dtype)
    dk = (d_scores.transpose(-1, -2) @ q.to(probs.dtype)).unflatten(1, (k.shape[1], rep)).sum(2)
    dv = (probs.transpose(-1, -2) @ g).unflatten(1, (v.shape[1], rep)).sum(2)
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


@fused_attention_backward.register_fake
def _(grad: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float) -> Any:
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _attention_setup(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    q, k, v, causal, scale, *rest = inputs
    bias = rest[0] if rest else None
    kept = (q, k, v, *output) if bias is None else (q, k, v, *output, bias)
    ctx.save_for_backward(*kept)  # what the kernels keep: inputs, output, log-sum-exp (and the mask)
    ctx.causal, ctx.scale = causal, scale


def _attention_backward(ctx: Any, grad: torch.Tensor, _grad_lse: Any) -> Any:
    q, k, v = ctx.saved_tensors[:3]
    dq, dk, dv = fused_attention_backward(grad, q, k, v, ctx.causal, ctx.scale)
    return dq, dk, dv, None, None, None


fused_attention.register_autograd(_attention_backward, setup_context=_attention_setup)


def _sdpa(
    q: Any,
    k: Any,
    v: Any,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """scaled_dot_product_attention as a CUDA fused kernel: autocast to the lower precision, no s^2
    (but a masked batch's mask, see the module docstring)."""
    if torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
        q, k, v = (t.to(dtype) for t in (q, k, v))
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    bias = None
    if _MASKED.get() and attn_mask is None:
        if k.shape[1] != q.shape[1]:  # transformers' repeat_kv: with a mask, no GQA in SDPA
            k, v = _repeat_kv(k, q.shape[1] // k.shape[1]), _repeat_kv(v, q.shape[1] // v.shape[1])
        # the mask in the query's dtype, its last dim padded to a multiple of 16 (preprocess_mask)
        t = k.shape[2]
        bias = q.new_zeros((q.shape[0], 1, q.shape[2], -(-t // 16) * 16))[..., :t]
        is_causal = False  # the mask carries causality
    out, _ = fused_attention(q, k, v, bool(is_causal), float(scale), bias)
    return out


def _repeat_kv(x: torch.Tensor, n: int) -> torch.Tensor:
    b, heads, s, d = x.shape
    return x[:, :, None].expand(b, heads, n, s, d).reshape(b, heads * n, s, d)


# ---- CUDA's autocast policy on CPU -------------------------------------------------------


def _fp32_ops() -> frozenset[Any]:
    """Functions CUDA autocast runs in fp32 (its `fp32` and `fp32_set_opt_dtype` lists, the
    ones models call); CPU autocast leaves these in the input's dtype."""
    T = torch.Tensor
    return frozenset(
        [
            F.layer_norm,
            torch.layer_norm,
            F.group_norm,
            torch.group_norm,
            torch.pow,
            T.pow,
            T.__pow__,
            torch.exp,
            T.exp,
            torch.log,
            T.log,
            torch.rsqrt,
            T.rsqrt,
            torch.expm1,
            torch.log1p,
            torch.reciprocal,
            T.reciprocal,
            torch.logsumexp,
            T.logsumexp,
            F.softmax,
            torch.softmax,
            T.softmax,
            F.log_softmax,
            torch.log_softmax,
            T.log_softmax,
            torch.cumsum,
            T.cumsum,
            torch.prod,
            torch.norm,
            T.norm,
            F.softplus,
            F.cosine_similarity,
            F.cross_entropy,
            F.nll_loss,
            F.mse_loss,
            F.l1_loss,
            F.smooth_l1_loss,
            F.kl_div,
            F.binary_cross_entropy_with_logits,
        ]
    )


_LOW = (torch.bfloat16, torch.float16)


def _up(x: Any) -> Any:
    return x.float() if isinstance(x, torch.Tensor) and x.dtype in _LOW else x


class CudaLike(TorchFunctionMode):
    """Makes CPU fake execution allocate what CUDA execution would (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._fp32 = _fp32_ops()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            return _sdpa(*args, **kwargs)
        if func in self._fp32 and torch.is_autocast_enabled("cpu"):
            args = tuple(_up(a) for a in args)
            kwargs = {k: _up(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


def checkpoint_like_cuda(function: Any, *args: Any, **kwargs: Any) -> Any:
    """transformers' checkpoint function (non-reentrant), recomputing under `CudaLike`: backward
    runs outside the mode (a mode is off inside its own handlers, and `backward` is one)."""
    from torch.utils.checkpoint import checkpoint

    def run(*a: Any, **k: Any) -> Any:
        with CudaLike():
            return function(*a, **k)

    return checkpoint(run, *args, use_reentrant=False, **kwargs)


@contextlib.contextmanager
def cuda_like(autocast: torch.dtype | None) -> Iterator[None]:
    """CUDA-like execution; `autocast` is the mixed-precision dtype (None: no autocast)."""
    with CudaLike(), torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        yield


_MASKED: contextvars.ContextVar[bool] = contextvars.ContextVar("jupyter_peft_masked", default=False)
_FAKE_ROWS: contextvars.ContextVar[bool] = contextvars.ContextVar("jupyter_peft_fake_rows", default=False)


@contextlib.contextmanager
def batch_rows(masked: bool = False) -> Iterator[None]:
    """The simulated batch, `masked` (padded or packed rows) or not (see the module docstring).
    Without an attention mask or cache, transformers reads the position ids to find packed
    sequences; fake ids cannot be read, so it would build a full s x s mask: say there are none.
    A masked batch's mask is then made by `_sdpa`, as CUDA would keep it."""
    from transformers import masking_utils

    _fake_grouped_mm_in_bf16_only()
    gate(masking_utils, "find_packed_sequence_indices", _FAKE_ROWS, lambda original, position_ids: None)
    token, rows = _MASKED.set(bool(masked)), _FAKE_ROWS.set(True)
    try:
        yield
    finally:
        _FAKE_ROWS.reset(rows)
        _MASKED.reset(token)


def _fake_grouped_mm_in_bf16_only() -> None:
    """transformers runs MoE experts through `grouped_mm` where it can; on fake tensors of
    another dtype than bf16 its meta kernel refuses (the CUDA kernel's dtypes), so there the
    experts take transformers' own loop of matmuls instead. Real tensors are asked as before."""
    try:
        from transformers.integrations import moe
    except ImportError:
        return
    if getattr(moe, "_can_use_grouped_mm", None) is None:
        return
    from torch._subclasses.fake_tensor import FakeTensor

    def can(original: Any, input: Any, weight: Any, offs: Any) -> bool:
        if isinstance(weight, FakeTensor) and weight.dtype != torch.bfloat16:
            return False
        return original(input, weight, offs)

    gate(moe, "_can_use_grouped_mm", _FAKE_ROWS, can)


# ---- fake parameters ---------------------------------------------------------------------


def to_fake(model: nn.Module, mode: Any) -> None:
    """Give every meta parameter and buffer a fake CPU twin of the same shape and dtype (made
    under `mode`, a FakeTensorMode; under a null context they are real, uninitialised)."""
    twins: dict[int, Any] = {}
    with mode:
        for module in model.modules():
            for name, p in list(module._parameters.items()):
                if p is None:
                    continue
                if id(p) not in twins:
                    fresh = torch.empty(p.shape, dtype=p.dtype, device="cpu")
                    twins[id(p)] = nn.Parameter(fresh, requires_grad=p.requires_grad)
                module._parameters[name] = twins[id(p)]
            for name, b in list(module._buffers.items()):
                if b is not None:
                    twins.setdefault(id(b), torch.empty(b.shape, dtype=b.dtype, device="cpu"))
                    module._buffers[name] = twins[id(b)]
        # peft's prompt learning keeps the virtual token ids as a plain tensor dict
        tokens = getattr(model, "prompt_tokens", None)
        if isinstance(tokens, dict):
            for name, t in tokens.items():
                tokens[name] = torch.zeros(t.shape, dtype=t.dtype, device="cpu")


# ---- trackers ----------------------------------------------------------------------------


class ByteCounter(TorchDispatchMode):
    """The bytes of storages that ops create inside it, while they live. `timeline` holds the
    count after every op of the current phase (`start_phase` begins one). Tensors made before
    it are not counted. Several times cheaper per op than MemTracker, for the probe's runs."""

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.timeline: list[int] = []
        self._seen: set[int] = set()

    def start_phase(self) -> None:
        self.timeline = [self.current]

    def ignore(self, tensors: Any) -> None:
        """Storages made before (parameters, inputs): views of them are not new memory."""
        for t in tensors:
            self._seen.add(t.untyped_storage()._cdata)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self._count(t.untyped_storage())
        self.timeline.append(self.current)
        return out

    def _count(self, storage: Any) -> None:
        key = storage._cdata
        if key in self._seen:
            return
        size = storage.nbytes()
        self._seen.add(key)
        self.current += size
        weakref.finalize(storage, self._free, key, size)

    def _free(self, key: int, size: int) -> None:
        self._seen.discard(key)
        self.current -= size


# ---- the tracker -------------------------------------------------------------------------


class PeakTracker(MemTracker):
    """MemTracker keeping the global peak and a resettable phase peak, nothing per module.

    `exclude` names kinds (PARAM, GRAD, ...) that the peaks and `counted` leave out."""

    def __init__(self, exclude: tuple[Any, ...] = ()) -> None:
        super().__init__()
        self._only_this_thread()
        self.exclude = exclude
        self.phase_peak = 0
        self._peak = 0
        self.events: list[tuple[int, int]] = []
        """Every storage made and freed, in order: (key, bytes), bytes 0 for the free of key;
        what `allocator.replay` turns into reserved memory."""
        self.step_start = 0
        """Index in `events` where the training step began (before it: weights, optimizer state)."""
        self.marks: list[tuple[int, str, int]] = []
        """(index in `events`, "forward" | "forward end" | "backward", layer) as each watched
        layer's forward begins and ends and its backward begins (`watch`); a forward recomputed
        for checkpointing is not marked."""
        self._watched: dict[int, int] = {}

    def watch(self, layers: Any) -> None:
        """Mark in `events` where each of `layers` (the decoder layers, in order) begins its
        forward and its backward (stretch.py cuts a short model's step into layers with it)."""
        self._watched = {id(m): i for i, m in enumerate(layers)}

    def _mark(self, module: nn.Module, phase: str) -> None:
        index = self._watched.get(id(module))
        if index is not None:
            if phase != "forward end":
                # Python's cycle collector frees what a layer left in reference cycles (peft's DoRA
                # leaves some) every few hundred objects, about a layer's worth: collect the young
                # generations as each layer begins, the same in every run (a short model's, the whole)
                gc.collect(1)
            self.marks.append((len(self.events), phase, index))

    def _only_this_thread(self) -> None:
        """torch's ModTracker hooks every module of the process (global forward hooks), so a
        simulation on the studio's background thread would also fire on the user's own model
        running on another thread (and raise "The Module hierarchy tracking is wrong" there).
        Its hooks act only on the thread that made this tracker; dispatch modes are per thread."""
        import threading

        mods, owner = self._mod_tracker, threading.get_ident()
        pre, post = mods._fw_pre_hook, mods._fw_post_hook

        def pre_hook(mod: Any, args: Any) -> Any:
            return pre(mod, args) if threading.get_ident() == owner else None

        def post_hook(mod: Any, args: Any, output: Any) -> Any:
            return post(mod, args, output) if threading.get_ident() == owner else None

        mods._fw_pre_hook, mods._fw_post_hook = pre_hook, post_hook

    def _update_snap(self, u_type: Any, winfo: Any, old_mem_consumed: Any = None, old_reftype: Any = None) -> None:
        super()._update_snap(u_type, winfo, old_mem_consumed, old_reftype)
        kind = u_type.name
        if kind == "ADD":
            self.events.append((id(winfo), winfo.mem_consumed))
        elif kind == "DEL":
            self.events.append((id(winfo), 0))
        elif kind == "SIZE":  # a resize_: the allocator frees the old block and takes a new one
            self.events.append((id(winfo), 0))
            if winfo.mem_consumed:
                self.events.append((id(winfo), winfo.mem_consumed))

    def mark_step(self) -> None:
        """The training step starts now (what came before is resident from step to step)."""
        self.step_start = len(self.events)

    @property
    def counted(self) -> int:
        """Bytes alive now, excluded kinds left out."""
        return sum(snap["Total"] - sum(snap.get(k, 0) for k in self.exclude) for snap in self._curr_mem_snap.values())

    @property
    def peak(self) -> int:
        return self._peak

    def peak_breakdown(self) -> dict[str, int]:
        """Bytes by kind (parameter, buffer, gradient, activation, temp, optstate) at the peak."""
        out: dict[str, int] = {}
        for snap in self._peak_mem_snap.values():
            for key, value in snap.items():
                if key != "Total" and key not in self.exclude:
                    name = str(getattr(key, "value", key)).lower()
                    out[name] = out.get(name, 0) + value
        return out

    def start_phase(self) -> None:
        self.phase_peak = self.counted

    def _update_peak_stats(self, peak_state: Any) -> None:
        # the stock version walks every module on every op (quadratic); keep the global peak
        now = self.counted
        if now > self._peak:
            self._peak = now
            self._peak_mem_snap = {dev: dict(snap) for dev, snap in self._curr_mem_snap.items()}
        self.phase_peak = max(self.phase_peak, now)

    def _track_module_params_and_buffers(self, module: nn.Module, install_grad_hooks: bool = True) -> tuple[int, int]:
        # the stock version hooks every parameter, and frozen ones cannot take a grad hook
        for p in module.parameters():
            self._update_and_maybe_create_winfos(p, _MemRefType.PARAM)
            if p.grad is not None:
                self._update_and_maybe_create_winfos(p.grad, _MemRefType.GRAD)
            if install_grad_hooks and p.requires_grad and self._param_to_grad_hook_handles.get(p) is None:
                self._param_to_grad_hook_handles[p] = (
                    p.register_hook(self._grad_hook),
                    p.register_post_accumulate_grad_hook(self._accumulated_hook),
                )
        for b in module.buffers():
            self._update_and_maybe_create_winfos(b, _MemRefType.BUFFER)
        return 0, 0

    def _grad_hook(self, grad: torch.Tensor) -> None:
        self._update_and_maybe_create_winfos(grad, _MemRefType.GRAD)

    def _accumulated_hook(self, param: torch.Tensor) -> None:
        if param.grad is not None:
            self._grad_hook(param.grad)

    # Per-module snapshots are not needed: only note activation-checkpoint recomputation
    # (it decides ACT vs TEMP) and track each module's parameters once.
    def _pre_fw_hook(self, module: nn.Module, inputs: Any) -> None:
        if self._watched and not self._mod_tracker.is_bw:
            self._mark(module, "forward")
        if module not in self.memory_tracking:
            self._track_module_params_and_buffers(module)
            self.memory_tracking[module] = True
        elif self._mod_tracker.is_bw and self._ac_mod is None:
            import weakref

            self._ac_mod, self._in_ac = weakref.ref(module), True

    def _post_fw_hook(self, module: nn.Module, inputs: Any, outputs: Any) -> None:
        if self._watched and not self._mod_tracker.is_bw:
            self._mark(module, "forward end")
        if self._mod_tracker.is_bw and self._ac_mod is not None and self._ac_mod() is module:
            self._ac_mod, self._in_ac = None, False

    def _pre_bw_hook(self, module: nn.Module, args: Any) -> None:
        if self._watched:
            self._mark(module, "backward")

    def _post_bw_hook(self, module: nn.Module, args: Any) -> None:
        return None
