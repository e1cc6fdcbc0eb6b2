"""The processes of a launched run: the `accelerate launch` command, starting it, ending it, its logs.

The launcher runs in a session of its own (`start_new_session`), so CUDA in the kernel never
matters and an interrupt of the kernel never reaches the workers (Stop does, through the control
file). torchrun starts each worker in yet another session, so ending a run means ending the
whole process tree (`kill_tree`), not only the launcher's group. With more than one process the
launcher tees every rank's output into `logs/<run id>/attempt_<n>/<rank>/{stdout,stderr}.log`
(`rank_logs`); the launcher's own output goes to `launch.log`. `failure` finds the rank that
failed first (torchrun's "Root Cause") and the traceback it printed.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

LAUNCH_LOG = "launch.log"
LOG_DIR = "logs"
_ROOT_RANK = re.compile(r"Root Cause.*?\brank\s*:\s*(\d+)", re.S)
_TRACEBACK = "Traceback (most recent call last):"
_ROOT_CODE = re.compile(r"Root Cause.*?\bexitcode\s*:\s*(-?\d+)", re.S)
_LAUNCHERS = ("CalledProcessError", "ChildFailedError")
_PREFIX = re.compile(r"^\[(?:rank|default)\d+\]: ?", re.M)  # what torch and --tee put before a rank's lines


def free_port() -> int:
    """A TCP port free on this machine now, for the processes' rendezvous (two launches at once,
    or a test beside a run, must not meet on accelerate's default 29500)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command(config_file: str, script: str, processes: int, machines: int, port: int | None) -> list[str]:
    """`accelerate launch` words for the exported files, as run from their folder: the export's
    own command, plus the rendezvous port and (with several processes) per-rank log files."""
    words = ["accelerate", "launch", "--config_file", config_file]
    if machines == 1 and port is not None:
        words += ["--main_process_port", str(port)]
    if processes > 1:
        words += ["--tee", "3", "--log_dir", LOG_DIR]
    return [*words, script]


def shown(words: list[str]) -> str:
    return shlex.join(words)


def argv(words: list[str]) -> list[str]:
    """The words to execute: the `accelerate` of this kernel's environment (not whichever is on PATH)."""
    assert words[:2] == ["accelerate", "launch"]
    entry = Path(sys.executable).parent / "accelerate"
    if entry.is_file() and os.access(entry, os.X_OK):
        return [str(entry), *words[1:]]
    return [sys.executable, "-m", "accelerate.commands.launch", *words[2:]]


def start(words: list[str], folder: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start the launcher in `folder`, in a session of its own, its output in launch.log."""
    environ = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    bin_dir = str(Path(sys.executable).parent)  # torchrun's workers find this environment's python
    environ["PATH"] = bin_dir + os.pathsep + environ.get("PATH", "")
    with open(folder / LAUNCH_LOG, "wb") as log:
        return subprocess.Popen(argv(words), cwd=folder, env=environ, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def tree(pid: int) -> list[int]:
    """`pid` and every process below it (torchrun's workers live in sessions of their own)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        return [pid, *(p.pid for p in parent.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def kill_tree(pids: list[int], launcher: int) -> list[int]:
    """SIGKILL every process of `pids` still alive, and the launcher's process group; returns the
    pids that were still there."""
    import psutil

    alive = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                proc.kill()
                alive.append(proc)
        except psutil.NoSuchProcess:
            continue
    try:
        os.killpg(launcher, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    psutil.wait_procs(alive, timeout=10)  # SIGKILL is not instant: the run ends when they are gone
    return [p.pid for p in alive]


def rank_logs(folder: Path) -> dict[int, dict[str, Path]]:
    """{rank: {"stdout": path, "stderr": path}} of the latest attempt; with one process (no
    per-rank files) rank 0 is launch.log."""
    found: dict[int, dict[str, Path]] = {}
    attempts = sorted(Path(folder, LOG_DIR).glob("*/attempt_*"), key=lambda p: p.stat().st_mtime)
    if attempts:
        for rank_dir in sorted(attempts[-1].iterdir()):
            if rank_dir.is_dir() and rank_dir.name.isdigit():
                found[int(rank_dir.name)] = {name: rank_dir / f"{name}.log" for name in ("stdout", "stderr")}
    if not found:
        found[0] = {"stdout": folder / LAUNCH_LOG, "stderr": folder / LAUNCH_LOG}
    return found


def failure(folder: Path) -> tuple[int | None, str, str]:
    """(rank, error line, traceback) of the rank that failed first: torchrun's root cause, else
    the lowest rank that printed a traceback, else the launcher's own output."""
    launcher = _read(folder / LAUNCH_LOG)
    logs = rank_logs(folder)
    root = _ROOT_RANK.search(launcher)
    first = int(root.group(1)) if root else None
    code = _ROOT_CODE.search(launcher)
    if first is not None:  # torchrun names the rank that failed first; the others may only echo it
        block = last_traceback(_read(logs[first]["stderr"])) if first in logs else ""
        if block:
            return first, error_line(block), block
        if code and int(code.group(1)) < 0:  # killed by a signal: no traceback to show
            return first, _killed(-int(code.group(1))), "\n".join(launcher.strip().splitlines()[-20:])
    for rank in sorted(logs):
        block = last_traceback(_read(logs[rank]["stderr"]))
        if block:
            return rank, error_line(block), block
    block = last_traceback(launcher)
    if block:
        return first, error_line(block), block
    tail = "\n".join(launcher.strip().splitlines()[-20:])
    return first, (tail.splitlines() or ["no output"])[-1], tail


def last_traceback(text: str) -> str:
    """The last Python traceback in `text` up to its exception line, leaving out the launchers'
    own (accelerate's CalledProcessError, torchrun's ChildFailedError: they only say that a
    process failed; with one process its traceback and theirs share launch.log)."""
    text = _PREFIX.sub("", text)
    blocks = []
    for part in text.split(_TRACEBACK)[1:]:
        lines = [_TRACEBACK]
        for line in part.splitlines()[1:]:
            lines.append(line)
            if line and not line[0].isspace():
                break  # the exception line ends the traceback
        blocks.append("\n".join(lines))
    ours = [b for b in blocks if not any(w in error_line(b) for w in _LAUNCHERS)]
    return (ours or blocks or [""])[-1]


def _killed(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return f"killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")


def error_line(block: str) -> str:
    return block.rstrip().splitlines()[-1].strip()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def describe_logs(logs: dict[int, dict[str, Any]]) -> str:
    return "; ".join(f"rank {rank}: {paths['stderr']}" for rank, paths in sorted(logs.items()))
