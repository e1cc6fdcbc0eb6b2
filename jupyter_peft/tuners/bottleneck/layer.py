"""The bottleneck adapter layer: a targeted module plus, per adapter, down -> act -> up added to its output.

Shapes: the targeted module f maps (..., n_in) to (..., n_out). Per adapter, with inner width b:
sequential (houlsby, pfeiffer) down is (n_out -> b) and reads f(x); parallel down is (n_in -> b) and
reads x. up is always (b -> n_out). Both have biases, so one adapted module adds
(d_in * b + b) + (b * n_out + n_out) parameters, d_in = n_out (sequential) or n_in (parallel).

Several active adapters compose in order: sequential ones stack (each reads the output so far),
parallel ones all read x. Nothing folds into the weights (the activation is not linear), so
`merge` refuses with `MERGE_REFUSAL`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from peft.tuners.tuners_utils import BaseTunerLayer, check_adapters_to_merge
from torch import nn
from transformers.pytorch_utils import Conv1D

from .config import BottleneckConfig

MERGE_REFUSAL = (
    "bottleneck adapters cannot be merged into the base weights: up(act(down(h))) is not linear in h, "
    "so no weight change reproduces it. Keep the PeftModel (or save the adapter with save_pretrained "
    "and load it with PeftModel.from_pretrained)"
)

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
}


def _widths(layer: nn.Module) -> tuple[int, int]:
    """(n_in, n_out) of a linear layer: nn.Linear and its bitsandbytes subclasses, or GPT-2's Conv1D."""
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    if isinstance(layer, Conv1D):
        n_in, n_out = layer.weight.ds_shape if hasattr(layer.weight, "ds_shape") else layer.weight.shape
        return int(n_in), int(n_out)
    raise TypeError(
        f"Target module {type(layer).__name__} is not supported: bottleneck adapters sit on linear layers "
        "(torch.nn.Linear, transformers' Conv1D, bitsandbytes Linear4bit / Linear8bitLt)."
    )


class BottleneckLayer(BaseTunerLayer):
    # the trainable parts, one entry per adapter name
    adapter_layer_names = ("bottleneck_down", "bottleneck_up")
    # per-adapter settings (dicts keyed by adapter name, deleted with the adapter)
    other_param_names = ("bottleneck_dropout", "bottleneck_scaling", "bottleneck_parallel", "bottleneck_act")

    def __init__(self, base_layer: nn.Module, **kwargs: Any) -> None:
        self.base_layer = base_layer
        self.bottleneck_down = nn.ModuleDict({})
        self.bottleneck_up = nn.ModuleDict({})
        self.bottleneck_dropout = nn.ModuleDict({})
        self.bottleneck_scaling: dict[str, float] = {}
        self.bottleneck_parallel: dict[str, bool] = {}
        self.bottleneck_act: dict[str, str] = {}
        self._disable_adapters = False
        self.merged_adapters: list[str] = []
        self.kwargs = kwargs
        self.in_features, self.out_features = _widths(self.get_base_layer())

    def update_layer(self, adapter_name: str, config: BottleneckConfig) -> None:
        """Add (or replace) the adapter `adapter_name` as `config` describes it."""
        size = config.size_for(self.out_features)
        reads = self.in_features if config.is_parallel else self.out_features
        self.bottleneck_down[adapter_name] = nn.Linear(reads, size)
        self.bottleneck_up[adapter_name] = nn.Linear(size, self.out_features)
        self.bottleneck_dropout[adapter_name] = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.bottleneck_scaling[adapter_name] = config.scaling
        self.bottleneck_parallel[adapter_name] = config.is_parallel
        self.bottleneck_act[adapter_name] = config.non_linearity
        if config.init_weights:
            self.reset_bottleneck_parameters(adapter_name)
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters, inference_mode=config.inference_mode)

    @torch.no_grad()
    def reset_bottleneck_parameters(self, adapter_name: str) -> None:
        """Near identity: down as nn.Linear's default with a zero bias, up all zero (a no-op at step 0)."""
        down = cast(nn.Linear, self.bottleneck_down[adapter_name])
        up = cast(nn.Linear, self.bottleneck_up[adapter_name])
        nn.init.zeros_(down.bias)
        nn.init.zeros_(up.weight)
        nn.init.zeros_(up.bias)

    def _adapter_out(self, adapter_name: str, h: torch.Tensor) -> torch.Tensor:
        down = cast(nn.Linear, self.bottleneck_down[adapter_name])
        h = self._cast_input_dtype(h, down.weight.dtype)
        act = _ACTIVATIONS[self.bottleneck_act[adapter_name]]
        up, dropout = self.bottleneck_up[adapter_name], self.bottleneck_dropout[adapter_name]
        out = up(act(down(dropout(h))))
        return out * self.bottleneck_scaling[adapter_name]


class BottleneckLinear(nn.Module, BottleneckLayer):
    """A linear layer (or Conv1D, or a bitsandbytes linear) with bottleneck adapters on its output."""

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: BottleneckConfig, **kwargs: Any) -> None:
        super().__init__()
        BottleneckLayer.__init__(self, base_layer, **kwargs)
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config)

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        if check_adapters_to_merge(self, adapter_names):
            raise ValueError(MERGE_REFUSAL)

    def unmerge(self) -> None:
        warnings.warn("Already unmerged. Nothing to do (bottleneck adapters are never merged).", stacklevel=2)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if self.disable_adapters:
            return result
        result_dtype = result.dtype
        for name in self.active_adapters:
            if name not in self.bottleneck_down:
                continue
            source = x if self.bottleneck_parallel[name] else result
            result = result + self._adapter_out(name, source).to(result_dtype)
        return result

    def supports_lora_conversion(self, adapter_name: str = "default") -> bool:
        return False  # not a weight change: there is no low-rank delta to convert

    def __repr__(self) -> str:
        return "bottleneck." + super().__repr__()
