"""The store's in-memory layer: what this process keeps so the app's reruns neither reload nor recompute (loaded data
sets and models, small results, source tables, tokenizers, weights files' checksums). One policy: least recently used, bounded per kind (`LIMITS`).

Keys are by content (fingerprints, or a project's folder where the value belongs to one project), so sharing the
layer between the projects and sessions of one server is safe. On disk, results live in `workspace.Workspace`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable

# How many values of each kind are kept; "datasets" is resized to the server's max_loaded_datasets on use.
LIMITS = {"datasets": 2, "models": 8, "results": 64, "estimates": 32, "tables": 4, "tokenizers": 8,
          "file_hashes": 64, "server_config": 1}


class Memo:
    """Values by (kind, key), the least recently used of a kind dropped beyond its bound."""

    def __init__(self, limits: dict[str, int] | None = None) -> None:
        self.limits = dict(limits or LIMITS)
        self._kinds: dict[str, OrderedDict] = {}
        self._lock = threading.Lock()

    def get(self, kind: str, key: str, make: Callable[[], Any], size: int | None = None) -> Any:
        """The value kept under (``kind``, ``key``), else ``make()`` kept; ``size`` (e.g. the server's configured cap)
        replaces the bound of ``kind`` from now on. ``make`` runs outside the lock (it may be slow)."""
        with self._lock:
            if size is not None:
                self.limits[kind] = max(1, int(size))
            items = self._kinds.setdefault(kind, OrderedDict())
            if key in items:
                items.move_to_end(key)
                return items[key]
        value = make()
        with self._lock:
            items[key] = value
            while len(items) > self.limits.get(kind, 1):
                items.popitem(last=False)
        return value

    def keys(self, kind: str) -> list[str]:
        """The keys of ``kind`` kept now, least recently used first."""
        with self._lock:
            return list(self._kinds.get(kind, ()))

    def clear(self, kind: str | None = None) -> None:
        """Forget the values of ``kind`` (None: of every kind)."""
        with self._lock:
            if kind is None:
                self._kinds.clear()
            else:
                self._kinds.pop(kind, None)


MEMORY = Memo()  # the one instance of this process
