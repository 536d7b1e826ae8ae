"""User uploads: a CSV table (one label column, an optional binary sensitive column), a zip of images, and the
one function that stores an upload (`save_upload`, used by the app and the tests alike). Everything a user can get
wrong is a one-line `InfluenceError` that names the user's own file.

Storing (`save_upload`): the name, type, size and content are checked from the bytes first, then the file is loaded
from a staging folder with the caller's loader; only an upload that passes all of it is kept, under
``<workspace>/uploads/<kind>/<sha256[:12]>/<the user's file name>``. A refused upload leaves nothing on disk, and the
uploads of one workspace may take at most `MAX_WORKSPACE_UPLOAD_BYTES`.

Limits (module constants): uploads up to 200 MB; a zip may expand to at most 1 GiB, no entry may be compressed more
than 100:1 (zip bombs), and no entry may point outside the archive (zip-slip) — the whole file is refused. Images:
at most `MAX_IMAGE_PIXELS` per image, `MAX_TOTAL_PIXELS` and `MAX_IMAGES` per zip, read from each header (the count
from the zip's directory) before anything is decoded; decoded in memory (never extracted to disk), converted to RGB and resized to ``image_size``².

Image zips: ``class_name/file.png`` (validation and test carved with the seed), or split folders
``train/<class>/file.png`` with optional ``val/`` (or ``valid/``, ``validation/``) and ``test/`` (a missing split is
carved from train). One wrapping folder around either layout is ignored. A zip mixing split folders with class
folders is refused.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import os
import re
import shutil
import tempfile
import unicodedata
import warnings
import zipfile
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, Callable, NamedTuple

import numpy as np
import pandas as pd
import torch

from ..errors import InfluenceError, writing
from .base import Dataset, Split
from .annotator_labels import annotator_matrix, check_annotator_columns, shown_name
from .image_decode import decoded_chunks
from .columns import MAX_CLASSES, binarise_sensitive, encode_labels  # noqa: F401  (uploads' own API too)
from .originals import ORIGINAL_INDEX_COLUMN, SPLIT_COLUMN, file_spec, register_table_reader, relocate, table_spec
from .prepare import carve_indices, normalise_images
from .registry import register_path_loader
from .storage import FEATURES_ON_DISK_BYTES, IMAGES_ON_DISK_FROM, image_views, stream_images
from .tabular import encode_tabular
from .perturb import perturber_for
from .text import detect_text_columns, text_dataset, tfidf_settings

MAX_UPLOAD_BYTES = 200 * 2**20
MAX_WORKSPACE_UPLOAD_BYTES = 2 * 2**30  # all stored uploads of one workspace together
MAX_UNCOMPRESSED_BYTES = 2**30
MAX_COMPRESSION_RATIO = 100
MAX_IMAGE_PIXELS = 4096 * 4096  # per image, read from its header before decoding
MAX_TOTAL_PIXELS = 2**28  # all images of one zip together (about 268 million pixels)
MAX_IMAGES = 65_536  # images in one zip (each costs a read, a decode and a resize, however small: 60,000 took a minute)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DEFAULT_LABEL_NAMES = ("label", "y", "target", "class")
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
UPLOAD_SUFFIXES = {"data": (".csv", ".parquet", ".zip"), "weights": (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".pt2")}
STAGING = ".staging"
GROUPED_NUMBER = re.compile(r"[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?")  # 1,037 or 1037.5: a CSV cell of a number



DECODE_BATCH = 512  # images decoded (and held in memory) at a time when they go to disk


def check_upload_size(path: str | os.PathLike) -> int:
    """The file's size in bytes; refuses an empty file or one over `MAX_UPLOAD_BYTES`."""
    size = Path(path).stat().st_size
    check_size(size, Path(path).name)
    return size


def check_size(size: int, name: str) -> None:
    if size == 0:
        raise InfluenceError(f"the file '{name}' is empty")
    if size > MAX_UPLOAD_BYTES:
        raise InfluenceError(f"'{name}' is {size / 2**20:.1f} MB; uploads are limited to {MAX_UPLOAD_BYTES // 2**20} MB")


# --------------------------------------------------------------------------------------------- storing
def upload_name(filename: str) -> str:
    """The user's file name as it is stored and shown: its last path component, with control characters and
    characters unsafe in file names replaced by '_', no leading dots, at most 120 characters."""
    base = PurePosixPath(str(filename).replace("\\", "/")).name
    base = "".join("_" if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") or c in '<>:"|?*' else c for c in base)
    base = base.strip().lstrip(".").strip()
    if len(base) > 120:
        suffix = Path(base).suffix[:16]
        base = base[: 120 - len(suffix)] + suffix
    return base or "upload"


def uploads_usage(root: str | os.PathLike) -> int:
    """Bytes taken by the stored uploads of the workspace at ``root``."""
    folder = Path(root) / "uploads"
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and STAGING not in p.relative_to(folder).parts)


# Content checks of the upload kinds a layer above data reads: "weights" by `models.loading` (models import this
# module, so this one never imports them).
CONTENT_CHECKS: dict[str, Callable[[bytes, str], None]] = {}


def register_content_check(kind: str) -> Callable:
    """Decorator: ``fn(data, name)`` refuses, in one line, uploaded bytes of ``kind`` it cannot read safely."""
    def add(fn: Callable[[bytes, str], None]) -> Callable[[bytes, str], None]:
        CONTENT_CHECKS[kind] = fn
        return fn

    return add


def check_upload_content(data: bytes, name: str, kind: str) -> None:
    """What can be checked from the bytes alone, before anything is written: a CSV parses and has rows; an image
    zip is a safe zip in a recognised layout whose images are readable and within the pixel caps; weights pass the
    check `models.loading` registers (a state_dict read without running code, or a .pt2 `pt2_check` accepts)."""
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        _read_csv(data, name)
    elif suffix == ".parquet":
        _read_parquet(data, name)
    elif suffix == ".zip":
        archive = _open_zip(io.BytesIO(data), name)
        with archive:
            scan_image_zip(archive, name)
    elif kind == "weights":
        if kind not in CONTENT_CHECKS:  # nothing stored that nothing has read
            raise InfluenceError(f"cannot check uploaded {kind} here")
        CONTENT_CHECKS[kind](data, name)


def stored_path(data: bytes, filename: str, kind: str, root: str | os.PathLike) -> Path:
    """Where `save_upload` keeps (or would keep) these bytes: ``<root>/uploads/<kind>/<sha256[:12]>/<name>``."""
    return Path(root) / "uploads" / kind / hashlib.sha256(data).hexdigest()[:12] / upload_name(filename)


class StoredUpload(NamedTuple):
    path: Path  # where the accepted upload now lives
    value: Any  # what ``load`` returned (None without a loader)


def save_upload(data: bytes, filename: str, kind: str = "data", root: str | os.PathLike | None = None,
                load: Callable[[Path], Any] | None = None, max_bytes: int | None = None) -> StoredUpload:
    """Check an upload and store it only when it is accepted; the one way uploads reach the disk.

    ``kind``: "data" (.csv, .zip) or "weights" (.safetensors, .pt, .pth, .bin, .ckpt, .pt2). Checked in order: name
    and type, size, the workspace's upload cap, content (`check_upload_content`), then ``load(path)`` (e.g. the
    data set loader with the user's options) on a staged copy named like the user's file. Any refusal raises
    `InfluenceError` and leaves nothing behind. ``root``: the workspace (default `locations.workspace_root`).
    ``max_bytes``: the cap on the uploads under ``root`` (default `MAX_WORKSPACE_UPLOAD_BYTES`; a project passes the
    server's ``project_upload_bytes``).
    """
    if kind not in UPLOAD_SUFFIXES:
        raise InfluenceError(f"unknown upload kind '{kind}'; choose {' or '.join(UPLOAD_SUFFIXES)}")
    name = upload_name(filename)
    if Path(name).suffix.lower() not in UPLOAD_SUFFIXES[kind]:
        shown = upload_name(filename)
        if kind == "data":
            raise InfluenceError(f"upload a .csv table or a .zip of images, not '{shown}'")
        raise InfluenceError(f"weights must be .safetensors, .pt, .pth, .bin, .ckpt or a .pt2 torch.export program, not '{shown}'")
    check_size(len(data), name)
    if root is None:
        from ..locations import workspace_root

        root = workspace_root()
    uploads = Path(root) / "uploads"
    final = stored_path(data, filename, kind, root)
    if not final.is_file():
        used, cap = uploads_usage(root), MAX_WORKSPACE_UPLOAD_BYTES if max_bytes is None else max_bytes
        if used + len(data) > cap:
            raise InfluenceError(
                f"this workspace's uploads already take {used / 2**20:.1f} MB; '{name}' ({len(data) / 2**20:.1f} MB) would pass "
                f"the limit of {cap // 2**20} MB; delete old uploads from {uploads} first")
    check_upload_content(data, name, kind)
    if final.is_file():  # accepted before: only the loader's options may differ
        return StoredUpload(final, load(final) if load else None)
    store = f"store the upload '{name}'"  # a full or read-only disk: one line, and nothing half-written stays
    with writing(store):
        (uploads / STAGING).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=uploads / STAGING))
    try:
        staged = staging / name
        with writing(store):
            staged.write_bytes(data)
        value = load(staged) if load else None
        try:
            with writing(store):
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, final)
        except InfluenceError:
            with contextlib.suppress(OSError):
                final.parent.rmdir()  # only when empty: the same bytes may be stored under another name
            raise
        if isinstance(value, Dataset):
            relocate(value, staged, final)  # its recorded source moved with the file
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if isinstance(value, Dataset) and "source" in value.meta:
        value.meta["source"] = str(final)
    return StoredUpload(final, value)


def _columns(frame: pd.DataFrame) -> str:
    """The column names for a message: all of them up to 30, else the first 25, '…' and the last 4."""
    cols = [str(c) for c in frame.columns]
    if len(cols) <= 30:
        return ", ".join(cols)
    return ", ".join(cols[:25]) + ", …, " + ", ".join(cols[-4:]) + f" ({len(cols)} in all)"


# ------------------------------------------------------------------------------------------------- CSV
@register_table_reader("csv")
def _read_csv(source: str | os.PathLike | bytes, name: str | None = None) -> pd.DataFrame:
    """The table in a CSV file (a path, or the uploaded bytes with the file's ``name``); also how the originals of
    a loaded CSV are read again."""
    if isinstance(source, (bytes, bytearray)):
        raw, label = bytes(source), name or "upload.csv"
    else:
        label = name or Path(source).name
        with open(source, "rb") as f:
            raw = f.read()
    raw, encoding = _as_utf8(raw)
    head = raw[:65536].decode("utf-8", errors="replace")
    if not head.strip():
        raise InfluenceError(f"the file '{label}' is empty")
    if "\x00" in head:
        raise InfluenceError(f"'{label}' is not a text CSV file (it holds binary data)")
    try:
        sep = csv.Sniffer().sniff(head.splitlines()[0], delimiters=",;\t|").delimiter
    except csv.Error:
        sep = ","
    header = next(csv.reader(head.splitlines()[:1], delimiter=sep), [])
    _refuse_duplicate_names([c.strip() for c in header if c.strip()], label)  # pandas would rename one ('a.1')
    try:
        frame = pd.read_csv(io.BytesIO(raw), sep=sep, skipinitialspace=True, encoding="utf-8", encoding_errors="replace")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise InfluenceError(f"cannot read '{label}' as CSV: {str(err).splitlines()[0]}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    _refuse_duplicate_names(list(frame.columns), label)
    if len(frame) == 0:
        raise InfluenceError(f"'{label}' has a header but no data rows")
    if encoding != "utf-8":
        frame.attrs["encoding"] = encoding  # load_csv says so among the conversions
    return frame


def _as_utf8(raw: bytes) -> tuple[bytes, str]:
    """(``raw`` as UTF-8, the encoding it was read in): UTF-16 with its byte-order mark and UTF-8 (with or without
    one) as they are; other bytes as Windows-1252, the encoding spreadsheets save "CSV" in on Windows, so 'café'
    stays 'café' instead of 'caf�'."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            try:
                return raw.decode("utf-8-sig" if encoding == "utf-8" else encoding).encode("utf-8"), encoding
            except UnicodeDecodeError:
                return raw, "utf-8"  # not what its mark says: read as UTF-8, bad bytes replaced
    try:
        raw.decode("utf-8")
        return raw, "utf-8"
    except UnicodeDecodeError:
        if b"\x00" in raw[:65536]:  # binary data: the caller refuses it on its first 64 KiB, unconverted
            return raw, "utf-8"
        text = raw.decode("cp1252", errors="replace")  # 5 byte values cp1252 leaves undefined become '�'
        return text.encode("utf-8"), "Windows-1252"


@register_table_reader("parquet")
def _read_parquet(source: str | os.PathLike | bytes, name: str | None = None) -> pd.DataFrame:
    """The table in a Parquet file (a path, or the uploaded bytes with the file's ``name``): columns and values only,
    read by pyarrow (no pickled objects); also how the originals of a loaded Parquet file are read again."""
    label = name or ("upload.parquet" if isinstance(source, (bytes, bytearray)) else Path(source).name)
    try:
        frame = pd.read_parquet(io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray)) else source,
                                engine="pyarrow")
    except Exception as err:  # pyarrow's ArrowInvalid and OSError for a damaged or foreign file
        raise InfluenceError(f"cannot read '{label}' as Parquet: {str(err).splitlines()[0][:200]}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    _refuse_duplicate_names(list(frame.columns), label)
    if len(frame) == 0:
        raise InfluenceError(f"'{label}' has columns but no data rows")
    return frame.reset_index(drop=True)


def _refuse_duplicate_names(names: list[str], label: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InfluenceError(f"'{label}' has two columns named '{name}' (spaces around names are ignored); rename one")
        seen.add(name)


def default_label_column(frame: pd.DataFrame, label: str) -> str:
    """The label column when none is named: the one column called label, y, target or class (any case), else the
    last column."""
    found = [c for c in frame.columns if c.lower() in DEFAULT_LABEL_NAMES]
    if len(found) > 1:
        raise InfluenceError(f"'{label}' has several columns that could be the label ({', '.join(found)}); name the label column")
    if len(frame.columns) < 2:
        raise InfluenceError(f"'{label}' has one column only ('{frame.columns[0]}'); it needs a label column and features")
    return found[0] if found else str(frame.columns[-1])


def split_assignment(frame: pd.DataFrame, label_column: str) -> np.ndarray | None:
    """Each row's split from a ``split`` column holding only train / val / test (any case, spaces trimmed), or None
    when there is no such column (a ``split`` column with other values stays a feature)."""
    if SPLIT_COLUMN not in frame.columns or label_column == SPLIT_COLUMN:
        return None
    values = frame[SPLIT_COLUMN].astype("string").str.strip().str.lower()
    if values.isna().any() or not set(values.unique()) <= {"train", "val", "test"}:
        return None
    return values.to_numpy(dtype=object)


def readable_features(features: pd.DataFrame, notes: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The feature columns as the encoder should see them, and the free-text columns left out: numbers written with
    thousands separators ("1,037") read as numbers, not one category each; a text column (mostly distinct values of
    `TEXT_MIN_WORDS` words or more) left out when text columns were declined (``text_columns=[]``). ``notes`` gets
    a line for each change."""
    converted, text_columns = {}, []
    for col in features.columns:
        values = features[col]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        text = values.dropna().astype(str).str.strip()
        if len(text) == 0:
            continue
        if text.str.fullmatch(GROUPED_NUMBER).all() and text.str.contains(",", regex=False).any():
            converted[col] = pd.to_numeric(values.astype("string").str.strip().str.replace(",", "", regex=False)).astype(float)
            notes.append(f"column '{col}': thousands separators read as numbers")
        elif detect_text_columns(features[[col]]):
            text_columns.append(col)
            notes.append(f"column '{col}' looks like free text; it was left out (not named as a text column)")
    return features.drop(columns=text_columns).assign(**converted), text_columns


@register_path_loader(".csv", ".parquet")
def load_csv(path: str, label_column: str | None = None, sensitive_column: str | None = None, seed: int = 0,
             val_fraction: float = 0.2, test_fraction: float = 0.2, missing: str = "impute",
             sensitive_threshold: float | None = None, drop_sensitive: bool = False,
             on_disk: bool | None = None, text_columns: list[str] | None = None,
             feature_columns: list[str] | None = None, perturbed_column: str | None = None,
             tokenizer_folder: str | None = None, max_tokens: int = 128, twin_terms: str | None = "builtin",
             ngram_max: int | None = None, min_df: int | None = None, max_features: int | None = None,
             annotator_columns: list[str] | None = None) -> Dataset:
    """A CSV table: ``label_column`` is the class (default: the one column named label, y, target or class, else
    the last column; see `default_label_column`).

    Other columns are features (numeric standardised, others one-hot, fitted on train; missing values handled as
    ``missing`` says, see `influence_core.data.tabular`). Test then validation are carved with ``seed``.
    ``on_disk``: read the encoded features from disk a batch at a time (None = when over 256 MiB). A column named
    ``split`` holding only train / val / test (as the cleaned export writes it) assigns the splits instead; a column
    ``original_index`` (the cleaned export's link back to its source) stays in the file but is not a feature.
    What is read differently from the cells (thousands separators, labels "1" and "1.0", a free-text column left
    out; see `readable_features`) is listed in ``meta["conversions"]``, one line each, for the page to state.

    Text (issue 18): ``text_columns`` named, or else the free-text columns found (`text.detect_text_columns`), make
    a text data set (TF-IDF features, see `influence_core.data.text`); ``text_columns=[]`` reads the table without
    them. The other columns stay features (``feature_columns`` chooses which; ``[]`` = text only);
    ``perturbed_column`` holds each row's counterfactual text (kept out of the features). ``tokenizer_folder`` (a
    Hugging Face model's folder or hub id; server-side): the text becomes that tokenizer's ids, ``max_tokens`` long
    (the "hf" featurizer, for ``hf:`` models). Without a ``perturbed_column``, ``twin_terms`` makes the twins by
    word swaps (`perturb.perturber_for`: "builtin", None = no twins, or the contents of a term list).
    ``ngram_max`` / ``min_df`` / ``max_features``: the TF-IDF settings (`text.TfidfSettings`; None = its default).

    Several annotators (issue 20 §4): ``annotator_columns`` are further label columns of the file (one person's
    labels each, empty cells allowed), kept out of the features and read as ``Dataset.annotators``.
    """
    path = Path(path)
    check_upload_size(path)
    reader = "parquet" if path.suffix.lower() == ".parquet" else "csv"  # a Parquet table loads as a CSV does
    frame = _read_parquet(path) if reader == "parquet" else _read_csv(path)
    if label_column is None:
        label_column = default_label_column(frame, path.name)
    for role, col in (("label", label_column), ("sensitive", sensitive_column), ("perturbed", perturbed_column)):
        if col is not None and col not in frame.columns:
            raise InfluenceError(f"no {role} column '{col}' in '{path.name}'; the columns are: {_columns(frame)}")
    used_as = {"the sensitive attribute": [sensitive_column], "a text column": list(text_columns or []),
               "the perturbed column": [perturbed_column], "a feature": list(feature_columns or [])}
    for role, columns in used_as.items():  # the label among the inputs: the model would read the answer
        if label_column in columns:
            raise InfluenceError(f"the column '{shown_name(label_column)}' is the label column; it cannot also be {role}")
    for role, columns in (("a text column", used_as["a text column"]), ("a feature", used_as["a feature"])):
        if perturbed_column is not None and perturbed_column in columns:  # the twin text is no input of the model
            raise InfluenceError(f"the column '{shown_name(perturbed_column)}' is the perturbed column; it cannot also be {role}")
    annotator_columns = check_annotator_columns(frame, annotator_columns, {"label": label_column,
                                                                           "sensitive": sensitive_column}, path.name)
    notes: list[str] = []  # conversions the page states (meta["conversions"])
    if frame.attrs.get("encoding"):
        notes.append(f"read as {frame.attrs['encoding']} (the file is not UTF-8)")
    y, classes = encode_labels(frame[label_column], label_column, notes=notes)
    annotators = annotator_matrix(frame, annotator_columns, classes) if annotator_columns else None
    file_columns = [str(c) for c in frame.columns]
    frame = frame.drop(columns=annotator_columns)  # labels, not features
    s, s_name = (None, None)
    if sensitive_column is not None:
        s, s_name = binarise_sensitive(frame[sensitive_column], sensitive_column, sensitive_threshold)
    drop = [label_column] + ([sensitive_column] if drop_sensitive and sensitive_column else [])
    assigned = split_assignment(frame, label_column)
    if assigned is not None:
        drop.append(SPLIT_COLUMN)
    if ORIGINAL_INDEX_COLUMN in frame.columns and ORIGINAL_INDEX_COLUMN not in drop:
        drop.append(ORIGINAL_INDEX_COLUMN)  # a cleaned export's row ids: kept in the file, not learnt from
    if text_columns is None:
        text_columns = detect_text_columns(frame.drop(columns=drop + ([perturbed_column] if perturbed_column else [])))
    if text_columns:
        return _with_annotators(_load_text_csv(path, frame, label_column, list(text_columns), drop, feature_columns, sensitive_column,
                              perturbed_column, assigned, notes, seed=seed, val_fraction=val_fraction,
                              test_fraction=test_fraction, on_disk=on_disk,
                              perturber=None if perturbed_column else perturber_for(twin_terms),
                              **({"features": "hf", "featurizer_settings": {"model": tokenizer_folder, "max_tokens": max_tokens}}
                                 if tokenizer_folder else {"tfidf": tfidf_settings(ngram_max, min_df, max_features)})),
                           annotators, annotator_columns)
    features, text_columns = readable_features(frame.drop(columns=drop), notes)
    if features.shape[1] == 0:
        why = ""
        if text_columns:
            names = ", ".join(f"'{c}'" for c in text_columns)
            why = f": column {names} looks" if len(text_columns) == 1 else f": columns {names} look"
            why += " like free text (name it as a text column)"
        raise InfluenceError(f"'{path.name}' has no feature columns besides the label '{label_column}'{why}")
    originals = {"label_column": label_column, "tables": {"train": table_spec(reader, path, len(frame))}}
    dataset = encode_tabular(path.stem, features, y, s, classes, test_fraction=test_fraction, val_fraction=val_fraction,
                             seed=seed, sensitive_name=s_name, missing=missing, on_disk=on_disk, assigned=assigned,
                             meta={"source": str(path), "label_column": label_column, "sensitive_column": sensitive_column,
                                   "originals": originals, "conversions": notes,
                                   "columns": file_columns})
    return _with_annotators(dataset, annotators, annotator_columns)


def _with_annotators(dataset: Dataset, annotators: np.ndarray | None, names: list[str]) -> Dataset:
    """``dataset`` with the annotators' labels of its training rows (`source_index` = the file's rows), if any."""
    if annotators is not None:
        dataset.annotators = annotators[dataset.source_index.numpy()]
        dataset.annotator_names = list(names)
        dataset.meta["annotator_columns"] = list(names)
    return dataset


_IDENTIFIER_NAME = re.compile(r"(^|[_\s-])(id|uuid|guid|index|key)$", re.IGNORECASE)


def identifier_columns(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """The ``columns`` that identify rows rather than describe them: every value distinct, and either named like an
    id (``id``, ``review_id``, ``uuid``, ``index``) or whole numbers counting up by one (a row number). As a feature
    one would let a model tell the samples apart by their number."""
    found = []
    for c in columns:
        values = frame[c]
        if len(values) < 2 or values.isna().any() or values.nunique() != len(values):
            continue
        counter = pd.api.types.is_integer_dtype(values) and bool((np.diff(values.to_numpy()) == 1).all())
        if counter or _IDENTIFIER_NAME.search(str(c)):
            found.append(c)
    return found


# ------------------------------------------------------------------------------------------- image zip
def _load_text_csv(path: Path, frame: pd.DataFrame, label_column: str, text_columns: list[str], drop: list[str],
                   feature_columns: list[str] | None, sensitive_column: str | None, perturbed_column: str | None,
                   assigned: np.ndarray | None, notes: list[str], **settings) -> Dataset:
    """`load_csv` of a table with text columns: the rows of each split (by the split column, else carved) to
    `text_dataset`; source positions are the file's rows, as for tables."""
    for col in text_columns + ([perturbed_column] if perturbed_column else []) + list(feature_columns or []):
        if col not in frame.columns:
            raise InfluenceError(f"no column '{col}' in '{path.name}'; the columns are: {_columns(frame)}")
    if feature_columns is None:
        taken = set(drop) | set(text_columns) | {perturbed_column}
        feature_columns = [c for c in frame.columns if c not in taken]
        ids = identifier_columns(frame, feature_columns)
        if ids:
            feature_columns = [c for c in feature_columns if c not in ids]
            notes.append(f"{', '.join(map(repr, ids))} look{'s' if len(ids) == 1 else ''} like an identifier (a "
                         "distinct value per row): not a feature unless chosen")
    kept, _ = readable_features(frame[list(feature_columns)], notes)  # numbers with separators; other text left out
    frame, feature_columns = frame.assign(**{c: kept[c] for c in kept.columns}), list(kept.columns)
    frames = {"train": frame, "val": None, "test": None}
    if assigned is not None:
        frames = {s: frame[assigned == s] for s in ("train", "val", "test")}
        frames.update({s: None for s in ("val", "test") if len(frames[s]) == 0})
        if len(frames["train"]) == 0:
            raise InfluenceError("the split column marks no row as train")
    notes.append(f"text column{'s' if len(text_columns) > 1 else ''} {', '.join(map(repr, text_columns))}: "
                 "TF-IDF features" + (f", with {len(feature_columns)} other column(s)" if feature_columns else ""))
    originals = {"label_column": label_column,
                 "tables": {"train": table_spec("parquet" if path.suffix.lower() == ".parquet" else "csv", path, len(frame))}}
    return text_dataset(frames["train"], frames["val"], frames["test"], text_columns=text_columns,
                        label_column=label_column, sensitive_column=sensitive_column, perturbed_column=perturbed_column,
                        feature_columns=feature_columns, name=path.stem,
                        meta={"source": str(path), "originals": originals, "conversions": notes,
                              "columns": [str(c) for c in frame.columns]}, **settings)


def _unsafe(name: str) -> bool:
    """True when a member name could escape the extraction folder (absolute, drive letter, or '..')."""
    norm = name.replace("\\", "/")
    return norm.startswith("/") or bool(re.match(r"^[A-Za-z]:", norm)) or ".." in PurePosixPath(norm).parts


def _open_zip(source, label: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise InfluenceError(f"'{label}' is not a valid zip file") from None


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


class ZipLayout(NamedTuple):
    members: list[zipfile.ZipInfo]  # images, sorted by path
    classes: list[str]  # class (folder) name of each image
    splits: list[str] | None  # "train" / "val" / "test" of each image, None for a class-folder zip
    names: list[str] | None = None  # each image's path below its class folder ("1.png", "sub/2.png")


def image_layout(members: list[zipfile.ZipInfo], label: str) -> ZipLayout:
    """Classes (and split folders, when used) of the images; refuses a layout that cannot be meant."""
    members = sorted(members, key=lambda m: m.filename)
    parts = [PurePosixPath(m.filename.replace("\\", "/")).parts for m in members]
    # One wrapping folder (photos/cat/1.png, photos/train/cat/1.png) is dropped: zipping a folder or its contents both work.
    if parts and len({p[0] for p in parts}) == 1 and parts[0][0].lower() not in SPLIT_FOLDERS and all(len(p) >= 3 for p in parts):
        parts = [p[1:] for p in parts]
    tops = {p[0] for p in parts if len(p) >= 2}
    split_tops = sorted(t for t in tops if t.lower() in SPLIT_FOLDERS)
    if not split_tops:
        loose = [m.filename for m, p in zip(members, parts) if len(p) < 2]
        if loose:
            raise InfluenceError(f"images must sit in class folders (class_name/file.png); '{loose[0]}' in '{label}' does not")
        return ZipLayout(members, [p[0] for p in parts], None, ["/".join(p[1:]) for p in parts])
    others = sorted(tops - set(split_tops)) + [m.filename for m, p in zip(members, parts) if len(p) < 2]
    if others:
        raise InfluenceError(f"'{label}' mixes split folders ({', '.join(split_tops)}) with other folders or files ('{others[0]}'); "
                             "use class_name/file.png, or train/<class>/file.png with optional val/ and test/")
    mapped = [SPLIT_FOLDERS[t.lower()] for t in split_tops]
    if len(set(mapped)) != len(mapped):
        raise InfluenceError(f"'{label}' has two folders for the same split ({', '.join(split_tops)})")
    if "train" not in mapped:
        raise InfluenceError(f"'{label}' has {' and '.join(f'{t}/' for t in split_tops)} but no train/ folder")
    flat = [m.filename for m, p in zip(members, parts) if len(p) < 3]
    if flat:
        raise InfluenceError(f"images in split folders must sit in class folders (train/<class>/file.png); "
                             f"'{flat[0]}' in '{label}' does not")
    splits = [SPLIT_FOLDERS[p[0].lower()] for p in parts]
    classes = [p[1] for p in parts]
    train_classes = {c for c, s in zip(classes, splits) if s == "train"}
    extra = sorted({c for c, s in zip(classes, splits) if s != "train"} - train_classes)
    if extra:
        raise InfluenceError(f"class '{extra[0]}' of '{label}' has images in val/ or test/ but none in train/")
    return ZipLayout(members, classes, splits, ["/".join(p[2:]) for p in parts])


def _clean_reason(err: Exception) -> str:
    """PIL's message without the repr of our in-memory file ('<_io.BytesIO object at 0x…>')."""
    text = re.sub(r"\s*<[^<>]* at 0x[0-9A-Fa-f]+>", "", str(err).splitlines()[0] if str(err) else "").strip()
    return text or type(err).__name__


def _open_image(data: bytes, name: str, label: str):
    """The image, opened lazily (only the header is read), after the per-image pixel cap."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise InfluenceError(f"image '{name}' in '{label}' has more than {MAX_IMAGE_PIXELS:,} pixels, the limit per image") from None
    except Exception as err:  # noqa: BLE001 - PIL raises many types for broken files
        raise InfluenceError(f"cannot read image '{name}' in '{label}': {_clean_reason(err)}") from None
    if img.width * img.height > MAX_IMAGE_PIXELS:
        img.close()
        raise InfluenceError(f"image '{name}' in '{label}' is {img.width}x{img.height} pixels; the limit is "
                             f"{MAX_IMAGE_PIXELS:,} pixels per image (e.g. {int(MAX_IMAGE_PIXELS ** 0.5)}x{int(MAX_IMAGE_PIXELS ** 0.5)})")
    return img


def scan_image_zip(archive: zipfile.ZipFile, label: str) -> ZipLayout:
    """Everything about an image zip that can be checked without decoding pixels: zip-slip and zip bombs, the
    layout, the class count, and every image's header (readable, within `MAX_IMAGE_PIXELS`, all together within
    `MAX_TOTAL_PIXELS`)."""
    members = safe_image_members(archive, label)
    if not members:
        raise InfluenceError(f"no images found in '{label}' (expected class_name/file.png)")
    if len(members) > MAX_IMAGES:
        raise InfluenceError(f"'{label}' holds {len(members):,} images; the limit is {MAX_IMAGES:,} per zip")
    layout = image_layout(members, label)
    train = [c for c, s in zip(layout.classes, layout.splits or ["train"] * len(layout.classes)) if s == "train"]
    classes = sorted(set(train))
    if len(classes) < 2:
        raise InfluenceError(f"'{label}' has one class only ('{classes[0]}'); a classifier needs at least two class folders")
    if len(classes) > MAX_CLASSES:
        raise InfluenceError(f"'{label}' has {len(classes)} class folders; the limit is {MAX_CLASSES}")
    total = 0
    for m in layout.members:
        with _open_image(archive.read(m), m.filename, label) as img:
            total += img.width * img.height
        if total > MAX_TOTAL_PIXELS:
            raise InfluenceError(f"the images in '{label}' have more than {MAX_TOTAL_PIXELS:,} pixels together (at '{m.filename}'); "
                                 "resize them or upload fewer")
    return layout


def _decode(data: bytes, name: str, label: str, size: int) -> np.ndarray:
    from PIL import Image

    img = _open_image(data, name, label)
    try:
        with img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when it can
            rgb = img.convert("RGB").resize((size, size), Image.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except Exception as err:  # noqa: BLE001 - PIL raises many types for broken files
        raise InfluenceError(f"cannot read image '{name}' in '{label}': {_clean_reason(err)}") from None


IMAGES_FROM_SCRATCH = 32  # an image zip's default side without a backbone: the small CNN trains fast at it


@register_path_loader(".zip")
def load_image_zip(path: str, image_size: int | None = None, seed: int = 0, val_fraction: float = 0.1,
                   test_fraction: float = 0.2, on_disk: bool | None = None, backbone: str | None = None,
                   backbone_weights: str = "random", backbone_weights_file: str | None = None) -> Dataset:
    """Images in a zip (see the module docstring for the layouts): classes are the folder names (sorted), images
    resized to ``image_size``² RGB and normalised per channel with training statistics. Without split folders, test
    and validation are carved with ``seed``; with them, a missing val/ or test/ is carved from train/.

    ``image_size``: None = the backbone's own input size (224 for ImageNet weights), else 32; at most the server's
    ``max_image_size``. ``backbone`` (e.g. "resnet18", see `models.backbones`): the returned features are that frozen
    network's embeddings (computed once and stored, `embed_dataset`) with ``backbone_weights`` (a name: "random",
    torchvision's "IMAGENET1K_V1", or one of the server's files); ``backbone_weights_file``: a local file instead
    (CLI and library only). The images stay with the data set for the Review cards and exports.

    ``source_index`` indexes ``meta["files"]`` (all images, sorted by path); ``meta["splits"]`` says how the splits
    were made ("folders" or "carved"); ``meta["originals"]`` records the zip and each image's name below its class
    folder, for exports that keep the original files. ``on_disk``: keep the decoded images on disk as uint8, decoded
    and written a batch at a time and read a batch at a time (None = from 10,000 training images or 256 MiB of pixels).
    """
    if image_size is None:
        image_size = _image_embedder("input_size")(backbone, backbone_weights) if backbone else IMAGES_FROM_SCRATCH
    check_image_size(image_size)
    dataset = _load_images(Path(path), int(image_size), seed, val_fraction, test_fraction, on_disk)
    if not backbone:
        return dataset
    return _image_embedder("embed")(dataset, backbone, backbone_weights or "random", backbone_weights_file)


# The frozen-backbone embedding of image zips, registered by models/backbones.py: data/ sits below models/ and never
# imports it (input_size(backbone, weights) -> int; embed(dataset, backbone, weights, weights_file) -> Dataset).
IMAGE_EMBEDDER: dict[str, Callable] = {}


def register_image_embedder(input_size: Callable, embed: Callable) -> None:
    IMAGE_EMBEDDER.update(input_size=input_size, embed=embed)


def _image_embedder(part: str) -> Callable:
    if part not in IMAGE_EMBEDDER:
        raise InfluenceError("pretrained backbones are not available here (influence_core.models is not loaded)")
    return IMAGE_EMBEDDER[part]


def check_image_size(size) -> None:
    """Refuse an image size that is not a whole number from 8 to the server's ``max_image_size``."""
    from ..server_config import server_config

    cap = server_config().max_image_size
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 8 <= size <= cap:
        raise InfluenceError(f"image size must be a whole number from 8 to {cap} (this server's cap), not {str(size)[:20]}")


def _load_images(path: Path, image_size: int, seed: int, val_fraction: float, test_fraction: float,
                 on_disk: bool | None) -> Dataset:
    check_upload_size(path)
    with _open_zip(path, path.name) as archive:
        layout = scan_image_zip(archive, path.name)
        splits = np.asarray(layout.splits) if layout.splits is not None else None
        classes = sorted(set(layout.classes) if splits is None else {c for c, s in zip(layout.classes, splits) if s == "train"})
        y = np.searchsorted(classes, layout.classes).astype(np.int64)
        shape = (len(layout.members), image_size, image_size, 3)
        if on_disk is None:
            try:
                n_train = len(_split_rows(y, splits, seed, val_fraction, test_fraction)[0])
            except InfluenceError:  # too few images to carve: said after decoding, as an unreadable image comes first
                n_train = 0
            on_disk = n_train >= IMAGES_ON_DISK_FROM or int(np.prod(shape)) > FEATURES_ON_DISK_BYTES

        # In order, by the server's decode workers (data/image_decode.py); at most a batch of images in memory.
        chunks = decoded_chunks(archive, layout.members, partial(_decode, label=path.name, size=image_size),
                                DECODE_BATCH)
        if on_disk:  # written as decoded
            stored = stream_images(f"{path.stem}-train", chunks, shape)
        else:
            pixels = np.concatenate(list(chunks))
    tr, va, te = _split_rows(y, splits, seed, val_fraction, test_fraction)
    if on_disk:
        (x_tr, x_va, x_te), mean, std = image_views([(stored, tr), (stored, va), (stored, te)])
    else:
        (x_tr, x_va, x_te), mean, std = normalise_images(pixels[tr], pixels[va], pixels[te])
    meta = {"source": str(path), "files": [m.filename for m in layout.members], "image_size": image_size, "seed": seed,
            "splits": "carved" if splits is None else "folders",
            "pixel_mean": mean, "pixel_std": std, "val_source_index": va.tolist(), "test_source_index": te.tolist(),
            "originals": {"zip": file_spec(path), "names": list(layout.names or [])}}
    return Dataset(
        name=path.stem, train=Split(x_tr, torch.from_numpy(y[tr])), val=Split(x_va, torch.from_numpy(y[va])),
        test=Split(x_te, torch.from_numpy(y[te])), classes=classes, kind="image",
        source_index=torch.from_numpy(tr.astype(np.int64)), meta=meta,
    )


def _split_rows(y: np.ndarray, splits: np.ndarray | None, seed: int, val_fraction: float, test_fraction: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / validation / test positions: the zip's split folders, a missing one carved with ``seed``."""
    if splits is None:
        rest, te = carve_indices(len(y), test_fraction, seed, labels=y)
        tr_pos, va_pos = carve_indices(len(rest), val_fraction, seed + 1, labels=y[rest])
        return rest[tr_pos], rest[va_pos], te
    tr, va, te = (np.flatnonzero(splits == s) for s in ("train", "val", "test"))
    if len(te) == 0:
        keep, cut = carve_indices(len(tr), test_fraction, seed, labels=y[tr])
        tr, te = tr[keep], tr[cut]
    if len(va) == 0:
        keep, cut = carve_indices(len(tr), val_fraction, seed + 1, labels=y[tr])
        tr, va = tr[keep], tr[cut]
    return tr, va, te
