"""`LaunchedRun`: a `Run` whose trainer works in other processes, seen through its run folder.

The workers' callback (exports/link.py) appends progress to `metrics.jsonl`; a tail thread in
the kernel follows that file (it sleeps between reads, the workers only write lines) and feeds
the same `Tracker` and views as `Run._logged`, so the dashboard, `run.history` and `run.df`
are those of any run. Stop, Save now and a kernel interrupt write `control.json`, which the
workers obey at their next step boundary (every rank at the same step), so the trainer writes
the checkpoint. The run ends when the launcher exits: finished or stopped, or failed with the
first failing rank's traceback (`run.error`, `run.traceback`, `run.logs`). A rank still alive
`exit_grace` seconds after the work is done (seen with gloo teardown) is killed, and
`run.notes` says so. `run.load_into(peft_model)` brings the adapter back into the notebook.

No base model of the kernel is claimed: the kernel's model stays free while the work runs
elsewhere; the run is only listed with the session's runs (`%peft status`, interrupts, `%peft stop`).
"""

from __future__ import annotations

import atexit
import json
import math
import subprocess
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from .._errors import PlanError
from ..exports.link import CONTROL, METRICS
from ..session import session
from ..training import folders, interrupts
from ..training.metrics import Tracker
from ..training.run import Run, _cell_failed, stop_all  # the pair interrupts.install wants, as a Run's
from . import process

TAIL_EVERY = 0.2  # seconds between reads of metrics.jsonl (in the kernel; the workers never wait)


class LaunchedRun(Run):
    """A run of `accelerate launch` processes (see the module docstring). Made by `jp.launch`."""

    def __init__(self, model: Any, plan: Any, folder: Path, words: list[str], *, processes: int, strategy: str,
                 on_cuda: bool, tokenizer: Any = None, env: dict[str, str] | None = None,
                 exit_grace: float = 30.0, notes: list[str] | None = None) -> None:
        # Run.__init__ wires a trainer of this process; here the trainer is elsewhere
        self.trainer = None
        self.model, self.plan, self.folder = model, plan, Path(folder)
        self.tokenizer = tokenizer
        self.state = "ready"
        self.error: str | None = None
        self.traceback: str | None = None
        self.checkpoint: Path | None = None
        self._at = threading.local()  # the worker's time of the line being recorded (tail thread only)
        self.tracker = Tracker(clock=self._clock)
        self.stop_on_nan = False  # the workers decide; a NaN loss is flagged on the charts
        self._prior, self._written = [], 0
        self._stop_requested, self._save_requested, self._save_done = (threading.Event() for _ in range(3))
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None
        self.notes: list[str] = list(notes or [])
        self._state_lock = threading.Lock()
        self._republished = False
        self._foreground = False
        self._restore_sigint = lambda: None
        self.on_cuda, self.estimate = on_cuda, {}
        self.closed = False
        self.views: list[Any] = []
        self.dashboard: Any = None
        self.processes, self.strategy = processes, strategy
        self.words = words
        self.command = process.shown(words)
        """The launch command, as run from the run folder (the export's own, plus port and log flags)."""
        self.exit_grace = exit_grace
        self.global_batch: int | None = None
        self.returncode: int | None = None
        self.failed_rank: int | None = None
        self.loaded = False
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._pids: list[int] = []
        self._control = {"stop": False, "save": 0, "final": True}
        self._offset, self._partial = 0, b""
        self._step = 0
        self._done_at: float | None = None
        self.sample_rows: list[dict[str, Any]] = []  # Run's per-run extras: none are followed across processes
        self.diagnostics = None
        session().add_run(self)

    # ---- what the dashboard and the session read -------------------------------------------

    @property
    def step(self) -> int:
        return max(self._step, self.tracker.step)

    @property
    def max_steps(self) -> int | None:
        if self.tracker.max_steps:
            return self.tracker.max_steps
        steps = (self.plan.train or {}).get("max_steps") if self.plan is not None else None
        return steps if isinstance(steps, int) and steps > 0 else None

    @property
    def kind(self) -> str:
        trainer = (self.plan.train or {}).get("trainer", "sft") if self.plan is not None else "sft"
        return f"{trainer} x{self.processes}"

    @property
    def logs(self) -> dict[int, dict[str, Path]]:
        """Each rank's output files, {rank: {"stdout": path, "stderr": path}}."""
        return process.rank_logs(self.folder)

    @property
    def pids(self) -> list[int]:
        """The launcher's and its workers' process ids, as last seen."""
        return list(self._pids)

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> LaunchedRun:
        """Start the processes and the tail thread; returns at once."""
        if self.state != "ready":
            raise PlanError(f"this run is {self.state}; launch another with jp.launch(...)")
        self._write_control()
        if threading.current_thread() is threading.main_thread():
            interrupts.install(stop_all, _cell_failed)  # an interrupt stops every run, this one too
        self._proc = process.start(self.words, self.folder, self._env)
        self._pids = [self._proc.pid]
        atexit.register(_stop_at_exit, weakref.ref(self))  # the kernel goes: the processes stop and save
        self._move("running", when=("ready",))
        folders.write_run_info(self)  # run.json, as any run's (records/)
        self._thread = threading.Thread(target=self._follow, name=f"jupyter_peft launch {self.folder.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> LaunchedRun:
        """Ask every process to stop at its next step; the trainer checkpoints first. Returns at once."""
        if self._move("stopping", when=("running",)):
            self._stop_requested.set()
            self._control["stop"] = True
            self._write_control()
            self._tell("refresh")
        return self

    def save(self, wait: bool = True, timeout: float | None = 600) -> Path | None:
        """A checkpoint at the workers' next step (returns its folder; with wait=False at once)."""
        if self.state == "ready":
            raise PlanError("nothing to save yet: the run has not started")
        if self.state not in ("running", "stopping"):
            return self.checkpoint  # the processes are gone; the end wrote the last checkpoint
        self._save_done.clear()
        self._save_requested.set()
        self._control["save"] = int(self._control["save"]) + 1
        self._write_control()
        if wait and threading.current_thread() is not self._thread:
            self._save_done.wait(timeout)
        return self.checkpoint

    def kill(self) -> LaunchedRun:
        """End the processes now, without a checkpoint (Stop is the gentle way)."""
        if self._proc is not None and self._proc.poll() is None:
            process.kill_tree(self._pids + process.tree(self._proc.pid), self._proc.pid)
            self.notes.append("killed by run.kill(): no checkpoint was written after the last one")
        return self

    def load_into(self, peft_model: Any = None, adapter_name: str | None = None) -> Any:
        """Load the run's last adapter checkpoint into `peft_model` (default: the model it was
        launched from), into its adapter `adapter_name` (default: the active one); the weights
        become those on disk. Returns the PeftModel."""
        from peft.utils import load_peft_weights, set_peft_model_state_dict

        from ..model.adapt import check_idle, find_peft_model

        if self.live:
            raise PlanError(f"{self.describe()} is still training: load its adapter when it ends (run.wait())")
        target = find_peft_model(peft_model if peft_model is not None else self.model)
        if target is None:
            raise PlanError("load_into needs a PeftModel (the model after a %%peft cell or jp.apply)", key="peft_model")
        check_idle(target)  # a run training it in this kernel would see its weights change under it
        path = self.adapter_path
        if path is None or folders.problem(path, adapter_only=True) is not None:
            why = folders.problem(path, adapter_only=True) if path is not None else "no checkpoint was written"
            raise PlanError(f"{self.describe()} has no adapter to load: {why}", key="checkpoint")
        name = adapter_name or target.active_adapter
        if name not in target.peft_config:
            raise PlanError(f"the model has no adapter {name!r}", key="adapter_name", choices=list(target.peft_config))
        _check_same_adapter(path, target.peft_config[name])
        weights = load_peft_weights(str(path), device=str(next(target.parameters()).device))
        result = set_peft_model_state_dict(target, weights, adapter_name=name)
        missing = [k for k in getattr(result, "unexpected_keys", []) if name in k or "lora" in k]
        if missing:
            raise PlanError(f"the checkpoint's weights do not fit adapter {name!r}: {missing[:3]}", key="adapter_name")
        self.loaded = True
        return target

    def generate(self, prompt: Any, max_new_tokens: int = 64, **generate_kwargs: Any) -> str:
        """The tuned model's continuation of `prompt`, once the adapter is loaded (`load_into`)."""
        from ..training.generation import generate

        return generate(self.model, self._usable_tokenizer(), prompt, max_new_tokens, **generate_kwargs)

    def compare(self, prompt: Any, max_new_tokens: int = 64, **generate_kwargs: Any) -> Any:
        """The same prompt with the adapter on and off, once the adapter is loaded (`load_into`)."""
        from ..training.generation import compare

        return compare(self.model, self._usable_tokenizer(), prompt, max_new_tokens, **generate_kwargs)

    def _usable_tokenizer(self) -> Any:
        if not self.loaded:
            raise PlanError("the adapter was trained in other processes: bring it into the notebook first with "
                            "run.load_into(peft_model)")
        if self.tokenizer is None:
            raise PlanError("this run was launched without a tokenizer: pass tokenizer= to jp.launch")
        return self.tokenizer

    def close(self) -> dict[str, Any]:
        """Nothing of the training is held in this kernel (the processes held it, and have exited)."""
        if self.live:
            raise PlanError(f"{self.describe()} is training: stop it first (run.stop(); run.wait())")
        self.closed = True
        return {"freed_bytes": 0, "text": f"{self.folder.name}: trained in {self.processes} processes, which have "
                                          "exited; nothing held in this kernel"}

    # ---- the tail thread -------------------------------------------------------------------

    def _follow(self) -> None:
        proc = self._proc
        assert proc is not None
        try:
            while True:
                self._read()
                self._pids = sorted(set(self._pids) | set(process.tree(proc.pid)))
                if proc.poll() is not None:
                    break
                if self._done_at is not None and time.monotonic() - self._done_at > self.exit_grace:
                    alive = process.kill_tree(self._pids, proc.pid)
                    self.notes.append(f"{len(alive)} process(es) still ran {self.exit_grace:g} s after the work was "
                                      "done (a rank hung in teardown); killed them, the adapter was already saved")
                    proc.wait()
                    break
                time.sleep(TAIL_EVERY)
            self.returncode = proc.returncode
            process.kill_tree(self._pids, proc.pid)  # a worker the launcher left behind
            self._read()
            self._finish()
        except BaseException as err:  # noqa: BLE001 - the kernel lives on; say what went wrong
            self._failed(err)
        finally:
            self._ended.set()

    def _read(self) -> None:
        """The new complete lines of metrics.jsonl, in order."""
        path = self.folder / METRICS
        try:
            with open(path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        data, self._partial = self._partial + data, b""
        lines = data.split(b"\n")
        self._partial = lines.pop()  # a line being written: its end comes with the next read
        for line in lines:
            try:
                event = json.loads(line) if line.strip() else None
            except ValueError:  # not ours (a hand-edited file?): skipped, the run goes on
                continue
            if isinstance(event, dict):
                self._event(event)

    def _event(self, line: dict[str, Any]) -> None:
        kind, step = line.get("event"), int(line.get("step", 0))
        self._step = max(self._step, step)
        self._at.time = line.get("time")
        try:
            if kind == "begin":
                self.global_batch = line.get("global_batch")
                self.tracker.begin(line.get("max_steps"), line.get("epochs"))
                self._tell("begin")
            elif kind == "log":
                self._logged_line(step, line)
            elif kind == "save":
                self.checkpoint = self.folder / line["checkpoint"]
                self._save_requested.clear()
                self._write_history()
                self._save_done.set()
                self._tell("refresh")
            elif kind == "done":
                self._done_at = time.monotonic()
        finally:
            self._at.time = None

    def _logged_line(self, step: int, line: dict[str, Any]) -> None:
        logs = dict(line.get("logs") or {})
        ranks = [m for m in line.get("memory") or [] if isinstance(m, int) and m >= 0]
        logs.update({f"memory_rank{k}": m for k, m in enumerate(ranks)})  # in history and df
        row = self.tracker.record(step, logs, max(ranks) if ranks else None)  # the chart: the fullest rank
        if row is not None:
            self._tell("add", row)

    def _finish(self) -> None:
        ok = self.returncode == 0 or self._done_at is not None
        if not ok:
            self.failed_rank, line, self.traceback = process.failure(self.folder)
            logs = self.logs
            where = f"rank {self.failed_rank}" if self.failed_rank is not None else "the launcher"
            log = logs.get(self.failed_rank if self.failed_rank is not None else 0, {}).get("stderr")
            self.error = f"{where} failed: {line}" + (f" (its log: {log})" if log else "")
            self.notes.append(f"logs: {process.describe_logs(logs)}")
        end = "failed" if not ok else "stopped" if self._stop_requested.is_set() else "finished"
        self._move(end, when=("running", "stopping"))
        self._settle()

    def _failed(self, err: BaseException) -> None:
        import traceback

        self.error = f"following the run failed: {type(err).__name__}: {err}"
        self.traceback = "".join(traceback.format_exception(err))
        if self._proc is not None and self._proc.poll() is None:
            process.kill_tree(self._pids + process.tree(self._proc.pid), self._proc.pid)
        self._move("failed", when=("ready", "running", "stopping"))
        self._settle()

    def _settle(self) -> None:
        # the processes are gone: the folder's command, run again by hand, trains as a plain export
        (self.folder / CONTROL).unlink(missing_ok=True)
        self._save_done.set()
        self._write_history()
        session().remember_run(self, self.summary())
        folders.write_run_info(self)
        self._tell("finish")

    # ---- helpers ---------------------------------------------------------------------------

    def _clock(self) -> float:
        """Wall time; while a line is recorded, the time the worker wrote it (rates and elapsed
        are the workers', not the moment the kernel read the file)."""
        at = getattr(self._at, "time", None)
        return float(at) if at is not None else time.time()

    def _write_control(self) -> None:
        """control.json, replaced whole (a worker never reads half a file)."""
        path = self.folder / CONTROL
        tmp = path.with_name(f".{CONTROL}.tmp")
        tmp.write_text(json.dumps(self._control))
        tmp.replace(path)


def _check_same_adapter(path: Path, config: Any) -> None:
    """The checkpoint's adapter must be the model's kind of adapter: same method, rank, targets."""
    saved = json.loads((path / "adapter_config.json").read_text())
    mine = config.to_dict()
    for key in ("peft_type", "r", "target_modules"):
        a, b = saved.get(key), mine.get(key)
        a, b = (sorted(x) if isinstance(x, (list, set, tuple)) else getattr(x, "value", x) for x in (a, b))
        if a is not None and b is not None and a != b and not (isinstance(a, float) and math.isnan(a)):
            raise PlanError(f"the adapter in {path} has {key} {a!r}, the model's has {b!r}", key=key)


def _stop_at_exit(ref: weakref.ref[LaunchedRun]) -> None:
    run = ref()
    if run is not None and run.live:
        run.stop()
