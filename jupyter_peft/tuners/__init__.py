"""PEFT methods peft does not ship, registered into peft so that its own machinery runs them.

`bottleneck/` (bottleneck adapters: Houlsby et al. 2019, Pfeiffer et al. 2020, He et al. 2022) is a
tuner laid out like peft's (config / layer / model). Once registered, `get_peft_model`,
`PeftModel.from_pretrained`, `save_pretrained`, named adapters, `set_adapter`, `delete_adapter` and
`disable_adapter` work on it, and `jp.methods` lists it like any peft method.

This `__init__` stays light (no torch, no peft): `import jupyter_peft` calls
`register_when_peft_loads()`, which registers at once when peft is already imported, and otherwise
waits for peft's import to finish (a one-shot `sys.meta_path` finder), so a user who imports
jupyter_peft, then peft, and calls `PeftModel.from_pretrained` on a saved bottleneck adapter gets
the method. `register()` does it now (idempotent); rooms that import peft may call it. The tuner
packages may import torch, peft and transformers, and `jupyter_peft._compat`; nothing else of ours.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any

METHODS = ("bottleneck",)


def register() -> None:
    """Register every method of this package with peft (imports peft; idempotent)."""
    for name in METHODS:
        importlib.import_module(f".{name}", __name__)  # each package registers itself on import


def register_when_peft_loads() -> None:
    """Register now if peft is imported, else right after peft's own import finishes."""
    peft = sys.modules.get("peft")
    if peft is not None:
        if not getattr(getattr(peft, "__spec__", None), "_initializing", False):
            _register_quietly()
        return
    if not any(isinstance(f, _AfterPeft) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterPeft())


def _register_quietly() -> None:
    try:
        register()
    except Exception as err:  # never break `import peft` for the user: say it and go on
        warnings.warn(f"jupyter_peft could not register its peft methods ({', '.join(METHODS)}): {err}", stacklevel=2)


class _AfterPeft:
    """A one-shot import hook: finds peft with the other finders, and runs `register()` once
    peft's module has executed. It imports nothing itself and leaves sys.meta_path at once."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "peft":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        run = getattr(loader, "exec_module", None)
        if run is None:
            return spec

        def exec_module(module: Any) -> None:
            run(module)
            _register_quietly()

        loader.exec_module = exec_module  # this loader instance loads peft only
        return spec
