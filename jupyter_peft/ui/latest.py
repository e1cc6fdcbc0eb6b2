"""`Latest`: run the newest of a stream of jobs on a background thread, off the click path.

The studio asks for a memory estimate after every click; a new plan costs the estimate a
probe of 0.2 to 1 s, far over a 100 ms click. So the click only hands the job over and
returns. The thread waits for quiet (clicks in a burst make one job): `delay` seconds, or as
long as the last job took when that was longer (up to `max_delay`), so that a user clicking
steadily through expensive jobs is not slowed by a job running behind every click. It runs
the newest job, and a job that a newer one has replaced can tell (`is_current`) and
drops its result. The thread ends after `idle` seconds without work, so a widget that is
never closed does not keep one; the next request starts another.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable

from ..session import session

Job = Callable[[int], None]
"""A job gets its sequence number, to ask `is_current(seq)` before it publishes."""


class Latest:
    """See the module docstring."""

    def __init__(
        self, delay: float = 0.15, max_delay: float = 1.0, idle: float = 30.0, name: str = "jupyter_peft estimate"
    ) -> None:
        self.delay, self.max_delay, self.idle, self.name = delay, max_delay, idle, name
        self.last_seconds = 0.0
        """How long the last job took."""
        self._cond = threading.Condition()
        self._job: tuple[int, Job] | None = None
        self._seq = 0
        self._due = 0.0
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        session().workers.add(self)

    def request(self, job: Job) -> int:
        """Queue `job` in place of any queued one; returns at once with its sequence number
        (a closed Latest runs nothing)."""
        with self._cond:
            self._seq += 1
            if self._closed:
                return self._seq
            self._job = (self._seq, job)
            self._due = time.monotonic() + min(max(self.delay, self.last_seconds), self.max_delay)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return self._seq

    def cancel(self) -> None:
        """Drop the queued job; the running one's result is no longer current."""
        with self._cond:
            self._seq += 1
            self._job = None
            self._cond.notify_all()

    def is_current(self, seq: int) -> bool:
        """Whether `seq` is still the newest request (its result is wanted)."""
        with self._cond:
            return seq == self._seq and not self._closed

    def wait(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._job is None and not self._busy, timeout)

    @property
    def running(self) -> bool:
        with self._cond:
            return self._busy

    def close(self) -> None:
        """Drop the queued job and end the thread after the running one."""
        with self._cond:
            self._closed, self._job = True, None
            self._cond.notify_all()

    def _next(self) -> tuple[int, Job] | None:
        """The job to run once its quiet time has passed; None to end the thread."""
        with self._cond:
            while not self._closed:
                if self._job is None:
                    if not self._cond.wait(self.idle) and self._job is None:
                        break  # idle: a later request starts a new thread
                    continue
                left = self._due - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                job, self._job, self._busy = self._job, None, True
                return job
            self._thread = None
            self._cond.notify_all()
            return None

    def _loop(self) -> None:
        while (item := self._next()) is not None:
            seq, job = item
            start = time.monotonic()
            try:
                job(seq)
            except Exception:  # a job reports its own errors; this keeps the thread alive
                logging.getLogger(__name__).exception("background job failed")
            finally:
                with self._cond:
                    self.last_seconds = time.monotonic() - start
                    self._busy = False
                    self._cond.notify_all()


@atexit.register
def _finish_at_exit() -> None:
    """Let running jobs end before the interpreter does: a daemon thread stopped inside torch's
    C++ code aborts the process ("terminate called without an active exception")."""
    for latest in list(session().workers):
        thread = latest._thread
        latest.close()
        if thread is not None:
            thread.join(timeout=60)
