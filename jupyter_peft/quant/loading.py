"""Loading the base model a plan names (`base:`), quantized when the plan says so.

`base:` is a local folder (what `save_pretrained` writes), a hub id, or `demo` (the demo model
that ships in the package, `jp.demo.MODEL_DIR`). A 4-bit or 8-bit plan
loads through bitsandbytes (`BitsAndBytesConfig` from the plan's bnb_* options) onto one
device: the GPU when there is one, else the CPU.
"""

from __future__ import annotations

import os
from typing import Any

from .._errors import PlanError
from .._hardware import default_device_map
from ..demo import MODEL_DIR
from .kbit import INSTALL_HINT, quantization_config, require_bitsandbytes  # noqa: F401 - loading's API too


def load_base(plan: Any, device_map: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) for `plan.base`, quantized per the plan; tokenizer is None when the
    folder has none. `device_map` defaults to the GPU when there is one, else "cpu"."""
    from transformers import AutoModelForCausalLM

    source = _check_source(plan.base)
    quant = quantization_config(plan)
    kwargs: dict[str, Any] = {}
    if quant is not None or device_map is not None:
        kwargs["device_map"] = device_map if device_map is not None else default_device_map()
    if quant is not None:
        kwargs["quantization_config"] = quant
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:
        raise PlanError(f"cannot load {plan.base!r}: {_first_line(err)}", key="base", value=plan.base) from None
    return model, _tokenizer(source)


def source_path(base: str) -> str:
    """What `base:` names as something `from_pretrained` loads: `demo` is the packaged demo model's
    folder, anything else is itself."""
    if base == "demo":

        return str(MODEL_DIR)
    return base


def _check_source(base: str) -> str:
    """The folder (expanded) or hub id to load; PlanError for a path that is not a model folder."""
    path = os.path.expanduser(source_path(base))
    where: dict[str, Any] = {"key": "base", "value": base}
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise PlanError(
                f"{base!r} is a folder without config.json, not a saved model (model.save_pretrained(folder) "
                "writes one)",
                **where,
            )
        return path
    if os.path.exists(path):
        raise PlanError(f"{base!r} is a file; base: is a model folder or a hub id", **where)
    if _looks_like_path(base):
        raise PlanError(f"no folder {base!r} (looked for {os.path.abspath(path)})", **where)
    return base


def _looks_like_path(base: str) -> bool:
    """A hub id is `name` or `owner/name`; anything else with path syntax is a local path."""
    return base.startswith((".", "/", "~")) or "\\" in base or base.count("/") > 1 or base.endswith("/")


def _tokenizer(source: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, TypeError):
        return None  # a weights-only folder: the plan's train block names a tokenizer then


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__

