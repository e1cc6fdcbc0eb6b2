"""`BottleneckModel`: peft's tuner for bottleneck adapters (what `get_peft_model` builds for the method).

peft's `BaseTuner` does the rest: matching `target_modules`, several named adapters, `set_adapter`,
`delete_adapter`, `disable_adapter`, saving and loading. What is ours: the default targets, which
depend on `placement` (the table below), and the refusal to merge.
"""

from __future__ import annotations

from typing import Any, cast

from peft.config import PeftConfig
from peft.tuners.tuners_utils import BaseTuner
from torch import nn

from .config import BottleneckConfig
from .layer import MERGE_REFUSAL, BottleneckLayer, BottleneckLinear

# model type -> (houlsby targets: after attention and after the MLP, pfeiffer/parallel targets:
# after the MLP), in peft's target_modules forms (names match by suffix, a string is a whole-path
# regex). BERT-like encoders call both outputs `output.dense`: only a regex tells the MLP's apart.
_LLAMA = (["o_proj", "down_proj"], ["down_proj"])
_BERT = (["attention.output.dense", "output.dense"], r".*\.layer\.\d+\.output\.dense")
_BART = (["self_attn.out_proj", "fc2"], ["fc2"])
_NEOX = (["attention.dense", "dense_4h_to_h"], ["dense_4h_to_h"])
_FALCON = (["self_attention.dense", "dense_4h_to_h"], ["dense_4h_to_h"])
_T5 = (["SelfAttention.o", "DenseReluDense.wo"], ["DenseReluDense.wo"])
DEFAULT_TARGETS: dict[str, tuple[Any, Any]] = {
    **dict.fromkeys(
        ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo", "olmo2",
         "cohere", "granite", "smollm3", "stablelm", "deepseek_v2"],
        _LLAMA,
    ),
    "gpt2": (["c_proj"], ["mlp.c_proj"]),
    "gpt_bigcode": (["c_proj"], ["mlp.c_proj"]),
    "starcoder2": (["o_proj", "c_proj"], ["mlp.c_proj"]),
    "gptj": (["attn.out_proj", "mlp.fc_out"], ["mlp.fc_out"]),
    "phi": (["self_attn.dense", "mlp.fc2"], ["mlp.fc2"]),
    "gpt_neox": _NEOX,
    "falcon": _FALCON,
    "bloom": _FALCON,
    **dict.fromkeys(["bert", "roberta", "xlm-roberta", "electra", "deberta", "deberta-v2", "camembert"], _BERT),
    "distilbert": (["attention.out_lin", "ffn.lin2"], ["ffn.lin2"]),
    "vit": (["attention.o_proj", "mlp.fc2"], ["mlp.fc2"]),
    **dict.fromkeys(["t5", "mt5", "umt5"], _T5),
    **dict.fromkeys(["bart", "mbart", "marian", "opt", "whisper"], _BART),
}


def default_targets(model_type: str | None, placement: str) -> Any:
    """peft target_modules for `placement` on a model of `model_type`, or None when we have none."""
    sites = DEFAULT_TARGETS.get(model_type or "")
    if sites is None:
        return None
    houlsby, mlp_only = sites
    return houlsby if placement == "houlsby" else mlp_only


def _in_layers(regex: str, layers: Any) -> str:
    """A default regex restricted to `layers_to_transform` (peft ignores that option for a regex
    target, so the layer indices go into the regex: `\\d+` becomes `(?:0|3)`)."""
    if layers is None:
        return regex
    indices = [layers] if isinstance(layers, int) else list(layers)
    return regex.replace(r"\d+", "(?:" + "|".join(str(i) for i in indices) + ")")


class BottleneckModel(BaseTuner):
    """Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2020; He et al. 2022) on a model."""

    prefix: str = "bottleneck_"
    tuner_layer_cls = BottleneckLayer
    # the defaults depend on `placement`, so they come from `_prepare_adapter_config` (DEFAULT_TARGETS)
    target_module_mapping: dict[str, list[str]] = {}
    # what jp.merge says before it tries (peft's own merge raises the same from each layer)
    merge_refusal = MERGE_REFUSAL

    @staticmethod
    def _prepare_adapter_config(peft_config: PeftConfig, model_config: dict) -> PeftConfig:
        peft_config = cast(BottleneckConfig, peft_config)
        if peft_config.target_modules is None:
            model_type = model_config.get("model_type")
            targets = default_targets(model_type, peft_config.placement)
            if targets is None:
                raise ValueError(
                    f"Please specify `target_modules` in `peft_config`: no default {peft_config.placement} "
                    f"bottleneck targets for model type {model_type!r}"
                )
            if isinstance(targets, str):  # the layers go into the regex; the config stays loadable
                targets = _in_layers(targets, peft_config.layers_to_transform)
                peft_config.layers_to_transform = peft_config.layers_pattern = None
            peft_config.target_modules = targets if isinstance(targets, str) else set(targets)  # type: ignore[assignment]
        return peft_config

    def _create_and_replace(
        self,
        peft_config: PeftConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        parameter_name: str | None = None,
    ) -> None:
        config = cast(BottleneckConfig, peft_config)
        if parameter_name is not None:
            raise ValueError("bottleneck adapters sit on modules, not on parameters (`target_parameters`)")
        if isinstance(target, BottleneckLayer):
            target.update_layer(adapter_name, config)
            return
        new_module = BottleneckLinear(target, adapter_name, config)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)  # an added adapter is not trainable until set_adapter
        self._replace_module(parent, target_name, new_module, target)

    def _check_merge_allowed(self) -> None:
        raise ValueError(MERGE_REFUSAL)

    def merge_adapter(self, adapter_names: list[str] | None = None, safe_merge: bool = False) -> None:
        raise ValueError(MERGE_REFUSAL)
