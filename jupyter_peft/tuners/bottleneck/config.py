"""`BottleneckConfig`: the options of a bottleneck adapter, with peft's `help` metadata on each field.

An adapter is a small two-layer network, down (width d -> b), a non-linearity, up (b -> d), added to
a module's output. `placement` says where it reads from and which modules it sits on by default:

    houlsby   y = f(x) + s * up(act(down(f(x))))   after the attention output and after the MLP output
    pfeiffer  the same composition, after the MLP output only
    parallel  y = f(x) + s * up(act(down(x)))      beside the MLP output projection, reading its input

where f is the targeted module (an output projection), x its input and s `scaling`. References:
Houlsby et al. 2019 (arXiv:1902.00751), Pfeiffer et al. 2020 (arXiv:2005.00247), He et al. 2022
(arXiv:2110.04366).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from peft.config import PeftConfig
from peft.utils import PeftType

NON_LINEARITIES = ("relu", "gelu", "silu", "tanh")
DEFAULT_REDUCTION_FACTOR = 16


@dataclass
class BottleneckConfig(PeftConfig):
    """Configuration of a [`BottleneckModel`]: bottleneck adapters between a model's layers."""

    # what the studio's method picker says (not a field: class attributes without annotation)
    DESCRIPTION = (
        "Bottleneck adapters: small trainable down-act-up modules after (houlsby, pfeiffer) or beside "
        "(parallel) the attention and MLP outputs (Houlsby et al. 2019; Pfeiffer et al. 2020; He et al. 2022)."
    )

    bottleneck_size: int | None = field(
        default=None,
        metadata={
            "help": (
                "The adapter's inner width b (the down projection maps the hidden width d to b, the up "
                "projection b back to d). Set this or `reduction_factor`, not both; with neither, "
                f"b = d // {DEFAULT_REDUCTION_FACTOR}."
            )
        },
    )
    reduction_factor: int | None = field(
        default=None,
        metadata={
            "help": (
                "The inner width as a fraction of the hidden width: b = d // reduction_factor (at least 1), "
                "where d is the output width of the adapted module. Set this or `bottleneck_size`, not both; "
                f"with neither, reduction_factor = {DEFAULT_REDUCTION_FACTOR}."
            )
        },
    )
    non_linearity: Literal["relu", "gelu", "silu", "tanh"] = field(
        default="relu",
        metadata={"help": "The activation between the down and the up projection: relu, gelu, silu or tanh."},
    )
    placement: Literal["houlsby", "pfeiffer", "parallel"] = field(
        default="houlsby",
        metadata={
            "help": (
                "Where the adapters go. 'houlsby' (Houlsby et al. 2019): after the attention output projection "
                "and after the MLP output projection, reading the projection's output, y = f(x) + s * "
                "up(act(down(f(x)))). 'pfeiffer' (Pfeiffer et al. 2020): the same, after the MLP output "
                "projection only. 'parallel' (He et al. 2022): beside the MLP output projection, reading its "
                "input, y = f(x) + s * up(act(down(x))) (He et al. put it beside the whole sublayer; an adapter "
                "that wraps one module sees that module's input). The placement chooses the default "
                "`target_modules` per architecture; with `target_modules` set, it only chooses sequential "
                "(houlsby, pfeiffer: the same) or parallel composition on the modules named."
            )
        },
    )
    scaling: float = field(
        default=1.0,
        metadata={"help": "The factor s on the adapter's output before it is added (He et al. use 4 for parallel)."},
    )
    dropout: float = field(
        default=0.0,
        metadata={"help": "Dropout on the adapter's input, in [0, 1)."},
    )
    init_weights: bool = field(
        default=True,
        metadata={
            "help": (
                "True: near identity, the up projection (weight and bias) starts at zero, so the model's "
                "output is exactly the base model's at step 0 and the down projection starts like "
                "nn.Linear's default. False: both projections random (tests only: the output changes at once)."
            )
        },
    )
    target_modules: list[str] | str | None = field(
        default=None,
        metadata={
            "help": (
                "The modules the adapters sit on (nn.Linear, GPT-2's Conv1D, bitsandbytes 4/8-bit linears): "
                "names, or a regex matched against the whole path. Default per architecture and placement: "
                "the attention and MLP output projections (o_proj / down_proj on Llama, c_proj on GPT-2, "
                "attention.output.dense / output.dense on BERT, SelfAttention.o / DenseReluDense.wo on T5); "
                "pfeiffer and parallel only the MLP output projection."
            )
        },
    )
    exclude_modules: list[str] | str | None = field(
        default=None,
        metadata={"help": "Module names or a regex of the modules not to adapt."},
    )
    layers_to_transform: list[int] | int | None = field(
        default=None,
        metadata={"help": "Only adapt the layers at these indices (the first numbered part of a module path)."},
    )
    layers_pattern: list[str] | str | None = field(
        default=None,
        metadata={
            "help": (
                "The name of the layer list (often 'layers' or 'h'), used with `layers_to_transform` when the "
                "model's layer list is not one of the common names."
            )
        },
    )
    modules_to_save: list[str] | None = field(
        default=None,
        metadata={
            "help": (
                "Modules besides the adapters to train fully and save, e.g. a freshly initialised "
                "classifier head."
            )
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = PeftType.BOTTLENECK  # type: ignore[attr-defined]  # added by jupyter_peft.tuners
        for name in ("target_modules", "exclude_modules"):
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, set(value))
        if self.bottleneck_size is not None and self.reduction_factor is not None:
            raise ValueError(
                "set one of `bottleneck_size` and `reduction_factor`, not both "
                f"(got {self.bottleneck_size} and {self.reduction_factor})"
            )
        if self.bottleneck_size is not None and self.bottleneck_size < 1:
            raise ValueError(f"`bottleneck_size` must be a positive integer, got {self.bottleneck_size}")
        if self.reduction_factor is not None and self.reduction_factor < 1:
            raise ValueError(f"`reduction_factor` must be a positive integer, got {self.reduction_factor}")
        if self.non_linearity not in NON_LINEARITIES:
            raise ValueError(f"`non_linearity` must be one of {', '.join(NON_LINEARITIES)}, got {self.non_linearity!r}")
        if self.placement not in ("houlsby", "pfeiffer", "parallel"):
            raise ValueError(f"`placement` must be houlsby, pfeiffer or parallel, got {self.placement!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {self.dropout}")
        if isinstance(self.target_modules, str) and (self.layers_to_transform is not None or self.layers_pattern):
            raise ValueError("`layers_to_transform` and `layers_pattern` need `target_modules` as names, not a regex")
        if self.layers_pattern and self.layers_to_transform is None:
            raise ValueError("`layers_pattern` needs `layers_to_transform`")

    @property
    def is_parallel(self) -> bool:
        return self.placement == "parallel"

    def size_for(self, width: int) -> int:
        """The inner width b for a module whose output width is `width`."""
        if self.bottleneck_size is not None:
            return self.bottleneck_size
        return max(1, width // (self.reduction_factor or DEFAULT_REDUCTION_FACTOR))
