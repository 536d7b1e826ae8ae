"""Background jobs for every long task (training, scoring, folds, views, experiments): run a function in a
thread, watch its progress, cancel it — and find it again after a page refresh or a server restart.

The function receives a `JobHandle` with ``report(fraction, message, record)`` and ``should_stop()``; the
front end polls `Job.snapshot()`. Jobs live in a process-wide registry under a key, so a page that re-runs
(Streamlit re-executes its script on every interaction) finds the job it started. With a ``store`` folder (the
project's ``jobs/``), each job's state, progress, log and JSON result are also written there as they change: a
refreshed page or a restarted server shows a finished job's result, and a job whose process died as
"interrupted" (its finished parts are in the cache, so running it again resumes). No UI imports here.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
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
        self._job.persist()

    def should_stop(self) -> bool:
        return self._job._stop.is_set()

    def check(self) -> None:
        """Raise `Cancelled` when a stop was asked for (call it from progress callbacks deep inside work)."""
        if self._job._stop.is_set():
            raise Cancelled()


@dataclass
class Job:
    """One background run. ``state``: running, done, failed, cancelled or interrupted (its process ended first)."""

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
    store: Path | None = None
    owner: str = ""
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _persisted_at: float = field(default=0.0, repr=False)

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

    def persist(self, force: bool = False) -> None:
        """Write the job's record to its store (at most twice a second while it runs; always when it ends)."""
        if self.store is None or (not force and time.time() - self._persisted_at < 0.5):
            return
        self._persisted_at = time.time()
        with self._lock:
            record = {"key": self.key, "title": self.title, "state": self.state, "fraction": self.fraction,
                      "message": self.message, "error": self.error, "log": list(self.log), "started": self.started,
                      "finished": self.finished, "owner": self.owner, "result": _jsonable(self.result)}
        path = _record_path(self.store, self.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(record, default=str))
        os.replace(tmp, path)


_JOBS: dict[str, Job] = {}
_REGISTRY_LOCK = threading.Lock()
# This process's identity: a stored job "running" under another owner died with its process (a server restart).
PROCESS = f"{os.getpid()}-{time.time():.6f}"


def _record_path(store: Path, key: str) -> Path:
    return Path(store) / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def _jsonable(value: Any) -> Any:
    """``value`` when it survives JSON (numbers, strings, lists, dicts), else None: only such results are kept."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return None


def _registry_key(key: str, store: Path | None) -> str:
    return f"{Path(store).resolve()}::{key}" if store is not None else key


def start_job(key: str, title: str, fn: Callable[[JobHandle], Any], store: str | Path | None = None) -> Job:
    """Start ``fn(handle)`` in a daemon thread under ``key``; a job already running under that key is returned as is.

    ``store``: a folder where the job's record is kept (see the module docstring); its result is kept there only
    when it is JSON (return a small summary; put arrays and models in the cache)."""
    store = Path(store) if store is not None else None
    with _REGISTRY_LOCK:
        existing = _JOBS.get(_registry_key(key, store))
        if existing is not None and existing.running:
            return existing
        job = Job(key, title, store=store, owner=PROCESS)
        _JOBS[_registry_key(key, store)] = job
    job.persist(force=True)

    def run() -> None:
        handle = JobHandle(job)
        try:
            result = fn(handle)
            with job._lock:
                job.result = result
                job.fraction = 1.0
                job.state = ("interrupted" if _EXITING.is_set() else "cancelled") if job._stop.is_set() else "done"
        except Cancelled:
            with job._lock:
                job.state = "interrupted" if _EXITING.is_set() else "cancelled"
        except InfluenceError as err:
            with job._lock:
                job.error, job.state = str(err), "failed"
        except Exception as err:  # the UI shows one line; the traceback goes to the server log
            traceback.print_exc()
            with job._lock:
                job.error, job.state = f"{type(err).__name__}: {err}", "failed"
        finally:
            job.finished = time.time()
            job.persist(force=True)

    job._thread = threading.Thread(target=run, name=f"job-{key}", daemon=True)
    job._thread.start()
    return job


def get_job(key: str, store: str | Path | None = None) -> Job | None:
    """The job under ``key``: the live one of this process, else (with a ``store``) its stored record — a finished
    job with its result, or one whose process has died, as state "interrupted"."""
    store = Path(store) if store is not None else None
    job = _JOBS.get(_registry_key(key, store))
    if job is not None or store is None:
        return job
    try:
        record = json.loads(_record_path(store, key).read_text())
    except (OSError, ValueError):
        return None
    state = record.get("state", "failed")
    if state == "running" and record.get("owner") != PROCESS:
        state = "interrupted"
    return Job(key, record.get("title", key), state=state, fraction=float(record.get("fraction") or 0.0),
               message=record.get("message", ""), result=record.get("result"), error=record.get("error", ""),
               log=list(record.get("log") or []), started=float(record.get("started") or 0.0),
               finished=record.get("finished"), store=store, owner=record.get("owner", ""))


def forget_job(key: str, store: str | Path | None = None) -> None:
    """Drop a job from the registry and its stored record (a running one is cancelled first)."""
    store = Path(store) if store is not None else None
    with _REGISTRY_LOCK:
        job = _JOBS.pop(_registry_key(key, store), None)
    if job is not None and job.running:
        job.cancel()
    if store is not None:
        _record_path(store, key).unlink(missing_ok=True)


_EXITING = threading.Event()
EXIT_WAIT_SECONDS = 20.0


@atexit.register
def _stop_at_exit() -> None:
    """At interpreter exit (a server stopped with Ctrl+C or SIGTERM), stop the running jobs and wait for them (at
    most `EXIT_WAIT_SECONDS` in all): a daemon thread still inside torch when the interpreter tears down aborts the
    process with "terminate called without an active exception". Their records say "interrupted" (resumable),
    not "cancelled"."""
    _EXITING.set()
    running = [job for job in list(_JOBS.values()) if job.running]
    for job in running:
        job.cancel()
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    for job in running:
        job.wait(max(0.0, deadline - time.monotonic()))


def wait_all(timeout: float | None = None) -> None:
    """Wait for every registered job to end (tests and scripts)."""
    for job in list(_JOBS.values()):
        job.wait(timeout)
