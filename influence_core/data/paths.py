"""Where data files live: the bundled offline copies (../shared/data), the user's cache, and public URLs.

Search order for a file: a path the user gives, then ``$INFLUENCE_SHARED_DATA`` (or ``../shared/data`` next to
the repository), then the download cache ``$INFLUENCE_DATA_DIR`` (default ``~/.cache/influence_workbench``).
Downloads happen only when the caller asks (``download=True``); tests never touch the network.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Sequence

from ..errors import InfluenceError

# Public sources of the files under ../shared/data (see its README for provenance and checksums).
UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"
CIFAR_N = "https://github.com/UCSC-REAL/cifar-10-100n/raw/main/data"


def shared_data_dir() -> Path:
    """The offline data folder: ``$INFLUENCE_SHARED_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("INFLUENCE_SHARED_DATA")
    if env:
        return Path(env).expanduser()
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


def cache_dir() -> Path:
    """The download cache: ``$INFLUENCE_DATA_DIR`` or ``~/.cache/influence_workbench`` (created on demand)."""
    env = os.environ.get("INFLUENCE_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "influence_workbench"


def find_data_file(names: Sequence[str], user_path: str | os.PathLike | None = None) -> Path | None:
    """The first existing copy of any of ``names`` (relative, e.g. ``"adult/adult.data"``), or None.

    A ``user_path`` wins and must exist.
    """
    if user_path is not None:
        p = Path(user_path).expanduser()
        if not p.exists():
            raise InfluenceError(f"no such file: {p}")
        return p
    for base in (shared_data_dir(), cache_dir()):
        for name in names:
            if (base / name).exists():
                return base / name
    return None


def require_data_file(names: Sequence[str], url: str, user_path: str | os.PathLike | None = None,
                      download: bool = False) -> Path:
    """`find_data_file`, else (when ``download``) the public copy at ``url`` fetched into the cache, else a clear error."""
    found = find_data_file(names, user_path)
    if found is not None:
        return found
    if not download:
        raise InfluenceError(
            f"data file '{names[0]}' not found in {shared_data_dir()} or {cache_dir()}; "
            f"pass download=True (CLI: --download) to fetch {url}, or give a local path"
        )
    return download_file(url, cache_dir() / Path(names[0]).parent / Path(url).name)


def download_file(url: str, dest: Path, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` atomically (temporary file, then rename); a failure is one clear line."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (fixed https URLs)
            shutil.copyfileobj(resp, out)
        os.replace(tmp, dest)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise InfluenceError(f"could not download {url}: {err}; check the connection or give a local path") from None
    return dest
