"""Training speed with the live dashboard attached, against the same trainer without it.

Runs inside a real ipykernel (started here with jupyter_client), so the widget's messages and
transformers' NotebookProgressCallback displays really go out over the kernel's iopub socket.
One process, one tiny Llama (tests/tiny.py), SFT at batch 4 on one torch thread; each
repetition trains a fresh trainer per variant, in rotated order:
    none        the trainer as `jp.train` builds it (logging every step), no display
    dashboard   the same plus `jp.attach(trainer)`: recorder callback + streaming widget
    notebook    the same plus transformers' NotebookProgressCallback (its HTML progress table)
Speed is steps/s between step `warmup` and the last step. Printed: median steps/s per variant
and the median of the per-repetition ratios to `none` (paired, so slow drifts of a shared
machine cancel).

    python bench/dashboard_overhead.py [--reps 7] [--steps 150]
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


def measure(reps: int, steps: int, warmup: int = 20) -> dict[str, list[float]]:
    """Runs in the kernel: steps/s per variant and repetition."""
    import tempfile
    import warnings

    warnings.filterwarnings("ignore")
    import runs
    import tiny
    import torch
    from transformers import PrinterCallback, TrainerCallback
    from transformers.utils.notebook import NotebookProgressCallback
    from trl import SFTConfig, SFTTrainer

    import jupyter_peft as jp

    torch.set_num_threads(1)
    model, tok, data = jp.apply(runs.LORA, tiny.build("llama")), tiny.tokenizer(), runs.sft_data()

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (warmup, steps):
                setattr(self, f"t{state.global_step}", time.perf_counter())

    out: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for rep in range(reps):
        for name in VARIANTS[rep % 3:] + VARIANTS[:rep % 3]:
            args = SFTConfig(output_dir=tempfile.mkdtemp(), max_steps=steps, logging_steps=1, report_to="none",
                             bf16=False, use_cpu=True, save_strategy="no", disable_tqdm=True,
                             per_device_train_batch_size=4, logging_nan_inf_filter=False)
            trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
            trainer.remove_callback(PrinterCallback)
            clock = Clock()
            trainer.add_callback(clock)
            if name == "dashboard":
                dashboard = jp.attach(trainer)
            elif name == "notebook":
                trainer.add_callback(NotebookProgressCallback)
            trainer.train()
            if name == "dashboard":
                dashboard.close()
            out[name].append((steps - warmup) / (getattr(clock, f"t{steps}") - getattr(clock, f"t{warmup}")))
    return out


def _in_kernel(reps: int, steps: int) -> dict[str, list[float]]:
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
                f"print('RESULT ' + json.dumps(b.measure({reps}, {steps})))")
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
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--steps", type=int, default=150)
    a = parser.parse_args()
    results = _in_kernel(a.reps, a.steps)
    base = results["none"]
    print(f"SFT, tiny Llama (tests/tiny.py), batch 4, 1 torch thread, {a.reps} interleaved repetitions, "
          f"steps/s from step 20 to {a.steps}, in a real ipykernel")
    print(f"{'variant':<12}{'median steps/s':>16}{'ratio to none':>15}{'ratios min..max':>20}")
    for name in VARIANTS:
        ratios = [r / b for r, b in zip(results[name], base)]
        print(f"{name:<12}{statistics.median(results[name]):>16.1f}{statistics.median(ratios):>15.3f}"
              f"{min(ratios):>11.3f}..{max(ratios):.3f}")
    print("raw steps/s:", json.dumps({k: [round(x, 1) for x in v] for k, v in results.items()}))


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    main()
