"""`%peft data DATASET [--tokenizer T] [--trainer sft] [--plan P] [--max-length N]`: a look at
the data as the trainer will see it (jp.preview): rows with the tokens that train marked, the
length histogram with the cut, truncated and dropped rows, the longest batch. DATASET, T and P
are notebook variables; T defaults to the only tokenizer in the notebook. Format errors are
PlanErrors naming the row and the column (no traceback).
"""

from __future__ import annotations

import argparse
from typing import Any

from .._errors import PlanError
from .._namespace import lookup


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print and exit the kernel's process
        raise PlanError(f"%peft data: {message}", choices=["--tokenizer", "--trainer", "--plan", "--max-length"])


def _parser() -> _Parser:
    p = _Parser(prog="%peft data", add_help=False, description="The data as the trainer will see it.")
    p.add_argument("dataset", help="notebook variable holding a datasets.Dataset")
    p.add_argument("--tokenizer", help="notebook variable holding the tokenizer")
    p.add_argument("--trainer", default=None, help="TRL trainer: sft, dpo, ... (default: the plan's, else sft)")
    p.add_argument("--plan", help="notebook variable holding a Plan (its train: block)")
    p.add_argument("--max-length", type=int, dest="max_length")
    p.add_argument("--rows", type=int, default=3)
    return p


def data_magic(words: list[str], ns: dict[str, Any]) -> Any:
    """Run `%peft data` over the notebook namespace `ns`; returns the DataView (it displays)."""
    from ..data import preview

    args = _parser().parse_args(words)
    dataset = lookup(ns, args.dataset, key="dataset")
    tokenizer = lookup(ns, args.tokenizer, key="--tokenizer") if args.tokenizer else _only_tokenizer(ns)
    plan = lookup(ns, args.plan, key="--plan") if args.plan else None
    trainer = args.trainer
    if trainer is None:
        train = getattr(plan, "train", None) or {}
        trainer = train.get("trainer", "sft") if isinstance(train, dict) else "sft"
    view = preview(dataset, tokenizer, trainer=trainer, plan=plan, max_length=args.max_length, rows=args.rows)
    _show(view)
    return None


def _show(view: Any) -> None:
    try:
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython is how magics run
        print(view.to_json())
        return
    display(view)
    display(view.figure())


def _only_tokenizer(ns: dict[str, Any]) -> Any:
    found = [k for k, v in ns.items() if not k.startswith("_") and hasattr(v, "apply_chat_template")]
    if len(found) != 1:
        raise PlanError("which tokenizer? give --tokenizer VAR", key="--tokenizer", choices=found)
    return ns[found[0]]
