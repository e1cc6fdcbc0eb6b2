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

import contextlib
import inspect
import sys
import threading
import warnings
from collections.abc import Iterator
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
    other thread's state. peft's own `low_cpu_mem_usage=True` swaps `nn.Module.register_parameter`
    process-wide while it injects (peft.utils.integrations.init_empty_weights): a model built
    meanwhile on another thread, the user's in the kernel, lands on meta, and two overlapping
    swaps (the studio's estimate and its count, each on its own thread) leave it swapped for good.
    Here new parameters go to meta on this thread only (`_params_on_meta`); tensors a tuner makes
    with factory functions while initialising (BOFT draws a random int) stay real, as in peft's."""
    from peft import get_peft_model

    with _params_on_meta():
        return get_peft_model(model, config)


_META = threading.local()
_META_LOCK = threading.Lock()


@contextlib.contextmanager
def _params_on_meta() -> Iterator[None]:
    """Parameters registered on this thread go to the meta device (other threads: unchanged).

    `nn.Module.register_parameter` is wrapped once, for good, by a function that moves the
    parameter only while this thread has asked for it, so nothing is swapped back and forth."""
    import torch.nn as nn

    with _META_LOCK:
        current = nn.Module.register_parameter
        if not getattr(current, "_jupyter_peft_meta", False) and current.__module__ != "torch.nn.modules.module":
            # someone else's swap is active right now (a peft call of the user's): wrapping it
            # would keep it for good; put this call's tensors on meta by torch's per-thread mode
            fallback = True
        elif not getattr(current, "_jupyter_peft_meta", False):
            fallback, original = False, current

            def register_parameter(module: Any, name: str, param: Any) -> None:
                original(module, name, param)
                if param is not None and getattr(_META, "depth", 0):
                    registered = module._parameters[name]
                    kwargs = registered.__dict__
                    kwargs["requires_grad"] = param.requires_grad
                    module._parameters[name] = type(registered)(registered.to("meta"), **kwargs)

            register_parameter._jupyter_peft_meta = True  # type: ignore[attr-defined]
            nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
        else:
            fallback = False
    if fallback:
        import torch

        with torch.device("meta"):
            yield
        return
    _META.depth = getattr(_META, "depth", 0) + 1
    try:
        yield
    finally:
        _META.depth -= 1


# ---- peft: what a config targets ----------------------------------------------------------------


def expand_all_linear(peft_config: Any, model: Any) -> Any:
    """`target_modules="all-linear"` expanded as peft expands it for `model` (else unchanged)."""
    from peft.tuners.tuners_utils import _maybe_include_all_linear_layers

    return _maybe_include_all_linear_layers(peft_config, model)


def targets(peft_config: Any, path: str) -> bool:
    """Whether peft wraps the module at `path`: the tuner's own `_check_target_module_exists`
    (most tuners use peft's shared check; excluded and saved modules do not count)."""
    from peft.tuners.tuners_utils import _ExcludedModule, check_target_module_exists

    tuner = tuner_class(peft_config.peft_type)
    check = getattr(tuner, "_check_target_module_exists", None) if tuner is not None else None
    result = check(peft_config, path) if check is not None else check_target_module_exists(peft_config, path)
    return bool(result) and not isinstance(result, _ExcludedModule)


# peft's PeftModelForSequenceClassification / ...QuestionAnswering add their heads to
# `modules_to_save` before injecting (so they are trained whole and never targeted); the
# token-classification model adds them only after injecting, so there they can be targeted.
_TASK_SAVES = {"SEQ_CLS": ("classifier", "score"), "QUESTION_ANS": ("qa_outputs",)}


def with_task_saves(peft_config: Any) -> Any:
    """`peft_config` (in place) with the modules its task type makes peft save whole."""
    task = getattr(peft_config.task_type, "value", peft_config.task_type)
    names = _TASK_SAVES.get(str(task)) if task is not None else None
    if names and hasattr(peft_config, "modules_to_save"):
        saved = list(peft_config.modules_to_save or [])
        peft_config.modules_to_save = saved + [n for n in names if n not in saved]
    return peft_config


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
    if tuner_cls is None or not hasattr(tuner_cls, "_prepare_adapter_config"):  # not a BaseTuner (adaption_prompt)
        return config
    model_config = BaseTuner.get_model_config(model)
    hook: Any = tuner_cls._prepare_adapter_config
    if isinstance(inspect.getattr_static(tuner_cls, "_prepare_adapter_config"), staticmethod):
        return hook(config, model_config)
    # as a method it reads the tuner's class attributes (its target table), some also the model
    # (Shadow, TrainableTokens): a bare instance that knows the model does
    bare = object.__new__(tuner_cls)
    bare.__dict__.update(model=model, peft_config={})
    return hook(bare, config, model_config)


def add_peft_type(name: str) -> Any:
    """`PeftType.<name>`, added to peft's closed enum if it is not there (idempotent).

    `register_peft_method` (public) requires the type to be a member already, and an Enum cannot
    be extended: the member is built and entered in the enum's own tables (`_member_map_`,
    `_value2member_map_`, `_member_names_`), so `PeftType(name)`, `PeftType[name]`, iteration,
    pickling and peft's JSON configs (`"peft_type": name`) all work (jupyter_peft.tuners)."""
    from peft.utils import PeftType

    if name in PeftType._member_map_:
        return PeftType[name]
    member = str.__new__(PeftType, name)
    member._name_, member._value_ = name, name
    member.__objclass__ = PeftType  # type: ignore[attr-defined]  # as Enum sets it on its own members
    PeftType._member_map_[name] = member
    PeftType._value2member_map_[name] = member
    PeftType._member_names_.append(name)
    type.__setattr__(PeftType, name, member)
    return member


# ---- transformers and TRL ---------------------------------------------------------------------


def keep_accelerate_state(accelerator_config: Any) -> Any:
    """The `accelerator_config` for TrainingArguments made while a trainer trains on another thread.

    accelerate keeps one training state per process (`PartialState`, `AcceleratorState`: shared
    dicts), and every TrainingArguments clears it while it sets up its device
    (`_setup_devices` -> `AcceleratorState._reset_state(reset_partial_state=True)`); the trainer
    training meanwhile dies with "'AcceleratorState' object has no attribute 'distributed_type'".
    transformers' own `use_configured_state` makes the new arguments take the state as it is.
    Unchanged when accelerate has no state yet, or the config is a file path."""
    state = sys.modules.get("accelerate.state")
    if state is None or not state.PartialState._shared_state:
        return accelerator_config
    if accelerator_config is None:
        return {"use_configured_state": True}
    if isinstance(accelerator_config, dict):
        return {**accelerator_config, "use_configured_state": True}
    return accelerator_config


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
