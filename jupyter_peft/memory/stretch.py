"""The instant estimate's reserved peak: a three-layer model's step, stretched to the model's depth.

What the caching allocator reserves depends on the order and sizes of a step's allocations and
frees (which freed block a later request can reuse), not only on their sum. The instant
estimate has no whole-step trace, so it takes one from a short model:

1. the step of the same model cut to three decoder layers runs on fake tensors at the real
   batch shape (simulate.py, `layers=3`: 0.3-1.5 s here, whatever the depth), with each layer's
   forward and backward marked in its events;
2. the middle layer's forward and backward blocks are repeated until the stack is as deep as
   the model's, each copy taking the tensors its lower neighbour passed up (forward) or its
   upper neighbour passed down (backward), as layer 1 takes layer 0's and layer 2's; the
   frees that end every layer's tensors at once (`zero_grad`) end every copy's;
3. the states of the layers the short model lacks are allocated first, and the trace is
   replayed through the allocator model (reserved.replayed), as a simulated step is.

A model of three layers or fewer is simulated whole. A step that is not a stack of like layers
(a plan that picks layers, an encoder-decoder model, layers whose blocks differ) gives None,
and the instant estimate falls back on reserved.instant. tests/memory/test_stretch.py holds
the stretched trace to the whole simulated one (the same tensor peak, reserved within 1%; 6%
for a foreach optimizer's step, whose other layers' temporaries are laid around its own).
"""

from __future__ import annotations

from typing import Any

from ..session import session
from .settings import Setup

SHORT = 3
"""Layers of the short model: a bottom, a middle (the one repeated) and a top layer."""


def stretched(setup: Setup) -> tuple[list[tuple[object, int]], int] | None:
    """(events, step_start) of a whole step of `setup` built from a short model's, or None
    (see the module docstring). Cached in the session per setup."""
    key = ("stretched", _family(setup), setup.batch_size, setup.seq_len, setup.target_len)
    from .probe import profile

    prof = profile(setup)  # first: the session's cache builds one entry at a time
    return session().profile(key, lambda: _build(setup, prof))


def _build(setup: Setup, prof: Any) -> tuple[list[tuple[object, int]], int] | None:
    from .build import num_layers
    from .probe import _uniform

    total = num_layers(setup.config)
    if getattr(setup.config, "is_encoder_decoder", False):
        return None  # two stacks
    if total <= SHORT:  # as short as the short model: the whole step, as simulated
        whole = _simulated(setup, None)
        return (whole.events, whole.step_start) if whole is not None else None
    if setup.plan is not None and setup.plan.method_spec.targets_modules and not _uniform(setup.plan):
        return None  # the layers differ: the probe's way (reserved.instant) is the safer one
    if not _like_layers(prof):
        return None  # dense and MoE layers, or layers of other widths: no one layer stands for all
    short = _simulated(setup, SHORT)
    if short is None:
        return None
    step = _Step.cut(short.events, short.step_start, short.marks)
    if step is None:
        return None
    extra, trainable = _missing_states(setup, prof, total)
    events = [(("state", i), n) for i, n in enumerate(extra)]
    events += step.stretched(total, _step_temporaries(setup, trainable))
    return events, len(extra) + short.step_start


def _simulated(setup: Setup, layers: int | None) -> Any:
    """The simulated step (of a model cut to `layers`), or None where fake tensors cannot run one
    (a kernel without a fake version for these dtypes): the probe's estimate then stands alone."""
    import warnings

    from .simulate import simulate

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return simulate(setup, layers=layers)
    except Exception:  # noqa: BLE001 - not the user's mistake: the probe already checked the plan
        return None


class _Step:
    """A short model's events with every allocation named once (uid) and cut into blocks:
    run (before the step), P (before layer 0), F0 F1 F2 (each layer's forward), M (the norm,
    head, loss and their backward), B2 B1 (the top and middle layers' backward), T (layer 0's
    backward, the embeddings', the optimizer step)."""

    BLOCKS = ("run", "P", "F0", "F1", "F2", "M", "B2", "B1", "T")
    LAYER = {"F0": 0, "F1": 1, "F2": 2, "B2": 2, "B1": 1}

    def __init__(self, events: list[tuple[int, int]], cuts: list[int], optimizer: tuple[int, int]) -> None:
        live: dict[int, int] = {}
        self.optimizer = [0, 0]
        """Where in T the optimizer step begins and ends."""
        self.blocks: dict[str, list[tuple[int, int]]] = {name: [] for name in self.BLOCKS}
        self.owner: dict[int, str] = {}
        self.freed_in: dict[int, str] = {}
        self.allocs: dict[str, list[int]] = {name: [] for name in self.BLOCKS}
        block = 0
        for i, (key, nbytes) in enumerate(events):
            while block + 1 < len(cuts) and i >= cuts[block + 1]:
                block += 1
            name = self.BLOCKS[block]
            for k, at in enumerate(optimizer):
                if i == at and name == "T":
                    self.optimizer[k] = len(self.blocks["T"])
            if nbytes:
                uid = i
                live[key] = uid
                self.owner[uid] = name
                self.allocs[name].append(uid)
                self.blocks[name].append((uid, nbytes))
            elif key in live:
                uid = live.pop(key)
                self.freed_in[uid] = name
                self.blocks[name].append((uid, 0))
        self.size = {uid: n for block in self.blocks.values() for uid, n in block if n}
        self.twin: dict[int, int] = {}
        """A layer 0 or layer 2 tensor -> the middle layer's same tensor."""
        self.of_layer: dict[tuple[int, int], int] = {}
        """(layer 0 or 2, a middle-layer tensor) -> that layer's same tensor."""

    @classmethod
    def cut(cls, events: list[tuple[int, int]], step_start: int, marks: list[tuple[int, str, int]]) -> _Step | None:
        at = {(phase, layer): index for index, phase, layer in marks}
        names = [("forward", 0), ("forward", 1), ("forward", 2), ("forward end", 2),
                 ("backward", 2), ("backward", 1), ("backward", 0)]
        if any(n not in at for n in names):
            return None
        cuts = [0, step_start, *(at[n] for n in names)]
        optimizer = (at.get(("optimizer", -1), len(events)), at.get(("optimizer end", -1), len(events)))
        if cuts != sorted(cuts) or optimizer[0] < cuts[-1]:
            return None
        step = cls(events, cuts, optimizer)
        sizes = {name: [step.size[u] for u in step.allocs[name]] for name in ("F0", "F1", "F2", "B2", "B1")}
        if not (sizes["F0"] == sizes["F1"] == sizes["F2"] and sizes["B2"] == sizes["B1"]):
            return None  # the layers do not allocate alike: no layer is a template for the others
        # the same tensor in another layer: the n-th allocation of a block is the n-th of its twin
        for own, middle, layer in (("F0", "F1", 0), ("F2", "F1", 2), ("B2", "B1", 2)):
            for u, m in zip(step.allocs[own], step.allocs[middle]):
                step.twin[u] = m
                step.of_layer[(layer, m)] = u
        return step

    def _layer(self, uid: int) -> int | None:
        return self.LAYER.get(self.owner.get(uid, ""))

    def stretched(self, total: int, temporaries: list[int] | None = None) -> list[tuple[object, int]]:
        """The events of a `total`-layer step: the middle layer's blocks repeated, and
        `temporaries` (sizes) alive during the optimizer step (a foreach optimizer's, for the
        layers the short model lacks)."""
        top = total - 1

        def at(middle_uid: int, layer: int) -> object:
            """The uid, in layer `layer` of the stretched stack, of a middle-layer tensor."""
            if layer == 0:
                return self.of_layer.get((0, middle_uid), middle_uid)
            if layer == top:
                return self.of_layer.get((2, middle_uid), middle_uid)
            return ("layer", layer, middle_uid)

        def in_copy(uid: int, layer: int) -> object:
            """A uid the middle block names, as copy `layer` names it."""
            own = self._layer(uid)
            if own == 1:
                return at(uid, layer)
            if own == 0:
                return at(self.twin[uid], layer - 1)
            if own == 2:
                return at(self.twin[uid], layer + 1)
            return uid

        out: list[tuple[object, int]] = []
        out += self.blocks["run"] + self.blocks["P"] + self.blocks["F0"]
        for layer in range(1, top):
            out += [(in_copy(u, layer), n) for u, n in self.blocks["F1"]]
        for name in ("F2", "M", "B2"):  # the top layer names the middle one's tensors: the copy below it
            out += [(at(u, top - 1) if self._layer(u) == 1 else u, n) for u, n in self.blocks[name]]
        for layer in range(top - 1, 0, -1):
            out += [(in_copy(u, layer), n) for u, n in self.blocks["B1"]]
        for k, (u, n) in enumerate(self.blocks["T"]):
            if temporaries and k in self.optimizer:
                start = k == self.optimizer[0]
                out += [(("optimizer", i), n if start else 0) for i, n in enumerate(temporaries)]
            if self._layer(u) != 1:
                out.append((u, n))
            elif self.freed_in.get(self.of_layer.get((2, u), -1)) in ("F1", "B1"):
                out.append((at(u, 1), n))  # layer 0 ends what layer 1 passed down, as 1 ends 2's
            else:  # ended for every layer at once (zero_grad): every copy's
                out += [(at(u, layer), n) for layer in range(1, top)]
        return out


def _missing_states(setup: Setup, prof: Any, total: int) -> tuple[list[int], int]:
    """The resident tensors of the layers the short model lacks (the middle layer's, repeated),
    and the sizes of those layers' trainable tensors."""
    import dataclasses

    from .reserved import state_sizes

    # the inventory names every further layer's adapters after layer 1 (inventory.py): one share each
    share = max(total - 1, 1)
    middle = [dataclasses.replace(t, numel=t.numel // share, nbytes=t.nbytes // share) if t.adapter else t
              for t in prof.tensors if _layer_of(t.name) == 1]
    missing = total - SHORT
    trainable = [t.nbytes for t in middle if t.trainable] * missing
    return state_sizes(setup, prof, middle, with_outputs=False) * missing, trainable


def _step_temporaries(setup: Setup, trainable: list[int]) -> list[int]:
    """A foreach optimizer's step temporaries for the `trainable` tensors (one per tensor of the
    size states.py counts), none for a fused or bitsandbytes step."""
    from .states import OPTIMIZERS

    opt = OPTIMIZERS[setup.optimizer]
    return [] if opt.factored or not opt.step_temp else [int(opt.step_temp * n) for n in trainable]


def _like_layers(prof: Any) -> bool:
    """Whether every layer of the base has the same tensors (names within the layer, shapes, dtypes)."""
    import re

    layers: dict[int, set[tuple[Any, ...]]] = {}
    for t in prof.tensors:
        index = None if t.adapter else _layer_of(t.name)
        if index is not None:
            inner = re.sub(r"\.\d+\.", ".#.", t.name, count=1)
            layers.setdefault(index, set()).add((inner, t.shape, t.dtype))
    return len({frozenset(v) for v in layers.values()}) <= 1


def _layer_of(name: str) -> int | None:
    from ..model.modelmap import layer_indices

    return layer_indices([name])[0]


def replayed(setup: Setup, gpu: Any = None) -> Any:
    """The stretched step replayed through the allocator (a reserved.Reserved), or None."""
    from . import reserved

    step = stretched(setup)
    return reserved.replayed(*step, gpu) if step is not None else None


def calibrate(setup: Setup, state_sizes: list[int], peak_bytes: int, replay: Any, gpu: Any = None) -> None:
    """Keep the share of the transient bytes the stretched step reserved beyond them, for the
    what-if searches around this setup (`share`): at this shape `reserved.instant` with it
    gives the stretched step's reserved peak."""
    from . import reserved

    base = reserved.instant(state_sizes, peak_bytes, gpu, share=0.0)
    transient = max(peak_bytes - sum(state_sizes), 1)
    session().shares[_family(setup)] = (replay.reserved_bytes - base.reserved_bytes) / transient


def share(setup: Setup) -> float:
    """The transient share `calibrate` kept for setups like `setup` (any batch and length),
    else reserved.TRANSIENT_GAP."""
    from .reserved import TRANSIENT_GAP

    return session().shares.get(_family(setup), TRANSIENT_GAP)


def _family(setup: Setup) -> tuple[Any, ...]:
    """What a stretched step depends on but its batch size and lengths."""
    return (setup.key, setup.optimizer, setup.loss, setup.keep_gradients, setup.padding, setup.packed, setup.loop)
