"""The one exception type meant for users: its message is a single line the CLI and the app show as is."""

from __future__ import annotations


class InfluenceError(Exception):
    """A user-facing error: bad input, an impossible setting, a model that does not fit the data.

    The message is one line and says what to change; callers print ``str(err)`` and nothing else.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
