"""Per-GPU memory under DDP, ZeRO-2, ZeRO-3/FSDP: model state split as each backend shards it."""

import pytest
import tiny

import jupyter_peft as jp
from jupyter_peft.memory.sharding import per_gpu


@pytest.fixture(scope="module")
def step():
    model = tiny.build("llama", device="meta")
    return jp.estimate(model, None, batch_size=2, seq_len=64)  # full fine-tuning: big model state


def test_ddp_keeps_everything_on_every_gpu(step):
    share = per_gpu(step, "ddp", 4)
    assert share.breakdown == step.breakdown
    assert share.bytes == step.total_bytes


def test_zero2_splits_gradients_and_optimizer(step):
    share = per_gpu(step, "zero2", 4)
    b = step.breakdown
    assert share.breakdown["optimizer"] == -(-b["optimizer"] // 4)
    assert share.breakdown.get("gradients", 0) == -(-b.get("gradients", 0) // 4)
    assert share.breakdown["weights"] == b["weights"] and share.breakdown["activations"] == b["activations"]
    assert per_gpu(step, "zero2", 4, offload=True).breakdown["optimizer"] == 0


@pytest.mark.parametrize("backend", ["zero3", "fsdp"])
def test_full_sharding_splits_weights_and_gathers_one_layer(step, backend):
    share = per_gpu(step, backend, 8)
    b = step.breakdown
    assert share.breakdown["weights"] == -(-b["weights"] // 8)
    assert share.breakdown["gathered layer"] == b["weights"] // 2  # the tiny Llama has 2 layers
    assert share.bytes < step.total_bytes
    offloaded = per_gpu(step, backend, 8, offload=True)
    assert offloaded.breakdown["weights"] == 0 and offloaded.breakdown["optimizer"] == 0


def test_the_accelerate_export_prints_the_share(tmp_path):
    model = tiny.build("llama")
    tiny.save("llama", tmp_path / "base")
    plan = jp.Plan.from_yaml(f"base: {tmp_path / 'base'}\ntarget_modules: [q_proj]\nr: 4\n"
                             "train: {trainer: sft, per_device_train_batch_size: 2, max_length: 64}\n")
    peft_model = jp.apply(plan, model)
    out = jp.export(plan, tmp_path / "out", format="accelerate", model=peft_model, gpus=4, backend="zero3")
    line = next(n for n in out.notes if n.startswith("per-GPU memory"))
    assert "zero3, 4 processes" in line and "batch 2 x 64 tokens" in line
