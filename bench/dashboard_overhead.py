"""Training speed with the live dashboard attached, against the same trainer without it.

Runs inside a real ipykernel (started here with jupyter_client), so the widget's messages and
transformers' NotebookProgressCallback displays really go out over the kernel's iopub socket.
Two cases (issue 14's worst case and the demo):
    tiny   a tiny Llama (tests/tiny.py: hidden 64, 2 layers), SFT at batch 8 x 32 tokens,
           60 steps of ~40 ms: the case where a per-step cost shows most
    demo   the package's demo model (jp.demo) with QUICKSTART's LoRA, batch 8, on its own data
Per repetition each variant trains a fresh trainer, in rotated order (interleaved):
    none        the trainer as `jp.train` builds it (logging every step), no display
    dashboard   the same plus `jp.attach(trainer)`: the run's callbacks (recorder, per-module
                diagnostics at their default interval) + the streaming widget
    notebook    the same plus transformers' NotebookProgressCallback (its HTML progress table)
Speed is steps/s between step `warmup` and the last step, by the wall clock; the figure is the
best of the repetitions per variant (the least disturbed run on a shared machine) and its ratio
to `none`. Also printed: the CPU time the training thread spends inside the added callback, as
a share of that thread's CPU time (the dashboard's training-thread work is an append per step;
its sending happens on the run's monitor thread).

    python bench/dashboard_overhead.py [--case tiny|demo|both] [--reps 5] [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("none", "dashboard", "notebook")


def _case(case: str):
    """(peft model, tokenizer, data, SFTConfig overrides) of a case."""
    import jupyter_peft as jp

    if case == "tiny":
        import runs
        import tiny
        from datasets import Dataset

        tok = tiny.tokenizer()
        words = " ".join(tiny._CORPUS).split()
        rows = [{"text": " ".join(words[i:] + words[:i])} for i in range(64)]  # each well over 32 tokens
        return jp.apply(runs.LORA, tiny.build("llama")), tok, Dataset.from_list(rows), {
            "per_device_train_batch_size": 8, "max_length": 32}
    model, tok = jp.demo.load()
    plan = {k: v for k, v in jp.demo.QUICKSTART.items() if k != "train"}
    return jp.apply(plan, model), tok, jp.demo.dataset("sft"), {"per_device_train_batch_size": 8,
                                                                "learning_rate": 2e-3}


def measure(case: str, reps: int, steps: int, warmup: int = 10) -> dict[str, list[tuple[float, float, float]]]:
    """Runs in the kernel, per variant and repetition: (steps per wall second, steps per CPU
    second, share of the training thread's CPU time spent in the added callback)."""
    import tempfile
    import warnings

    warnings.filterwarnings("ignore")
    import torch
    from transformers import PrinterCallback, TrainerCallback
    from transformers.utils.notebook import NotebookProgressCallback
    from trl import SFTConfig, SFTTrainer

    import jupyter_peft as jp

    torch.set_num_threads(1)
    model, tok, data, overrides = _case(case)

    spent = [0.0]  # training-thread CPU seconds inside the added callback

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (warmup, steps):
                now = (time.perf_counter(), time.process_time(), time.thread_time(), spent[0])
                self.__dict__[state.global_step] = now

        def rates(self) -> tuple[float, float, float]:
            (w0, c0, t0, s0), (w1, c1, t1, s1) = self.__dict__[warmup], self.__dict__[steps]
            n = steps - warmup
            return n / (w1 - w0), n / (c1 - c0), (s1 - s0) / (t1 - t0)

    def counted(handler):
        def wrapped(*a, **k):
            t = time.thread_time()
            try:
                return handler(*a, **k)
            finally:
                spent[0] += time.thread_time() - t
        return wrapped

    def timed(callback):  # count the thread CPU time of every event of `callback`
        for event in [e for e in dir(TrainerCallback) if e.startswith("on_")]:
            setattr(callback, event, counted(getattr(callback, event)))
        return callback

    out: dict[str, list[tuple[float, float, float]]] = {v: [] for v in VARIANTS}
    for rep in range(reps):
        for name in VARIANTS[rep % 3:] + VARIANTS[:rep % 3]:
            args = SFTConfig(output_dir=tempfile.mkdtemp(), max_steps=steps, logging_steps=1, report_to="none",
                             bf16=False, use_cpu=True, save_strategy="no", disable_tqdm=True,
                             logging_nan_inf_filter=False, **overrides)
            trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
            trainer.remove_callback(PrinterCallback)
            clock = Clock()
            trainer.add_callback(clock)
            if name == "dashboard":
                before = list(trainer.callback_handler.callbacks)
                dashboard = jp.attach(trainer)
                for callback in trainer.callback_handler.callbacks:  # the run's recorder and diagnostics
                    if callback not in before:
                        timed(callback)
            elif name == "notebook":
                trainer.add_callback(timed(NotebookProgressCallback()))
            trainer.train()
            if name == "dashboard":
                dashboard.close()
            out[name].append(clock.rates())
    return out


def _in_kernel(case: str, reps: int, steps: int) -> dict[str, list[list[float]]]:
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]),
           "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_OFFLINE": "1"}
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    printed: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            printed.append(msg["content"]["text"])
        if msg["msg_type"] == "error":
            printed.append("ERROR " + "\n".join(msg["content"]["traceback"]))

    try:
        code = (f"import json, dashboard_overhead as b\n"
                f"print('RESULT ' + json.dumps(b.measure({case!r}, {reps}, {steps})))")
        kc.execute_interactive(code, output_hook=hook, timeout=3600)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    text = "".join(printed)
    if "RESULT " not in text:
        raise SystemExit(text[-3000:])
    return json.loads(text.split("RESULT ", 1)[1].splitlines()[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=("tiny", "demo", "both"), default="both")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    a = parser.parse_args()
    for case in ("tiny", "demo") if a.case == "both" else (a.case,):
        results = _in_kernel(case, a.reps, a.steps)
        what = ("tiny Llama (hidden 64), batch 8 x 32 tokens" if case == "tiny"
                else "demo model, QUICKSTART LoRA, batch 8")
        print(f"\n== {case}: SFT, {what}, 1 torch thread, {a.reps} interleaved repetitions, steps 10-{a.steps}, "
              "in a real ipykernel")
        for name in ("dashboard", "notebook"):
            shares = [r[2] for r in results[name]]
            print(f"{name}: {100 * statistics.median(shares):.2f}% of the training thread's CPU time is spent in "
                  f"its callback (median; {100 * min(shares):.2f}..{100 * max(shares):.2f}%)")
        base_best = max(r[0] for r in results["none"])
        print(f"{'variant':<12}{'best steps/s':>14}{'best ratio':>12}{'median ratio (paired)':>24}")
        for name in VARIANTS:
            rates = [r[0] for r in results[name]]
            paired = [r / b[0] for r, b in zip(rates, results["none"])]
            print(f"{name:<12}{max(rates):>14.2f}{max(rates) / base_best:>12.3f}{statistics.median(paired):>24.3f}")
        print("raw (wall steps/s, cpu steps/s, callback share):",
              json.dumps({k: [[round(x, 4) for x in r] for r in v] for k, v in results.items()}))


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    main()
