"""`method="analytic"`: the instant estimate, composed phase by phase from the Profile.

A step's memory is the model states (weights, adapters, optimizer state; `states.py`) plus,
at each moment, activations, gradients and temporaries. The peak is the largest of:

    forward       the top layer's forward, every layer below keeping its activations
                  (a plain loop also holds its outputs' logits all step: setup.loop)
    head          the LM head and loss, forward: all activations plus the head's buffers
    loss backward all activations, what the loss saved, and its gradient buffers
    layers        going down the stack: activations still held, gradients made so far
    optimizer     every gradient and the step's temporaries

with L layers keeping A bytes each: activations(L) = activations(1) + (L - 1) A, A and the
one-layer numbers linear in tokens (from the probe). The head is a formula, per loss:

    full     logits b s V in the compute dtype, an fp32 upcast, fp32 log-softmax kept for
             backward; backward makes two fp32 b s V gradients (nll, log-softmax) and a cast
    chunked  TRL's fused head: a copy of the hidden states, a 4096 x 32768 logits tile in the
             compute dtype, fp32 per-token statistics; backward an fp32 hidden gradient (and an
             fp32 head-weight gradient when the head trains) plus the tile again
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .probe import Profile, profile
from .reserved import state_sizes
from .settings import DTYPES, Setup
from .states import DTYPE_BYTES, optimizer_bytes

_TILE_TOKENS, _TILE_VOCAB = 4096, 32768  # trl.kernels.chunked_logprob


@dataclass
class Composed:
    """The analytic answer: model states, the peak phase and what it holds."""

    peak_bytes: int
    phase: str
    breakdown: dict[str, int] = field(default_factory=dict)
    paged_bytes: int = 0
    phases: dict[str, int] = field(default_factory=dict)
    """Peak of every phase (tensor bytes), to show where the step is tight."""
    state_sizes: list[int] = field(default_factory=list, repr=False)
    """The resident tensors one by one (reserved.state_sizes), for the allocator model."""


def analytic(setup: Setup) -> Composed:
    """Compose the instant estimate for `setup` (see the module docstring)."""
    prof = profile(setup)
    states = _states(setup, prof)
    fixed = {k: states[k] for k in ("weights", "adapters", "optimizer", "reference model") if states.get(k)}
    if setup.loop == "plain" and prof.vocab:  # the outputs a plain loop holds (step.previous_outputs)
        fixed["logits and loss"] = held_logits(setup, prof)
    if setup.keep_gradients:  # resident all step long, so no phase adds them
        fixed["gradients"] = states["grads"]
        states.update(grads=0, layer_grads=0, head_grad=0)
    moments = _moments(setup, prof, states)
    totals = {name: sum(fixed.values()) + sum(parts.values()) for name, parts in moments.items()}
    phase = max(totals, key=lambda k: totals[k])
    breakdown = dict(fixed)
    for k, v in moments[phase].items():
        if v > 0:
            breakdown[k] = breakdown.get(k, 0) + v
    return Composed(
        int(totals[phase]),
        phase,
        {k: int(v) for k, v in breakdown.items()},
        int(states["paged"]),
        {k: int(v) for k, v in totals.items()},
        state_sizes(setup, prof),
    )


# ---- model states ------------------------------------------------------------------------


def _states(setup: Setup, prof: Profile) -> dict[str, float]:
    weights = sum(t.nbytes for t in prof.tensors if not t.adapter)
    adapters = sum(t.nbytes for t in prof.tensors if t.adapter)
    trainable = [t for t in prof.tensors if t.trainable]
    opt = optimizer_bytes(setup.optimizer, ((t.numel, t.dtype, t.shape) for t in trainable))
    grads = sum(t.numel * DTYPE_BYTES[t.dtype] for t in trainable)
    layer_grads = sum(t.numel * DTYPE_BYTES[t.dtype] for t in trainable if _in_layer(t.name)) / max(prof.layers, 1)
    head_grad = _head_bytes(prof) if prof.head_trains else 0
    # a trained embedding tied to the head gets its second gradient last: the new one and their sum
    embedding_temp = 2 * head_grad if prof.tied else 0
    out = {
        "weights": weights,
        "adapters": adapters,
        "optimizer": opt.resident,
        "paged": opt.paged,
        "step_temp": opt.step_temp,
        "grads": grads,
        "layer_grads": layer_grads,
        "head_grad": head_grad,
        "embedding_temp": embedding_temp,
    }
    if setup.full and setup.trainer in ("dpo", "kto"):
        out["reference model"] = weights  # a frozen copy for the reference pass
    return out


def held_logits(setup: Setup, prof: Profile) -> int:
    """Bytes of the logits a plain loop's `outputs` hold between steps: the step before's
    during the forward, this step's after it (`outputs = model(**batch)`)."""
    return setup.rows * setup.targets * prof.vocab * _compute_bytes(setup, prof)


def _compute_bytes(setup: Setup, prof: Profile) -> int:
    """Bytes per value of the logits: autocast's dtype, else the head's own."""
    return DTYPES[setup.autocast] if setup.autocast else DTYPES.get(prof.head_dtype, 4)


def _in_layer(name: str) -> bool:
    import re

    return re.search(r"\.\d+\.", name) is not None


def _head_bytes(prof: Profile) -> int:
    return prof.vocab * prof.hidden * DTYPE_BYTES.get(prof.head_dtype, 4)


# ---- the moments of a step ---------------------------------------------------------------


def _moments(setup: Setup, prof: Profile, states: dict[str, float]) -> dict[str, dict[str, float]]:
    rows, seq = setup.step_shape  # packed rows are one row
    keeping = max(prof.layers - prof.frozen_below, 1)  # layers that keep activations
    per_layer = prof.layer_retained.at(rows, seq)
    held = prof.end_forward.at(rows, seq) + (keeping - 1) * per_layer
    forward = prof.forward_peak.at(rows, seq) + (keeping - 1) * per_layer
    head = _head(setup, prof)
    layer_grads, head_grad = states["layer_grads"], states["head_grad"]
    # Going down the stack: below the layer in backward l layers still hold activations, above
    # it (keeping - 1 - l) hold weight gradients, the worst l being the top or the bottom; the
    # probe's backward peak has the layer's own gradients made as its activations go
    down = prof.backward_peak.at(rows, seq) + head_grad + (keeping - 1) * max(per_layer, layer_grads)
    moments = {
        "forward": {"activations": min(forward, held), "temporaries": max(forward - held, 0)},
        "head": {"activations": held, "logits and loss": head["forward"]},
        "loss backward": {"activations": held, "logits and loss": head["kept"] + head["backward"]},
        "backward": {
            "activations": min(down - head_grad, held),
            "gradients": head_grad,
            "temporaries": max(down - head_grad - held, 0),
        },
        "end of backward": {"gradients": states["grads"], "temporaries": states["embedding_temp"]},
        "optimizer step": {"gradients": states["grads"], "temporaries": states["step_temp"]},
    }
    # the boolean mask transformers makes once per forward (rows x s x s) lives through the
    # backbone's forward, and with checkpointing until the last recomputed layer (a saved input)
    mask = rows * seq * seq if setup.masked else 0
    for phase in ("forward", "head", "loss backward", "backward") if setup.gradient_checkpointing else ("forward",):
        moments[phase]["activations"] = moments[phase].get("activations", 0) + mask
    return moments


def _head(setup: Setup, prof: Profile) -> dict[str, float]:
    """Bytes of the LM head and loss: during forward, kept for backward, added in backward."""
    if not prof.vocab:
        return {"forward": 0, "kept": 0, "backward": 0}
    compute = _compute_bytes(setup, prof)
    hidden_bytes = DTYPES[setup.dtype]
    head = (
        _full_head(setup, prof, compute) if setup.loss == "full" else _chunked_head(setup, prof, compute, hidden_bytes)
    )
    if setup.loss == "chunked" or not prof.head_trains:
        # the final hidden states are not kept for backward: the chunked head keeps its own copy,
        # a frozen head needs only its weight to pass the gradient on
        head["kept"] -= setup.rows * setup.targets * prof.hidden * hidden_bytes
    return head


def _full_head(setup: Setup, prof: Profile, compute: int) -> dict[str, float]:
    logits = setup.rows * setup.targets * prof.vocab
    upcast = 4 if compute != 4 else 0
    return {
        "forward": logits * (compute + upcast + 4),  # logits, fp32 copy, log-softmax
        "kept": logits * 4,  # the log-softmax output
        "backward": logits * (4 + 4),  # nll and log-softmax gradients (the cast comes after)
    }


def _chunked_head(setup: Setup, prof: Profile, compute: int, hidden_bytes: int) -> dict[str, float]:
    # With Triton TRL scores only labelled positions, elsewhere all of them: count all (the larger)
    scored = setup.rows * (setup.targets - 1)
    tile = min(scored, _TILE_TOKENS) * _TILE_VOCAB * compute
    copies = 0
    if compute != hidden_bytes:  # the hidden chunk and a weight slice cast to the compute dtype
        copies = min(scored, _TILE_TOKENS) * prof.hidden * compute
    if compute != DTYPE_BYTES.get(prof.head_dtype, 4):
        copies += min(prof.vocab, _TILE_VOCAB) * prof.hidden * compute
    hidden_copy = scored * prof.hidden * hidden_bytes
    per_token = scored * 4 * 8  # running statistics, outputs and masks
    weight_grad = prof.vocab * prof.hidden * 4 if prof.head_trains else 0
    # the fp32 gradients are cast back to the hidden and weight dtypes on the way out
    casts = scored * prof.hidden * hidden_bytes if hidden_bytes != 4 else 0
    head_bytes = DTYPE_BYTES.get(prof.head_dtype, 4)
    if prof.head_trains and head_bytes != 4:
        casts += prof.vocab * prof.hidden * head_bytes
    return {
        "forward": hidden_copy + tile + copies + per_token,
        "kept": hidden_copy + scored * 4 * 3,
        "backward": scored * prof.hidden * 4 + weight_grad + tile + copies + casts,
    }
