"""The one exception type meant for users: its message is a single line the CLI and the app show as is."""

from __future__ import annotations

import errno
from contextlib import contextmanager
from typing import Iterator


class InfluenceError(Exception):
    """A user-facing error: bad input, an impossible setting, a model that does not fit the data.

    The message is one line and says what to change; callers print ``str(err)`` and nothing else.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


# What a write refused by the server's disk means for a user (errno → reason); other OSErrors are bugs, not shown so.
DISK_REASONS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                errno.EROFS: "the disk is read-only", errno.EACCES: "no permission to write there",
                errno.EPERM: "no permission to write there"}


def disk_error(err: BaseException, what: str) -> InfluenceError | None:
    """A one-line `InfluenceError` for a write the server's disk refused (full, read-only, no permission), naming
    ``what`` was being written but no server path; None for any other error."""
    reason = DISK_REASONS.get(getattr(err, "errno", None)) if isinstance(err, OSError) else None
    if reason is None:
        return None
    return InfluenceError(f"cannot {what}: {reason} on the server; ask its administrator")


@contextmanager
def writing(what: str) -> Iterator[None]:
    """Turn a write refused by the disk inside the block into `disk_error`'s one line (other errors pass)."""
    try:
        yield
    except OSError as err:
        mapped = disk_error(err, what)
        if mapped is None:
            raise
        raise mapped from None
