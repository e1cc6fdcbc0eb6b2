"""`Setup`: everything that decides the memory of one training step, resolved and checked.

`resolve(model_or_config, plan, **options)` turns what a user has (a model, real or on `meta`;
a transformers config; a local config folder) and a Plan (or None for full fine-tuning) into
a `Setup`. Options left unset come from the plan's `train:` block by TRL's field names
(per_device_train_batch_size, max_length, optim, gradient/activation_checkpointing, bf16,
fp16), then from what `jp.train` uses on a GPU (TRL's defaults), then from the model.
Every bad value is a PlanError naming the option and the valid choices.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
from dataclasses import dataclass
from typing import Any

from .._compat import base_model
from .._errors import PlanError, unknown
from ..model.adapt import as_plan
from ..plan.train_config import NO_CHECKPOINTING, defaults
from .states import OPTIMIZERS

DTYPES = {"float32": 4, "bfloat16": 2, "float16": 2}
_DTYPE_ALIASES = {
    "fp32": "float32",
    "bf16": "bfloat16",
    "fp16": "float16",
    "half": "float16",
    "float": "float32",
}
LOSSES = ("chunked", "full")
LOOPS = {
    "trl": "TRL's trainers (jp.train): TRL's chunked LM head, autocast as the train block says",
    "trainer": "transformers' Trainer: the model's own loss over full logits, autocast as the train block says",
    "plain": "your own loop (outputs = model(**batch); outputs.loss.backward()): the model's own loss, "
             "no autocast unless asked, and the outputs' logits held until the next step replaces them",
}
# TRL trainers whose step runs chosen and rejected sequences together (twice the rows).
PAIRED = ("dpo", "orpo", "cpo", "reward")


@dataclass(frozen=True)
class Setup:
    """One training step, as the estimators see it."""
    config: Any
    """The transformers config of the base model."""
    plan: Any
    """The Plan, or None for full fine-tuning."""
    batch_size: int
    seq_len: int
    dtype: str
    """Storage dtype of the base weights that are not quantized: float32 | bfloat16 | float16."""
    autocast: str | None
    """Mixed-precision compute dtype (TRL's bf16 / fp16), or None."""
    gradient_checkpointing: bool
    optimizer: str
    """transformers' `optim` name (adamw_torch_fused, adamw_8bit, paged_adamw_8bit, sgd, ...)."""
    loss: str
    """chunked: TRL's fused LM head (no full logits); full: the model's own loss over logits."""
    trainer: str
    """sft, dpo, ...: paired trainers (dpo, orpo, cpo, reward) run 2 x batch_size rows."""
    quantization: str = "none"
    """none | 4bit | 8bit: the frozen linear weights of the base."""
    double_quant: bool = False
    model_class: str | None = None
    """The transformers class to build on meta (from the model or config.architectures)."""
    target_len: int | None = None
    """Encoder-decoder models: label tokens per row (default: seq_len)."""
    attention: str = "fused"
    """fused: flash / memory-efficient kernels (no s x s scores); eager: scores materialised."""
    keep_gradients: bool = False
    """Gradients stay allocated between steps (zero_grad(set_to_none=False), torch < 2.0)."""
    padding: bool = False
    """The trainer pads each batch's rows to its longest (unpacked rows of other lengths)."""
    packed: bool = False
    """Padding-free rows (TRL's packing, padding_free): the batch is one row of rows x seq_len
    tokens with position ids; SDPA then gets a block-causal mask over all of them."""
    loop: str = "trl"
    """The loop that runs the step (LOOPS): trl, trainer or plain."""
    @property
    def targets(self) -> int:
        """Tokens the LM head scores per row: the labels of an encoder-decoder model, else the
        sequence with any virtual tokens."""
        if getattr(self.config, "is_encoder_decoder", False):
            return self.target_len or self.seq_len
        return self.seq_len + self.virtual_tokens

    @property
    def padded(self) -> bool:
        """The batch's rows are padded (padding, and more than one row to pad)."""
        return self.padding and self.rows > 1 and not self.packed

    @property
    def masked(self) -> bool:
        """SDPA gets an attention mask (padded rows, or packed ones: transformers builds a
        block-causal mask from their position ids): it then keeps keys and values repeated to
        every query head, and the mask (trace.batch_rows). Flash attention's varlen kernels
        take neither."""
        return self.attention == "fused" and (self.padded or self.packed)

    @property
    def step_shape(self) -> tuple[int, int]:
        """(rows, tokens per row) of the step's tensors: packed rows are one row."""
        seq = self.seq_len + self.virtual_tokens
        return (1, self.rows * seq) if self.packed else (self.rows, seq)

    @property
    def full(self) -> bool:
        return self.plan is None

    @property
    def rows(self) -> int:
        """Sequences one forward pass carries (paired trainers run chosen and rejected together)."""
        return self.batch_size * (2 if self.trainer in PAIRED else 1)

    @property
    def virtual_tokens(self) -> int:
        """Prompt-learning tokens prepended to every sequence (prompt tuning, p-tuning; prefix
        tuning adds keys and values to attention instead, no tokens)."""
        if self.plan is None or not self.plan.method_spec.is_prompt_learning or self.plan.method == "prefix_tuning":
            return 0
        return int(
            self.plan.options.get("num_virtual_tokens", self.plan.method_spec.options["num_virtual_tokens"].default)
        )

    @property
    def adapter_dtype(self) -> str:
        """peft keeps adapters in fp32; TRL casts them to bf16 on a quantized base (QLoRA)."""
        return "bfloat16" if self.quantization != "none" else "float32"

    def replace(self, **changes: Any) -> Setup:
        return dataclasses.replace(self, **changes)

    @functools.cached_property
    def key(self) -> tuple[Any, ...]:
        """What the per-model work depends on (not batch or sequence length)."""
        plan = self.plan.to_yaml() if self.plan is not None else None
        ratio = round(self.targets / self.seq_len, 3)  # encoder-decoder: target to source length
        return (
            config_key(self.config),
            self.model_class,
            plan,
            self.dtype,
            self.autocast,
            ratio,
            self.gradient_checkpointing,
            self.quantization,
            self.double_quant,
            self.trainer,
            self.attention,
            self.masked,
        )


def config_key(config: Any) -> str:
    return config.to_json_string(use_diff=False)


# ---- resolving ---------------------------------------------------------------------------


def resolve(model_or_config: Any, plan: Any = None, **options: Any) -> Setup:
    """A Setup from a model/config/folder, a plan and keyword options (see the module docstring)."""
    config, facts = source_facts(model_or_config)
    plan = _as_plan(plan)
    train = _train_settings(plan)
    unknown_keys = set(options) - set(_OPTIONS)
    if unknown_keys:
        raise unknown("option", sorted(unknown_keys)[0], _OPTIONS, " for estimate", key=sorted(unknown_keys)[0])
    pick = {k: options[k] if options.get(k) is not None else train.get(k) for k in _OPTIONS}
    quant = pick["quantization"] or (plan.effective_quantization if plan is not None else None)
    quant = quant or facts.get("quantization", "none")
    dtype = _dtype(pick["dtype"] or facts.get("dtype") or _config_dtype(config), "dtype")
    loop = _choice(pick["loop"] or "trl", tuple(LOOPS), "loop")
    autocast = pick["autocast"]
    if autocast is None and loop == "plain":  # a plain loop computes in the weights' dtype
        autocast = "none"
    if autocast is None:  # the train block's bf16/fp16, else compute in the weights' dtype
        autocast = train["_mixed"] if "_mixed" in train else (dtype if dtype != "float32" else None)
    autocast = None if autocast in (None, False, "none", "no") else _dtype(autocast, "autocast")
    setup = Setup(
        config=config,
        plan=plan,
        batch_size=_positive(_default(pick["batch_size"], 8), "batch_size"),  # TRL's defaults
        seq_len=_positive(_default(pick["seq_len"], 1024), "seq_len"),
        dtype=dtype,
        autocast=autocast,
        gradient_checkpointing=bool(pick["gradient_checkpointing"]),
        optimizer=_optimizer(pick["optimizer"] or "adamw_torch_fused"),
        loss=_loss(pick["loss"] or (None if loop == "trl" else "full"), config),
        trainer=str(train.get("trainer", "sft")),
        quantization=_choice(str(quant), ("none", "4bit", "8bit"), "quantization"),
        double_quant=bool(pick["double_quant"] if pick["double_quant"] is not None else _double_quant(plan, facts)),
        model_class=facts.get("model_class") or _config_class(config),
        target_len=_positive(pick["target_len"], "target_len") if pick["target_len"] is not None else None,
        attention=_choice(pick["attention"] or facts.get("attention") or "fused", ("fused", "eager", "flash"),
                          "attention"),
        keep_gradients=bool(pick["keep_gradients"]),
        padding=_padding(pick["padded"], train),
        packed=_packed(pick["packed"], train, config),
        loop=loop,
    )
    if setup.quantization != "none" and setup.full:
        raise PlanError(
            "full fine-tuning cannot train quantized weights: use a LoRA plan (QLoRA) or quantization none",
            key="quantization",
            value=setup.quantization,
        )
    return setup


# estimate's keyword options, with what they mean
_OPTIONS = {
    "batch_size": "sequences per device per step (TRL: per_device_train_batch_size)",
    "seq_len": "tokens per sequence, the longest batch (TRL: max_length)",
    "dtype": "storage dtype of the base weights: float32, bfloat16, float16",
    "autocast": "mixed precision: bfloat16, float16 or none (TRL: bf16 / fp16)",
    "gradient_checkpointing": "recompute activations in backward (TRL: gradient_checkpointing)",
    "optimizer": "transformers optim name: adamw_torch_fused, adamw_torch, adamw_8bit, paged_adamw_8bit...",
    "loss": "chunked (TRL's fused LM head) or full (logits, the model's own loss)",
    "quantization": "none, 4bit or 8bit base weights (default: the plan's, else the model's)",
    "double_quant": "4-bit double quantization (bnb_4bit_use_double_quant)",
    "target_len": "encoder-decoder models: label tokens per row (default: seq_len)",
    "attention": "fused (SDPA's flash / memory-efficient kernels), flash (flash_attention_2/3: varlen, no mask) "
                 "or eager (s x s attention scores); default: the model's",
    "packed": "padding-free rows: the batch is one row of batch_size x seq_len tokens (default: the train "
              "block's packing or padding_free)",
    "keep_gradients": "gradients stay allocated between steps (zero_grad(set_to_none=False), torch < 2.0)",
    "loop": "the loop that runs the step: trl (default), trainer (transformers' Trainer) or plain (your own)",
    "padded": "rows padded to the batch's longest, with an attention mask (default: yes unless packing, "
              "padding_free or one row; with a dataset: whether its longest batch is padded)",
}


def _train_settings(plan: Any) -> dict[str, Any]:
    """Options from the plan's train block by TRL's names, with jp.train's GPU defaults."""
    if plan is None or not plan.train:
        return {}

    train = plan.train
    trainer = train.get("trainer", "sft")
    merged = {**defaults(trainer, on_gpu=True, method=plan.method), "bf16": True, **train}  # GPUs do bf16
    out: dict[str, Any] = {"trainer": trainer}
    out["batch_size"] = merged.get("per_device_train_batch_size")
    out["seq_len"] = merged.get("max_length")
    out["optimizer"] = merged.get("optim")
    out["_unpadded"] = bool(merged.get("packing") or merged.get("padding_free"))
    # TRL makes packed rows padding-free unless the packing strategy is "wrapped" (full rows)
    wrapped = merged.get("packing") and str(merged.get("packing_strategy", "bfd")) == "wrapped"
    out["_packed"] = bool(merged.get("padding_free") or (merged.get("packing") and not wrapped))
    ckpt = merged.get("activation_checkpointing", merged.get("gradient_checkpointing"))
    out["gradient_checkpointing"] = ckpt if ckpt is not None else plan.method not in NO_CHECKPOINTING
    if merged.get("fp16"):
        out["_mixed"] = "float16"
    elif merged.get("bf16"):
        out["_mixed"] = "bfloat16"
    else:
        out["_mixed"] = None
    return {k: v for k, v in out.items() if v is not None or k == "_mixed"}


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise PlanError(f"{value!r} is not valid: expected true or false", key=key, value=value)
    return value


def _packed(value: Any, train: dict[str, Any], config: Any) -> bool:
    """Padding-free rows: as given, else the train block's packing or padding_free (TRL's)."""
    if value is not None:
        return _flag(value, "packed")
    return bool(train.get("_packed", False)) and not getattr(config, "is_encoder_decoder", False)


def _padding(value: Any, train: dict[str, Any]) -> bool:
    """Whether the trainer pads: as given, else its collator pads each batch of unpacked rows to
    the longest (packing and padding_free do not; one row has nothing to pad to: Setup.padded)."""
    if value is not None:
        return _flag(value, "padded")
    return not train.get("_unpadded", False)


def _as_plan(plan: Any) -> Any:
    if plan is None or (isinstance(plan, str) and plan.strip().lower() in ("full", "full_finetuning", "none")):
        return None

    return as_plan(plan)


def _double_quant(plan: Any, facts: dict[str, Any]) -> bool:
    if plan is not None and "bnb_4bit_use_double_quant" in plan.quant_options:
        return bool(plan.quant_options["bnb_4bit_use_double_quant"])
    return bool(facts.get("double_quant", False))


# ---- what the user handed us -------------------------------------------------------------


@dataclass(frozen=True)
class ModelFacts:
    """A model read once (`read_model`): a copy of its config and its facts. `estimate` takes
    it in place of the model and gives the same answer without touching the model, so the
    studio reads the model on the kernel's thread and estimates in a background one."""
    config: Any
    facts: tuple[tuple[str, Any], ...]


def read_model(model: Any) -> ModelFacts:
    config, facts = _model_facts(model)
    return ModelFacts(copy.deepcopy(config), tuple(sorted(facts.items())))


def source_facts(source: Any) -> tuple[Any, dict[str, Any]]:
    """(config, facts) for a model, a config or a local folder; facts: model_class, dtype,
    quantization, double_quant where the source tells them."""
    import torch.nn as nn

    if isinstance(source, ModelFacts):
        return source.config, dict(source.facts)
    if isinstance(source, nn.Module):
        return _model_facts(source)
    if isinstance(source, (str, os.PathLike)):
        return _folder_config(str(source)), {}
    if hasattr(source, "to_json_string") and hasattr(source, "model_type"):
        return source, {}
    raise PlanError(
        f"estimate needs a model, a transformers config or a config folder, got {type(source).__name__}",
        key="model_or_config",
    )


def _model_facts(model: Any) -> tuple[Any, dict[str, Any]]:
    base = base_model(model)
    base = getattr(base, "model", base) if type(base).__name__ in ("LoraModel",) else base
    config = getattr(base, "config", None)
    if config is None:
        raise PlanError(
            f"{type(model).__name__} has no transformers config; pass its config instead",
            key="model_or_config",
        )
    facts: dict[str, Any] = {"model_class": type(base).__name__}
    kinds = {type(m).__name__ for m in base.modules()}
    if "Linear4bit" in kinds:
        facts["quantization"] = "4bit"
    elif "Linear8bitLt" in kinds:
        facts["quantization"] = "8bit"
    quant = getattr(config, "quantization_config", None)
    if quant is not None:
        get = quant.get if isinstance(quant, dict) else lambda k, d=None: getattr(quant, k, d)
        facts["double_quant"] = bool(get("bnb_4bit_use_double_quant", False))
    implementation = str(getattr(config, "_attn_implementation", "") or "")
    if implementation.startswith("flash") or "flash_attn" in implementation:
        facts["attention"] = "flash"
    elif implementation == "eager":
        facts["attention"] = "eager"
    floats = [p.dtype for p in base.parameters() if p.dtype.is_floating_point]
    if floats:
        facts["dtype"] = str(max(set(floats), key=floats.count)).replace("torch.", "")
    return config, facts


def _folder_config(path: str) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise PlanError(f"cannot read a model config from {path!r}: {err}", key="model_or_config", value=path) from None


def _config_dtype(config: Any) -> str:
    # transformers 5 names it dtype (reading torch_dtype there warns); older versions torch_dtype
    dtype = config.dtype if hasattr(config, "dtype") else getattr(config, "torch_dtype", None)
    name = str(dtype).replace("torch.", "") if dtype is not None else "float32"
    return name if name in DTYPES else "float32"


def _config_class(config: Any) -> str | None:
    import transformers

    for name in getattr(config, "architectures", None) or []:
        if hasattr(transformers, name):
            return name
    return None


# ---- checks ------------------------------------------------------------------------------


def _dtype(value: Any, key: str) -> str:
    name = str(value).replace("torch.", "").lower()
    name = _DTYPE_ALIASES.get(name, name)
    if name not in DTYPES:
        raise unknown(key, value, DTYPES, key=key)
    return name


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def _positive(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PlanError(f"{value!r} is not valid: expected a positive integer", key=key, value=value)
    return value


def _choice(value: Any, choices: tuple[str, ...], key: str) -> str:
    if value not in choices:
        raise unknown(key, value, choices, key=key)
    return str(value)


def _loss(value: Any, config: Any) -> str:
    """TRL's chunked head is for causal LMs; encoder-decoder models compute their own loss."""
    if getattr(config, "is_encoder_decoder", False):
        return "full"
    return _choice(value or "chunked", LOSSES, "loss")


def _optimizer(name: Any) -> str:
    name = str(getattr(name, "value", name)).lower()
    if name not in OPTIMIZERS:
        raise unknown("optimizer", name, OPTIMIZERS, key="optimizer")
    return name
