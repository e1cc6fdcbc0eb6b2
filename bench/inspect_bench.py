"""How fast `jp.inspect` and `ModelMap.match` are on a Llama-3-70B-sized model built on `meta`.

Prints times and their ratio to a bare `named_modules()` walk measured in the same run (the
baseline any inspector must pay). Issue 2 asks for inspect under 1 s on this model.

    python bench/inspect_bench.py
"""

from __future__ import annotations

import time

import jupyter_peft as jp
from jupyter_peft.demo.skeletons import skeleton


def best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def first_match(model, targets, repeat: int = 5) -> float:
    """Best time of a first `match` on a fresh ModelMap (maps cache their answers)."""
    times = []
    for _ in range(repeat):
        mm = jp.inspect(model)
        t = time.perf_counter()
        mm.match(targets)
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    t = time.perf_counter()
    model = skeleton("llama-3-70b")
    build = time.perf_counter() - t
    t = time.perf_counter()
    mm = jp.inspect(model)  # first call also imports peft
    first = time.perf_counter() - t
    walk = best(lambda: [p.numel() for _, m in model.named_modules() for p in m._parameters.values() if p is not None])
    inspect = best(lambda: jp.inspect(model))
    match_names = first_match(model, ["q_proj", "v_proj"])
    match_all = first_match(model, "all-linear")
    cached = best(lambda: mm.match("all-linear"))
    n_modules = sum(1 for _ in model.named_modules())
    print(
        f"model: {mm.total_params / 1e9:.1f}B params, {n_modules} modules, {len(mm.groups)} groups "
        f"(built in {build:.2f} s)"
    )
    print(f"baseline named_modules walk : {walk * 1000:8.1f} ms")
    print(f"jp.inspect (first, +imports): {first * 1000:8.1f} ms")
    print(f"jp.inspect                  : {inspect * 1000:8.1f} ms  ({inspect / walk:.1f}x walk)")
    print(f"match([q_proj, v_proj])     : {match_names * 1000:8.1f} ms  ({match_names / walk:.1f}x walk)")
    print(f"match('all-linear')         : {match_all * 1000:8.1f} ms  ({match_all / walk:.1f}x walk)")
    print(f"match('all-linear'), cached : {cached * 1000:8.3f} ms  (a ModelMap remembers its matches)")
    print(f"inspect under 1 s: {'yes' if inspect < 1.0 else 'NO'}")


if __name__ == "__main__":
    main()
