"""`%peft runs [--runs-dir DIR]`: every run in the runs folder as a table to sort, tick and compare.

Thin text over records/ (`jp.runs`); the folder defaults to the magics' `runs_dir`
(`%config PeftMagics.runs_dir`). Mistakes are PlanErrors (no traceback).
"""

from __future__ import annotations

import argparse
from typing import Any

from .._errors import PlanError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print and exit the kernel's process
        raise PlanError(f"%peft runs: {message}", choices=["--runs-dir DIR"])


def _parser() -> _Parser:
    p = _Parser(prog="%peft runs", add_help=False,
                description="Every run in the runs folder, newest first: a table to sort, tick and compare.")
    p.add_argument("--runs-dir", dest="runs_dir", help="the runs folder (default: %%config PeftMagics.runs_dir)")
    p.add_argument("-h", "--help", action="store_true")
    return p


def runs_magic(args: list[str], user_ns: dict[str, Any], runs_dir: str = "peft_runs") -> Any:
    """Parse `args` and return the `Runs` (the cell displays it as the table widget)."""
    parser = _parser()
    opts = parser.parse_args(args)
    if opts.help:
        print(parser.format_help())
        return None
    from ..records import runs

    return runs(opts.runs_dir or runs_dir)
