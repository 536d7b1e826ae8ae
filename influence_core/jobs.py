"""Background jobs for every long task (training, scoring, folds, views, experiments): run a function in a
thread, watch its progress, cancel it — and find it again after a page refresh or a server restart.

The function receives a `JobHandle` with ``report(fraction, message, record)`` and ``should_stop()``; the
front end polls `Job.snapshot()`. Jobs live in a process-wide registry under a key, so a page that re-runs
(Streamlit re-executes its script on every interaction) finds the job it started. With a ``store`` folder (the
project's ``jobs/``), each job's state, progress, log and JSON result are also written there as they change: a
refreshed page or a restarted server shows a finished job's result, and a job whose process died as
"interrupted" (its finished parts are in the cache, so running it again resumes). A record names the server that
runs the job (host, pid, a process start id) and carries a heartbeat, so another server on the same workspace shows
the job as running; it is "interrupted" only when its process is gone (this host) or its heartbeat is stale (another
host). No UI imports here.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import InfluenceError, disk_error


class Cancelled(Exception):
    """Raised inside a job (by `JobHandle.check`) to stop it at once; the job ends as "cancelled"."""


@dataclass
class JobHandle:
    """What a running function sees: a progress sink and a stop flag."""

    _job: "Job"

    def report(self, fraction: float, message: str = "", record: dict | None = None, *,
               detail: dict | None = None) -> None:
        """Progress in [0, 1], a status line, optionally a record for the job's log (e.g. one epoch) and ``detail``:
        what is being done, as data (stage, counts, numbers; JSON values) that a front end words in its own way."""
        with self._job._lock:
            self._job.fraction = float(min(max(fraction, 0.0), 1.0))
            self._job.message = message
            self._job.detail = dict(detail or {})
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
    detail: dict = field(default_factory=dict)  # the latest `JobHandle.report` detail (stage, counts, numbers)
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
    _write_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one record write at a time

    @property
    def running(self) -> bool:
        return self.state == "running"

    def cancel(self) -> None:
        """Ask the function to stop at its next check; it decides what to keep. A job another server runs (known
        here by its record) gets a stop request beside its record, which that server's heartbeat passes on."""
        self._stop.set()
        if self._thread is None and self.store is not None and self.running:
            _stop_path(self.store, self.key).touch()

    def wait(self, timeout: float | None = None) -> "Job":
        if self._thread is not None:
            self._thread.join(timeout)
        return self

    def snapshot(self) -> dict:
        with self._lock:
            return {"state": self.state, "fraction": self.fraction, "message": self.message, "detail": dict(self.detail),
                    "error": self.error,
                    "log": list(self.log), "seconds": (self.finished or time.time()) - self.started}

    def persist(self, force: bool = False) -> None:
        """Write the job's record to its store (at most twice a second while it runs; always when it ends, and on
        every heartbeat). Writes are serialised, so a heartbeat never puts back an older state."""
        if self.store is None or (not force and time.time() - self._persisted_at < 0.5):
            return
        with self._write_lock:
            self._persisted_at = time.time()
            with self._lock:
                record = {"key": self.key, "title": self.title, "state": self.state, "fraction": self.fraction,
                          "message": self.message, "detail": dict(self.detail), "error": self.error,
                          "log": list(self.log), "started": self.started,
                          "finished": self.finished, "owner": self.owner, "host": HOST, "pid": os.getpid(),
                          "pid_start": _process_start(os.getpid()), "heartbeat": time.time(),
                          "result": _jsonable(self.result)}
            self.store = moved_folder(self.store.parent) / self.store.name  # its project renamed meanwhile
            path = _record_path(self.store, self.key)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(record, default=str))
            os.replace(tmp, path)


_JOBS: dict[str, Job] = {}
_REGISTRY_LOCK = threading.Lock()
# This process's identity: a stored job "running" under another owner died with its process (a server restart).
PROCESS = f"{os.getpid()}-{time.time():.6f}"
HOST = socket.gethostname()
HEARTBEAT_SECONDS = 5.0  # how often this process rewrites its running jobs' records
STALE_SECONDS = 60.0  # a record of another host not rewritten for this long: its server is gone
MOVED_FILE = "renamed.json"  # left in a renamed folder's old place: {"to": the new name}
_heartbeat: threading.Thread | None = None


def moved_folder(folder: Path) -> Path:
    """Where ``folder`` is now: a renamed project leaves ``renamed.json`` in its old folder, naming the new one (a
    chain of renames is followed; a loop or a broken record stops where it is)."""
    folder, seen = Path(folder), set()
    while folder not in seen:
        seen.add(folder)
        try:
            to = json.loads((folder / MOVED_FILE).read_text())["to"]
        except (OSError, ValueError, KeyError, TypeError):
            return folder
        if not isinstance(to, str) or not to or "/" in to or "\\" in to or to in (".", ".."):
            return folder
        folder = folder.parent / to
    return folder


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (Linux: its start time in clock ticks), so a reused pid is told apart; None when
    there is no such process or this system does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _process_alive(pid: int, started: str | None) -> bool:
    """Whether process ``pid`` of this host still runs (and is the one that started at ``started``)."""
    if Path("/proc/self/stat").exists():
        now = _process_start(pid)
        return now is not None and (started is None or now == started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, under another user
        return True
    return True


def _server_gone(record: dict) -> bool:
    """Whether the server that wrote a "running" record has died: on this host, its process is gone (or this is a
    later process with its pid); on another host, its heartbeat is stale. Records from before jobs named their server
    have no host: their process is gone unless it is this one."""
    if record.get("owner") == PROCESS:
        return False
    host, pid = record.get("host"), record.get("pid")
    if host is None or pid is None:
        return True
    if host == HOST:
        return int(pid) == os.getpid() or not _process_alive(int(pid), record.get("pid_start"))
    return time.time() - float(record.get("heartbeat") or 0.0) > STALE_SECONDS


def _beat() -> None:
    """Rewrite this process's running jobs' records every `HEARTBEAT_SECONDS` (a job may not report for minutes)."""
    while True:
        time.sleep(HEARTBEAT_SECONDS)
        for job in list(_JOBS.values()):
            if job.running and job.store is not None:
                try:
                    if _stop_path(job.store, job.key).exists():  # Stop pressed on another server
                        job.cancel()
                    job.persist(force=True)
                except OSError:  # a full disk or a removed folder: the next beat tries again
                    pass


def _start_heartbeat() -> None:
    global _heartbeat
    if _heartbeat is None or not _heartbeat.is_alive():
        _heartbeat = threading.Thread(target=_beat, name="job-heartbeat", daemon=True)
        _heartbeat.start()


def _record_path(store: Path, key: str) -> Path:
    return Path(store) / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def _stop_path(store: Path, key: str) -> Path:
    """Where another server asks this job to stop (`Job.cancel` on a job known by its record)."""
    return _record_path(store, key).with_suffix(".stop")


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
        elsewhere = _stored_job(key, store) if store is not None else None
        if elsewhere is not None and elsewhere.running:  # another server of this workspace runs it
            return elsewhere
        job = Job(key, title, store=store, owner=PROCESS)
        _JOBS[_registry_key(key, store)] = job
        if store is not None:
            _stop_path(store, key).unlink(missing_ok=True)  # a request meant for an earlier run
            _start_heartbeat()
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
                refused = disk_error(err, "write to the workspace")  # a full or read-only disk: no server path
                job.error, job.state = str(refused) if refused else f"{type(err).__name__}: {err}", "failed"
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
    return _stored_job(key, store)


def _stored_job(key: str, store: Path) -> Job | None:
    """The job under ``key`` as its record in ``store`` says (None without one); "interrupted" when it says running
    but its server is gone."""
    try:
        record = json.loads(_record_path(store, key).read_text())
    except (OSError, ValueError):
        return None
    state = record.get("state", "failed")
    if state == "running" and _server_gone(record):
        state = "interrupted"
    return Job(key, record.get("title", key), state=state, fraction=float(record.get("fraction") or 0.0),
               message=record.get("message", ""), detail=dict(record.get("detail") or {}), result=record.get("result"),
               error=record.get("error", ""),
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


def check_not_running(job: Job | None, doing: str) -> None:
    """A one-line refusal while ``job`` runs (started in another tab, say): a second one is never silently dropped."""
    if job is not None and job.running:
        raise InfluenceError(f"{job.title} is already running in this project ({doing}): wait for it or stop it, "
                             "then compute again")
