"""The way back from a data set's rows to what they were in its source: a table's cells as the CSV (or the raw UCI
file) holds them, an uploaded image's file name. The Review page shows these, and the exports write them.

Tabular loaders do not keep a second copy of the data in memory: they record in ``meta["originals"]`` how to read
the source table again (a reader registered here, the file, its options, and the file's size and time stamp), and
the table is re-read on demand. The last few tables read are cached, their text columns stored as categories.
A source file that changed or went away since the data set was loaded is an `InfluenceError`, never silently
other values. Data sets generated in memory (moons, blobs) have no other values than the ones they hold.

``meta["originals"]`` is plain JSON:
``{"label_column": str, "tables": {"train": spec, "test": spec}}`` (tabular; validation rows sit in the "train"
table, test rows in "test" when the source has its own test file), or ``{"zip": file spec, "names": [...]}``
(image zips: each image's path below its class folder). A spec is ``{"reader", "path", "options", "rows",
"size", "mtime_ns"}``; a file spec has only the last three.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import InfluenceError
from ..memo import MEMORY
from .base import Dataset

SPLITS = ("train", "val", "test")
INTEGRAL_TEXT = re.compile(r"^([+-]?\d+)\.0+$")  # a label written "1.0": class "1", as the number 1.0 is
SPLIT_COLUMN = "split"  # a table column of train / val / test: the cleaned export writes it, the CSV loader honours it
ORIGINAL_INDEX_COLUMN = "original_index"  # the cleaned export's link back to the source rows; never a feature on load
# name -> reader(path, **options) returning the whole raw table the loader encoded (the same call the loader makes).
TABLE_READERS: dict[str, Callable[..., pd.DataFrame]] = {}


def register_table_reader(name: str) -> Callable[[Callable[..., pd.DataFrame]], Callable[..., pd.DataFrame]]:
    """Register ``fn(path, **options) -> DataFrame`` as the reader that ``meta["originals"]`` names ``name``."""
    def deco(fn: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
        TABLE_READERS[name] = fn
        return fn

    return deco


def file_spec(path: str | os.PathLike) -> dict:
    """Where a source file is and how it looked when loaded (size, modification time), to notice a later change."""
    p = Path(path).expanduser().resolve()
    st = p.stat()
    return {"path": str(p), "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def table_spec(reader: str, path: str | os.PathLike, rows: int, **options) -> dict:
    """How to read a source table again: `file_spec` plus the registered ``reader``, its ``options`` and the
    number of ``rows`` it gave."""
    if reader not in TABLE_READERS:
        raise InfluenceError(f"no table reader named '{reader}'")
    return {"reader": reader, **file_spec(path), "options": dict(options), "rows": int(rows)}


def relocate(dataset: Dataset, old: str | os.PathLike, new: str | os.PathLike) -> None:
    """Point the dataset's recorded source files at ``new`` where they were at ``old`` (a file moved after loading,
    as `save_upload` moves an accepted upload out of its staging folder)."""
    info = dataset.meta.get("originals")
    if not isinstance(info, dict):
        return
    old_p, new_p = str(Path(old).expanduser().resolve()), str(Path(new).expanduser().resolve())
    specs = list((info.get("tables") or {}).values()) + ([info["zip"]] if "zip" in info else [])
    for spec in specs:
        if spec.get("path") == old_p:
            spec["path"] = new_p


def check_file(spec: dict, dataset_name: str) -> Path:
    """The recorded source file, after checking it is still there and unchanged."""
    path = Path(spec["path"])
    try:
        st = path.stat()
    except OSError:
        raise InfluenceError(f"the source file of '{dataset_name}' is gone ({path}); load the data set again") from None
    if (int(st.st_size), int(st.st_mtime_ns)) != (spec["size"], spec["mtime_ns"]):
        raise InfluenceError(f"the source file of '{dataset_name}' ({path.name}) changed after the data set was loaded; "
                             "load the data set again so rows and values match")
    return path


def _compact(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns with repeated values as categories (the cached copy takes a fraction of the memory)."""
    out = frame.copy()
    for col in out.columns:
        s = out[col]
        if (s.dtype == object or pd.api.types.is_string_dtype(s)) and len(s) and s.nunique(dropna=True) <= len(s) // 2:
            try:
                out[col] = s.astype("category")
            except (TypeError, ValueError):  # values that cannot be categories stay as they are
                pass
    return out


def _read_cached(reader: str, path: str, options_json: str, size: int, mtime_ns: int) -> pd.DataFrame:
    """The table, from the store's memory layer (keyed by the file's size and time, so an edited file is read again)."""
    return MEMORY.get("tables", json.dumps([reader, path, options_json, size, mtime_ns]),
                      lambda: _compact(TABLE_READERS[reader](path, **json.loads(options_json))))


def source_table(dataset: Dataset, table: str = "train") -> pd.DataFrame:
    """The whole raw table ``table`` ("train" or "test") of a tabular data set, read again from its source file
    (cached; do not modify it). Text columns may be categories."""
    info = dataset.meta.get("originals") or {}
    spec = (info.get("tables") or {}).get(table)
    if spec is None:
        raise InfluenceError(f"'{dataset.name}' keeps no way back to a source table '{table}'")
    if spec["reader"] not in TABLE_READERS:
        raise InfluenceError(f"'{dataset.name}' was read by '{spec['reader']}', which is not available here")
    check_file(spec, dataset.name)
    frame = _read_cached(spec["reader"], spec["path"], json.dumps(spec["options"], sort_keys=True), spec["size"],
                         spec["mtime_ns"])
    if len(frame) != spec["rows"]:
        raise InfluenceError(f"reading the source of '{dataset.name}' again gave {len(frame):,} rows, not {spec['rows']:,}; "
                             "load the data set again")
    return frame


def source_rows(dataset: Dataset, split: str = "train") -> np.ndarray:
    """For each row of ``split``, its position in the source (the ``index`` the exports write): the training rows'
    ``source_index``, ``meta["val_source_index"]`` / ``meta["test_source_index"]``, else the split's own positions."""
    if split not in SPLITS:
        raise InfluenceError(f"split must be train, val or test, not '{split}'")
    n = len(getattr(dataset, split))
    if split == "train":
        src = dataset.source_index.numpy() if dataset.source_index is not None else None
    else:
        src = dataset.meta.get(f"{split}_source_index")
    src = np.arange(n, dtype=np.int64) if src is None else np.asarray(src, dtype=np.int64)
    if len(src) != n:
        raise InfluenceError(f"'{dataset.name}' records {len(src)} source positions for its {n} {split} rows")
    return src


def label_column(dataset: Dataset) -> str:
    """The column of `original_rows` that holds the label: the source's label column, else "label" (with "_"
    appended while a feature has that name)."""
    info = dataset.meta.get("originals") or {}
    if info.get("label_column"):
        return str(info["label_column"])
    column, taken = "label", set(dataset.feature_names or ())
    while column in taken:
        column += "_"
    return column


def _class_name(value) -> str:
    """The class name a raw label value has (the rule of `uploads.encode_labels`)."""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return INTEGRAL_TEXT.sub(r"\1", str(value).strip())


def label_values(dataset: Dataset) -> list:
    """For each class, the label value the source writes for it (e.g. 3 for class "3", ">50K" for ">50K"), so an
    exported label column keeps the source's type; the class name where the source shows no such value."""
    info = dataset.meta.get("originals") or {}
    if dataset.kind != "tabular" or "tables" not in info:
        return list(dataset.classes)
    column = label_column(dataset)
    seen: dict[str, object] = {}
    for name in ("train", "test"):
        if name in info["tables"]:
            table = source_table(dataset, name)
            if column in table.columns:
                for v in pd.unique(table[column].dropna()):
                    seen.setdefault(_class_name(v), v.item() if isinstance(v, np.generic) else v)
    return [seen.get(c, c) for c in dataset.classes]


def _plain_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories (of the cached copy) back to the column type the reader gave."""
    cats = {c: frame[c].cat.categories.dtype for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}
    return frame.astype(cats) if cats else frame


def original_rows(dataset: Dataset, rows, split: str = "train") -> pd.DataFrame:
    """The given rows (positions in ``split``) as the source holds them, indexed by their source position ("index").

    Tabular: every column of the source table (features, label and sensitive columns as in the file; missing cells
    missing, not imputed); data sets generated in memory give their features as held and the class name as
    "label". Images: the file name in the uploaded zip ("file") where there is one, else the index alone.
    """
    if split not in SPLITS:
        raise InfluenceError(f"split must be train, val or test, not '{split}'")
    n = len(getattr(dataset, split))
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        bad = int(rows[(rows < 0) | (rows >= n)][0])
        raise InfluenceError(f"row {bad} is outside the {split} split of '{dataset.name}' (0..{n - 1})")
    src = source_rows(dataset, split)[rows]
    index = pd.Index(src, name="index")
    info = dataset.meta.get("originals") or {}
    if dataset.kind == "image":
        frame = pd.DataFrame(index=index)
        files = dataset.meta.get("files")
        if files is not None:
            frame["file"] = [str(files[i]) for i in src]
        return frame
    if "tables" not in info:  # generated in memory: the values it holds are the only ones
        part = getattr(dataset, split)
        names = dataset.feature_names or [f"x{i}" for i in range(part.feature_shape[0])]
        frame = pd.DataFrame(part.rows(rows).numpy(), columns=names, index=index)
        frame[label_column(dataset)] = [dataset.classes[int(c)] for c in part.y[rows]]
        return frame
    table = source_table(dataset, "test" if split == "test" and "test" in info["tables"] else "train")
    if src.size and src.max() >= len(table):
        raise InfluenceError(f"the rows of '{dataset.name}' do not fit its source table; load the data set again")
    frame = _plain_columns(table.iloc[src])
    frame.index = index
    return frame
