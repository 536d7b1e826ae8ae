"""Data that stays on disk: uint8 images and float32 features in `.npy` files, read a batch of rows at a time.

A 1M-image set as float32 tensors is 12.3 GB before any scoring; as uint8 on disk it is 3 GB that no process holds.
`DiskArray` is one such file (written once, with a SHA-256 of its contents kept beside it, so a data set's
fingerprint never re-reads the pixels); `StoredFeatures` is what a `Split` reads its model inputs from: rows of a
`DiskArray` (optionally a subset of them), standardised per batch with the training split's per-channel statistics
exactly as `prepare.normalise_images` does in memory.

Each read maps the file, copies the rows out and unmaps it again, so pages read once do not stay in the process's
resident memory: peak memory follows the batch size, not N. The files are plain `.npy` (``np.load(path,
mmap_mode="r")`` opens them) and pickle as their path: a Dask worker that sees the same folder reads its own rows.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from ..errors import InfluenceError

DTYPES = {"uint8": np.uint8, "float32": np.float32}
CHUNK_ROWS = 4096
STATISTICS_CHUNK_BYTES = 64 << 20  # channel_statistics' float64 chunk
IMAGES_ON_DISK_FROM = 10_000  # image sets with this many training images (full CIFAR) are read from disk by default
FEATURES_ON_DISK_BYTES = 256 * 2**20  # tabular sets whose float32 features exceed this are read from disk by default


class DiskArray:
    """A read-only N×... uint8 or float32 array in a `.npy` file; rows are read on demand (see the module doc)."""

    def __init__(self, path: str | os.PathLike, digest: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InfluenceError(f"no such array file: {self.path}")
        with open(self.path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = reader(f)
            except ValueError as err:
                raise InfluenceError(f"{self.path.name} is not a .npy array file: {err}") from None
            self.offset = f.tell()
        if fortran or dtype.hasobject or dtype.name not in DTYPES or not shape:
            raise InfluenceError(f"{self.path.name}: a stored array must be a C-ordered uint8 or float32 N×... array")
        self.shape: tuple[int, ...] = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self._digest = digest

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"DiskArray({str(self.path)!r}, shape={self.shape}, dtype={self.dtype.name})"

    @property
    def sidecar(self) -> Path:
        return self.path.with_suffix(".json")

    @property
    def digest(self) -> str:
        """SHA-256 of shape, dtype and contents: stored at write time; computed once (in chunks) for a foreign file."""
        if self._digest is None:
            try:
                self._digest = json.loads(self.sidecar.read_text())["digest"]
            except (OSError, ValueError, KeyError):
                h = _start_digest(self.shape, self.dtype)
                for start in range(0, len(self), CHUNK_ROWS):
                    h.update(np.ascontiguousarray(self.read(slice(start, start + CHUNK_ROWS))).data)
                self._digest = h.hexdigest()
        return self._digest

    def read(self, index: slice | np.ndarray | torch.Tensor | list[int]) -> np.ndarray:
        """A copy of the rows at ``index`` (a slice or integer positions, any order); the file is unmapped after."""
        mapped = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape)
        if isinstance(index, slice):
            out = np.array(mapped[index])
        else:
            out = np.array(mapped[np.asarray(index, dtype=np.int64)])
        del mapped  # the last reference: the file is unmapped here, its pages leave this process's memory
        return out

    def __getstate__(self) -> dict:
        return {"path": str(self.path), "digest": self._digest, "shape": self.shape, "dtype": self.dtype.name,
                "offset": self.offset}

    def __setstate__(self, state: dict) -> None:
        self.path, self._digest = Path(state["path"]), state["digest"]
        self.shape, self.dtype, self.offset = tuple(state["shape"]), np.dtype(state["dtype"]), state["offset"]


def _start_digest(shape: tuple[int, ...], dtype: np.dtype) -> "hashlib._Hash":
    h = hashlib.sha256()
    h.update(json.dumps({"shape": list(shape), "dtype": np.dtype(dtype).name}).encode())
    return h


def write_array(path: str | os.PathLike, chunks: Iterable[np.ndarray], shape: tuple[int, ...], dtype: str) -> DiskArray:
    """Write the rows of ``chunks`` (in order, together ``shape``) to a `.npy` file, hashing them on the way; the
    file appears under ``path`` only when complete (temporary file, then rename). Memory: one chunk."""
    if dtype not in DTYPES:
        raise InfluenceError(f"stored arrays are uint8 or float32, not {dtype}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np_dtype = np.dtype(DTYPES[dtype])
    h = _start_digest(shape, np_dtype)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npy.tmp")
    rows = 0
    try:
        with os.fdopen(fd, "wb") as f:
            np.lib.format.write_array_header_2_0(f, {"descr": np.lib.format.dtype_to_descr(np_dtype),
                                                     "fortran_order": False, "shape": tuple(shape)})
            for chunk in chunks:
                chunk = np.ascontiguousarray(chunk, dtype=np_dtype)
                if chunk.shape[1:] != tuple(shape[1:]):
                    raise InfluenceError(f"a chunk of shape {chunk.shape} does not fit an array of shape {shape}")
                h.update(chunk.data)
                f.write(chunk.data)
                rows += len(chunk)
        if rows != shape[0]:
            raise InfluenceError(f"wrote {rows} rows to an array declared with {shape[0]}")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    digest = h.hexdigest()
    _write_text_atomic(path.with_suffix(".json"), json.dumps({"digest": digest, "shape": list(shape), "dtype": dtype}))
    return DiskArray(path, digest)


def save_array(path: str | os.PathLike, array: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> DiskArray:
    """`write_array` for an array already in memory (written a chunk at a time)."""
    array = np.asarray(array)
    return write_array(path, (array[s : s + chunk_rows] for s in range(0, len(array), chunk_rows)), array.shape,
                       np.dtype(array.dtype).name)


def stored_copy(folder: str | os.PathLike, name: str, array: np.ndarray,
                before_write: Callable[[int], None] | None = None) -> DiskArray:
    """``array`` stored once under ``folder`` as ``<name>-<content hash>.npy``: an identical array is written only once.
    ``before_write(bytes)`` is called before a new file is written (a quota check that may refuse it)."""
    array = np.ascontiguousarray(array)
    h = _start_digest(array.shape, array.dtype)
    for s in range(0, len(array), CHUNK_ROWS):
        h.update(array[s : s + CHUNK_ROWS].data)
    digest = h.hexdigest()
    path = Path(folder) / f"{name}-{digest[:16]}.npy"
    if path.exists():
        found = DiskArray(path)
        if found.shape == array.shape and found.dtype == array.dtype and found.digest == digest:
            return found
    if before_write is not None:
        before_write(array.nbytes)
    return save_array(path, array)


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@dataclass(frozen=True, eq=False)
class StoredFeatures:
    """Model inputs read from a `DiskArray`: its rows ``rows`` (None = all, in order), as float32.

    ``layout="nhwc"``: uint8 N×H×W×C images, returned N×C×H×W and standardised per channel with ``mean`` / ``std``
    (on the [0, 1] scale, the training split's); ``layout="flat"``: float32 features returned as stored.
    """

    array: DiskArray
    rows: np.ndarray | None = None
    layout: str = "flat"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.layout not in ("nhwc", "flat"):
            raise InfluenceError(f"unknown stored layout '{self.layout}'")
        if self.layout == "nhwc" and (len(self.array.shape) != 4 or self.mean is None or self.std is None):
            raise InfluenceError("stored images need an N×H×W×C array and the per-channel mean and std")
        if self.rows is not None:
            object.__setattr__(self, "rows", np.asarray(self.rows, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.array) if self.rows is None else len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the float32 tensor `read` returns for all rows."""
        s = self.array.shape
        feature = (s[3], s[1], s[2]) if self.layout == "nhwc" else s[1:]
        return (len(self),) + tuple(feature)

    def read(self, index: slice | np.ndarray | torch.Tensor | list[int] | None = None) -> torch.Tensor:
        """The float32 model inputs of rows ``index`` (positions in this view; None = all)."""
        if index is None:
            index = slice(None)
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        if self.rows is not None:
            index = self.rows[index] if isinstance(index, slice) else self.rows[np.asarray(index, dtype=np.int64)]
        elif not isinstance(index, slice):
            index = np.asarray(index, dtype=np.int64)
            if len(index) and (index.min() < -len(self) or index.max() >= len(self)):
                raise IndexError(f"row index out of range for {len(self)} rows")
        if not isinstance(index, slice):
            index = _as_slice(index)
        raw = self.array.read(index)
        if self.layout == "flat":
            return torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))
        # The same float32 arithmetic as prepare.normalise_images, one batch at a time.
        x = (raw.astype(np.float32) / 255.0 - np.asarray(self.mean).astype(np.float32)) / np.asarray(self.std).astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    def subset(self, index: np.ndarray | torch.Tensor) -> "StoredFeatures":
        """A view of the rows at ``index`` (no pixels are read or copied)."""
        index = np.asarray(index.cpu().numpy() if isinstance(index, torch.Tensor) else index, dtype=np.int64)
        rows = index if self.rows is None else self.rows[index]
        return StoredFeatures(self.array, rows, self.layout, self.mean, self.std)

    def token(self) -> bytes:
        """What identifies these inputs, cheaply: the file's digest, the rows viewed and the normalisation."""
        h = hashlib.sha256(f"{self.array.digest}|{self.layout}|{self.mean}|{self.std}".encode())
        if self.rows is not None:
            h.update(self.rows.data)
        return h.digest()


def _as_slice(index: np.ndarray) -> slice | np.ndarray:
    """A contiguous ascending run of positions as a slice (a cheaper read), anything else unchanged."""
    if len(index) and index[0] >= 0 and index[-1] - index[0] == len(index) - 1 and (len(index) == 1 or bool((np.diff(index) == 1).all())):
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


def channel_statistics(array: DiskArray, rows: np.ndarray | None = None, chunk_rows: int = CHUNK_ROWS) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (+1e-8, as `normalise_images`) of uint8 N×H×W×C images on the [0, 1] scale,
    over ``rows`` (None = all), in two streamed float64 passes: memory one chunk of at most ``chunk_rows`` images
    and `STATISTICS_CHUNK_BYTES` as float64 (4,096 images of 224² were 5 GB)."""
    n = len(array) if rows is None else len(rows)
    if n == 0:
        raise InfluenceError("cannot standardise images over an empty split")
    step = max(1, min(chunk_rows, STATISTICS_CHUNK_BYTES // (8 * int(np.prod(array.shape[1:])))))

    def chunks():
        for s in range(0, n, step):
            idx = slice(s, s + step) if rows is None else _as_slice(rows[s : s + step])
            yield array.read(idx).astype(np.float64) / 255.0

    per_channel = n * array.shape[1] * array.shape[2]
    mean = sum(c.sum(axis=(0, 1, 2)) for c in chunks()) / per_channel
    var = sum(((c - mean) ** 2).sum(axis=(0, 1, 2)) for c in chunks()) / per_channel
    return mean.tolist(), (np.sqrt(var) + 1e-8).tolist()


# Where stored arrays go while a project loads its data (`arrays_in`), with the quota check new files must pass.
_ARRAYS: contextvars.ContextVar[tuple[Path, Callable[[int], None] | None] | None] = contextvars.ContextVar(
    "influence_arrays", default=None)


@contextlib.contextmanager
def arrays_in(folder: str | os.PathLike, before_write: Callable[[int], None] | None = None) -> Iterator[None]:
    """Arrays stored by loaders in this block go to ``folder`` (a project's ``arrays/``), each new file checked first
    by ``before_write(bytes)``, which may refuse it with an `InfluenceError`."""
    token = _ARRAYS.set((Path(folder), before_write))
    try:
        yield
    finally:
        _ARRAYS.reset(token)


def _arrays_folder() -> Path:
    """The folder `arrays_in` chose (a project's, as every load by the app is), else for the library and the CLI's
    ``--no-cache`` ``$INFLUENCE_DATA_DIR/arrays`` when that is set, else ``<workspace>/arrays``."""
    chosen = _ARRAYS.get()
    if chosen is not None:
        return chosen[0]
    if os.environ.get("INFLUENCE_DATA_DIR"):
        from .paths import cache_dir

        return cache_dir() / "arrays"
    from ..locations import workspace_root

    return workspace_root() / "arrays"


def _store(name: str, array: np.ndarray, written: list[Path]) -> DiskArray:
    folder, chosen = _arrays_folder(), _ARRAYS.get()
    new: list[int] = []

    def before_write(nbytes: int) -> None:
        if chosen is not None and chosen[1] is not None:
            chosen[1](nbytes)
        new.append(nbytes)

    try:
        stored = stored_copy(folder, name, array, before_write)
    except OSError as err:
        raise InfluenceError(f"cannot store '{name}' under {folder}: {err.strerror}; pass on_disk=False") from None
    if new:
        written.append(stored.path)
    return stored


@contextlib.contextmanager
def _all_or_nothing() -> Iterator[list[Path]]:
    """The array files written in this block, removed again (with their sidecars) when it fails: a refused data set
    leaves nothing on disk."""
    written: list[Path] = []
    try:
        yield written
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
        raise


def stored_image_splits(name: str, parts: list[tuple[np.ndarray, np.ndarray | None]]
                        ) -> tuple[list[StoredFeatures], list[float], list[float]]:
    """Train / val / test features over uint8 N×H×W×C images written once to the arrays folder (named by content
    hash), standardised per batch with the statistics of the first part's rows (the training split).

    ``parts``: (images, rows or None for all) per split; parts may share one images array (stored once)."""
    stored: dict[int, DiskArray] = {}
    with _all_or_nothing() as written:
        for split, (images, _) in zip(("train", "val", "test"), parts):
            if id(images) not in stored:  # named after the first split that reads it
                stored[id(images)] = _store(f"{name}-{split}", images, written)
    return image_views([(stored[id(images)], rows) for images, rows in parts])


def image_views(parts: list[tuple[DiskArray, np.ndarray | None]]) -> tuple[list[StoredFeatures], list[float], list[float]]:
    """Standardised views of stored uint8 images, with the statistics of the first part's rows (the training split)."""
    mean, std = channel_statistics(*parts[0])
    norm = dict(layout="nhwc", mean=tuple(mean), std=tuple(std))
    return [StoredFeatures(array, rows, **norm) for array, rows in parts], mean, std


def stream_images(name: str, chunks: Iterable[np.ndarray], shape: tuple[int, ...]) -> DiskArray:
    """uint8 images decoded a chunk at a time, written to the arrays folder as they come (after the quota check) and
    then named by content hash, as `stored_image_splits` names them; memory one chunk, not N images."""
    folder, chosen = _arrays_folder(), _ARRAYS.get()
    if chosen is not None and chosen[1] is not None:
        chosen[1](int(np.prod(shape)))
    tmp = folder / f".{name}-{os.getpid()}-{id(chunks)}.npy"
    with _all_or_nothing() as written:
        written.append(tmp)
        try:
            array = write_array(tmp, chunks, shape, "uint8")
            final = folder / f"{name}-{array.digest[:16]}.npy"
            if _stored_equal(final, array):
                tmp.unlink()
                tmp.with_suffix(".json").unlink(missing_ok=True)
            else:
                os.replace(tmp.with_suffix(".json"), final.with_suffix(".json"))
                os.replace(tmp, final)
                written.append(final)
        except OSError as err:
            raise InfluenceError(f"cannot store '{name}' under {folder}: {err.strerror}; pass on_disk=False") from None
        return DiskArray(final, array.digest)


def _stored_equal(path: Path, array: DiskArray) -> bool:
    if not path.exists():
        return False
    found = DiskArray(path)
    return found.shape == array.shape and found.dtype == array.dtype and found.digest == array.digest


def stored_feature_splits(name: str, features: list[np.ndarray]) -> list[StoredFeatures]:
    """Already-encoded float32 feature matrices (one per split) written once to the arrays folder and read by rows."""
    with _all_or_nothing() as written:
        return [StoredFeatures(_store(f"{name}-{split}", np.asarray(x, dtype=np.float32), written))
                for split, x in zip(("train", "val", "test"), features)]
