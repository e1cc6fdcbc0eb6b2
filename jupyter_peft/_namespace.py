"""Notebook variables that a cell, a magic line or a plan names: looked up, or a PlanError
that lists the close names. Every front end resolves names here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errors import PlanError, did_you_mean


def public(ns: Mapping[str, Any]) -> list[str]:
    """The names a user defined (IPython's own `_`, `_i1`... left out)."""
    return [k for k in ns if not k.startswith("_")]


def lookup(ns: Mapping[str, Any], name: str, key: str | None = None, what: str = "variable") -> Any:
    """`ns[name]`, or a PlanError (on `key`) naming the closest variables."""
    if name not in ns:
        raise PlanError(
            f"no {what} named {name!r} in the notebook", key=key, value=name, choices=did_you_mean(name, public(ns))
        )
    return ns[name]


def lookup_model(ns: dict[str, Any], name: str) -> Any:
    """The torch model bound to `name` (dotted names allowed), or a PlanError with the models."""
    import torch.nn as nn

    models = [k for k in public(ns) if isinstance(ns[k], nn.Module)]
    head, *attrs = name.split(".")
    if head not in ns:
        close = did_you_mean(head, models) or models
        hint = f"; models in this notebook: {', '.join(close)}" if close else "; load one first"
        raise PlanError(f"no variable named {head!r}{hint}", value=name, choices=close)
    value = ns[head]
    for attr in attrs:
        if not hasattr(value, attr):
            raise PlanError(f"{name!r}: {type(value).__name__} has no attribute {attr!r}", value=name)
        value = getattr(value, attr)
    if not isinstance(value, nn.Module):
        raise PlanError(
            f"{name!r} holds a {type(value).__name__} value, not a torch model (nn.Module)", value=name, choices=models
        )
    return value
