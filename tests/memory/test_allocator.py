"""The caching allocator model against cases worked by hand from the rules of PyTorch's
c10/cuda/CUDACachingAllocator.cpp (round_size, get_allocation_size, get_free_block,
should_split, free_block / try_merge_blocks, expandable segments), and reserved in every
estimate, the instant one held to the simulated one."""

from __future__ import annotations

import tiny

import jupyter_peft as jp
from jupyter_peft.memory.allocator import CachingAllocator, allocation_size, replay, round_size, settings_from_env

MiB = 1 << 20


def test_sizes_round_to_512_bytes_and_segments_follow_the_pools():
    assert round_size(1) == 512 and round_size(513) == 1024 and round_size(4096) == 4096
    assert round_size(1200 * MiB + 1, divisions=4) == 1280 * MiB  # next quarter of the power of two
    assert allocation_size(512) == 2 * MiB  # small pool: 2 MiB segments
    assert allocation_size(MiB + 512) == 20 * MiB  # 1-10 MiB: a 20 MiB segment
    assert allocation_size(11 * MiB + 512) == 12 * MiB  # large: rounded up to 2 MiB


def test_a_split_block_is_reused_and_merged_back():
    a = CachingAllocator()
    a.malloc("x", 3 * MiB)  # a 20 MiB segment, split: 3 MiB used, 17 MiB cached
    a.malloc("y", 3 * MiB)  # the cached remainder serves it: no new segment
    assert (a.reserved, a.allocated, a.segments) == (20 * MiB, 6 * MiB, 1)
    a.free("x")
    a.malloc("z", 2 * MiB)  # best fit: the freed 3 MiB block; 1 MiB left is not > 1 MiB: no split
    assert a.allocated == 6 * MiB and a.reserved == 20 * MiB
    a.free("z"), a.free("y")  # all merge back into one free 20 MiB block
    a.malloc("w", 19 * MiB)
    assert a.reserved == 20 * MiB and a.segments == 1


def test_a_large_allocation_rounds_and_keeps_its_unsplit_remainder():
    a = CachingAllocator()
    a.malloc("x", 11 * MiB + 1)  # 11 MiB + 512 in a 12 MiB segment; the rest (< 1 MiB) stays with it
    assert a.reserved == 12 * MiB and a.allocated == 12 * MiB


def test_interleaved_sizes_fragment_and_expandable_segments_do_not():
    # 12 MiB blocks freed between live 12 MiB blocks: a 20 MiB request fits none of the holes
    events = [(i, 12 * MiB) for i in range(6)] + [(i, 0) for i in range(0, 6, 2)] + [("big", 20 * MiB)]
    plain = replay(events)
    assert plain.peak_reserved == 6 * 12 * MiB + 20 * MiB
    assert plain.gap["cached free blocks"] == plain.peak_reserved - plain.peak_requested - plain.gap["rounding"]
    # with expandable segments the one segment grows in 20 MiB pages: 72 MiB live maps 80,
    # and the 20 MiB request extends the 8 MiB free tail by one page (no hole fits it either)
    assert replay(events, expandable_segments=True).peak_reserved == 100 * MiB
    # growing shapes (the note's N, N+1 case): each new size needs a new segment, unless it grows
    growing = [e for n in (12, 14, 16, 18) for e in ((n, n * MiB), (n, 0))]
    assert replay(growing).peak_reserved == (12 + 14 + 16 + 18) * MiB
    assert replay(growing, expandable_segments=True).peak_reserved == 20 * MiB


def test_max_split_size_keeps_oversize_blocks_for_large_requests():
    a = CachingAllocator(max_split_size=64 * MiB)
    a.malloc("big", 100 * MiB)
    a.free("big")
    a.malloc("small", 30 * MiB)  # the oversize cached block may not serve a smaller request
    assert a.reserved == 130 * MiB
    assert settings_from_env("expandable_segments:True,max_split_size_mb:64") == {
        "expandable_segments": True, "max_split_size": 64 * MiB}


def test_every_estimate_reports_reserved_and_what_the_gap_is_made_of():
    config = tiny.config("llama", hidden_size=256, intermediate_size=512, num_hidden_layers=3, vocab_size=4000)
    plan = "method: lora\nr: 8\ntarget_modules: all-linear"
    for method in ("analytic", "simulate"):
        est = jp.estimate(config, plan, batch_size=4, seq_len=256, dtype="bfloat16", method=method)
        assert est.reserved_bytes >= est.peak_bytes
        assert set(est.reserved_gap) == {"allocator rounding", "cached free blocks", "cuBLAS workspaces"}
        assert est.total_bytes == est.reserved_bytes + est.paged_bytes + est.overhead_bytes
        assert est.to_json()["reserved_bytes"] == est.reserved_bytes


def test_the_instant_reserved_peak_is_held_to_the_simulated_one():
    config = tiny.config("llama", hidden_size=512, intermediate_size=1024, num_hidden_layers=4, vocab_size=32000)
    for plan in ("method: lora\nr: 16\ntarget_modules: all-linear", None):
        for loss in ("chunked", "full"):
            options = dict(batch_size=4, seq_len=512, dtype="bfloat16", loss=loss)
            instant = jp.estimate(config, plan, **options)
            simulated = jp.estimate(config, plan, method="simulate", **options)
            assert abs(instant.reserved_bytes / simulated.reserved_bytes - 1) < 0.10, (plan, loss)
