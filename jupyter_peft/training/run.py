"""`Run`: one training run of a TRL trainer in a background thread, and its lifecycle.

    run = jp.train(peft_model, plan, dataset=ds, tokenizer=tok)   # returns at once
    run.state       # running -> stopping -> stopped | finished | failed   ("ready": attached, not started)
    run.df          # every logged value with its step (pandas); run.history as dicts
    run.stop(); run.wait(); run.save()
    run.generate("..."); run.compare("...")      # the tuned model at once, and with the adapter off

The trainer's logs reach the Run through a callback on the training thread (`callback.py`);
Stop and Save now become the trainer's own stop/save controls at the next step, so the trainer
writes the checkpoint. One run trains a base model at a time (the session keeps which).
Interrupting the kernel stops active runs (`interrupts.py`). A run's folder keeps the plan, the
history and the checkpoints (`folders.py`); `resume_from` continues a run's step count and charts.

A Run is data and lifecycle only: views (the dashboard) `watch` it and hear `begin`, `add(row)`,
`refresh` and `finish`; the Run never builds one. `jp.train` and `jp.attach` (api.py) wrap it
in its dashboard.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from .. import _compat
from .._errors import PlanError
from ..model.adapt import base_id, busy
from ..session import session
from . import folders, interrupts
from .generation import compare, generate
from .metrics import Tracker
from .run_memory import run_estimate

LIVE = ("running", "stopping")
MEMORY_EVERY = 0.25  # seconds between memory samples in the history


class Run:
    """One training run of a trainer; see the module docstring. Build with `jp.train` or `jp.attach`."""
    def __init__(self, trainer: Any, *, plan: Any = None, resume: Path | None = None,
                 prior: list[dict[str, Any]] | None = None, stop_on_nan: bool = True) -> None:
        from ..diagnostics import watch as watch_modules
        from .callback import Recorder
        from .samples import Sampler

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
        self._ended = threading.Event()  # set by the training thread when the run has settled
        self._thread: threading.Thread | None = None
        self.notes: list[str] = []
        """What the run was told when it started (e.g. the newer checkpoints a resume skipped)."""
        self._state_lock = threading.Lock()  # Stop (kernel thread) and the end (training thread) race
        self._republished = False
        self._foreground = False
        self._restore_sigint = lambda: None
        self.on_cuda = _on_cuda(self.model)
        self._memory_new: int | None = None  # the monitor's latest sample, until a history row takes it
        self._monitor: Monitor | None = None
        self.estimate: dict[str, Any] = {}
        """The memory estimate for this run's settings (run_memory.run_estimate), made when training starts."""
        self.closed = False
        """Whether `close()` gave back what this run held."""
        self.views: list[Any] = []
        """What watches this run (its dashboard): told `begin`, `add(row)`, `refresh`, `finish`."""
        self.dashboard: Any = None
        """The dashboard widget showing this run, when one was made (jp.train and jp.attach make one)."""
        trainer.add_callback(Recorder(self))
        # more callbacks of a run, one line each: samples while training (samples.py, issue 17),
        # per-module diagnostics (diagnostics/, issue 19)
        self.sample_rows: list[dict[str, Any]] = []  # samples.py appends {step, prompt, output, seconds}
        if plan is not None and (plan.train or {}).get("samples"):
            trainer.add_callback(Sampler(self, plan.train))
        self.diagnostics = watch_modules(self)  # per-module signals (diagnostics/); None with `diagnostics: false`
        session().add_run(self)

    @classmethod
    def load(cls, folder: str | Path) -> Run:
        """A run back from its folder (after a kernel restart): state, history, plan, checkpoints
        and its dashboard as it ended, without a trainer (records/loaded.py)."""
        from ..records.loaded import load_run

        return load_run(folder)

    def watch(self, view: Any) -> None:
        """Tell `view` about this run from now on (`view.begin()`, `.add(row)`, `.refresh()`, `.finish()`)."""
        if view not in self.views:
            self.views.append(view)

    def _tell(self, event: str, *args: Any) -> None:
        for view in self.views:
            getattr(view, event)(*args)

    @property
    def save_pending(self) -> bool:
        """Whether a Save now waits for the next step."""
        return self._save_requested.is_set()

    @property
    def live(self) -> bool:
        """Whether the run is training (running, or stopping at the next step)."""
        return self.state in LIVE

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
    def modules(self) -> Any:
        """One row per adapted module (pandas): path, group, layer, rank, the last sample's gradient
        norm, update norms and relative update, and the effective rank of its delta now (diagnostics/)."""
        from ..diagnostics import modules

        return modules(self)

    def suggest_ranks(self, budget: int | None = None, by: str = "group") -> Any:
        """A `ranks:` map for the next run at this run's (or `budget`) adapter parameters, with its
        reasoning and `.cell()`, the `%%peft` cell that uses it (diagnostics/suggest.py)."""
        from ..diagnostics import suggest_ranks

        return suggest_ranks(self, budget, by)

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
        self._claim()
        if threading.current_thread() is threading.main_thread():
            interrupts.install(stop_all, _cell_failed)
        self._move("running", when=("ready",))
        folders.write_run_info(self)  # run.json: how it ends is knowable from the folder (records/)
        self._thread = threading.Thread(target=self._train, name=f"jupyter_peft {self.folder.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Run:
        """Stop at the next step boundary; the trainer saves a checkpoint first. Returns at once."""
        if self._move("stopping", when=("running",)):
            self._stop_requested.set()
            self._tell("refresh")
        return self

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run ends (or `timeout` seconds); returns the state. An interrupt while
        waiting stops the run and waits for its checkpoint (a second interrupt stops waiting; the
        run still stops and saves). Waits on the run's own end, not `Thread.join`: an interrupted
        join leaves a live thread looking finished on Python <= 3.12."""
        if self._thread is None:
            return self.state
        try:
            self._ended.wait(timeout)
        except KeyboardInterrupt:
            self.stop()
            print(f"Interrupted: {self.describe()}; waiting for its checkpoint")
            self._ended.wait()
            print(f"Interrupted: {self.describe()}")
        if self._ended.is_set() and not self._republished:
            self._republished = True
            self._tell("finish")  # again from the kernel's thread: some front ends only take updates here
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

        return generate(self.model, self.trainer.processing_class, prompt, max_new_tokens, **generate_kwargs)

    def compare(self, prompt: Any, max_new_tokens: int = 64, **generate_kwargs: Any) -> Any:
        """The same prompt with the adapter on and off, side by side."""
        if self.state in LIVE:
            raise PlanError("the model is training: compare after it stops (run.stop(); run.wait())")

        return compare(self.model, self.trainer.processing_class, prompt, max_new_tokens, **generate_kwargs)

    @property
    def checkpoints(self) -> list[tuple[int, Path]]:
        """The run's checkpoints on disk, `(step, folder)` oldest first: each an adapter that
        `jp.adapters(model).load(run, step=N)` puts beside the others."""
        return [(folders.checkpoint_step(c), c) for c in folders.checkpoints(self.folder)]

    @property
    def samples(self) -> Any:
        """What the model generated while training (`train: {samples: [...]}`): a DataFrame of
        step, prompt, output, seconds (empty when the run has no samples)."""
        import pandas as pd

        from .samples import read

        rows = getattr(self, "sample_rows", None) or read(self.folder)  # a run read back from its folder
        return pd.DataFrame(rows, columns=["step", "prompt", "output", "seconds"])

    @property
    def adapter_path(self) -> Path | None:
        """The folder of the last checkpoint that holds the adapter's files, what
        `PeftModel.from_pretrained(base, run.adapter_path)` loads: the checkpoint itself, or
        peft's `<name>/` inside it for an adapter not called "default"."""
        if self.checkpoint is None:
            return None
        return folders.adapter_dir(self.checkpoint, getattr(self.model, "active_adapter", None))

    def describe(self) -> str:
        total = f"/{self.max_steps}" if self.max_steps and self.max_steps > 0 else ""
        where = f"; checkpoint {self.checkpoint}" if self.checkpoint else ""
        return f"run {self.folder} ({self.kind}, {self.state} at step {self.step}{total}{where})"

    def summary(self) -> str:
        """One line for `%peft status`: what `describe` says, and the last training loss."""
        last = next((r["loss"] for r in reversed(self.history) if "loss" in r), None)
        return self.describe() + (f", loss {last:.4g}" if last is not None else "")

    @property
    def kind(self) -> str:
        return self.plan.train["trainer"] if self.plan is not None and self.plan.train else type(self.trainer).__name__

    def __repr__(self) -> str:
        return f"<Run {self.describe()}>"

    def _ipython_display_(self) -> None:
        if self.dashboard is not None:
            self.dashboard._ipython_display_()
        else:
            print(repr(self))

    # ---- the training thread -------------------------------------------------------------

    def _train(self) -> None:
        try:
            self.trainer.train(resume_from_checkpoint=str(self._resume) if self._resume else None)
        except BaseException as err:  # noqa: BLE001 - a failed run must leave the kernel alive
            self._failed(err)
        else:
            self._train_ended()
        finally:
            try:
                self._release_trainer()
            finally:
                self._ended.set()

    def close(self) -> dict[str, Any]:
        """Give back the memory this run holds (optimizer states, gradients, the trainer's
        accelerator, its data) and say how much came back; the adapter stays on the model and on
        disk, `run.history` and the charts stay. A closed run can still generate and compare.
        Runs release most of this by themselves when they end; `close` also drops the trainer's
        data and collects what is left. `%peft free` closes every finished run of the session."""
        if self.live:
            raise PlanError(f"{self.describe()} is training: stop it first (peft_run.stop(); peft_run.wait())")
        before = _memory(self.on_cuda, now=True)
        self._release_trainer()
        for name in ("train_dataset", "eval_dataset"):
            if hasattr(self.trainer, name):
                setattr(self.trainer, name, None)
        _free_process_memory()
        after = _memory(self.on_cuda, now=True)
        self.closed = True
        freed = max(0, (before or 0) - (after or 0))
        what = "CUDA memory allocated" if self.on_cuda else "process memory (RSS)"
        return {"freed_bytes": freed, "text": f"{self.folder.name}: {what} {_bytes(before)} -> {_bytes(after)}"}

    def _release_trainer(self) -> None:
        """What only training needed, released when the run ends: the optimizer (Adam keeps two
        states per trainable parameter), its scheduler, gradients, and the accelerator's lists
        that keep them alive. A run kept in a variable (or by its dashboard) then holds no more
        than its model, which the notebook holds anyway."""
        if self._foreground:
            return  # an attached trainer the user trains in the cell: theirs to keep
        trainer = self.trainer
        self.model.zero_grad(set_to_none=True)
        for name in ("optimizer", "lr_scheduler"):
            if getattr(trainer, name, None) is not None:
                setattr(trainer, name, None)
        handler = getattr(trainer, "callback_handler", None)
        for name in ("optimizer", "lr_scheduler", "train_dataloader", "eval_dataloader"):
            if handler is not None and hasattr(handler, name):
                setattr(handler, name, None)
        accelerator = getattr(trainer, "accelerator", None)
        if accelerator is not None:
            for name in ("_optimizers", "_schedulers", "_dataloaders", "_models"):
                if isinstance(getattr(accelerator, name, None), list):
                    getattr(accelerator, name).clear()
        if getattr(trainer, "model_wrapped", None) is not None:
            trainer.model_wrapped = trainer.model
        _free_process_memory()

    def _began(self, state: Any) -> None:
        self.estimate = run_estimate(self.trainer, self.plan, self.on_cuda)  # before the first step
        self.tracker.begin(state.max_steps, getattr(state, "num_train_epochs", None), self._prior)
        self._prior = []
        self._memory_new = _memory(self.on_cuda)  # the first row has memory, however short the run
        self._monitor = Monitor(self)
        self._monitor.start()
        if self._move("running", when=("ready",)):  # attached: the user called trainer.train() in the cell
            self._foreground = True
            self._claim()
            interrupts.install(stop_all, _cell_failed)
            self._restore_sigint = interrupts.foreground_guard(self.stop, lambda: self.state in LIVE)
        self._tell("begin")

    def _logged(self, step: int, logs: dict[str, Any]) -> bool:
        """Record one log; False when training must stop because the loss is NaN/inf."""
        row = self.tracker.record(step, logs, self._sample_memory())
        if row is None:
            return True
        self._tell("add", row)
        bad = next((k for k, v in row.items() if "loss" in k and not math.isfinite(v)), None)
        if bad is not None and self.stop_on_nan and self.error is None:
            self.error = f"{bad} became {row[bad]} at step {step}" + (
                self.diagnostics.nan_note() if self.diagnostics is not None else "")  # where it started
            return False
        return True

    def _saved(self, path: str) -> None:
        self.checkpoint = Path(path)
        self._save_requested.clear()
        self._write_history()
        self._save_done.set()
        self._tell("refresh")

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
        if self._monitor is not None:
            self._monitor.close()
        self._restore_sigint()
        self._write_history()
        self._save_done.set()
        session().release(self, base_id(self.model))
        session().remember_run(self, self.summary())
        folders.write_run_info(self)
        self._tell("finish")

    # ---- helpers -------------------------------------------------------------------------

    def _move(self, state: str, when: tuple[str, ...]) -> bool:
        """Change state if it is one of `when`; False (and no change) otherwise."""
        with self._state_lock:
            if self.state not in when:
                return False
            self.state = state
            return True

    def _sample_memory(self) -> int | None:
        """The memory sample the monitor took since the last history row, if any: the training
        thread reads an attribute, the file read (or CUDA query) happens on the monitor thread."""
        sample, self._memory_new = self._memory_new, None
        return sample

    def _write_checkpoint(self) -> Path | None:
        """The trainer's checkpoint at the current step, unless the weights are NaN/inf, or no
        step was taken since the last one (before the first step there is no optimizer to save,
        and the adapter is as it was applied)."""
        if self.step == 0 or self.trainer.optimizer is None or not _weights_finite(self.model):
            return self.checkpoint
        if self.checkpoint is not None and folders.checkpoint_step(self.checkpoint) == self.step:
            return self.checkpoint
        self._saved(_compat.save_checkpoint(self.trainer))
        return self.checkpoint

    def _write_history(self) -> None:
        rows = self.tracker.rows[self._written:]
        if rows:
            self.folder.mkdir(parents=True, exist_ok=True)
            folders.append_history(self.folder, rows)
            self._written += len(rows)

    def _release_memory(self) -> None:
        self.model.zero_grad(set_to_none=True)
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _claim(self) -> None:
        other = session().claim(self, base_id(self.model))
        if other is not None:
            raise busy(other)


class Monitor(threading.Thread):
    """What a run's training thread must not spend its time on, done beside it while the run
    trains: every MEMORY_EVERY seconds it samples memory (the next history row takes it) and
    ticks the views (the dashboard serialises and sends what was logged since, and syncs its
    traits). The training thread's share per step is an append (Run._logged, Dashboard.add)."""

    def __init__(self, run: Run) -> None:
        super().__init__(name=f"jupyter_peft monitor {run.folder.name}", daemon=True)
        self.watched = run
        self._closing = threading.Event()

    def run(self) -> None:  # threading.Thread's entry point
        run = self.watched
        while not self._closing.wait(MEMORY_EVERY):
            try:
                run._memory_new = _memory(run.on_cuda)
                for view in list(run.views):
                    tick = getattr(view, "tick", None)
                    if tick is not None:
                        tick()
            except Exception:  # noqa: BLE001 - a view's failure must not stop training or the monitor
                if not self._closing.is_set():
                    run.notes.append("the dashboard's update failed:\n" + traceback.format_exc(limit=4))

    def close(self) -> None:
        self._closing.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=5)


# ---- every run of the session -------------------------------------------------------------


def active_runs() -> list[Run]:
    return session().active_runs()


def recent_runs() -> list[Run]:
    return session().recent_runs()


def _cell_failed(err: BaseException) -> None:
    """A cell raised: a trainer.train() of an attached run that was in it has failed (or was
    interrupted twice); settle it (the callback never hears of exceptions)."""
    for run in active_runs():
        if run._foreground:
            run._failed(err)


def stop_all(reason: str = "") -> list[Run]:
    """Ask every active run to stop at its next step; returns them."""
    runs = active_runs()
    runs += [r for r in recent_runs() if r.live and r not in runs]  # runs in other processes (launching/)
    for run in runs:
        run.stop()
    return runs


def _on_cuda(model: Any) -> bool:
    try:
        return next(model.parameters()).device.type == "cuda"
    except (StopIteration, AttributeError):
        return False


def _free_process_memory() -> None:
    """Collect garbage, hand CUDA's cached blocks back, and ask glibc to return freed heap pages
    to the system (without it RSS stays at its high-water mark after big frees)."""
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _bytes(n: int | None) -> str:
    from .._format import format_bytes

    return format_bytes(n) if n is not None else "unknown"


def _memory(cuda: bool, now: bool = False) -> int | None:
    """Peak CUDA memory allocated by torch (allocated now with `now`), or this process's
    resident memory now."""
    if cuda:
        import torch

        return int(torch.cuda.memory_allocated() if now else torch.cuda.max_memory_allocated())
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # peak; KiB on Linux


def _weights_finite(model: Any) -> bool:
    import torch

    return all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.requires_grad)
