"""What a CUDA run reserves: PyTorch's caching allocator replayed over a step's allocations.

`torch.cuda.max_memory_allocated` counts live blocks; what must fit (with the CUDA context)
is `max_memory_reserved`, the segments the caching allocator holds. This model follows
`c10/cuda/CUDACachingAllocator.cpp` (pytorch/pytorch, read at commit 001074d2):

- `round_size`: every request is rounded up to a multiple of kMinBlockSize = 512 B (with
  `roundup_power2_divisions`, sizes above 512 x divisions round to the next 1/divisions step
  of their power of two).
- `get_pool`: requests <= kSmallSize (1 MiB) use the small pool, larger ones the large pool.
- `get_allocation_size`: a new segment is kSmallBuffer (2 MiB) for a small request,
  kLargeBuffer (20 MiB) for 1-10 MiB (kMinLargeAlloc), else the request rounded up to
  kRoundLarge (2 MiB).
- `get_free_block`: best fit, the smallest cached free block of the pool (same stream) at
  least as large (`pool.blocks.lower_bound`, blocks ordered by stream, size, address). With
  `max_split_size`: a block >= max_split_size never serves a smaller request, and serves a
  larger one only when under request + kLargeBuffer.
- `should_split`: the found block is split when the remainder is >= 512 B (small pool, or any
  pool with expandable segments) or > 1 MiB (large pool, request under max_split_size);
  otherwise the whole block is handed out and counts as allocated (`alloc_found_block`).
- `free_block` / `try_merge_blocks`: a freed block merges with free neighbours of its segment.
- `alloc_block`: cudaMalloc of the segment size; reserved grows by it. Segments are released
  only on an OOM retry or `empty_cache` (not modelled: the peak is what a run asks CUDA for).
- expandable segments (`Note [Expandable Segments]`, `find_expandable_block`, `map_block`):
  one segment per pool that grows at its end in pages of 2 MiB (small pool) or 20 MiB (large
  pool), so a request that no free block fits extends the free tail instead of a new segment.

One stream: a training step's kernels run on the current stream, and the backward thread
uses the same one. `replay(events)` takes (key, bytes) pairs, bytes > 0 an allocation and
bytes == 0 the free of `key`, and returns the peaks and what the gap between them is made of.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

MIN_BLOCK = 512  # kMinBlockSize
SMALL_SIZE = 1 << 20  # kSmallSize: the largest small request
SMALL_BUFFER = 2 << 20  # kSmallBuffer: a small-pool segment
LARGE_BUFFER = 20 << 20  # kLargeBuffer: a segment for 1-10 MiB requests
MIN_LARGE_ALLOC = 10 << 20  # kMinLargeAlloc
ROUND_LARGE = 2 << 20  # kRoundLarge
NO_LIMIT = 1 << 62  # max_split_size unset (SIZE_MAX)


def round_size(size: int, divisions: int = 0) -> int:
    """`round_size`: the bytes a request of `size` takes."""
    if size < MIN_BLOCK:
        return MIN_BLOCK
    if divisions > 1 and size > MIN_BLOCK * divisions:
        floor = 1 << (size.bit_length() - 1)
        if floor == size:
            return size
        step = floor // divisions
        return -(-size // step) * step
    return -(-size // MIN_BLOCK) * MIN_BLOCK


def allocation_size(size: int) -> int:
    """`get_allocation_size`: the segment cudaMalloc'd for a (rounded) request no cached block fits."""
    if size <= SMALL_SIZE:
        return SMALL_BUFFER
    if size < MIN_LARGE_ALLOC:
        return LARGE_BUFFER
    return -(-size // ROUND_LARGE) * ROUND_LARGE


@dataclass(eq=False)
class _Block:
    addr: int
    size: int
    small: bool
    prev: _Block | None = None
    next: _Block | None = None
    allocated: bool = False
    requested: int = 0

    @property
    def key(self) -> tuple[int, int]:
        return (self.size, self.addr)


@dataclass
class Replayed:
    """The allocator's peaks over a replayed trace, and the gap between them."""

    peak_allocated: int
    """Largest sum of live blocks (rounded, unsplit remainders included): max_memory_allocated."""
    peak_reserved: int
    """Largest sum of segments: max_memory_reserved."""
    peak_requested: int
    """Largest sum of the bytes asked for (the tensors' own sizes)."""
    segments: int
    gap: dict[str, int] = field(default_factory=dict)
    """peak_reserved - peak_requested as: rounding (512 B steps and unsplit remainders of the
    blocks live at the requested peak) and cached free blocks (segments held but free then,
    and any grown later: the fragmentation)."""


class CachingAllocator:
    """The caching allocator's bookkeeping, without memory (see the module docstring)."""

    def __init__(self, expandable_segments: bool = False, max_split_size: int | None = None,
                 roundup_power2_divisions: int = 0) -> None:
        self.expandable = expandable_segments
        self.max_split = max_split_size if max_split_size else NO_LIMIT
        self.divisions = roundup_power2_divisions
        self._free: dict[bool, list[tuple[int, int]]] = {True: [], False: []}  # sorted (size, addr)
        self._blocks: dict[tuple[int, int], _Block] = {}
        self._tail: dict[bool, _Block | None] = {True: None, False: None}  # expandable segment's end
        self._next_addr = itertools.count(1 << 40, 1 << 40)  # each segment its own address range
        self.allocated = self.reserved = self.requested = 0
        self.peak_allocated = self.peak_reserved = self.peak_requested = 0
        self.segments = 0
        self._live: dict[object, _Block] = {}
        self._rounding = 0  # live block bytes beyond their requests
        self.gap_at_peak = (0, 0)  # (rounding, reserved) when requested bytes peaked

    # ---- the public calls ----------------------------------------------------------------

    def malloc(self, key: object, nbytes: int) -> None:
        size = round_size(nbytes, self.divisions)
        small = size <= SMALL_SIZE
        block = self._get_free_block(size, small)
        if block is None:
            block = self._alloc_block(size, small)
        block = self._split(block, size)
        block.allocated, block.requested = True, nbytes
        self._live[key] = block
        self.allocated += block.size
        self.requested += nbytes
        self._rounding += block.size - nbytes
        self.peak_allocated = max(self.peak_allocated, self.allocated)
        if self.requested > self.peak_requested:
            self.peak_requested = self.requested
            self.gap_at_peak = (self._rounding, self.reserved)

    def free(self, key: object) -> None:
        block = self._live.pop(key, None)
        if block is None:
            return
        self.allocated -= block.size
        self.requested -= block.requested
        self._rounding -= block.size - block.requested
        block.allocated = False
        for other in (block.prev, block.next):  # try_merge_blocks
            if other is not None and not other.allocated:
                self._remove(other)
                if other is block.prev:
                    block.addr, block.prev = other.addr, other.prev
                    if other.prev is not None:
                        other.prev.next = block
                else:
                    block.next = other.next
                    if other.next is not None:
                        other.next.prev = block
                    if self._tail[block.small] is other:
                        self._tail[block.small] = block
                block.size += other.size
        self._insert(block)

    def result(self) -> Replayed:
        rounding, reserved_then = self.gap_at_peak
        cached = self.peak_reserved - self.peak_requested - rounding
        return Replayed(
            self.peak_allocated, self.peak_reserved, self.peak_requested, self.segments,
            {"rounding": rounding, "cached free blocks": cached},
        )

    # ---- the rules -----------------------------------------------------------------------

    def _get_free_block(self, size: int, small: bool) -> _Block | None:
        pool = self._free[small]
        i = bisect.bisect_left(pool, (size, -1))
        if i == len(pool):
            return None
        found = self._blocks[pool[i]]
        if size < self.max_split <= found.size:  # no oversize block for a smaller request
            return None
        if size >= self.max_split and found.size >= size + LARGE_BUFFER:
            return None
        self._remove(found)
        return found

    def _alloc_block(self, size: int, small: bool) -> _Block:
        if self.expandable:
            return self._expand(size, small)
        seg = allocation_size(size)
        self.reserved += seg
        self.segments += 1
        self.peak_reserved = max(self.peak_reserved, self.reserved)
        return _Block(next(self._next_addr), seg, small)

    def _expand(self, size: int, small: bool) -> _Block:
        """Map pages at the end of the pool's one segment, joining a free tail block."""
        page = SMALL_BUFFER if small else LARGE_BUFFER
        tail = self._tail[small]
        if tail is None:
            self.segments += 1
        have = tail.size if tail is not None and not tail.allocated else 0
        grow = -(-(size - have) // page) * page
        self.reserved += grow
        self.peak_reserved = max(self.peak_reserved, self.reserved)
        if have:
            assert tail is not None
            self._remove(tail)
            tail.size += grow
            return tail
        addr = next(self._next_addr) if tail is None else tail.addr + tail.size
        block = _Block(addr, grow, small, prev=tail)
        if tail is not None:
            tail.next = block
        self._tail[small] = block
        return block

    def _split(self, block: _Block, size: int) -> _Block:
        remaining = block.size - size
        if block.small or self.expandable:
            split = remaining >= MIN_BLOCK
        else:
            split = size < self.max_split and remaining > SMALL_SIZE
        if not split:
            return block
        rest = _Block(block.addr + size, remaining, block.small, prev=block, next=block.next)
        if block.next is not None:
            block.next.prev = rest
        block.next, block.size = rest, size
        if self._tail[block.small] is block:
            self._tail[block.small] = rest
        self._insert(rest)
        return block

    def _insert(self, block: _Block) -> None:
        self._blocks[block.key] = block
        bisect.insort(self._free[block.small], block.key)

    def _remove(self, block: _Block) -> None:
        pool = self._free[block.small]
        i = bisect.bisect_left(pool, block.key)
        del pool[i]
        del self._blocks[block.key]


def replay(events: Iterable[tuple[object, int]], **settings: object) -> Replayed:
    """Replay (key, bytes) events (bytes 0: free `key`) through a CachingAllocator."""
    alloc = CachingAllocator(**settings)  # type: ignore[arg-type]
    for key, nbytes in events:
        if nbytes:
            alloc.malloc(key, nbytes)
        else:
            alloc.free(key)
    return alloc.result()


def settings_from_env(conf: str | None = None) -> dict[str, object]:
    """Allocator settings from PYTORCH_CUDA_ALLOC_CONF text (expandable_segments:True,
    max_split_size_mb:N, roundup_power2_divisions:N); others are ignored."""
    import os

    text = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "") if conf is None else conf
    out: dict[str, object] = {}
    for part in text.split(","):
        name, _, value = part.partition(":")
        name, value = name.strip(), value.strip()
        if name == "expandable_segments":
            out["expandable_segments"] = value.lower() == "true"
        elif name == "max_split_size_mb" and value.isdigit():
            out["max_split_size"] = int(value) << 20
        elif name == "roundup_power2_divisions" and value.isdigit():
            out["roundup_power2_divisions"] = int(value)
    return out
