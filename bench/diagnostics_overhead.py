"""Overhead of the per-module diagnostics on a real SFT run of the demo model (issue 19).

The demo's QUICKSTART plan (LoRA r=16 on all-linear: 42 modules), the same number of steps with
`diagnostics: N` and with `diagnostics: false`, interleaved in one process (off, on, off, on...),
best of `--repeats` each: the ratio of the best training times. Also the bytes one sample
costs on the wire to the dashboard (the heatmap's message), which depend on the number of
modules and not on the run's length.

    OMP_NUM_THREADS=1 .venv/bin/python bench/diagnostics_overhead.py [--steps 40] [--every 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

import jupyter_peft as jp
from jupyter_peft.demo import QUICKSTART


def one_run(every, steps: int, runs_dir: str):
    model, tok = jp.demo.load()
    train = {**QUICKSTART["train"], "max_steps": steps, "diagnostics": every}
    plan = jp.Plan.from_dict({**QUICKSTART, "train": train})
    run = jp.train(model, plan, dataset=jp.demo.dataset("sft"), tokenizer=tok, runs_dir=runs_dir)
    assert run.wait(900) == "finished", run.error
    runtime = run.tracker.summary["train_runtime"]
    return run, runtime


def hook_cost(repeats: int = 200) -> float:
    """Seconds per training step the NaN-watch (diagnostics/nan.py) adds on every step: its
    gradient hook on each adapter parameter, its input hook on each module and the one check
    before the optimizer step, run on the demo's real gradients (the median of `repeats`).
    Timed directly: a few milliseconds are below the noise of whole runs on a shared machine."""
    import statistics

    from jupyter_peft.diagnostics import signals
    from jupyter_peft.diagnostics.nan import GradWatch

    model, _ = jp.demo.load()
    model = jp.apply(jp.Plan.from_dict({k: v for k, v in QUICKSTART.items() if k != "train"}), model)
    ids = torch.randint(3, 1000, (8, 128), generator=torch.Generator().manual_seed(0))
    modules = signals.adapted(model)
    model(input_ids=ids, labels=ids).loss.backward()
    watch = GradWatch(modules, keep_inputs=True)
    grad_hooks = [(watch._grad_hook(i, mi), p) for i, (mi, p) in enumerate(
        (mi, p) for mi, m in enumerate(modules) for p in m.params if p.requires_grad)]
    input_hooks = [watch._input_hook(mi) for mi in range(len(modules))]
    x = (torch.zeros(8, 128, 256),)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        watch.new_step()
        for hook in input_hooks:
            hook(None, x)
        for hook, p in grad_hooks:
            hook(p)
        watch.check(want_norms=False)
        watch.drop_inputs()
        times.append(time.perf_counter() - t0)
    watch.remove()
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    times: dict[str, list[float]] = {"off": [], "on": []}
    inside: list[float] = []
    with tempfile.TemporaryDirectory() as runs_dir:
        one_run(False, 4, runs_dir)  # warm up: imports, first-call costs
        last = None
        for _ in range(args.repeats):
            for key, every in (("off", False), ("on", args.every)):
                run, runtime = one_run(every, args.steps, runs_dir)
                times[key].append(runtime)
                if key == "on":
                    inside.append(run.diagnostics.seconds)
                    last = run
                run.close()
        from jupyter_peft.ui.dashboard.modules import sample_payload

        diag = last.diagnostics
        sizes = [len(json.dumps({"kind": "modules", "samples": [sample_payload(s, r)]}))
                 for s, r in zip(*diag.samples())]
    hooks = hook_cost()
    best_off, best_on = min(times["off"]), min(times["on"])
    print(f"demo SFT, {args.steps} steps, {len(diag.modules)} adapted modules, diagnostics every {args.every} steps")
    off, on = (", ".join(f"{t:.2f}" for t in times[k]) for k in ("off", "on"))
    print(f"  off: {off} s   on: {on} s")
    print(f"  best on / best off = {best_on / best_off:.4f}  (overhead {100 * (best_on / best_off - 1):+.2f}%)")
    print(f"  time inside the diagnostics' callbacks (hooks excluded): best {min(inside):.3f} s "
          f"= {100 * min(inside) / best_on:.2f}% of the run")
    step = best_off / args.steps
    print(f"  every step, the NaN-watch hooks and check: {1000 * hooks:.2f} ms of a {1000 * step:.0f} ms step "
          f"({100 * hooks / step:.2f}%)")
    sample = min(inside) / max(len(diag), 1)
    print(f"  one sample (update norms of every module): {1000 * sample:.1f} ms; every {args.every} steps: "
          f"{100 * sample / (args.every * step):.2f}% of training")
    print(f"  bytes per sample message: min {min(sizes)}, max {max(sizes)} over {len(sizes)} samples")


if __name__ == "__main__":
    main()
