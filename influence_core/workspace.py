"""The store: the cache on disk of what is slow to recompute (trained models, fold models, score vectors, views,
arrays), found by key (`keys`). It only stores and finds; what to compute on a miss is `engine.Engine`'s decision.

    ws = Workspace()                       # $INFLUENCE_WORKSPACE or ./workspace
    value = ws.get_or_compute("views", key, compute)

Layout: ``models/<key>/{weights.safetensors, meta.json, checkpoints/epoch-NNNN.safetensors}`` keyed by
hash(data fingerprint, architecture, resolved training config); ``scores/<key>.npy`` (+ ``<key>.meta.json``) keyed by hash(data
fingerprint, weights fingerprint, method + resolved settings, impact + settings, parameter selection). Every
entry is written to a temporary name and renamed into place, so a crash never leaves a half-written entry.
Every kind goes through one `Workspace.get_or_compute`; keys hash every setting that changes the result. Entries are
content-addressed, so the projects of one workspace (``projects/<name>/``, see `project/`) share them safely.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .data.base import Dataset
from .errors import InfluenceError, writing
from .keys import hash_key
from .models.registry import build_model
from .models.train import Checkpoint, FittedModel, TrainConfig
from .state import workspace_root


_LOG = logging.getLogger(__name__)
_BAD = object()  # what `Workspace._read_entry` returns for an entry that did not verify


def _checksum(path: Path) -> str:
    """sha256 of a file's bytes, as written into its entry's record and compared on read."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _write_model(key: str, fitted: FittedModel, folder: Path) -> None:
    """Weights, checkpoints and JSON metadata of ``fitted`` into ``folder``."""
    save_file(_tensors(fitted.module.state_dict()), str(folder / "weights.safetensors"))
    (folder / "checkpoints").mkdir()
    ckpts = []
    for c in fitted.checkpoints:
        name = f"epoch-{c.epoch:04d}.safetensors"
        save_file(_tensors(c.state), str(folder / "checkpoints" / name))
        ckpts.append({"epoch": c.epoch, "lr": c.lr, "file": name})
    files = ["weights.safetensors", *(f"checkpoints/{c['file']}" for c in ckpts)]
    meta = {"key": key, "arch": fitted.arch, "config": asdict(fitted.config), "history": fitted.history,
            "metrics": fitted.metrics, "dataset_fingerprint": fitted.dataset_fingerprint,
            "weights_fingerprint": fitted.fingerprint(), "checkpoints": ckpts, "created": time.time(),
            "checksums": {name: _checksum(folder / name) for name in files}}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1, default=float))


@writing("store a result in the workspace cache")  # a full or read-only disk: one line, the temporary file removed
def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


class Workspace:
    """One project's folder: cached models and scores (see the module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike | None = None, project: str | None = None) -> None:
        base = Path(root).expanduser() if root else workspace_root()
        self.root = (base / project) if project else base
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InfluenceError(f"cannot create the workspace folder {self.root}: {err.strerror}") from None
        self.notices: list[str] = []  # one line per bad entry removed (and recomputed) through this object

    def path(self, *parts: str) -> Path:
        """A path inside the workspace (parent folders created); refuses parts that would leave it."""
        p = self.root.joinpath(*parts).resolve()
        if p != self.root.resolve() and self.root.resolve() not in p.parents:
            raise InfluenceError(f"'{'/'.join(parts)}' points outside the workspace {self.root}")
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    # ------------------------------------------------------------------------------------------- cache
    def get_or_compute(self, kind: str, key: str | dict, compute: Callable[[], object], *, suffix: str = ".json",
                       save: Callable[[object, Path], None] | None = None, load: Callable[[Path], object] | None = None,
                       meta: Callable[[object], dict] | None = None,
                       check: Callable[[object], str | None] | None = None) -> object:
        """The cache's one entry point: the value stored as ``<kind>/<key><suffix>``, else ``compute()`` stored there.

        ``key``: a string, or a dict of every setting that changes the result (hashed). ``save(value, tmp)`` writes
        a temporary file (or folder, when ``suffix`` is "") that is renamed into place; ``load(path)`` reads it back.
        Without them the value is JSON. ``meta(value)``: a small JSON record kept beside the entry (``.meta.json``);
        a file entry's record also holds the payload's checksum. On read, the checksum (older entries have none),
        ``load`` and ``check(value)`` (a reason the value is wrong, or None) verify the entry: a bad one is removed
        with one logged line (also kept in `notices`) and computed again.
        """
        name = key if isinstance(key, str) else hash_key(key)
        path = self.root / kind / f"{name}{suffix}"
        load = load or (lambda p: json.loads(p.read_text()))
        save = save or (lambda value, tmp: tmp.write_text(json.dumps(value, default=str)))
        if path.exists():
            found = self._read_entry(kind, path, path.with_name(f"{name}.meta.json") if suffix else None, load, check)
            if found is not _BAD:
                return found
        value = compute()
        if suffix:
            def write(tmp: Path) -> None:  # the record (with the payload's checksum) lands before the payload
                save(value, tmp)
                record = {**(meta(value) if meta is not None else {}), "checksum": _checksum(tmp)}
                _write_atomic(path.with_name(f"{name}.meta.json"),
                              lambda t: t.write_text(json.dumps(record, indent=1, default=str)))

            _write_atomic(path, write)
        else:  # a folder entry: written whole under a temporary name, then renamed
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{name}."))
            try:
                save(value, tmp)
                try:
                    os.rename(tmp, path)
                except OSError:  # another process stored the same key first: theirs is as good as ours
                    pass
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return value

    def _read_entry(self, kind: str, path: Path, meta_path: Path | None, load: Callable[[Path], object],
                    check: Callable[[object], str | None] | None) -> object:
        """The stored value at ``path`` when it verifies (checksum in its record, ``load``, ``check``), else `_BAD`
        (the entry removed, with one line)."""
        problem, value = None, _BAD
        try:
            record = json.loads(meta_path.read_text()) if meta_path is not None and meta_path.exists() else {}
        except (OSError, ValueError):
            record, problem = {}, "its record (.meta.json) is unreadable"
        expected = record.get("checksum") if isinstance(record, dict) else None
        if problem is None and expected and _checksum(path) != expected:
            problem = "its checksum does not match (changed or truncated)"
        if problem is None:
            try:
                value = load(path)
            except Exception as err:  # whatever a damaged file raises, the entry is recomputed
                problem = f"unreadable ({type(err).__name__})"
            else:
                problem = check(value) if check is not None else None
        if problem is None:
            return value
        self._drop(kind, path, meta_path, problem)
        return _BAD

    def _drop(self, kind: str, path: Path, meta_path: Path | None, problem: str) -> None:
        """Remove a bad entry (file or folder, and its record) with one logged line, kept in `notices`."""
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        if meta_path is not None:
            meta_path.unlink(missing_ok=True)
        line = f"cache entry {kind}/{path.name} was bad ({problem}); removed it (computed again when next asked for)"
        _LOG.warning(line)
        self.notices.append(line)

    def has_entry(self, kind: str, key: str | dict, suffix: str = ".json") -> bool:
        name = key if isinstance(key, str) else hash_key(key)
        return (self.root / kind / f"{name}{suffix}").exists()

    def entry_meta(self, kind: str, key: str) -> dict:
        """The ``.meta.json`` record kept beside a cache entry ({} when there is none)."""
        try:
            return json.loads((self.root / kind / f"{key}.meta.json").read_text())
        except (OSError, ValueError):
            return {}

    def get_or_compute_arrays(self, kind: str, key: str | dict, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """`get_or_compute` for a dict of arrays (an ``.npz``; views such as the UMAP map and the angle view)."""
        def save(arrays: dict, tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        def load(path: Path) -> dict:
            with np.load(path, allow_pickle=False) as data:
                return dict(data)

        return self.get_or_compute(kind, key, compute, suffix=".npz", save=save, load=load)

    # ------------------------------------------------------------------------------------------ models
    def load_model(self, key: str, dataset: Dataset) -> FittedModel | None:
        """The cached model ``key`` rebuilt for ``dataset``, or None when it is not cached — or was bad (unreadable
        meta.json, a weights or checkpoint file that fails its checksum or does not load): then it is removed with
        one line, so the next `Engine.model` trains it again."""
        folder = self.root / "models" / key
        if not folder.exists():
            return None
        try:
            meta = json.loads((folder / "meta.json").read_text())
            for name, expected in (meta.get("checksums") or {}).items():  # older entries have none
                if _checksum(folder / name) != expected:
                    raise ValueError(f"{name} does not match its checksum")
            module = build_model(meta["arch"], dataset.input_shape, dataset.num_classes)
            module.load_state_dict(load_file(str(folder / "weights.safetensors")))
            checkpoints = [Checkpoint(c["epoch"], c["lr"], load_file(str(folder / "checkpoints" / c["file"])))
                           for c in meta["checkpoints"]]
            return FittedModel(module.eval(), meta["arch"], TrainConfig(**meta["config"]), meta["history"],
                               checkpoints, meta["metrics"], meta["dataset_fingerprint"])
        except InfluenceError:  # the architecture cannot be built here now (an hf: base model out of reach): keep it
            raise
        except Exception as err:  # whatever a damaged entry raises: drop it, train again
            self._drop("models", folder, None, f"{type(err).__name__}: {' '.join(str(err).split())[:120]}")
            return None

    def save_model(self, key: str, fitted: FittedModel) -> Path:
        """Store ``fitted`` under ``key`` (weights, checkpoints, JSON metadata), atomically as one folder."""
        self.get_or_compute("models", key, lambda: fitted, suffix="", save=lambda value, tmp: _write_model(key, value, tmp),
                            load=lambda path: None)
        return self.root / "models" / key

    def models(self) -> list[dict]:
        """Metadata of every cached model, newest first."""
        metas = []
        for path in (self.root / "models").glob("*/meta.json"):
            try:
                metas.append(json.loads(path.read_text()))
            except (OSError, ValueError):  # a bad entry: `load_model` removes it when it is asked for
                continue
        return sorted(metas, key=lambda m: m.get("created", 0), reverse=True)


def score_problem(scores: np.ndarray, n: int) -> str | None:
    """Why a stored score vector cannot be the scores of ``n`` training samples (None when it can)."""
    if scores.dtype.kind != "f":
        return f"its values are {scores.dtype}, not numbers"
    if scores.shape != (n,):
        return f"it holds shape {scores.shape}, not one score per training sample ({n})"
    return None


def save_npy(array: np.ndarray, tmp: Path) -> None:
    with open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)


# ------------------------------------------------------------------------------------ disk usage and gc
# The space a workspace takes and how to free it: bytes per project (its folder: uploads, stored arrays, exports,
# jobs) and per cache kind (the workspace's own folders: models, scores, views, shards, arrays), the quotas of
# `server_config.ServerConfig` checked before an upload or a stored array is written, and `collect_garbage`, which
# deletes the cache entries no project refers to.
LOCAL_OWNER = "local"  # the owner of a project that names none (made before projects had members.json)
STALE_STAGING_S = 3600  # an upload's staging folder this old belongs to no upload in progress


def folder_bytes(path: str | os.PathLike) -> int:
    """Bytes of the files under ``path`` (a file's own size; links are not followed; 0 when it is missing)."""
    path = Path(path)
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(folder, name))
                total += st.st_size if not os.path.islink(os.path.join(folder, name)) else 0
    return total


def format_bytes(n: int) -> str:
    """'1.5 GiB', '12.0 MiB', '300 B': a size for a message."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def project_owner(root: str | os.PathLike, project: str) -> str:
    """Who owns a project: the owner in its ``members.json`` (`access`), else the ``owner`` field of an older
    ``state.json``, else `LOCAL_OWNER`."""
    from .access import read_members

    folder = Path(root) / "projects" / project
    try:
        owner = read_members(folder).owner
    except InfluenceError:  # an unreadable member list: the project still counts, under the older fields
        owner = None
    if not owner:
        try:
            owner = json.loads((folder / "state.json").read_text()).get("owner")
        except (OSError, ValueError, AttributeError):
            owner = None
    return str(owner) if owner else LOCAL_OWNER


def _project_folders(root: Path) -> list[Path]:
    folder = root / "projects"
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()) if folder.is_dir() else []


def disk_usage(root: str | os.PathLike | None = None) -> dict:
    """``{"projects": {name: bytes}, "kinds": {cache kind: bytes}, "total": bytes}`` for the workspace at ``root``."""
    root = Path(root).expanduser() if root else workspace_root()
    projects = {p.name: folder_bytes(p) for p in _project_folders(root)}
    kinds = {}
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            if entry.name != "projects":
                kind = entry.name if entry.is_dir() else "other files"
                kinds[kind] = kinds.get(kind, 0) + folder_bytes(entry)
    return {"projects": projects, "kinds": kinds, "total": sum(projects.values()) + sum(kinds.values())}


def usage_by_owner(root: str | os.PathLike | None = None) -> dict[str, int]:
    """Bytes of the projects each owner owns (`project_owner`), for the per-user quota."""
    root = Path(root).expanduser() if root else workspace_root()
    out: dict[str, int] = {}
    for folder in _project_folders(root):
        owner = project_owner(root, folder.name)
        out[owner] = out.get(owner, 0) + folder_bytes(folder)
    return out


def check_quota(root: str | os.PathLike, project: str, nbytes: int, config) -> None:
    """A one-line refusal when ``nbytes`` more in ``project`` would pass its ``project_upload_bytes`` (its uploads
    and the arrays stored from them), its owner's ``user_quota_bytes`` or the workspace's ``workspace_quota_bytes``
    (``config``: a `ServerConfig`)."""
    folder = Path(root) / "projects" / project
    data = folder_bytes(folder / "uploads") + folder_bytes(folder / "arrays")
    if data + nbytes > config.project_upload_bytes:
        raise InfluenceError(f"{format_bytes(nbytes)} more would pass this project's cap of "
                             f"{format_bytes(config.project_upload_bytes)} for uploads and the arrays stored from them "
                             f"({format_bytes(data)} in use)")
    usage = disk_usage(root)
    if usage["total"] + nbytes > config.workspace_quota_bytes:
        raise InfluenceError(f"{format_bytes(nbytes)} more would pass this server's storage cap of "
                             f"{format_bytes(config.workspace_quota_bytes)} ({format_bytes(usage['total'])} in use); "
                             "free space under Workspace storage on the Data page")
    owner = project_owner(root, project)
    used = usage_by_owner(root).get(owner, 0)
    if used + nbytes > config.user_quota_bytes:
        raise InfluenceError(f"{format_bytes(nbytes)} more would pass your storage cap of "
                             f"{format_bytes(config.user_quota_bytes)} ({format_bytes(used)} in your projects); "
                             "delete uploads or projects you no longer need")


def collect_garbage(root: str | os.PathLike | None, fingerprints: set[str], arrays: set[Path], *,
                    dry_run: bool = False) -> list[tuple[str, int]]:
    """Delete the cache entries nothing refers to; ``(path relative to root, bytes)`` of each, freed or (with
    ``dry_run``) that would be. ``fingerprints``: the data sets the projects use (fold parts included): models and
    scores of other data go. ``arrays``: the stored array files the projects' data sets read: other ``.npy`` files
    (and their sidecars) under ``arrays/`` and ``projects/*/arrays/`` go. Shards of a score run whose scores are
    stored go too, and uploads' staging folders older than an hour. Entries whose data cannot be told (views, no
    metadata) are kept."""
    root = Path(root).expanduser() if root else workspace_root()
    doomed: list[Path] = []
    for meta in sorted((root / "models").glob("*/meta.json")):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if json.loads(meta.read_text()).get("dataset_fingerprint") not in fingerprints:
                doomed.append(meta.parent)
    for meta in sorted((root / "scores").glob("*.meta.json")):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if json.loads(meta.read_text()).get("dataset_fingerprint") not in fingerprints:
                doomed += [meta, meta.with_name(meta.name.replace(".meta.json", ".npy"))]
    for shard in sorted((root / "shards").glob("*")):
        if (root / "scores" / f"{shard.name}.npy").exists():  # the run finished: its shards are a copy of it
            doomed.append(shard)
    for project in _project_folders(root):  # an upload's staging copy that a killed process left (one in use is young)
        doomed += [p for p in sorted((project / "uploads" / ".staging").glob("*"))
                   if time.time() - p.stat().st_mtime > STALE_STAGING_S]
    keep = {Path(p).resolve() for p in arrays}
    for folder in [root / "arrays"] + [p / "arrays" for p in _project_folders(root)]:
        for npy in sorted(folder.glob("*.npy")):
            if npy.resolve() not in keep:
                doomed += [npy, npy.with_suffix(".json")]
    freed = []
    for path in doomed:
        if not path.exists():
            continue
        size = folder_bytes(path)
        if not dry_run:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        freed.append((str(path.relative_to(root)), size))
    return freed
