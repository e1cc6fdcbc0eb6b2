"""Bytes the training dashboard sends to the browser per step, early (step 10) and late (step 10,000).

A real 10,000-step SFT run of a micro Llama (hidden 16, one layer, batch 1) with the dashboard
attached at its default throttle. Every message the widget sends is serialized as ipykernel
serializes it (jupyter_client's Session: header, HMAC, JSON content; tests/wire.py) and
counted with the step the run was at. Reported: bytes per step over steps 1-200 and over
9,801-10,000 (throttled, as users get it: it depends on how many steps one update carries),
and the size of one update carrying one step, at step 10 and at step 10,000 (those two steps
are sent alone).

    python bench/dashboard_bytes.py [--steps 10000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10_000)
    steps = parser.parse_args().steps
    import tempfile
    import warnings

    warnings.filterwarnings("ignore")
    import runs
    import tiny
    import torch
    import wire
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    import jupyter_peft as jp

    torch.set_num_threads(1)
    model = jp.apply(runs.LORA, tiny.build("llama", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                          num_attention_heads=2, num_key_value_heads=1))
    args = SFTConfig(output_dir=tempfile.mkdtemp(), max_steps=steps, logging_steps=1, report_to="none", bf16=False,
                     use_cpu=True, save_strategy="no", disable_tqdm=True, per_device_train_batch_size=1,
                     max_length=16, logging_nan_inf_filter=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=runs.sft_data(), processing_class=tiny.tokenizer())
    trainer.remove_callback(PrinterCallback)
    with wire.recording():
        dashboard = jp.attach(trainer)
    run, comm = dashboard.run, dashboard.comm
    at_step: list[int] = []  # the run's step when each message went out
    publish = comm.publish_msg

    def counted(*a, **k):
        publish(*a, **k)
        at_step.append(run.tracker.step)

    comm.publish_msg = counted
    probes: dict[int, list] = {10: [], steps: []}
    logged, default_interval = run._logged, dashboard.interval

    def probing(step, logs):  # steps 10 and the last go out alone: the size of one update
        if step not in probes or "loss" not in logs:  # (the final summary log shares the last step)
            return logged(step, logs)
        dashboard.flush()
        dashboard.interval, before = 0.0, len(comm.messages)
        ok = logged(step, logs)
        probes[step], dashboard.interval = comm.messages[before:], default_interval
        return ok

    run._logged = probing
    start = time.perf_counter()
    dashboard.comm.from_page({"kind": "sync"})  # a view is open: it asked for the history
    run.start()
    run.wait()
    wall = time.perf_counter() - start
    sizes = [m["bytes"] for m in comm.messages]
    offset = len(sizes) - len(at_step)  # comm_open and the first state went out before counting

    def per_step(lo, hi):
        total = sum(b for b, s in zip(sizes[offset:], at_step) if lo < s <= hi)
        return total / (hi - lo)

    print(f"run: {steps} steps in {wall:.1f} s ({steps / wall:.0f} steps/s), {len(sizes)} messages, "
          f"{sum(sizes) / 1e6:.2f} MB in all (opening the widget: {sum(sizes[:offset]):,} B)")
    print(f"bytes per step, throttled (default interval {dashboard.interval} s):")
    print(f"  steps 1-200:            {per_step(0, 200):8.0f} B/step")
    print(f"  steps {steps - 199}-{steps}:  {per_step(steps - 200, steps):8.0f} B/step")
    print("one update carrying one step (points message + progress/memory trait update):")
    for step, messages in probes.items():
        parts = " + ".join(f"{_label(m)} {m['bytes']}" for m in messages)
        print(f"  at step {step:>6}: {sum(m['bytes'] for m in messages):6d} B  = {parts}")
    ratio = sum(m["bytes"] for m in probes[steps]) / sum(m["bytes"] for m in probes[10])
    print(f"ratio step {steps} / step 10: {ratio:.3f}")


def _label(message: dict) -> str:
    """`points[loss,...]` or `update[progress,...]`: what one message carried."""
    data = message["data"]
    if data.get("method") == "custom":
        return f"points[{','.join(data['content']['series'])}]"
    return f"update[{','.join(data.get('state', {}))}]"


if __name__ == "__main__":
    main()
