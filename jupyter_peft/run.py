"""Training inside the kernel: a TRL trainer in a background thread, watched live, never lost.

    run = jp.train(peft_model, plan, dataset=ds, tokenizer=tok)   # returns at once
    run.state       # running -> stopping -> stopped | finished | failed   ("ready": attached, not started)
    run.df          # every logged value with its step (pandas); run.history as dicts
    run.stop(); run.wait(); run.save()
    run.generate("..."); run.compare("...")      # the tuned model at once, and with the adapter off

The trainer's logs reach the Run through a callback on the training thread (`recorder.py`);
Stop and Save now become the trainer's own stop/save controls at the next step, so the trainer
writes the checkpoint. One run trains a model at a time. Interrupting the kernel stops active
runs (`interrupts.py`). A run's folder keeps the plan, the history and the checkpoints
(`runfolder.py`); `resume_from` continues a run's step count and charts.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
import traceback
import weakref
from pathlib import Path
from typing import Any

from . import interrupts, runfolder
from ._errors import PlanError, did_you_mean
from ._namespace import lookup, public
from .metrics import Tracker, format_bytes

LIVE = ("running", "stopping")
MEMORY_EVERY = 0.25  # seconds between memory samples in the history
_ACTIVE: dict[int, Run] = {}  # id(base model) -> the run training it
_RECENT: list[weakref.ref[Run]] = []
_LOCK = threading.Lock()


class Run:
    """One training run of a trainer; see the module docstring. Build with `jp.train` or `jp.attach`."""

    def __init__(self, trainer: Any, *, plan: Any = None, resume: Path | None = None,
                 prior: list[dict[str, Any]] | None = None, stop_on_nan: bool = True) -> None:
        from .recorder import Recorder
        from .widgets.dashboard import Dashboard

        self.trainer = trainer
        self.model = trainer.model
        self.plan = plan
        self.folder = Path(trainer.args.output_dir)
        self.state = "ready"
        self.error: str | None = None
        """What went wrong, for a failed run ("ValueError: ...", or the step a loss became NaN)."""
        self.traceback: str | None = None
        self.checkpoint: Path | None = resume
        """The last checkpoint written (adapter + optimizer): what Stop, Save now and the end write."""
        self.tracker = Tracker()
        self.stop_on_nan = stop_on_nan
        self._resume, self._prior, self._written = resume, list(prior or []), len(prior or [])
        self._stop_requested, self._save_requested, self._save_done = (threading.Event() for _ in range(3))
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()  # Stop (kernel thread) and the end (training thread) race
        self._republished = False
        self._foreground = False
        self._restore_sigint = lambda: None
        self._cuda, self._memory_at = _on_cuda(self.model), float("-inf")
        self._estimate: dict[str, Any] = {}  # run_memory.run_estimate, made when training starts
        trainer.add_callback(Recorder(self))
        self.dashboard = Dashboard(self)
        _RECENT[:] = [ref for ref in _RECENT if ref() is not None] + [weakref.ref(self)]

    # ---- public --------------------------------------------------------------------------

    @property
    def history(self) -> list[dict[str, Any]]:
        """Every logged value with its step, time and derived rates, oldest first."""
        return self.tracker.rows

    @property
    def df(self) -> Any:
        """The history as a pandas DataFrame (one row per log; eval logs carry eval_* columns)."""
        import pandas as pd

        return pd.DataFrame(self.tracker.rows)

    @property
    def step(self) -> int:
        return int(getattr(self.trainer.state, "global_step", 0) or self.tracker.step)

    @property
    def max_steps(self) -> int | None:
        return self.tracker.max_steps or getattr(self.trainer.args, "max_steps", None)

    def start(self) -> Run:
        """Train in a background thread; the cell returns at once."""
        if self.state != "ready":
            raise PlanError(f"this run is {self.state}; start another with jp.train(...) (resume_from continues it)")
        _claim(self)
        if threading.current_thread() is threading.main_thread():
            interrupts.install(stop_all, _cell_failed)
        self._move("running", when=("ready",))
        self._thread = threading.Thread(target=self._train, name=f"jupyter_peft {self.folder.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Run:
        """Stop at the next step boundary; the trainer saves a checkpoint first. Returns at once."""
        if self._move("stopping", when=("running",)):
            self._stop_requested.set()
            self.dashboard.refresh()
        return self

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run ends (or `timeout` seconds); returns the state. An interrupt while
        waiting stops the run and waits for its checkpoint."""
        if self._thread is None:
            return self.state
        try:
            self._thread.join(timeout)
        except KeyboardInterrupt:
            self.stop()
            self._thread.join()
            print(f"Interrupted: {self.describe()}")
        if not self._thread.is_alive() and not self._republished:
            self._republished = True
            self.dashboard.finish()  # again from the kernel's thread: some front ends only take updates here
        return self.state

    def save(self, wait: bool = True, timeout: float | None = 600) -> Path | None:
        """Write a checkpoint now (while training: at the next step). Returns its folder."""
        if self.state in LIVE:
            self._save_done.clear()
            self._save_requested.set()
            if wait and threading.current_thread() is not self._thread:
                self._save_done.wait(timeout)
            return self.checkpoint
        if self.state == "ready":
            raise PlanError("nothing to save yet: the run has not started")
        return self._write_checkpoint()

    def generate(self, prompt: Any, max_new_tokens: int = 64, **generate_kwargs: Any) -> str:
        """The tuned model's continuation of `prompt` (text, or chat messages), greedy by default."""
        if self.state in LIVE:
            raise PlanError("the model is training: generate after it stops (run.stop(); run.wait())")
        from .generation import generate

        return generate(self.model, self.trainer.processing_class, prompt, max_new_tokens, **generate_kwargs)

    def compare(self, prompt: Any, max_new_tokens: int = 64, **generate_kwargs: Any) -> Any:
        """The same prompt with the adapter on and off, side by side."""
        if self.state in LIVE:
            raise PlanError("the model is training: compare after it stops (run.stop(); run.wait())")
        from .generation import compare

        return compare(self.model, self.trainer.processing_class, prompt, max_new_tokens, **generate_kwargs)

    def describe(self) -> str:
        total = f"/{self.max_steps}" if self.max_steps and self.max_steps > 0 else ""
        where = f"; checkpoint {self.checkpoint}" if self.checkpoint else ""
        return f"run {self.folder} ({self.kind}, {self.state} at step {self.step}{total}{where})"

    @property
    def kind(self) -> str:
        return self.plan.train["trainer"] if self.plan is not None and self.plan.train else type(self.trainer).__name__

    def __repr__(self) -> str:
        return f"<Run {self.describe()}>"

    def _ipython_display_(self) -> None:
        self.dashboard._ipython_display_()

    # ---- the training thread -------------------------------------------------------------

    def _train(self) -> None:
        try:
            self.trainer.train(resume_from_checkpoint=str(self._resume) if self._resume else None)
        except BaseException as err:  # noqa: BLE001 - a failed run must leave the kernel alive
            self._failed(err)
        else:
            self._train_ended()

    def _began(self, state: Any) -> None:
        from .run_memory import run_estimate

        self._estimate = run_estimate(self.trainer, self.plan, self._cuda)  # before the first step
        self.tracker.begin(state.max_steps, getattr(state, "num_train_epochs", None), self._prior)
        self._prior = []
        if self._move("running", when=("ready",)):  # attached: the user called trainer.train() in the cell
            self._foreground = True
            _claim(self)
            interrupts.install(stop_all, _cell_failed)
            self._restore_sigint = interrupts.foreground_guard(self.stop, lambda: self.state in LIVE)
        self.dashboard.begin()

    def _logged(self, step: int, logs: dict[str, Any]) -> bool:
        """Record one log; False when training must stop because the loss is NaN/inf."""
        row = self.tracker.record(step, logs, self._sample_memory())
        if row is None:
            return True
        self.dashboard.add(row)
        bad = next((k for k, v in row.items() if "loss" in k and not math.isfinite(v)), None)
        if bad is not None and self.stop_on_nan and self.error is None:
            self.error = f"{bad} became {row[bad]} at step {step}"
            return False
        return True

    def _saved(self, path: str) -> None:
        self.checkpoint = Path(path)
        self._save_requested.clear()
        self._write_history()
        self._save_done.set()
        self.dashboard.refresh()

    def _train_ended(self) -> None:
        end = "failed" if self.error else "stopped" if self._stop_requested.is_set() else "finished"
        if self._move(end, when=LIVE):  # else already settled (on_train_end, then the thread's end)
            self._settle()

    def _failed(self, err: BaseException) -> None:
        stopped = isinstance(err, KeyboardInterrupt)  # a second interrupt of a foreground trainer.train()
        if not self._move("stopped" if stopped else "failed", when=LIVE):
            return
        if not stopped:
            self.error = f"{type(err).__name__}: {err}"
            self.traceback = "".join(traceback.format_exception(err))
        self._release_memory()
        try:
            self._write_checkpoint()
        except Exception as save_err:  # noqa: BLE001 - report, do not mask the first error
            note = f"saving the adapter failed: {save_err}"
            self.error = f"{self.error} (and {note})" if self.error else note
        self._settle()

    def _settle(self) -> None:
        self._restore_sigint()
        self._write_history()
        self._save_done.set()
        _release(self)
        self.dashboard.finish()

    # ---- helpers -------------------------------------------------------------------------

    def _move(self, state: str, when: tuple[str, ...]) -> bool:
        """Change state if it is one of `when`; False (and no change) otherwise."""
        with self._state_lock:
            if self.state not in when:
                return False
            self.state = state
            return True

    def _sample_memory(self) -> int | None:
        """Memory now, at most every MEMORY_EVERY seconds (a file read per step would cost more)."""
        now = time.monotonic()
        if now - self._memory_at < MEMORY_EVERY:
            return None
        self._memory_at = now
        return _memory(self._cuda)

    def _write_checkpoint(self) -> Path | None:
        """The trainer's checkpoint at the current step, unless the weights are NaN/inf."""
        if not _weights_finite(self.model):
            return self.checkpoint
        # the same method the trainer calls for its own saves: adapter, optimizer, scheduler, state
        self.trainer._save_checkpoint(self.trainer.model, trial=None)
        self._saved(f"{self.trainer.args.output_dir}/checkpoint-{self.trainer.state.global_step}")
        return self.checkpoint

    def _write_history(self) -> None:
        rows = self.tracker.rows[self._written:]
        if rows:
            self.folder.mkdir(parents=True, exist_ok=True)
            runfolder.append_history(self.folder, rows)
            self._written += len(rows)

    def _release_memory(self) -> None:
        self.model.zero_grad(set_to_none=True)
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def status(self) -> dict[str, Any]:
        """The dashboard's state line (changes with the state, not every step)."""
        return {"state": self.state, "title": f"{self.kind} {self.folder.name}", "folder": str(self.folder),
                "message": self._message(), "error": self.error or "", "checkpoint": str(self.checkpoint or "")}

    def progress(self) -> dict[str, Any]:
        """The dashboard's progress bar and line: step, percent, epoch, elapsed, ETA."""
        out = self.tracker.status()
        total = out["max_steps"] if out["max_steps"] and out["max_steps"] > 0 else None
        parts = [f"step {out['step']}" + (f"/{total}" if total else "")]
        parts += [f"epoch {out['epoch_text']}"] if out["epoch_text"] else []
        parts += [f"{out['elapsed_text']} elapsed"] if self.state != "ready" else []
        parts += [f"ETA {out['eta_text']}"] if out["eta_text"] and self.state in LIVE else []
        return {**out, "text": " · ".join(parts)}

    def _message(self) -> str:
        ckpt = self.checkpoint
        if self.state == "ready":
            return "attached: train with dashboard.run.start() (background) or trainer.train()"
        if self.state == "stopping":
            return "stopping at the next step; the adapter will be saved"
        if self.state == "running":
            return "saving at the next step" if self._save_requested.is_set() else (
                f"last checkpoint: {ckpt}" if ckpt else "")
        if self.state == "failed":
            return f"last good checkpoint: {ckpt}" if ckpt else (
                "no checkpoint was saved before the failure (save_steps keeps periodic ones)")
        return f"adapter saved to {ckpt}" if ckpt else ""

    def memory(self) -> dict[str, Any]:
        """Measured memory for the dashboard (CUDA peak on GPU, process RSS on CPU), and the
        estimate for the run's settings beside it (run_memory.py)."""
        measured = next((r["memory_bytes"] for r in reversed(self.tracker.rows) if "memory_bytes" in r), None)
        label = "CUDA peak (max_memory_allocated)" if self._cuda else "process memory (RSS)"
        out = {"label": label, "bytes": measured, "text": format_bytes(measured), "estimate_bytes": None,
               "estimate_text": "", **self._estimate}
        out["line"] = " · ".join(filter(None, [f"{label}: {out['text']}" if measured else "", out["estimate_text"]]))
        return out


# ---- the registry: one active run per model --------------------------------------------------


def _base_id(model: Any) -> int:
    get_base = getattr(model, "get_base_model", None)
    return id(get_base() if callable(get_base) else model)


def _claim(run: Run) -> None:
    with _LOCK:
        other = _ACTIVE.get(_base_id(run.model))
        if other is not None and other is not run and other.state in LIVE:
            raise _busy(other)
        _ACTIVE[_base_id(run.model)] = run


def _release(run: Run) -> None:
    with _LOCK:
        if _ACTIVE.get(_base_id(run.model)) is run:
            del _ACTIVE[_base_id(run.model)]


def check_idle(model: Any) -> None:
    """PlanError when a run is training `model` (changing its adapters now would break it)."""
    run = _ACTIVE.get(_base_id(model))
    if run is not None and run.state in LIVE:
        raise _busy(run)


def _busy(run: Run) -> PlanError:
    return PlanError(f"this model is already training in {run.describe()}: stop it first "
                     "(%peft stop, or peft_run.stop()), or wait for it (peft_run.wait())")


def active_runs() -> list[Run]:
    with _LOCK:
        return [r for r in _ACTIVE.values() if r.state in LIVE]


def recent_runs() -> list[Run]:
    return [r for ref in _RECENT if (r := ref()) is not None]


def _cell_failed(err: BaseException) -> None:
    """A cell raised: a trainer.train() of an attached run that was in it has failed (or was
    interrupted twice); settle it (the callback never hears of exceptions)."""
    for run in active_runs():
        if run._foreground:
            run._failed(err)


def stop_all(reason: str = "") -> list[Run]:
    """Ask every active run to stop at its next step; returns them."""
    runs = active_runs()
    for run in runs:
        run.stop()
    return runs


# ---- the public functions -------------------------------------------------------------------


def train(peft_model: Any, plan: Any = None, *, dataset: Any = None, tokenizer: Any = None, eval_dataset: Any = None,
          reward_funcs: Any = None, output_dir: str | Path | None = None, runs_dir: str | Path = "peft_runs",
          stop_on_nan: bool = True, **trainer_kwargs: Any) -> Run:
    """Start training `peft_model` with `plan`'s train block in the background; returns the Run.

    `plan` is a Plan, YAML text or a mapping (default: SFT with our defaults; the adapter a
    PeftModel already has is trained as it is, only the plan's train block is used). Keyword
    arguments that are fields of the trainer's TRL config (`max_steps=50`, `learning_rate=...`)
    join the train block; others go to the trainer (`data_collator=`, `formatting_func=`...).
    A model without an adapter gets the plan applied first. `stop_on_nan` ends a run whose loss
    becomes NaN/inf (state failed, the NaN weights not saved).
    """
    from . import launch
    from .adapt import apply, as_plan, find_peft_model

    model = find_peft_model(peft_model)
    if plan is None:  # train the adapter the model has, with the default train block
        from .summary import _method_name

        plan = {"method": _method_name(model.peft_config[model.active_adapter]) if model is not None else "lora"}
    plan = as_plan(plan)
    check_idle(peft_model)
    if model is None:
        model = apply(plan, peft_model)
    ready = launch.build(model, plan, dataset=dataset, tokenizer=tokenizer, eval_dataset=eval_dataset,
                         reward_funcs=reward_funcs, output_dir=output_dir, runs_dir=runs_dir, **trainer_kwargs)
    run = Run(ready.trainer, plan=plan.replace(train=ready.train), resume=ready.resume, prior=ready.prior,
              stop_on_nan=stop_on_nan)
    return run.start()


def attach(trainer: Any) -> Any:
    """The live dashboard for a Trainer you built: adds a callback and returns the Dashboard.

    Train in the background with `dashboard.run.start()` (the notebook stays usable and Stop
    works), or call `trainer.train()` yourself (the first interrupt then stops at the next step
    and saves; the Stop button answers only when the cell is done).
    """
    handler = getattr(trainer, "callback_handler", None)
    for callback in handler.callbacks if handler is not None else []:
        if isinstance(getattr(callback, "run", None), Run):
            return callback.run.dashboard  # attached already
    return Run(trainer).dashboard


def train_from_plan(peft_model: Any, plan: Any, user_ns: dict[str, Any], runs_dir: str = "peft_runs") -> Run:
    """The `%%peft` cell's train block: resolve the notebook names, start, show the dashboard."""
    from IPython.display import display

    run = train(peft_model, plan, runs_dir=runs_dir, **_from_notebook(plan, user_ns))
    display(run.dashboard)
    return run


def check_from_plan(plan: Any, user_ns: dict[str, Any]) -> None:
    """The train block's names and data, checked before `%%peft` touches the model."""
    from . import launch

    found = _from_notebook(plan, user_ns)
    del found["tokenizer"]  # with `base:` it is loaded after this check
    launch.check(plan, **found)


def _from_notebook(plan: Any, user_ns: dict[str, Any]) -> dict[str, Any]:
    """dataset, eval_dataset, tokenizer and reward_funcs: the train block's names, looked up."""
    block = plan.train or {}
    found = {key: _lookup(user_ns, block.get(key), key) for key in ("dataset", "eval_dataset")}
    tok_name = block.get("tokenizer", "tokenizer")
    if tok_name not in user_ns and not (plan.base is not None and "tokenizer" not in block):
        raise PlanError(f"no tokenizer: define `{tok_name}` or name one with `train: {{tokenizer: tok}}`",
                        key="train.tokenizer", choices=did_you_mean(tok_name, public(user_ns)))
    # a plain name is a notebook function; anything else (org/model) a reward model's id
    rewards = [lookup(user_ns, n, "train.reward_funcs", "function") if n.isidentifier() else n
               for n in block.get("reward_funcs", [])]
    return {**found, "tokenizer": user_ns.get(tok_name), "reward_funcs": rewards or None}


def _lookup(ns: dict[str, Any], name: str | None, key: str) -> Any:
    if name is None:
        if key == "dataset":
            raise PlanError("name the training data: `train: {dataset: ds}`", key="train.dataset")
        return None
    return lookup(ns, name, f"train.{key}")


def stop_active() -> list[Run]:
    """`%peft stop`: stop every active run, wait for its checkpoint, say where it is."""
    runs = stop_all("%peft stop")
    if not runs:
        print("No training run is active.")
    for run in runs:
        if not run._foreground:
            run.wait()
        print(f"Stopped {run.describe()}")
    return runs


def runs_status() -> None:
    """`%peft status`: the runs of this session, newest first."""
    runs = recent_runs()
    if not runs:
        print("No training run in this session.")
    for run in reversed(runs):
        last = next((r["loss"] for r in reversed(run.history) if "loss" in r), None)
        loss = f", loss {last:.4g}" if last is not None else ""
        print(f"{run.describe()}{loss}")


def _on_cuda(model: Any) -> bool:
    try:
        return next(model.parameters()).device.type == "cuda"
    except (StopIteration, AttributeError):
        return False


def _memory(cuda: bool) -> int | None:
    """Peak CUDA memory allocated by torch, or this process's resident memory now."""
    if cuda:
        import torch

        return int(torch.cuda.max_memory_allocated())
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # peak; KiB on Linux


def _weights_finite(model: Any) -> bool:
    import torch

    return all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.requires_grad)
