"""The one home of the libraries' private and semi-private APIs we lean on.

peft's matching internals (what `inject_adapter` would wrap), its per-tuner config hooks and
pattern lookup, transformers' weight-conversion step and 8-bit dequantization, TRL's fused LM
head, the Trainer's own checkpoint writer, and the warnings those libraries raise about their
own internals. When a library upgrade renames one of these, this file is the one to change.
(PyTorch's simulation internals, FakeTensorMode and MemTracker, stay with the memory
simulation that subclasses them: memory/trace.py and memory/simulate.py.)

Everything is imported where it is used: nothing here imports torch, peft or TRL at load.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from typing import Any

_NOISE: list[tuple[type[Warning], str]] = [
    # transformers 5 renamed the attribute; peft and TRL still read the old name
    (FutureWarning, r".*`is_gradient_checkpointing` is deprecated.*"),
]


def silence_library_noise() -> None:
    """Ignore the known internal deprecation warnings (idempotent). Filtered by exact message,
    process-wide (training threads read these attributes too, and `catch_warnings` is not
    thread-safe); every other warning still shows."""
    for category, message in _NOISE:
        warnings.filterwarnings("ignore", message=message, category=category)


# ---- models and adapter layers ----------------------------------------------------------------


def base_model(model: Any) -> Any:
    """The model a PeftModel adapts (`get_base_model()`), or `model` itself. peft is not
    imported for it: without peft imported nothing can be a PeftModel."""
    peft = sys.modules.get("peft")
    if peft is not None and isinstance(model, peft.PeftModel):
        return model.get_base_model()
    return model


def unwrap_layer(module: Any) -> Any:
    """The original layer inside one of peft's adapter layers or modules_to_save wrappers
    (`module` itself when it is neither)."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    if isinstance(module, BaseTunerLayer):
        return module.get_base_layer()
    if isinstance(module, AuxiliaryTrainingWrapper):
        return module.original_module
    return module


def adapter_layer_types() -> tuple[type, type]:
    """(peft's adapter-layer base class, its modules_to_save-style wrapper base class)."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    return BaseTunerLayer, AuxiliaryTrainingWrapper


def peft_on_meta(model: Any, config: Any) -> Any:
    """peft's model of `model` (on meta) under `config`, its adapter weights on meta, changing no
    global state. peft's own `low_cpu_mem_usage=True` swaps `nn.Module.register_parameter`
    process-wide while it injects (peft.utils.integrations.init_empty_weights): a model built
    meanwhile on another thread, the user's in the kernel, lands on meta, and two overlapping
    swaps (the studio's estimate and its count, each on its own thread) leave it swapped for good.
    torch's device context is per thread, so the adapters land on meta here and nowhere else."""
    import torch
    from peft import get_peft_model

    with torch.device("meta"):
        return get_peft_model(model, config)


# ---- peft: what a config targets ----------------------------------------------------------------


def expand_all_linear(peft_config: Any, model: Any) -> Any:
    """`target_modules="all-linear"` expanded as peft expands it for `model` (else unchanged)."""
    from peft.tuners.tuners_utils import _maybe_include_all_linear_layers

    return _maybe_include_all_linear_layers(peft_config, model)


def targets(peft_config: Any, path: str) -> bool:
    """Whether peft's own check wraps the module at `path` (excluded modules do not count)."""
    from peft.tuners.tuners_utils import _ExcludedModule, check_target_module_exists

    result = check_target_module_exists(peft_config, path)
    return bool(result) and not isinstance(result, _ExcludedModule)


def pattern_key(keys: list[str], path: str) -> str:
    """The rank/alpha pattern key peft applies to the module at `path`."""
    from peft.utils.other import get_pattern_key

    return get_pattern_key(keys, path)


def convert_for_transformers(peft_config: Any, model: Any, conversions: Any) -> None:
    """peft's transformers-5 step, in place: on MoE models whose layout changed from v4, module
    names become `target_parameters`. `conversions` caches transformers' table per model (it is
    built by walking the model). No-op on older peft, which has no such step."""
    try:
        from peft.utils.transformers_weight_conversion import (
            convert_peft_config_for_transformers,
            get_model_conversion_mapping,
        )
    except ImportError:
        return
    if model not in conversions:
        conversions[model] = get_model_conversion_mapping(model)
    convert_peft_config_for_transformers(peft_config, model, conversions[model])


def tuner_class(peft_type: Any) -> Any:
    """peft's tuner (BaseTuner subclass) for a PeftType, or None."""
    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING
    from peft.utils import PeftType

    return PEFT_TYPE_TO_TUNER_MAPPING.get(PeftType(peft_type))


def tuner_defaults(config: Any, model: Any) -> Any:
    """`config` after its tuner's own `_prepare_adapter_config` hook for `model` (the per-type
    default targets, IA3's feedforward_modules...); `config` is changed in place by some hooks."""
    from peft.tuners.tuners_utils import BaseTuner

    tuner_cls = tuner_class(config.peft_type)
    if tuner_cls is None:
        return config
    model_config = BaseTuner.get_model_config(model)
    hook: Any = tuner_cls._prepare_adapter_config
    if isinstance(inspect.getattr_static(tuner_cls, "_prepare_adapter_config"), staticmethod):
        return hook(config, model_config)
    # as a method it reads only class attributes (the tuner's target table): a bare instance does
    return hook(object.__new__(tuner_cls), config, model_config)


# ---- transformers and TRL ---------------------------------------------------------------------


def save_checkpoint(trainer: Any) -> str:
    """Write the trainer's checkpoint now, with the method it calls for its own saves (adapter,
    optimizer, scheduler, RNG and trainer state); returns the folder."""
    trainer._save_checkpoint(trainer.model, trial=None)
    return f"{trainer.args.output_dir}/checkpoint-{trainer.state.global_step}"


def add_fused_lm_head(model: Any, outputs: tuple[str, ...]) -> None:
    """TRL's chunked-loss LM head on `model`, as its trainers install it."""
    from trl.trainer.utils import add_fused_lm_head as add

    add(model, outputs=outputs)


def dequantize_int8(weight: Any, state: Any) -> Any:
    """An 8-bit bitsandbytes weight as floats (int8 rows times their scales)."""
    from transformers.integrations.bitsandbytes import dequantize_bnb_weight

    return dequantize_bnb_weight(weight, state=state)
