"""Our estimate beside published memory measurements (shared/notes/memory.md).

PEFT README (A100 80GB, batch 8, fp32 weights, short inputs, torch.cuda.max_memory_allocated;
early 2023, torch < 2.0, whose zero_grad kept gradients allocated between steps):
    T0_3B full fine-tuning 47.14 GB, LoRA r8 14.4 GB; mt0-xxl LoRA 56 GB; bloomz-7b1 LoRA 32 GB
    (full fine-tuning of the last two: OOM on 80 GB).
transformers docs (bert-large, V100, nvidia-smi): training at batch 4 x 512 tokens 14949 MB,
    of which 1343 MB CUDA context.

Configs are built here from the models' published hyperparameters (no hub). The PEFT scripts
(peft_lora_{seq2seq,clm}_accelerate_ds_zero3_offload.py) train on 64-token inputs with short
labels (twitter complaints: 4 label tokens for the seq2seq models), LoRA r=8 on peft's default
targets, torch AdamW without mixed precision and the model's own loss, attention as those
transformers versions ran it (eager: s x s scores). GB here = 2**30 bytes (the scripts' b2mb
/ 1024). Each row is estimated as then (keep_gradients) and as a run would go today.

    PYTHONPATH=. python bench/memory_published.py
"""

from __future__ import annotations

import time
import warnings

GiB = 2**30


def configs() -> dict:
    from transformers import BertConfig, BloomConfig, MT5Config, T5Config

    return {
        "T0_3B": T5Config(
            d_model=2048,
            d_ff=5120,
            d_kv=64,
            num_heads=32,
            num_layers=24,
            num_decoder_layers=24,
            vocab_size=32128,
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=False,
            decoder_start_token_id=0,
        ),
        "mt0-xxl": MT5Config(
            d_model=4096,
            d_ff=10240,
            d_kv=64,
            num_heads=64,
            num_layers=24,
            num_decoder_layers=24,
            vocab_size=250112,
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=False,
            decoder_start_token_id=0,
        ),
        "bloomz-7b1": BloomConfig(hidden_size=4096, n_layer=30, n_head=32, vocab_size=250880),
        "bert-large": BertConfig(
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            vocab_size=30522,
            num_labels=2,
            architectures=["BertForSequenceClassification"],
        ),
    }


LORA = "method: lora\nr: 8\nlora_alpha: 32\nlora_dropout: 0.1"
ROWS = [  # model, plan, published GB, options, simulate too
    ("T0_3B", None, 47.14, dict(target_len=4), True),
    ("T0_3B", LORA, 14.4, dict(target_len=4), True),
    ("mt0-xxl", LORA, 56.0, dict(target_len=4), False),
    ("bloomz-7b1", LORA, 32.0, {}, False),
]


def main() -> None:
    import jupyter_peft as jp

    warnings.filterwarnings("ignore")
    cfg = configs()
    print(
        f"{'model':11} {'method':5} {'published':>10} {'instant':>9} {'err':>7} "
        f"{'simulated':>10} {'err':>7}  s"
    )
    for name, plan, published, extra, simulate in ROWS:
        options = dict(
            batch_size=8,
            seq_len=64,
            dtype="float32",
            optimizer="adamw_torch_fused",
            loss="full",
            gradient_checkpointing=False,
            attention="eager",
            keep_gradients=True,
            **extra,
        )
        start = time.perf_counter()
        est = jp.estimate(cfg[name], plan, **options).peak_bytes / GiB
        sim = (
            jp.estimate(cfg[name], plan, method="simulate", **options).peak_bytes / GiB if simulate else None
        )
        sim_text = f"{sim:9.2f}G {sim / published - 1:+7.1%}" if sim else f"{'-':>10} {'':>7}"
        today = jp.estimate(cfg[name], plan, **{**options, "attention": "fused", "keep_gradients": False})
        print(
            f"{name:11} {'full' if plan is None else 'LoRA':5} {published:9.2f}G {est:8.2f}G "
            f"{est / published - 1:+7.1%} {sim_text}  {time.perf_counter() - start:.0f}"
            f"   (today: fused attention, gradients freed: {today.peak_bytes / GiB:.2f}G)"
        )
    for name in ("mt0-xxl", "bloomz-7b1"):
        options = dict(batch_size=8, seq_len=64, dtype="float32", loss="full", gradient_checkpointing=False)
        if name == "mt0-xxl":
            options["target_len"] = 4
        est = jp.estimate(cfg[name], None, gpu="A100-80GB", **options)
        print(
            f"{name:11} full  published OOM on A100-80GB; estimate {est.total_bytes / GiB:.1f} GiB, "
            f"fits: {est.fits()}"
        )
    # bert-large: nvidia-smi = tensors + context (1343 MB measured there) + allocator slack
    options = dict(
        batch_size=4,
        seq_len=512,
        dtype="float32",
        optimizer="adamw_torch",
        loss="full",
        gradient_checkpointing=False,
        attention="eager",
    )
    published = 14949 / 1024
    instant = jp.estimate(cfg["bert-large"], None, **options)
    simulated = jp.estimate(cfg["bert-large"], None, method="simulate", **options)
    context = 1343 / 1024
    for label, est in (("instant", instant), ("simulated", simulated)):
        seen = est.peak_bytes / GiB + context
        slack = est.peak_bytes / GiB * 0.05  # our allocator-slack allowance (fit.py)
        print(
            f"bert-large  full  {published:9.2f}G (nvidia-smi) {label}: tensors {est.peak_bytes / GiB:.2f}G "
            f"+ context {context:.2f}G = {seen:.2f}G ({seen / published - 1:+.1%}); with 5% allocator slack "
            f"{seen + slack:.2f}G ({(seen + slack) / published - 1:+.1%})"
        )


if __name__ == "__main__":
    main()
