"""Which data an estimate is for: the data set given, or the one the plan's `train:` block names.

`train: {dataset: ds, tokenizer: tok}` names notebook variables; an estimate of that plan (the
`jp.estimate` call, `%peft estimate`, the studio's memory panel) looks them up in the notebook
and estimates the longest batch the trainer will build from them. When a name is not defined
in the notebook the estimate says so (`MemoryEstimate.data_note`) and uses the batch size and
sequence length instead: a plan is often written before its data is loaded.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DataSource:
    dataset: Any = None
    tokenizer: Any = None
    name: str = ""
    """The notebook name of the data set ("" when given directly)."""
    note: str = ""
    """Why the estimate is not for the plan's data, when it names data it cannot use."""


def notebook_namespace() -> Mapping[str, Any] | None:
    """The running IPython's user namespace, or None outside IPython (never imports IPython)."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    shell = get_ipython()
    return getattr(shell, "user_ns", None)


def from_train_block(plan: Any, user_ns: Mapping[str, Any] | None = None) -> DataSource:
    """The data set and tokenizer `plan`'s train block names, looked up in `user_ns` (default:
    the notebook's); an empty DataSource (with a note when names were given) otherwise."""
    train = getattr(plan, "train", None) or {}
    name = train.get("dataset")
    if not isinstance(name, str) or not name:
        return DataSource()
    ns = notebook_namespace() if user_ns is None else user_ns
    if ns is None:
        return DataSource(note=f"train.dataset {name!r} names a notebook variable; outside a notebook the "
                               "estimate is for the batch size and sequence length")
    if name not in ns:
        return DataSource(note=f"train.dataset {name!r} is not defined in this notebook: estimated for the "
                               "batch size and sequence length instead")
    tok_name = train.get("tokenizer", "tokenizer")
    if tok_name not in ns:
        return DataSource(note=f"no tokenizer {tok_name!r} in this notebook to tokenize {name!r} with "
                               "(train.tokenizer names it): estimated for the batch size and sequence length")
    return DataSource(ns[name], ns[tok_name], name)
