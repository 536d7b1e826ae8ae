"""User uploads: a CSV table (one label column, an optional binary sensitive column) or a zip of images in
ImageFolder layout (``class_name/file.png``). Everything a user can get wrong is a one-line `InfluenceError`.

Limits (module constants): uploads up to 200 MB; a zip may expand to at most 1 GiB, no entry may be compressed
more than 100:1 (zip bombs), and no entry may point outside the archive (zip-slip) — the whole file is refused.
Images are decoded in memory (never extracted to disk), converted to RGB and resized to ``image_size``².
"""

from __future__ import annotations

import csv
import io
import os
import re
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import torch

from ..errors import InfluenceError
from .base import Dataset, Split
from .prepare import carve_indices, normalise_images
from .registry import register_path_loader
from .tabular import encode_tabular

MAX_UPLOAD_BYTES = 200 * 2**20
MAX_UNCOMPRESSED_BYTES = 2**30
MAX_COMPRESSION_RATIO = 100
MAX_IMAGE_PIXELS = 40_000_000  # per image, before resizing
MAX_CLASSES = 100
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DEFAULT_LABEL_NAMES = ("label", "y", "target", "class")


def check_upload_size(path: str | os.PathLike) -> int:
    """The file's size in bytes; refuses an empty file or one over `MAX_UPLOAD_BYTES`."""
    size = Path(path).stat().st_size
    if size == 0:
        raise InfluenceError(f"the file '{Path(path).name}' is empty")
    if size > MAX_UPLOAD_BYTES:
        raise InfluenceError(f"'{Path(path).name}' is {size / 2**20:.1f} MB; uploads are limited to {MAX_UPLOAD_BYTES // 2**20} MB")
    return size


def save_upload(data: bytes, filename: str, folder: str | os.PathLike) -> Path:
    """Write uploaded bytes (e.g. from the app) to ``folder`` under a safe version of ``filename`` and return the path;
    the size limits are checked before anything is written. Load it with `load_dataset(str(path), ...)`."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(filename).replace("\\", "/")).name).lstrip(".") or "upload"
    if Path(name).suffix.lower() not in (".csv", ".zip"):
        raise InfluenceError(f"upload a .csv table or a .zip of images, not '{filename}'")
    if len(data) == 0:
        raise InfluenceError(f"the file '{name}' is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InfluenceError(f"'{name}' is {len(data) / 2**20:.1f} MB; uploads are limited to {MAX_UPLOAD_BYTES // 2**20} MB")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = folder / f".{name}.part"
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def _rows(mask: np.ndarray, limit: int = 5) -> str:
    rows = np.flatnonzero(mask)
    return ", ".join(str(r) for r in rows[:limit]) + (", …" if len(rows) > limit else "")


def _columns(frame: pd.DataFrame) -> str:
    cols = [str(c) for c in frame.columns]
    return ", ".join(cols[:30]) + (f", … ({len(cols)} in all)" if len(cols) > 30 else "")


# ------------------------------------------------------------------------------------------------- CSV
def _read_csv(path: Path) -> pd.DataFrame:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        head = f.read(65536)
    if not head.strip():
        raise InfluenceError(f"the file '{path.name}' is empty")
    try:
        sep = csv.Sniffer().sniff(head.splitlines()[0], delimiters=",;\t|").delimiter
    except csv.Error:
        sep = ","
    try:
        frame = pd.read_csv(path, sep=sep, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise InfluenceError(f"cannot read '{path.name}' as CSV: {str(err).splitlines()[0]}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise InfluenceError(f"'{path.name}' has a header but no data rows")
    return frame


def encode_labels(values: pd.Series, column: str, max_classes: int = MAX_CLASSES) -> tuple[np.ndarray, list[str]]:
    """Class indices 0..K-1 and class names from a label column: strings, integers or integral floats.

    Refuses missing labels, non-integral numbers, a single class and more than ``max_classes`` classes.
    """
    missing = values.isna().to_numpy()
    if missing.any():
        raise InfluenceError(f"the label column '{column}' is missing in {int(missing.sum())} rows ({_rows(missing)}); fill or drop them")
    if pd.api.types.is_bool_dtype(values):
        values = values.astype(np.int64)
    elif pd.api.types.is_float_dtype(values):
        arr = values.to_numpy()
        frac = arr != np.round(arr)
        if frac.any():
            raise InfluenceError(f"the label column '{column}' holds non-integer numbers (e.g. {arr[frac][0]:g} in row "
                                 f"{int(np.flatnonzero(frac)[0])}); labels must be class names or integers")
        values = values.astype(np.int64)
    elif not pd.api.types.is_integer_dtype(values):
        values = values.astype(str).str.strip()
    uniques = np.unique(values.to_numpy())  # sorted: numeric order for integers, lexicographic for names
    if len(uniques) < 2:
        raise InfluenceError(f"the label column '{column}' has only one class ('{uniques[0]}'); a classifier needs at least two")
    if len(uniques) > max_classes:
        raise InfluenceError(f"the label column '{column}' has {len(uniques)} distinct values, more than {max_classes} "
                             "classes; is it the right column?")
    return np.searchsorted(uniques, values.to_numpy()).astype(np.int64), [str(u) for u in uniques]


def binarise_sensitive(values: pd.Series, column: str, threshold: float | None = None) -> tuple[np.ndarray, str]:
    """A 0/1 sensitive attribute and a sentence saying what s = 1 means.

    Two distinct values: 0/1 and booleans are kept; otherwise the value that sorts second is 1.
    Numeric with more values: 1 when value ≥ ``threshold`` (default: the median). Other columns are refused.
    """
    missing = values.isna().to_numpy()
    if missing.any():
        raise InfluenceError(f"the sensitive column '{column}' is missing in {int(missing.sum())} rows ({_rows(missing)}); fill or drop them")
    if pd.api.types.is_bool_dtype(values):
        values = values.astype(np.int64)
    uniques = np.unique(values.to_numpy() if pd.api.types.is_numeric_dtype(values) else values.astype(str).to_numpy())
    if len(uniques) < 2:
        raise InfluenceError(f"the sensitive column '{column}' has one value only ('{uniques[0]}'); it must split the rows into two groups")
    numeric = pd.api.types.is_numeric_dtype(values)
    if len(uniques) == 2 and threshold is None:
        if numeric and set(uniques.tolist()) <= {0, 1}:
            return values.to_numpy().astype(np.int64), f"{column} = 1"
        s = (values.to_numpy() if numeric else values.astype(str).to_numpy()) == uniques[1]
        return s.astype(np.int64), f"{column} = {uniques[1]}"
    if not numeric:
        shown = ", ".join(map(str, uniques[:5])) + (", …" if len(uniques) > 5 else "")
        raise InfluenceError(f"the sensitive column '{column}' has {len(uniques)} values ({shown}); it must be binary "
                             "(two values) or numeric (split at a threshold)")
    cut = float(np.median(values.to_numpy())) if threshold is None else float(threshold)
    s = (values.to_numpy() >= cut).astype(np.int64)
    if s.min() == s.max():
        raise InfluenceError(f"splitting the sensitive column '{column}' at {cut:g} puts every row in one group; choose another threshold")
    return s, f"{column} >= {cut:g}"


@register_path_loader(".csv")
def load_csv(path: str, label_column: str | None = None, sensitive_column: str | None = None, seed: int = 0,
             val_fraction: float = 0.2, test_fraction: float = 0.2, missing: str = "impute",
             sensitive_threshold: float | None = None, drop_sensitive: bool = False) -> Dataset:
    """A CSV table: ``label_column`` is the class (default: a column named label, y, target or class).

    Other columns are features (numeric standardised, others one-hot, fitted on train; missing values handled as
    ``missing`` says, see `influence_core.data.tabular`). Test then validation are carved with ``seed``.
    """
    path = Path(path)
    check_upload_size(path)
    frame = _read_csv(path)
    if label_column is None:
        found = [c for c in frame.columns if c.lower() in DEFAULT_LABEL_NAMES]
        if len(found) != 1:
            raise InfluenceError(f"choose the label column (--label-column); the columns of '{path.name}' are: {_columns(frame)}")
        label_column = found[0]
    for role, col in (("label", label_column), ("sensitive", sensitive_column)):
        if col is not None and col not in frame.columns:
            raise InfluenceError(f"no {role} column '{col}' in '{path.name}'; the columns are: {_columns(frame)}")
    y, classes = encode_labels(frame[label_column], label_column)
    s, s_name = (None, None)
    if sensitive_column is not None:
        s, s_name = binarise_sensitive(frame[sensitive_column], sensitive_column, sensitive_threshold)
    drop = [label_column] + ([sensitive_column] if drop_sensitive and sensitive_column else [])
    features = frame.drop(columns=drop)
    if features.shape[1] == 0:
        raise InfluenceError(f"'{path.name}' has no feature columns besides the label '{label_column}'")
    return encode_tabular(path.stem, features, y, s, classes, test_fraction=test_fraction, val_fraction=val_fraction,
                          seed=seed, sensitive_name=s_name, missing=missing,
                          meta={"source": str(path), "label_column": label_column, "sensitive_column": sensitive_column})


# ------------------------------------------------------------------------------------------- image zip
def _unsafe(name: str) -> bool:
    """True when a member name could escape the extraction folder (absolute, drive letter, or '..')."""
    norm = name.replace("\\", "/")
    return norm.startswith("/") or bool(re.match(r"^[A-Za-z]:", norm)) or ".." in PurePosixPath(norm).parts


def safe_image_members(archive: zipfile.ZipFile, label: str) -> list[zipfile.ZipInfo]:
    """The image entries of ``archive`` after the zip-slip and zip-bomb checks (which refuse the whole file)."""
    infos = archive.infolist()
    for info in infos:
        if _unsafe(info.filename):
            raise InfluenceError(f"unsafe path '{info.filename}' in '{label}': it points outside the archive's folder; refusing the file")
    total = sum(i.file_size for i in infos)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise InfluenceError(f"'{label}' expands to {total / 2**20:.0f} MB; the limit is {MAX_UNCOMPRESSED_BYTES // 2**20} MB")
    for info in infos:
        if info.file_size > 2**20 and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise InfluenceError(f"'{info.filename}' in '{label}' is compressed {info.file_size / max(info.compress_size, 1):.0f}:1 "
                                 f"(limit {MAX_COMPRESSION_RATIO}:1); this looks like a zip bomb")
    return [i for i in infos if not i.is_dir() and not i.filename.startswith("__MACOSX/")
            and not PurePosixPath(i.filename).name.startswith(".") and PurePosixPath(i.filename).suffix.lower() in IMAGE_SUFFIXES]


def _class_of(members: list[zipfile.ZipInfo], label: str) -> list[str]:
    parts = [PurePosixPath(m.filename.replace("\\", "/")).parts for m in members]
    # One wrapping folder (photos/cat/1.png) is dropped, so zipping the folder or its contents both work.
    if parts and all(len(p) >= 3 for p in parts) and len({p[0] for p in parts}) == 1:
        parts = [p[1:] for p in parts]
    loose = [m.filename for m, p in zip(members, parts) if len(p) < 2]
    if loose:
        raise InfluenceError(f"images must sit in class folders (class_name/file.png); '{loose[0]}' in '{label}' does not")
    return [p[0] for p in parts]


def _decode(data: bytes, name: str, label: str, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise InfluenceError(f"image '{name}' in '{label}' is {img.width}x{img.height}; the limit is {MAX_IMAGE_PIXELS:,} pixels")
            rgb = img.convert("RGB").resize((size, size), Image.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except InfluenceError:
        raise
    except Exception as err:  # noqa: BLE001 - PIL raises many types for broken files
        raise InfluenceError(f"cannot read image '{name}' in '{label}': {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


@register_path_loader(".zip")
def load_image_zip(path: str, image_size: int = 32, seed: int = 0, val_fraction: float = 0.1,
                   test_fraction: float = 0.2) -> Dataset:
    """Images in ImageFolder layout inside a zip: classes are the folder names (sorted), images resized to
    ``image_size``² RGB and normalised per channel with training statistics; test and validation carved with ``seed``.

    ``source_index`` indexes ``meta["files"]`` (all images, sorted by path).
    """
    path = Path(path)
    check_upload_size(path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InfluenceError(f"'{path.name}' is not a valid zip file") from None
    with archive:
        members = sorted(safe_image_members(archive, path.name), key=lambda m: m.filename)
        if not members:
            raise InfluenceError(f"no images found in '{path.name}' (expected class_name/file.png)")
        folder = _class_of(members, path.name)
        classes = sorted(set(folder))
        if len(classes) < 2:
            raise InfluenceError(f"'{path.name}' has one class only ('{classes[0]}'); a classifier needs at least two class folders")
        if len(classes) > MAX_CLASSES:
            raise InfluenceError(f"'{path.name}' has {len(classes)} class folders; the limit is {MAX_CLASSES}")
        pixels = np.stack([_decode(archive.read(m), m.filename, path.name, image_size) for m in members])
    y = np.searchsorted(classes, folder).astype(np.int64)
    rest, te = carve_indices(len(y), test_fraction, seed, labels=y)
    tr_pos, va_pos = carve_indices(len(rest), val_fraction, seed + 1, labels=y[rest])
    tr, va = rest[tr_pos], rest[va_pos]
    (x_tr, x_va, x_te), mean, std = normalise_images(pixels[tr], pixels[va], pixels[te])
    meta = {"source": str(path), "files": [m.filename for m in members], "image_size": image_size, "seed": seed,
            "pixel_mean": mean, "pixel_std": std, "val_source_index": va.tolist(), "test_source_index": te.tolist()}
    return Dataset(
        name=path.stem, train=Split(x_tr, torch.from_numpy(y[tr])), val=Split(x_va, torch.from_numpy(y[va])),
        test=Split(x_te, torch.from_numpy(y[te])), classes=classes, kind="image",
        source_index=torch.from_numpy(tr.astype(np.int64)), meta=meta,
    )
