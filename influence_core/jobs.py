"""Background jobs for interactive front ends: run a function in a thread, watch its progress, cancel it.

The function receives a `JobHandle` with ``report(fraction, message, record)`` and ``should_stop()``; the
front end polls `Job.status()`. Jobs live in a process-wide registry under a key, so a page that re-runs
(Streamlit re-executes its script on every interaction) finds the job it started. No UI imports here.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import InfluenceError


class Cancelled(Exception):
    """Raised inside a job (by `JobHandle.check`) to stop it at once; the job ends as "cancelled"."""


@dataclass
class JobHandle:
    """What a running function sees: a progress sink and a stop flag."""

    _job: "Job"

    def report(self, fraction: float, message: str = "", record: dict | None = None) -> None:
        """Progress in [0, 1], a status line, and optionally a record for the job's log (e.g. one epoch)."""
        with self._job._lock:
            self._job.fraction = float(min(max(fraction, 0.0), 1.0))
            self._job.message = message
            if record:
                self._job.log.append(dict(record))

    def should_stop(self) -> bool:
        return self._job._stop.is_set()

    def check(self) -> None:
        """Raise `Cancelled` when a stop was asked for (call it from progress callbacks deep inside work)."""
        if self._job._stop.is_set():
            raise Cancelled()


@dataclass
class Job:
    """One background run. ``state``: running, done, failed or cancelled."""

    key: str
    title: str
    state: str = "running"
    fraction: float = 0.0
    message: str = ""
    result: Any = None
    error: str = ""
    log: list[dict] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running"

    def cancel(self) -> None:
        """Ask the function to stop at its next check; it decides what to keep."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> "Job":
        if self._thread is not None:
            self._thread.join(timeout)
        return self

    def snapshot(self) -> dict:
        with self._lock:
            return {"state": self.state, "fraction": self.fraction, "message": self.message, "error": self.error,
                    "log": list(self.log), "seconds": (self.finished or time.time()) - self.started}


_JOBS: dict[str, Job] = {}
_REGISTRY_LOCK = threading.Lock()


def start_job(key: str, title: str, fn: Callable[[JobHandle], Any]) -> Job:
    """Start ``fn(handle)`` in a daemon thread under ``key``; a job already running under that key is returned as is."""
    with _REGISTRY_LOCK:
        existing = _JOBS.get(key)
        if existing is not None and existing.running:
            return existing
        job = Job(key, title)
        _JOBS[key] = job

    def run() -> None:
        handle = JobHandle(job)
        try:
            result = fn(handle)
            with job._lock:
                job.result = result
                job.fraction = 1.0
                job.state = "cancelled" if job._stop.is_set() else "done"
        except Cancelled:
            with job._lock:
                job.state = "cancelled"
        except InfluenceError as err:
            with job._lock:
                job.error, job.state = str(err), "failed"
        except Exception as err:  # the UI shows one line; the traceback goes to the server log
            traceback.print_exc()
            with job._lock:
                job.error, job.state = f"{type(err).__name__}: {err}", "failed"
        finally:
            job.finished = time.time()

    job._thread = threading.Thread(target=run, name=f"job-{key}", daemon=True)
    job._thread.start()
    return job


def get_job(key: str) -> Job | None:
    return _JOBS.get(key)


def forget_job(key: str) -> None:
    """Drop a finished job from the registry (a running one is cancelled first)."""
    with _REGISTRY_LOCK:
        job = _JOBS.pop(key, None)
    if job is not None and job.running:
        job.cancel()


def wait_all(timeout: float | None = None) -> None:
    """Wait for every registered job to end (tests and scripts)."""
    for job in list(_JOBS.values()):
        job.wait(timeout)
