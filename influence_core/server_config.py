"""What the server's administrator allows: the one place a browser's choices are checked against.

Every browser input is hostile, so anything that reaches the machine (a Dask cluster, a file path, a download, a
size) is chosen by the administrator here, never typed in a page. Read from a TOML file — ``$INFLUENCE_CONFIG``, else
``<workspace>/server.toml`` — whose ``[server]`` table overrides the defaults below; the CLI and the library run as
the machine's own user and may pass paths and addresses directly. Example::

    [server]
    max_generated_samples = 50000
    [server.clusters]            # what the Scores page offers, by name (the browser sends only the name)
    gpu-box = "tls://10.0.0.5:8786"
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from .errors import InfluenceError
from .locations import workspace_root
from .memo import MEMORY

ENV_CONFIG = "INFLUENCE_CONFIG"
GiB = 2**30


@dataclass(frozen=True)
class ServerConfig:
    """The administrator's settings (frozen; read once per file change)."""

    # --- Dask: clusters a browser user may pick by name; nothing else is ever connected to from a page.
    clusters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    max_local_workers: int = 2
    dask_connect_timeout_s: float = 10.0
    dask_tls_ca_file: str | None = None
    dask_tls_cert_file: str | None = None
    dask_tls_key_file: str | None = None

    # --- Models: Hugging Face sequence classifiers the Model page offers, by name -> folder or hub id (the browser
    # sends only the name; see models/hf.py). A folder named here may also load pickle (.bin) weights.
    hf_models: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    # --- Data: sizes the browser may ask for, and what stays server-side.
    max_generated_samples: int = 100_000
    max_loaded_datasets: int = 2
    max_image_size: int = 512  # image zips are resized to at most this many pixels a side (memory: N × size² × 3 bytes)
    # Image zips are decoded a chunk at a time by this many workers (capped at the CPU count; 1 = in the loading
    # thread), in "threads" or "processes" (data/image_decode.py). Measured on 2 shared cores (bench/results/e2e.md):
    # 2 threads decode photos to 224² 1.36× faster than 1, and 32×32 PNGs no faster (Python-bound: processes).
    decode_workers: int = 2
    decode_pool: str = "threads"
    # Backbone weights files a browser user may pick by name (Model page, frozen backbone), e.g. a fine-tuned resnet18.
    backbone_weights: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    # --- Disk: caps per server (the whole workspace) and per user (the projects they own).
    workspace_quota_bytes: int = 50 * GiB
    user_quota_bytes: int = 10 * GiB
    project_upload_bytes: int = 2 * GiB

    # --- Access: with [auth] in .streamlit/secrets.toml, the signed-in users (e-mails) who own every project and,
    # when listed, are the only ones who may create projects (none listed: any signed-in user may; see access.py).
    admins: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, values: Mapping) -> "ServerConfig":
        """Settings from a ``[server]`` table; an unknown key or a wrong type is a one-line error."""
        known = {f.name: f for f in fields(cls)}
        out = {}
        for key, value in values.items():
            if key not in known:
                raise InfluenceError(f"server config: unknown setting '{key}' (known: {', '.join(sorted(known))})")
            default = getattr(cls(), key)
            if isinstance(default, Mapping):
                if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
                    raise InfluenceError(f"server config: '{key}' must be a table of names to strings")
                value = MappingProxyType({str(k): v for k, v in value.items()})
            elif isinstance(default, tuple):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise InfluenceError(f"server config: '{key}' must be a list of strings")
                value = tuple(value)
            elif not _fits(value, default):
                raise InfluenceError(f"server config: '{key}' must be {type(default).__name__}, not {value!r}")
            out[key] = value
        return cls(**out)


def _fits(value, default) -> bool:
    """Whether a TOML value may replace ``default``: ints for ints (not booleans), numbers for floats, text or
    nothing for optional text."""
    if default is None or isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return type(value) is type(default)


def config_path(workspace: str | os.PathLike | None = None) -> Path:
    """``$INFLUENCE_CONFIG``, else ``<workspace>/server.toml`` (which may not exist: then the defaults hold)."""
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG]).expanduser().resolve()
    return Path(workspace or workspace_root()) / "server.toml"


def server_config(workspace: str | os.PathLike | None = None) -> ServerConfig:
    """The administrator's settings, re-read when the file changes; defaults where there is no file."""
    path = config_path(workspace)
    try:
        stat = path.stat()
        stamp = (str(path), stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        return ServerConfig()
    def read() -> ServerConfig:
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8")).get("server", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise InfluenceError(f"server config {path} cannot be read: {err}") from None
        return ServerConfig.from_mapping(table)

    return MEMORY.get("server_config", repr(stamp), read)  # the store's memory layer: the latest file version
