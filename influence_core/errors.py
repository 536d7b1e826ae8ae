"""The one exception type meant for users: its message is a single line the CLI and the app show as is."""

from __future__ import annotations

import errno
import sqlite3
import unicodedata
from contextlib import contextmanager
from typing import Iterator


class InfluenceError(Exception):
    """A user-facing error: bad input, an impossible setting, a model that does not fit the data.

    The message is one line and says what to change; callers print ``str(err)`` and nothing else.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def escaped(text: str) -> str:
    """``text`` as a message may echo it: characters that reorder or hide text (U+202E, zero-width; every control
    and separator but the space) as escapes."""
    return "".join(c if c == " " or unicodedata.category(c)[0] not in "CZ" else c.encode("unicode_escape").decode()
                   for c in text)


# What a write refused by the server's disk means for a user (errno → reason); other OSErrors are bugs, not shown so.
DISK_REASONS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                errno.EROFS: "the disk is read-only", errno.EACCES: "no permission to write there",
                errno.EPERM: "no permission to write there"}


# SQLite says the same in its own words (extended codes such as SQLITE_READONLY_DBMOVED start with these).
_SQLITE_ERRNOS = {"SQLITE_FULL": errno.ENOSPC, "SQLITE_READONLY": errno.EROFS, "SQLITE_CANTOPEN": errno.EACCES,
                  "SQLITE_PERM": errno.EACCES}


def disk_error(err: BaseException, what: str) -> InfluenceError | None:
    """A one-line `InfluenceError` for a write the server's disk refused (full, read-only, no permission: an
    `OSError` or SQLite's error), saying what was being written (``what``) but no server path; None otherwise."""
    code = getattr(err, "errno", None) if isinstance(err, OSError) else None
    if isinstance(err, sqlite3.Error):
        name = str(getattr(err, "sqlite_errorname", ""))
        code = next((c for prefix, c in _SQLITE_ERRNOS.items() if name.startswith(prefix)), None)
    reason = DISK_REASONS.get(code)
    if reason is None:
        return None
    return InfluenceError(f"cannot {what}: {reason} on the server; ask its administrator")


@contextmanager
def writing(what: str) -> Iterator[None]:
    """Turn a write (a file or SQLite) refused by the disk inside the block into `disk_error`'s one line (other errors pass)."""
    try:
        yield
    except (OSError, sqlite3.Error) as err:
        mapped = disk_error(err, what)
        if mapped is None:
            raise
        raise mapped from None
