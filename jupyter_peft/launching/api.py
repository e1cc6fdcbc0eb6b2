"""`jp.launch`: a plan trained by `accelerate launch` processes, watched from the notebook.

    run = jp.launch(peft_model, plan, processes=2, dataset=ds, tokenizer=tok)   # returns at once
    run.command        # accelerate launch --config_file accelerate.yaml ... train.py
    run.stop(); run.wait(); run.load_into(peft_model)

The run folder gets exactly what `jp.export` writes (exports.export_all: train.py, the
accelerate config, the data, README.md), with the adapter's output in the run folder itself, so
checkpoints sit where a notebook run's do (training/folders.py). `accelerate launch` then runs
it from there; a user can run the same command by hand, on a cluster too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from .._errors import PlanError, unknown
from ..model.adapt import applied_plan, as_plan, check_idle, find_peft_model
from ..plan.train_config import STRATEGIES
from ..training import folders
from ..training.api import undo_on_error
from ..training.trainer import apply_for_run
from ..training.trainer import check as check_trainer
from . import process
from .run import LaunchedRun

ACCELERATE = "accelerate.yaml"
SCRIPT = "train.py"


def launch(model: Any, plan: Any = None, *, processes: int | None = None, machines: int = 1,
           strategy: str | None = None, dataset: Any = None, eval_dataset: Any = None, tokenizer: Any = None,
           reward_funcs: Any = None, runs_dir: str | Path | None = None, output_dir: str | Path | None = None,
           main_ip: str | None = None, env: dict[str, str] | None = None, exit_grace: float = 30.0,
           show: bool = False, **train_fields: Any) -> LaunchedRun:
    """Train `model` (a PeftModel, or a base the plan is applied to) with `plan` on `processes`
    processes of `accelerate launch`; returns the LaunchedRun at once, with its dashboard.

    `plan`: a Plan, YAML or mapping (default: the plan applied to `model`); its train block's
    `processes:` / `strategy:` are the defaults of the arguments. Keyword arguments that are
    fields of the trainer's TRL config (`max_steps=50`) join the train block. `processes`: all
    processes on all machines (default: the GPUs this machine sees, or 2 CPU processes over
    gloo on a machine without GPUs). `strategy`: ddp, fsdp, zero2 or zero3. `machines` > 1
    launches machine 0 here (give `main_ip`); `run.notes` has the command for the others.
    `env`: more environment variables for the processes. `exit_grace`: seconds a process may
    take to exit after the work is done before it is killed. Everything is checked, and
    nothing launched or written, before the first file.
    """
    peft_model = find_peft_model(model)
    if plan is None:
        found = applied_plan(peft_model) if peft_model is not None else None
        if found is None:
            raise PlanError("no plan to launch: pass one, or apply it first (%%peft, jp.apply)", key="plan")
        plan = found[1]
    plan = as_plan(plan)
    block = {**(plan.train or {"trainer": "sft"}), **train_fields}
    processes = processes if processes is not None else block.get("processes")
    strategy = strategy if strategy is not None else block.get("strategy", "ddp")
    gpus, processes = _scale(processes, machines, strategy, main_ip)
    _check_in_kernel_only(block)
    plan = plan.replace(train={**block, "processes": processes, "strategy": strategy})
    names, rewards = _reward_names(reward_funcs)
    if names:
        plan = plan.replace(train={**plan.train, "reward_funcs": names})
    adapter = peft_model.active_adapter if peft_model is not None else plan.adapter_name or "default"
    runs_dir = runs_dir if runs_dir is not None else "peft_runs"
    train, _ = check_trainer(plan, dataset=dataset, eval_dataset=eval_dataset, reward_funcs=reward_funcs,
                             runs_dir=runs_dir, output_dir=output_dir, adapter=adapter)
    plan = plan.replace(train=train)
    name = f"{train['trainer']}-x{processes}"
    folder = Path(output_dir) if output_dir is not None else folders.fresh_path(runs_dir, plan.method, name)
    if folder.exists() and any(folder.iterdir()):
        raise PlanError(f"{str(folder)!r} is not empty: a launched run writes its own files there", key="output_dir")
    if peft_model is None:
        check_idle(model)  # the plan is applied to this base in the kernel (for the dashboard, load_into)
    with undo_on_error(model) if peft_model is None else contextlib.nullcontext():
        if peft_model is None:
            peft_model = apply_for_run(plan, model)
        run = _start(peft_model, plan, folder, gpus=gpus, processes=processes, machines=machines,
                     strategy=strategy, dataset=dataset, eval_dataset=eval_dataset, tokenizer=tokenizer,
                     rewards=rewards, main_ip=main_ip, env=env, exit_grace=exit_grace)
    if show:
        run.dashboard.show()
    return run


def launch_from_plan(peft_model: Any, plan: Any, *, runs_dir: str | Path = "peft_runs", dataset: Any = None,
                     eval_dataset: Any = None, tokenizer: Any = None, reward_funcs: Any = None) -> LaunchedRun:
    """A `%%peft` cell whose train block has `processes:` or `strategy:` (magics/train.py)."""
    block = plan.train or {}
    run = launch(peft_model, plan, processes=block.get("processes"), strategy=block.get("strategy"), dataset=dataset,
                 eval_dataset=eval_dataset, tokenizer=tokenizer, reward_funcs=reward_funcs, runs_dir=runs_dir)
    print(announcement(run))
    return run


def announcement(run: LaunchedRun) -> str:
    """What a cell that launched says: where, and the command to run it again by hand."""
    return f"Launched {run.processes} processes in {run.folder}; to run it again by hand, from there:\n  {run.command}"


def visible_gpus() -> int:
    """The GPUs the processes would see (`torch.cuda.device_count()` asks without making a CUDA
    context in the kernel; CUDA_VISIBLE_DEVICES is honoured)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return 0
    import torch

    return int(torch.cuda.device_count())


def _scale(processes: Any, machines: Any, strategy: str, main_ip: str | None) -> tuple[int, int]:
    """(GPUs here, processes in all): checked against this machine."""
    for key, value in (("processes", processes), ("machines", machines)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise PlanError(f"{key} = {value!r} is not valid: expected a positive whole number", key=key, value=value)
    if strategy not in STRATEGIES:
        raise unknown("strategy", str(strategy), STRATEGIES, key="strategy")
    gpus = visible_gpus()
    if processes is None:
        processes = (gpus or 2) * machines
    if processes % machines:
        raise PlanError(f"{processes} processes do not split evenly over {machines} machines", key="processes",
                        choices=[str(machines * k) for k in (1, 2, 4, 8)])
    here = processes // machines
    if gpus and here > gpus:
        raise PlanError(f"{here} processes per machine, but this machine sees {gpus} GPU(s): one process per GPU",
                        key="processes", choices=[str(gpus * machines)])
    if not gpus and strategy != "ddp":
        raise PlanError(f"{strategy} shards over GPUs; this machine has none (processes on CPU train with ddp)",
                        key="strategy", choices=["ddp"])
    if machines > 1 and not main_ip:
        raise PlanError("several machines need machine 0's address: main_ip='10.0.0.1'", key="main_ip")
    return gpus, processes


# train-block keys that only a run in this kernel has (its trainer is here to sample and watch)
_KERNEL_ONLY = ("samples", "sample_every", "sample_tokens", "diagnostics", "resume_from", "sweep", "trials")


def _check_in_kernel_only(block: dict[str, Any]) -> None:
    for key in _KERNEL_ONLY:
        if key in block and block[key] not in (None, False):
            raise PlanError(f"train.{key} is for runs in this kernel (jp.train); a launched run's trainer works in "
                            "other processes: leave it out, or drop processes:/strategy: to train here",
                            key=f"train.{key}")


def _reward_names(reward_funcs: Any) -> tuple[list[str], dict[str, Any]]:
    """Notebook reward functions by name (the export copies their source into the script)."""
    funcs = reward_funcs if isinstance(reward_funcs, (list, tuple)) else [reward_funcs] if reward_funcs else []
    names, found = [], {}
    for f in funcs:
        name = f if isinstance(f, str) else getattr(f, "__name__", None)
        if not name:
            raise PlanError(f"{f!r} is neither a function nor a reward model id", key="train.reward_funcs")
        names.append(name)
        if not isinstance(f, str):
            found[name] = f
    return names, found


def _start(peft_model: Any, plan: Any, folder: Path, *, gpus: int, processes: int, machines: int, strategy: str,
           dataset: Any, eval_dataset: Any, tokenizer: Any, rewards: dict[str, Any], main_ip: str | None,
           env: dict[str, str] | None, exit_grace: float) -> LaunchedRun:
    """Write the export into `folder`, then start the processes and the run that follows them."""
    from ..exports import export_all

    try:
        done = export_all(plan, folder, model=peft_model, data=dataset, eval_data=eval_dataset,
                          gpus=processes // machines, machines=machines, backend=strategy, on_gpu=bool(gpus),
                          main_ip=main_ip, output_dir=".", user_ns=rewards)
    except BaseException:
        if folder.exists() and not any(folder.iterdir()):
            folder.rmdir()
        raise
    folders.write_plan(folder, plan)
    port = process.free_port() if machines == 1 else None
    words = process.command(ACCELERATE, SCRIPT, processes, machines, port)
    notes = list(done.notes)
    if machines > 1:
        others = f"{process.shown(words)} --machine_rank <1..{machines - 1}>"
        notes.append(f"this notebook runs machine 0; on each other machine, from a copy of {folder}: {others}")
        words = [*words[:-1], "--machine_rank", "0", words[-1]]
    run = LaunchedRun(peft_model, plan, folder, words, processes=processes, strategy=strategy, on_cuda=bool(gpus),
                      tokenizer=tokenizer, env=env, exit_grace=exit_grace, notes=notes)
    from .view import LaunchedDashboard

    run.dashboard = LaunchedDashboard(run)  # the same dashboard as any run's
    return run.start()
