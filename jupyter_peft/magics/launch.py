"""`%peft launch MODEL [options]`: train on many processes with `accelerate launch`, from a line.

    %peft launch peft_model --processes 2
    %peft launch model --plan plan --processes 4 --strategy fsdp --data ds --eval-data test_ds
    %peft launch peft_model --data ds --max-steps 500 --as big_run

MODEL is a notebook variable: a PeftModel (after `%%peft` or jp.apply; its plan is the one
applied), or a base model with `--plan VAR` (a Plan, YAML text or mapping), which is applied to
it first. The data and tokenizer are the train block's names unless `--data`, `--eval-data`,
`--tokenizer` name others. The run folder gets exactly what `jp.export` writes, and the line
prints the command that launched it (run it by hand from that folder, or on a cluster). The
run is bound to `peft_run` (or `--as NAME`) and its dashboard is shown; Stop, Save now and a
kernel interrupt reach every process. Mistakes are PlanErrors and launch nothing.
"""

from __future__ import annotations

import argparse
from typing import Any

from .._errors import PlanError
from .._namespace import lookup, lookup_model
from ..plan.train_config import STRATEGIES


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print and exit the kernel's process
        raise PlanError(f"%peft launch: {message}", choices=["--plan", "--processes", "--strategy", "--data"])


def _parser() -> _Parser:
    p = _Parser(prog="%peft launch", add_help=False,
                description="Train on many processes with accelerate launch; watch and stop it here.")
    p.add_argument("model", help="notebook variable: a PeftModel, or a base model with --plan")
    p.add_argument("--plan", help="notebook variable holding a Plan, YAML text or a mapping (default: the applied one)")
    p.add_argument("--processes", type=int, help="processes on all machines (default: the GPUs here, or 2 on CPU)")
    p.add_argument("--strategy", choices=STRATEGIES, help="ddp (default), fsdp, zero2 or zero3")
    p.add_argument("--machines", type=int, default=1, help="machines (this one is machine 0; needs --main-ip)")
    p.add_argument("--main-ip", help="machine 0's address, for several machines")
    p.add_argument("--data", help="notebook variable holding the training data (default: the train block's)")
    p.add_argument("--eval-data", help="notebook variable holding evaluation data")
    p.add_argument("--tokenizer", help="notebook variable holding the tokenizer (default: tokenizer)")
    p.add_argument("--max-steps", type=int, help="override the train block's max_steps")
    p.add_argument("--runs-dir", help="where the run folder goes (default: %%config PeftMagics.runs_dir)")
    p.add_argument("--as", dest="bind_as", default="peft_run", help="variable the run is bound to (default: peft_run)")
    p.add_argument("-h", "--help", action="store_true")
    return p


def launch_magic(args: list[str], user_ns: dict[str, Any], runs_dir: str = "peft_runs") -> Any:
    """Parse `args`, launch, bind and show the run; return None (the dashboard is displayed)."""
    parser = _parser()
    if not args or any(a in ("-h", "--help") for a in args):
        print(parser.format_help() + "\n" + __doc__)
        return None
    opts = parser.parse_args(args)
    from ..training.run import Run
    from .core import check_binding, check_name

    check_name(opts.bind_as)
    if not isinstance(user_ns.get(opts.bind_as), Run):  # a run (launched or not) is what --as replaces
        check_binding(user_ns, opts.bind_as, replace=False, what="the run")
    model = lookup_model(user_ns, opts.model)
    plan = lookup(user_ns, opts.plan, "plan") if opts.plan else None
    block = _block(plan, model)
    names = {"dataset": opts.data or block.get("dataset"), "eval_dataset": opts.eval_data or block.get("eval_dataset"),
             "tokenizer": opts.tokenizer or block.get("tokenizer", "tokenizer")}
    if names["dataset"] is None:
        raise PlanError("name the training data: --data ds (or `dataset: ds` in the train block)", key="data")
    dataset = lookup(user_ns, names["dataset"], "data")
    eval_dataset = lookup(user_ns, names["eval_dataset"], "eval_data") if names["eval_dataset"] else None
    extra: dict[str, Any] = {"max_steps": opts.max_steps} if opts.max_steps is not None else {}
    from ..launching import launch

    run = launch(model, plan, processes=opts.processes, machines=opts.machines, strategy=opts.strategy,
                 main_ip=opts.main_ip, runs_dir=opts.runs_dir or runs_dir, dataset=dataset, eval_dataset=eval_dataset,
                 tokenizer=user_ns.get(names["tokenizer"]), **extra)
    user_ns[opts.bind_as] = run
    from ..launching.api import announcement

    print(announcement(run))
    from IPython.display import display

    display(run.dashboard)
    return None


def _block(plan: Any, model: Any) -> dict[str, Any]:
    """The train block the launch will use: the given plan's, else the one applied to `model`."""
    from ..model.adapt import applied_plan, as_plan

    if plan is not None:
        return dict(as_plan(plan).train or {})
    found = applied_plan(model)
    return dict(found[1].train or {}) if found is not None else {}
