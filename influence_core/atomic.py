"""Small files written whole or not at all: a synced temporary file beside the target, renamed over it."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """``text`` into ``path``: a reader sees the old file or the new one, never half of one; on failure (a full disk)
    the temporary file is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def exclusive(lock_file: str | os.PathLike, thread_lock: threading.Lock):
    """One writer at a time: ``thread_lock`` between this process's threads, and an flock on ``lock_file`` between
    processes sharing the workspace (where the file system has no flock, the thread lock alone)."""
    with thread_lock, open(lock_file, "a") as handle:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        except (ImportError, OSError):
            pass
        yield
