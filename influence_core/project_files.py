"""A project's folder on disk (issue 19: the work behind `Project`'s state and access methods): its name, its
``state.json`` (read, changed under a lock between processes, restored from the last good copy when unreadable), and
a rename that leaves a forwarding record in the old place."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from .access import MEMBERS_FILE, Members, write_members
from .atomic import write_text_atomic
from .errors import InfluenceError
from .jobs import MOVED_FILE
from .state import Selection, workspace_root

DEFAULT_PROJECT = "default"
STATE_FILE = "state.json"
STATE_BACKUP = "state.json.bak"  # the last good state, written with every change
NOTICE_FILE = "notice.txt"  # a one-line notice for the sidebar (Project.notice)
STATE_LOCK = threading.RLock()
_LOG = logging.getLogger("influence_core.project")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def valid_project_name(name: str) -> str:
    """``name`` when it can name a project folder (letters, digits, '-', '_', '.'; at most 64), else a one-line error."""
    name = str(name or "").strip()
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise InfluenceError(f"'{name[:80]}' cannot name a project: use up to 64 letters, digits, '-', '_' or '.', "
                             "starting with a letter or digit")
    return name


def project_names(root: str | os.PathLike | None = None) -> list[str]:
    """The projects of a workspace, by name (the default one first)."""
    folder = Path(root or workspace_root()) / "projects"
    names = sorted(p.name for p in folder.glob("*") if p.is_dir() and _NAME.fullmatch(p.name)
                   and not (p / MOVED_FILE).exists()) if folder.exists() else []  # a renamed one's old name: not listed
    return sorted(names, key=lambda n: n != DEFAULT_PROJECT)


def make_project_folder(folder: Path, owner: str) -> None:
    """Make a project's folder, owned by ``owner`` (``members.json``) unless it names an owner already."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / MEMBERS_FILE).exists():
            write_members(folder, Members(owner, {}))
    except OSError as err:
        raise InfluenceError(f"cannot create the project folder {folder}: {err.strerror}") from None


def move_project_folder(source: Path, target: Path, old_name: str, new_name: str) -> None:
    """Move a project's folder from ``source`` to ``target`` and leave in ``source`` only a forwarding record
    (``renamed.json``), so a session or a job still on the old name follows; ``target`` may hold only such a record."""
    forward = Path(tempfile.mkdtemp(dir=source.parent, prefix=f".renamed-{old_name}."))
    (forward / MOVED_FILE).write_text(json.dumps({"to": new_name, "at": time.time()}))
    try:
        if target.exists():  # only a forwarding record: the name is free again
            shutil.rmtree(target)
        os.rename(source, target)
    except OSError as err:
        shutil.rmtree(forward, ignore_errors=True)
        raise InfluenceError(f"cannot rename the project: {err.strerror}") from None
    try:
        os.rename(forward, source)
    except OSError:  # a session wrote into the old place in the instant between: it forwards as it is
        shutil.rmtree(forward, ignore_errors=True)
        (source / MOVED_FILE).write_text(json.dumps({"to": new_name, "at": time.time()}))


@contextmanager
def file_lock(path: Path):
    """An exclusive lock on ``path`` between processes (flock; where there is none, only this process's lock)."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def parse_state(raw: bytes) -> Selection | None:
    """The state in ``raw`` (a state.json's bytes), or None when it is not a readable state."""
    try:
        data = json.loads(raw.decode("utf-8"))
        return Selection.from_json(data) if isinstance(data, dict) else None
    except (ValueError, TypeError, AttributeError):
        return None


def restore_state(folder: Path, project: str, save: Callable[[Selection], None]) -> Selection | None:
    """``folder``'s ``state.json`` is unreadable: keep it aside as ``state.json.corrupt-<time>``, put the last good
    copy back through ``save`` (or the defaults when there is none) and leave a one-line notice for the sidebar.
    None when another session moved the file first (read the state again: it is what that session restored)."""
    state_path = folder / STATE_FILE
    with STATE_LOCK:
        aside = folder / f"{STATE_FILE}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        try:
            os.rename(state_path, aside)
        except FileNotFoundError:
            return None
        again = parse_state(aside.read_bytes())
        if again is not None:  # rewritten good between our read and the move: put it back
            os.replace(aside, state_path)
            return again
        try:
            good = parse_state(state_path.with_name(STATE_BACKUP).read_bytes())
        except OSError:
            good = None
        if good is not None:
            save(good)
            message = (f"{STATE_FILE} was unreadable; restored the last good state from {STATE_BACKUP} (the "
                       f"unreadable file is kept as {aside.name})")
        else:
            message = (f"{STATE_FILE} was unreadable and no good copy exists; the project starts from the defaults "
                       f"(the unreadable file is kept as {aside.name})")
        _LOG.warning("project %s: %s", project, message)
        write_text_atomic(folder / NOTICE_FILE, message)
        return good if good is not None else Selection()
