"""On a CUDA machine: the estimate against the real step, row by row.

A ~1.1B-parameter Llama-style config (TinyLlama's shape) built from its config with random
weights; for each row of a small matrix (full fine-tuning, LoRA on attention and on all linear
layers, QLoRA NF4 with double quantization, IA3, prompt tuning; bf16 and fp32; with and
without gradient checkpointing; two batch shapes), `method="measure"` runs two real training
steps and reads the second one's `torch.cuda.max_memory_allocated` and `max_memory_reserved`,
printed beside the instant estimate's allocated and reserved peaks (and the simulation's, on
request; the reserved ones come from the caching allocator model, memory/allocator.py).
Exits with a message when there is no CUDA device.
Under 5 minutes on one GPU.

    PYTHONPATH=. python bench/gpu_memory_check.py [--simulate]
"""

from __future__ import annotations

import sys
import time
import warnings

GiB = 2**30
PLANS = {
    "full": None,
    "lora-attn-r8": "method: lora\nr: 8\ntarget_modules: [q_proj, v_proj]",
    "lora-all-r32": "method: lora\nr: 32\ntarget_modules: all-linear",
    "dora-attn-r8": "method: dora\nr: 8\ntarget_modules: [q_proj, v_proj]",
    "qlora-all-r16": "method: qlora\nr: 16\ntarget_modules: all-linear\nbnb_4bit_use_double_quant: true",
    "ia3": "method: ia3\ntarget_modules: [k_proj, v_proj, down_proj]\nfeedforward_modules: [down_proj]",
    "prompt": "method: prompt_tuning\nnum_virtual_tokens: 20",
}
ROWS = [  # plan, dtype, gradient checkpointing, batch, seq
    ("full", "bfloat16", True, 4, 512),
    ("full", "bfloat16", False, 2, 512),
    ("lora-attn-r8", "bfloat16", False, 4, 512),
    ("lora-attn-r8", "bfloat16", True, 8, 1024),
    ("lora-all-r32", "bfloat16", False, 4, 512),
    ("lora-all-r32", "float32", True, 4, 512),
    ("dora-attn-r8", "bfloat16", False, 4, 512),
    ("qlora-all-r16", "bfloat16", False, 4, 512),
    ("qlora-all-r16", "bfloat16", True, 8, 1024),
    ("ia3", "bfloat16", False, 4, 512),
    ("prompt", "bfloat16", True, 4, 512),
    # the loop and the padding (a padded batch's mask on a GQA model; each loop's loss and outputs)
    ("lora-all-r32", "bfloat16", False, 4, 512, {"padded": False}),
    ("lora-all-r32", "bfloat16", False, 4, 512, {"loop": "trainer"}),
    ("lora-all-r32", "bfloat16", False, 4, 512, {"loop": "plain"}),
]


def config() -> object:
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab_size=32000,
        max_position_embeddings=2048,
        architectures=["LlamaForCausalLM"],
    )


def main(simulate: bool = False) -> int:
    import torch

    if not torch.cuda.is_available():
        print(
            "gpu_memory_check needs a CUDA device; this machine has none. "
            "On a GPU machine: PYTHONPATH=. python bench/gpu_memory_check.py"
        )
        return 2
    import jupyter_peft as jp

    warnings.filterwarnings("ignore")
    cfg = config()
    print(f"device: {torch.cuda.get_device_name()}; Llama-style 1.1B config, random weights")
    print(
        f"{'plan':14} {'dtype':8} {'gc':2} {'b':>2} {'seq':>5} {'measured':>9} {'instant':>9} {'err':>7}"
        f"{'  simulated    err' if simulate else ''}  overhead  reserved: measured instant err"
        f"{' simulated err' if simulate else ''}"
    )
    worst = worst_reserved = 0.0
    for plan, dtype, ckpt, batch, seq, *extra in ROWS:
        options = dict(batch_size=batch, seq_len=seq, dtype=dtype, gradient_checkpointing=ckpt,
                       **(extra[0] if extra else {}))
        start = time.perf_counter()
        measured = jp.estimate(cfg, PLANS[plan], method="measure", **options)
        instant = jp.estimate(cfg, PLANS[plan], **options)
        error = instant.peak_bytes / measured.peak_bytes - 1
        worst = max(worst, abs(error))
        line = (
            f"{plan:14} {dtype:8} {ckpt:2d} {batch:2d} {seq:5d} {measured.peak_bytes / GiB:8.2f}G "
            f"{instant.peak_bytes / GiB:8.2f}G {error:+7.1%}"
        )
        if simulate:
            simulated = jp.estimate(cfg, PLANS[plan], method="simulate", **options)
            line += (
                f"  {simulated.peak_bytes / GiB:8.2f}G {simulated.peak_bytes / measured.peak_bytes - 1:+7.1%}"
            )
        line += f"  {measured.overhead_bytes / GiB:.2f}G"
        # max_memory_reserved of the second step against the allocator model's reserved peak
        reserved_error = instant.reserved_bytes / measured.reserved_bytes - 1
        worst_reserved = max(worst_reserved, abs(reserved_error))
        line += f"  {measured.reserved_bytes / GiB:8.2f}G {instant.reserved_bytes / GiB:8.2f}G {reserved_error:+7.1%}"
        if simulate:
            sim_error = simulated.reserved_bytes / measured.reserved_bytes - 1
            line += f" {simulated.reserved_bytes / GiB:8.2f}G {sim_error:+7.1%}"
        line += f"  ({time.perf_counter() - start:.0f}s){'  ' + str(extra[0]) if extra else ''}"
        print(line, flush=True)
    print(f"worst |error| of the instant estimate against max_memory_allocated: {worst:.1%}")
    print(f"worst |error| of the instant reserved peak against max_memory_reserved: {worst_reserved:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(simulate="--simulate" in sys.argv))
