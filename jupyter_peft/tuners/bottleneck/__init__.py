"""Bottleneck adapters as a peft method: config / layer / model, laid out like peft's own tuners.

Importing this package registers the method with peft (`PeftType.BOTTLENECK`, `method: bottleneck`);
it imports torch and peft. Use `jupyter_peft.tuners.register()` to do it on purpose; `import
jupyter_peft` does it by itself once peft is imported.
"""

from __future__ import annotations

from ..._compat import add_peft_type

add_peft_type("BOTTLENECK")  # before the config: its __post_init__ sets peft_type

from .config import BottleneckConfig  # noqa: E402
from .layer import BottleneckLayer, BottleneckLinear  # noqa: E402
from .model import BottleneckModel, default_targets  # noqa: E402

__all__ = ["BottleneckConfig", "BottleneckLayer", "BottleneckLinear", "BottleneckModel", "default_targets"]


def _register() -> None:
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
    from peft.utils import PeftType, register_peft_method

    if PEFT_TYPE_TO_CONFIG_MAPPING.get(PeftType("BOTTLENECK")) is BottleneckConfig:
        return  # already registered (peft refuses a second registration)
    register_peft_method(name="bottleneck", config_cls=BottleneckConfig, model_cls=BottleneckModel)


_register()
