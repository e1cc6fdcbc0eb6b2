"""Reserved memory over the steps of your data: the batches' lengths vary, the cache remembers.

A run on unpacked data pads each batch to its own longest row, so step after step asks the
caching allocator for blocks of other sizes. A freed block serves a later request only when it
is large enough (CUDACachingAllocator.cpp: a cached block is split to serve a smaller request;
blocks of different segments never merge), so blocks cached for one length sit beside the new
ones the next, longer, batch needs: reserved grows past the steady peak of one length.

With a data set, the step is traced twice, at the longest batch's length s and at s/2 (same
rows): simulated whole (`method="simulate"`), or stretched from a three-layer model's (the
instant estimate, stretch.py). A transformer step makes the same allocations in the same order
at any length; only sizes change: each allocation's size is n(s) = n(s0) (s/s0)^p with p from
the two traces (0: weights, gradients, optimizer; 1: activations; 2: eager attention scores),
and batches with fewer rows scale the length-dependent ones by rows. The steps the sampler
builds (data.batches), up to the longest and a few after it, are then replayed in order
through the allocator model (allocator.py), after the model states.
"""

from __future__ import annotations

import math
from typing import Any

from .allocator import settings_from_env
from .reserved import Reserved, _apply, _kept, started

WINDOW = 24
"""Micro-batches replayed before the longest one (the cache's recent past)."""
AFTER = 4
"""Micro-batches replayed after it."""


def exponents(long: list[tuple[int, int]], short: list[tuple[int, int]], ratio: float) -> list[float] | None:
    """Per event of the step: the power of the length its size grows with (0 for frees), or
    None when the two traces do not make the same allocations in the same order. (Frees that
    come together, e.g. the saved tensors of a finished backward, may come in another order:
    the replay keeps the long trace's own order; sizes are matched by allocation.)"""
    if len(long) != len(short) or ratio <= 1:
        return None
    out, odd = [], 0
    for (_, n_l), (_, n_s) in zip(long, short):
        if (n_l > 0) != (n_s > 0):
            return None
        if n_l <= 0:
            out.append(0.0)
            continue
        p = 0.0 if n_l == n_s else math.log(n_l / n_s) / math.log(ratio)
        if not -0.05 <= p <= 2.05:  # no tensor of a step shrinks with the length or grows past s^2
            odd += 1
        out.append(min(max(p, 0.0), 2.0))
    allocations = sum(1 for _, n in long if n > 0)
    return out if odd <= 0.02 * allocations else None


def scaled(step: list[tuple[int, int]], powers: list[float], length: float, rows: float) -> list[tuple[int, int]]:
    """The step's events at `length` (a share of the simulated length) and `rows` (a share of its rows)."""
    out = []
    for (key, nbytes), p in zip(step, powers):
        if nbytes and p > 0.05:
            nbytes = max(int(nbytes * rows * length**p), 1)
        out.append((key, nbytes))
    return out


def replay_batches(events: list[tuple[int, int]], step_start: int, powers: list[float], data: Any, seq_len: int,
                   rows: int, gpu: Any = None, settings: dict[str, Any] | None = None) -> Reserved:
    """The reserved peak of the data's micro-batches (around the longest) replayed in order."""
    alloc, workspace = started(events, step_start, gpu, settings)
    step = events[step_start:]
    kept = _kept(step)
    top = data.longest
    items = data.items[max(0, top.index - WINDOW): top.index + AFTER + 1]
    for k, batch in enumerate(items):
        for i, (key, nbytes) in enumerate(scaled(step, powers, batch.seq_len / seq_len, batch.rows / rows)):
            if k and i in kept:
                continue  # made once (lazy state), then alive
            _apply(alloc, (k, key), nbytes)
    result = alloc.result()
    return Reserved(result.peak_reserved, result.peak_allocated, {
        "allocator rounding": result.gap["rounding"],
        "cached free blocks": result.gap["cached free blocks"],
        "cuBLAS workspaces": 2 * workspace,
    }, result.segments)


def over_data(setup: Any, trace: Any, data: Any, gpu: Any = None) -> tuple[Reserved | None, str, Reserved | None]:
    """(reserved over the data's steps, "", the same with expandable segments) or (None, why
    not, None). `trace(setup)` gives a step's (events, step_start): the simulated step's, or the
    instant estimate's stretched one (stretch.py). The expandable replay is None when the
    allocator settings already expand (one segment per pool that grows, so blocks cached for one
    length serve the next: allocator.py)."""
    top = data.longest if data is not None else None
    if top is None or len({b.seq_len for b in data.items}) < 2:
        return None, "", None  # one length: the steady replay is the answer
    half = max(8, setup.seq_len // 2)
    if half >= setup.seq_len:
        return None, "", None
    long, short = trace(setup), trace(setup.replace(seq_len=half))
    if long is None or short is None:
        return None, "the step is not a stack of like layers: reserved is for one length", None
    (events, start), (short_events, short_start) = long, short
    if short_start != start:
        return None, "the two simulated lengths load different states: reserved is for one length", None
    powers = exponents(events[start:], short_events[short_start:], setup.seq_len / half)
    if powers is None:
        return None, "the step allocates differently at another length: reserved is for one length", None
    settings = settings_from_env()
    varied = replay_batches(events, start, powers, data, top.seq_len, top.rows, gpu, settings)
    expandable = None
    if not settings.get("expandable_segments"):
        expandable = replay_batches(events, start, powers, data, top.seq_len, top.rows,
                                    gpu, {**settings, "expandable_segments": True})
    return varied, "", expandable
