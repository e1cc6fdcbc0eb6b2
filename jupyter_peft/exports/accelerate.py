"""Scale-out: an `accelerate` config for N GPUs on M machines, and the exact launch command.

Backends are accelerate's own: DDP (`MULTI_GPU`), FSDP full-shard (FSDP2, `fsdp_config`) and
DeepSpeed ZeRO-2/3 (`deepspeed_config`), with optional CPU offload. Keys are accelerate's
config-file keys (the ones `accelerate config` writes); every file is read back with
accelerate's own loader and launch-argument validation before it is handed over.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from .._errors import PlanError, unknown
from .._format import format_bytes
from ..memory import estimate
from ..memory.sharding import per_gpu
from .source import Source

BACKENDS = {
    "ddp": "DistributedDataParallel: a full copy of the model on every GPU",
    "fsdp": "FSDP full-shard: parameters, gradients and optimizer state sharded over all GPUs",
    "zero2": "DeepSpeed ZeRO-2: gradients and optimizer state sharded",
    "zero3": "DeepSpeed ZeRO-3: parameters, gradients and optimizer state sharded",
}

_HOST = re.compile(r"^[A-Za-z0-9:\[][A-Za-z0-9.\-_:%\[\]]{0,252}$")  # a name, IPv4, or IPv6 (with brackets)


@dataclass(frozen=True)
class Scale:
    """Where the exported training runs: `gpus` per machine, `machines`, a backend, offload."""
    gpus: int = 1
    machines: int = 1
    backend: str = "ddp"
    offload: bool = False
    main_ip: str | None = None  # machine 0's address, for multi-machine runs
    port: int = 29500

    def __post_init__(self) -> None:
        for key in ("gpus", "machines", "port"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PlanError(f"{value!r} is not valid: expected a positive whole number", key=key, value=value)
        if self.backend not in BACKENDS:
            raise unknown("backend", self.backend, BACKENDS, key="backend")
        if self.main_ip is not None and not _HOST.match(str(self.main_ip)):
            raise PlanError(f"{self.main_ip!r} is not a host name or IP address", key="main_ip",
                            value=self.main_ip, choices=["10.0.0.1", "node0.cluster"])
        if self.offload and self.backend == "ddp":
            raise PlanError(
                "DDP keeps a full copy of everything on each GPU and cannot offload; use fsdp, zero2 or zero3",
                key="offload",
                choices=["fsdp", "zero2", "zero3"],
            )

    @property
    def processes(self) -> int:
        """accelerate's num_processes: all processes on all machines, one per GPU."""
        return self.gpus * self.machines


def config(source: Source, scale: Scale, layer_classes: list[str] | None = None) -> dict[str, Any]:
    """The accelerate config-file mapping (the keys `accelerate config` writes)."""
    cfg: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "distributed_type": "NO",
        "downcast_bf16": "no",
        "enable_cpu_affinity": False,
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": source.mixed_precision(),  # the same as the training config's bf16/fp16
        "num_machines": scale.machines,
        "num_processes": scale.processes,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }
    if scale.machines > 1 and scale.main_ip:
        cfg.update(main_process_ip=scale.main_ip, main_process_port=scale.port)
    if scale.backend == "ddp":
        cfg.update(distributed_type="MULTI_GPU" if scale.processes > 1 else "NO", gpu_ids="all")
    elif scale.backend == "fsdp":
        cfg.update(distributed_type="FSDP", fsdp_config=_fsdp(scale, layer_classes))
    else:
        cfg.update(distributed_type="DEEPSPEED", deepspeed_config=_deepspeed(scale))
    return dict(sorted(cfg.items()))


def _fsdp(scale: Scale, layer_classes: list[str] | None) -> dict[str, Any]:
    fsdp: dict[str, Any] = {
        "fsdp_version": 2,
        "fsdp_reshard_after_forward": True,  # FSDP2's full shard
        "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "fsdp_cpu_ram_efficient_loading": True,
        "fsdp_offload_params": scale.offload,
        "fsdp_state_dict_type": "FULL_STATE_DICT",  # save_model then writes a plain adapter
        "fsdp_activation_checkpointing": False,  # the training config's own checkpointing applies
    }
    if layer_classes:
        fsdp["fsdp_transformer_layer_cls_to_wrap"] = ",".join(layer_classes)
    return fsdp


def _deepspeed(scale: Scale) -> dict[str, Any]:
    stage = 3 if scale.backend == "zero3" else 2
    ds: dict[str, Any] = {
        "deepspeed_multinode_launcher": "standard",
        "zero_stage": stage,
        "offload_optimizer_device": "cpu" if scale.offload else "none",
        # ZeRO-2 shards no parameters, so only ZeRO-3 can offload them
        "offload_param_device": "cpu" if scale.offload and stage == 3 else "none",
        "zero3_init_flag": stage == 3,
    }
    if stage == 3:
        ds["zero3_save_16bit_model"] = True
    return ds


def launch_commands(scale: Scale, config_file: str, script: str, trl: tuple[str, str] | None = None) -> list[str]:
    """The exact commands: `accelerate launch` for the script, and `trl <trainer>` for the TRL config.
    Every word is shell-quoted (a file called `my train;touch X.py` stays one argument); the
    `<...>` placeholders are for the reader to fill in."""
    q = shlex.quote
    extra = ""
    if scale.machines > 1:
        ip = q(scale.main_ip) if scale.main_ip else "<machine 0's address>"
        extra = f" --machine_rank <0..{scale.machines - 1}> --main_process_ip {ip} --main_process_port {scale.port}"
    commands = [f"accelerate launch --config_file {q(config_file)}{extra} {q(script)}"]
    if trl is not None:
        trainer, trl_file = trl
        commands.append(f"trl {q(trainer)} --config {q(trl_file)} --accelerate_config {q(config_file)}{extra}")
    return commands


def notes(source: Source, scale: Scale) -> list[str]:
    """What to know before launching: the global batch, and settings a backend needs."""
    per_device = source.train_kwargs.get("per_device_train_batch_size", 8)
    accum = source.train_kwargs.get("gradient_accumulation_steps", 1)
    out = []
    if scale.processes > 1:
        out += [
            f"{scale.processes} processes ({scale.gpus} GPUs x {scale.machines} machines), {BACKENDS[scale.backend]}",
            f"global batch = {per_device} per device x {accum} accumulation x {scale.processes} processes = "
            f"{per_device * accum * scale.processes} (one process: {per_device * accum})",
        ]
    if scale.offload:
        what = {"fsdp": "parameters", "zero2": "optimizer state", "zero3": "optimizer state and parameters"}
        out.append(
            f"CPU offload: {what[scale.backend]} wait in CPU memory between uses (slower steps, less GPU memory)"
        )
    storage = source.quant_kwargs.get("bnb_4bit_quant_storage", "uint8")
    if source.quantization == "4bit" and scale.backend in ("fsdp", "zero3") and storage == "uint8":
        out.append(
            "4-bit base with FSDP/ZeRO-3: shards must be float; add `bnb_4bit_quant_storage: bfloat16` "
            "(the compute dtype) to the plan"
        )
    if scale.machines > 1:
        out.append(f"run the command on each of the {scale.machines} machines with its own --machine_rank")
    return out


def validate(path: str) -> Any:
    """Read a config file back the way `accelerate launch` does; PlanError if accelerate refuses
    it or holds a key it does not know. Returns accelerate's ClusterConfig."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    try:
        loaded = load_config_from_file(path)
    except (ValueError, TypeError) as err:
        raise PlanError(f"accelerate rejects {path}: {err}", key="accelerate") from None
    known = {a.dest for a in launch_command_parser()._actions}
    for section in ("fsdp_config", "deepspeed_config"):
        for key in getattr(loaded, section) or {}:
            if key not in known:
                raise PlanError(f"accelerate launch has no option {key!r} ({section} in {path})", key=key)
    return loaded


def memory_lines(source: Source, scale: Scale, model: Any) -> list[str]:
    """Per-GPU memory for the chosen backend, as comment lines: the instant estimate of one
    process's step (jupyter_peft.memory) split as the backend shards it."""
    if model is None:
        return [f"per-GPU memory: no estimate (export with model=... to get one for {scale.backend})"]
    try:
        step = estimate(model, source.plan, **_estimate_options(source))
    except Exception as err:  # an export never fails for want of an estimate
        return [f"per-GPU memory: no estimate ({type(err).__name__}: {err})"]
    share = per_gpu(step, scale.backend, scale.gpus * scale.machines, scale.offload)
    parts = ", ".join(f"{k} {format_bytes(v)}" for k, v in share.breakdown.items() if v)
    setup = f"jp.estimate, batch {step.setup.batch_size} x {step.setup.seq_len} tokens"
    if share.processes == 1:
        return [f"GPU memory (one process): ~{format_bytes(share.bytes)} ({setup})", f"  {parts}"]
    return [
        f"per-GPU memory ({scale.backend}{' + CPU offload' if scale.offload else ''}, "
        f"{share.processes} processes): ~{format_bytes(share.bytes)} (one process alone: "
        f"{format_bytes(step.total_bytes)}; {setup})",
        f"  per GPU: {parts}",
    ]


def _estimate_options(source: Source) -> dict[str, Any]:
    """The exported run's batch and sequence length, as the estimate names them."""
    train = source.train_kwargs
    options: dict[str, Any] = {}
    if "per_device_train_batch_size" in train:
        options["batch_size"] = train["per_device_train_batch_size"]
    if "max_length" in train and train["max_length"]:
        options["seq_len"] = train["max_length"]
    return options
