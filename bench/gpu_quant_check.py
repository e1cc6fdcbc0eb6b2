"""GPU check for quantized bases: bitsandbytes' CUDA kernels through jupyter_peft, end to end.

A ~0.5B Llama with random weights is saved to a temporary folder (bf16), then for each base
(bf16 LoRA as the baseline measured in this run, QLoRA 4-bit nf4 with double quantization,
LoRA on 8-bit) it is loaded the way a `base:` cell loads it, adapted with `jp.apply`, trained
a few SFT steps with TRL, and checked: prepared for k-bit training, checkpointing on, the
saved adapter on a freshly quantized base gives the same logits, `jp.merge` gives a plain
model with the adapted model's logits. Prints peak memory and steps/s with their ratios to
the baseline. Under 3 minutes on one GPU.

    python bench/gpu_quant_check.py               # needs CUDA
    python bench/gpu_quant_check.py --cpu-smoke   # the same steps on a tiny model on CPU
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
warnings.filterwarnings("ignore", category=FutureWarning)

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tiny.tokenizer()

SIZES = {
    "0.5b": dict(hidden_size=1536, intermediate_size=4096, num_hidden_layers=16, num_attention_heads=12,
                 num_key_value_heads=4, vocab_size=32000, max_position_embeddings=1024),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=256),
}
ADAPTER = "r: 16\nlora_alpha: 32\nlora_dropout: 0.0\ntarget_modules: all-linear\n"
BASES = {
    "bf16": "method: lora\n" + ADAPTER,
    "4bit": "method: qlora\nbnb_4bit_quant_type: nf4\nbnb_4bit_use_double_quant: true\n" + ADAPTER,
    "8bit": "method: lora\nquantization: 8bit\n" + ADAPTER,
}


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--cpu-smoke", action="store_true", help="run the steps on a tiny model on CPU")
    args.add_argument("--steps", type=int, default=12)
    opts = args.parse_args()
    gpu = not opts.cpu_smoke
    if gpu and not torch.cuda.is_available():
        print("gpu_quant_check: needs a CUDA GPU (torch.cuda.is_available() is False); nothing was run. "
              "Use --cpu-smoke to check the steps on CPU.", file=sys.stderr)
        return 2
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    size = "0.5b" if gpu else "tiny"
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_model(Path(tmp) / "base", size, gpu)
        results = {kind: run(kind, folder, Path(tmp) / kind, gpu, opts.steps) for kind in BASES}
    report(results, size, gpu)
    return 0 if all(r["ok"] for r in results.values()) else 1


def save_model(folder: Path, size: str, gpu: bool) -> str:
    import tiny
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    with torch.device("cuda" if gpu else "cpu"):
        model = LlamaForCausalLM(LlamaConfig(**SIZES[size])).to(torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    tiny.tokenizer().save_pretrained(folder)
    print(f"saved a {n / 1e9:.2f}B-parameter Llama ({size}) in bf16 to {folder}")
    del model
    if gpu:
        torch.cuda.empty_cache()
    return str(folder)


def run(kind: str, folder: str, out: Path, gpu: bool, steps: int) -> dict:
    import jupyter_peft as jp
    from jupyter_peft.quant import kbit
    from jupyter_peft.quant.loading import load_base

    plan = jp.Plan.from_yaml(f"base: {folder}\n{BASES[kind]}")
    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    model, tokenizer = load_base(plan, device_map={"": 0} if gpu else "cpu")
    load_s = time.perf_counter() - t
    peft_model = jp.apply(plan, model)
    checks = {
        "quantization": kbit.quantization_of(model) == ("none" if kind == "bf16" else kind),
        "prepared once": kbit.is_prepared(model) == (kind != "bf16"),
        "checkpointing": model.is_activation_checkpointing == (gpu and kind != "bf16"),
    }
    clock = train(peft_model, tokenizer, out, gpu, steps)
    peak = torch.cuda.max_memory_allocated() if gpu else None
    checks["adapter round trip"] = round_trip(peft_model, plan, out, gpu)
    checks["merge"] = merge_check(peft_model, gpu)
    return {"load_s": load_s, "steps_per_s": clock.rate(), "peak": peak, "checks": checks,
            "ok": all(checks.values())}


def train(peft_model, tokenizer, out: Path, gpu: bool, steps: int):
    import tiny
    from datasets import Dataset
    from transformers import PrinterCallback

    from jupyter_peft.plan.train_config import TRAINERS, trainer_config

    text = " ".join(tiny._CORPUS)
    data = Dataset.from_dict({"text": [text[i:] + text[:i] for i in range(0, 96 * 7, 7)]})
    trainer_cls, _ = TRAINERS["sft"].load()
    config = trainer_config({"trainer": "sft", "max_steps": steps, "learning_rate": 1e-3}, out, on_gpu=gpu,
                            per_device_train_batch_size=8 if gpu else 2, max_length=256 if gpu else 32)
    clock = make_clock(gpu)
    trainer = trainer_cls(model=peft_model, args=config, train_dataset=data, processing_class=tokenizer,
                          callbacks=[clock])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    peft_model.save_pretrained(out / "adapter")
    return clock


def round_trip(peft_model, plan, out: Path, gpu: bool) -> bool:
    """The saved adapter on a freshly loaded base gives the trained model's logits."""
    from peft import PeftModel

    from jupyter_peft.quant import kbit
    from jupyter_peft.quant.loading import load_base

    fresh, _ = load_base(plan, device_map={"": 0} if gpu else "cpu")
    kbit.prepare(fresh, checkpointing=False)  # as the trained base was: its bf16 norms upcast to fp32
    loaded = PeftModel.from_pretrained(fresh, out / "adapter")
    trained = dict(peft_model.named_parameters())
    for name, param in loaded.named_parameters():
        if "lora_" in name:
            param.data = param.data.to(trained[name].dtype)  # TRL trains QLoRA adapters in bf16
    diff = _rel_diff(logits(loaded, gpu), logits(peft_model, gpu))
    print(f"  adapter round trip: max relative logit difference {diff:.2e}")
    del loaded, fresh
    return diff < 1e-3


def merge_check(peft_model, gpu: bool) -> bool:
    """`jp.merge` gives a plain model whose logits are the adapted model's (bf16 compute: 2e-2)."""
    import jupyter_peft as jp

    merged = jp.merge(peft_model)
    plain = not any("bit" in type(m).__name__ for m in merged.modules())
    diff = _rel_diff(logits(merged, gpu), logits(peft_model, gpu))
    print(f"  merge: plain={plain}, max relative logit difference {diff:.2e}")
    del merged
    return plain and diff < 2e-2


def logits(model, gpu: bool):
    ids = torch.randint(0, 256, (2, 64), generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids.to("cuda" if gpu else "cpu")).logits.float()


def _rel_diff(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


def make_clock(gpu: bool):
    """A TrainerCallback keeping step end times (after the GPU finished the step); `.rate()` is
    steps/s past two warm-up steps."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            if gpu:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())

        def rate(self) -> float:
            warm = self.times[2:]
            return (len(warm) - 1) / (warm[-1] - warm[0]) if len(warm) > 1 else float("nan")

    return Clock()


def report(results: dict, size: str, gpu: bool) -> None:
    base = results["bf16"]
    print(f"\nmodel {size}, {'CUDA ' + torch.cuda.get_device_name() if gpu else 'CPU smoke'}")
    print(f"{'base':<6} {'load s':>7} {'peak':>14} {'steps/s':>16}  checks")
    for kind, r in results.items():
        peak = f"{r['peak'] / 2**30:.2f} GiB" if r["peak"] is not None else "n/a"
        if r["peak"] is not None and kind != "bf16":
            peak += f" {r['peak'] / base['peak']:.2f}x"
        rate = f"{r['steps_per_s']:.2f}"
        if kind != "bf16":
            rate += f" {r['steps_per_s'] / base['steps_per_s']:.2f}x"
        failed = [name for name, ok in r["checks"].items() if not ok]
        verdict = "FAILED: " + ", ".join(failed) if failed else "ok"
        print(f"{kind:<6} {r['load_s']:>7.1f} {peak:>14} {rate:>16}  {verdict}")


if __name__ == "__main__":
    sys.exit(main())
