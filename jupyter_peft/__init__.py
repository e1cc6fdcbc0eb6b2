"""jupyter_peft: parameter-efficient fine-tuning in a notebook.

    %load_ext jupyter_peft
    %peft model            # the studio
    %%peft model           # a Plan as YAML: apply it (and train)

Loading the extension must stay fast: nothing here imports torch, transformers, peft, trl
or bitsandbytes. The public names are resolved lazily from their rooms on first use.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from ._errors import PlanError

# bitsandbytes 0.50 warns at import, on CPUs with AVX512-BF16, that an optional hub kernel is
# missing; peft imports it, so every studio and %%peft output would start with that red line.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

# our own peft methods (bottleneck adapters) join peft when peft is imported, by anyone: at once
# if it already is, else right after its import finishes (imports nothing now; see tuners/)
from .tuners import register_when_peft_loads  # noqa: E402

register_when_peft_loads()

__version__ = "0.1.0"

# public name -> (module, attribute); imported on first access (PEP 562). No room is named
# like a public function (`inspect`, `apply`, `train`, `export`): importing a submodule sets
# the package attribute of its name, which would shadow the function.
_LAZY: dict[str, tuple[str, str]] = {
    "Plan": ("plan.plan", "Plan"),
    "inspect": ("model.modelmap", "inspect"),
    "ModelMap": ("model.modelmap", "ModelMap"),
    "apply": ("model.adapt", "apply"),
    "Summary": ("model.summary", "Summary"),
    "summarize": ("model.summary", "summarize"),
    "methods": ("plan.methods", None),
    "estimate": ("memory", "estimate"),
    "preview": ("data", "preview"),
    "MemoryEstimate": ("memory", "MemoryEstimate"),
    "train": ("training.api", "train"),
    "Run": ("training.run", "Run"),
    "attach": ("training.api", "attach"),
    "studio": ("ui.studio.widget", "studio"),
    "Studio": ("ui.studio.widget", "Studio"),
    "export": ("exports.api", "export"),
    "merge": ("model.merging", "merge"),
    "demo": ("demo", None),
    "adapters": ("adapter_bench", "adapters"),
    "Adapters": ("adapter_bench", "Adapters"),
    "runs": ("records", "runs"),
    "compare_runs": ("records", "compare_runs"),
    "sweep": ("sweeps", "sweep"),
    "Sweep": ("sweeps", "Sweep"),
    "launch": ("launching", "launch"),
}

__all__ = ["PlanError", "load_ipython_extension", "unload_ipython_extension", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'jupyter_peft' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(f".{module_name}", __name__)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where `jupyter labextension develop` finds the prebuilt front-end extension."""
    return [{"src": "labextension", "dest": "jupyter-peft"}]


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext jupyter_peft`: register `%peft` and `%%peft` (twice is harmless)."""
    from .magics.core import PeftMagics

    ipython.register_magics(PeftMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext jupyter_peft`: remove the magics again."""
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("peft", None)
    ipython.magics_manager.registry.pop("PeftMagics", None)


if TYPE_CHECKING:  # real imports for type checkers and IDEs only
    from . import demo
    from .data import preview
    from .exports.api import export
    from .memory import MemoryEstimate, estimate
    from .model.adapt import apply
    from .model.merging import merge
    from .model.modelmap import ModelMap, inspect
    from .model.summary import Summary, summarize
    from .plan import methods
    from .plan.plan import Plan
    from .training.api import attach, train
    from .training.run import Run
    from .ui.studio.widget import Studio, studio
