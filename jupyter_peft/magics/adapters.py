"""`%peft adapters [MODEL] [--tokenizer TOK]`: the adapter bench for a PeftModel, as a widget.

MODEL is a notebook variable holding a PeftModel (or a base that carries one); without it, the
one PeftModel in the notebook (a PlanError names them when there are several, or says there is
none). The tokenizer is `--tokenizer VAR`, else the one the model's run used, else `tokenizer`.
"""

from __future__ import annotations

import argparse
from typing import Any

from .._errors import PlanError
from .._namespace import lookup, lookup_model


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print and exit the kernel's process
        raise PlanError(f"%peft adapters: {message}", choices=["MODEL", "--tokenizer"])


def _parser() -> _Parser:
    p = _Parser(prog="%peft adapters", add_help=False,
                description="Several adapters on one base: activate, compare, merge, load, scrub checkpoints.")
    p.add_argument("model", nargs="?", help="notebook variable holding a PeftModel (default: the only one)")
    p.add_argument("--tokenizer", help="notebook variable holding the tokenizer (default: the run's, or `tokenizer`)")
    return p


def adapters_magic(rest: list[str], user_ns: dict[str, Any]) -> Any:
    """The bench's widget for the model `rest` names (see the module docstring)."""
    from ..adapter_bench import adapters

    args = _parser().parse_args(rest)
    model = lookup_model(user_ns, args.model) if args.model else _only_peft_model(user_ns)
    tokenizer = lookup(user_ns, args.tokenizer, key="--tokenizer") if args.tokenizer else None
    bench = adapters(model, tokenizer=tokenizer)
    if bench.tokenizer is None and "tokenizer" in user_ns:
        bench.tokenizer = user_ns["tokenizer"]
    return bench.widget()


def _only_peft_model(ns: dict[str, Any]) -> Any:
    from peft import PeftModel

    found = {k: v for k, v in ns.items() if not k.startswith("_") and isinstance(v, PeftModel)}
    distinct = {id(v): k for k, v in found.items()}
    if len(distinct) == 1:
        return next(iter(found.values()))
    if not found:
        raise PlanError("no PeftModel in the notebook: apply a plan first (%%peft model), or name the model: "
                        "%peft adapters MODEL", key="MODEL")
    raise PlanError(f"{len(distinct)} PeftModels in the notebook: name one (%peft adapters MODEL)", key="MODEL",
                    choices=sorted(found))
