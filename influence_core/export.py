"""Exports of reviewed decisions: a corrections table (CSV / Parquet), the cleaned data set a user loads next (a
table with the source's own values, or an ImageFolder zip with the original image files), a CIFAR-N label file and
a JSON manifest that says what produced them. Scores in the table: lower = more detrimental.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import time
import zipfile
from pathlib import Path
from typing import BinaryIO, Mapping, NamedTuple

import numpy as np
import pandas as pd
import torch

from .data.base import Dataset
from .data.originals import ORIGINAL_INDEX_COLUMN, SPLIT_COLUMN, SPLITS, check_file, label_column, label_values, original_rows, source_rows
from .errors import InfluenceError
from .review import ACTIONS, Decision


def final_labels(dataset: Dataset, decisions: Mapping[int, Decision]) -> tuple[np.ndarray, np.ndarray]:
    """(final label per training row, kept mask): relabels applied, removed rows marked not kept."""
    labels = dataset.train.y.numpy().copy()
    kept = np.ones(len(labels), dtype=bool)
    for row, d in decisions.items():
        if d.action == "relabel":
            if not 0 <= d.new_label < dataset.num_classes:
                raise InfluenceError(f"sample {row} was relabelled to {d.new_label}, outside 0..{dataset.num_classes - 1}")
            labels[row] = d.new_label
        elif d.action == "remove":
            kept[row] = False
    return labels, kept


def source_index(dataset: Dataset) -> np.ndarray:
    """Each training row's index in the original data (the sample id shown everywhere): `originals.source_rows`."""
    return source_rows(dataset, "train")


def corrections_table(dataset: Dataset, decisions: Mapping[int, Decision], scores: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per decided sample: index (in the original data), row (in the training split), the file in the
    uploaded zip (images with files) or the text (text data: its columns joined as the model reads them), given and
    final label (number and class name), action, each method's score (lower = more detrimental), who and when."""
    rows = sorted(decisions)
    labels, _ = final_labels(dataset, decisions)
    given = dataset.train.y.numpy()
    frame = pd.DataFrame({
        "index": source_index(dataset)[rows].astype(np.int64),
        "row": np.asarray(rows, dtype=np.int64),
        **({"file": original_rows(dataset, rows)["file"].tolist()} if dataset.meta.get("files") is not None else {}),
        **({"text": [dataset.texts["train"][r] for r in rows]} if dataset.texts is not None else {}),
        "given_label": given[rows].astype(np.int64),
        "given_class": [dataset.classes[given[r]] for r in rows],
        "final_label": [int(labels[r]) if decisions[r].action != "remove" else -1 for r in rows],
        "final_class": [dataset.classes[labels[r]] if decisions[r].action != "remove" else "" for r in rows],
        "action": [decisions[r].action for r in rows],
    })
    for name, s in scores.items():
        # ASCII headers for any spreadsheet or parser: "ip·counterfactual" → "score_ip.counterfactual"
        frame[f"score_{name}".replace("·", ".")] = np.asarray(s, dtype=np.float64)[rows] if rows else np.zeros(0)
    if dataset.noise_mask is not None:
        frame["known_noisy"] = dataset.noise_mask.numpy()[rows].astype(bool)
    frame["decided_by"] = [decisions[r].decided_by for r in rows]
    frame["decided_at"] = [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(decisions[r].decided_at)) for r in rows]
    return frame


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value):
    """A text cell that a spreadsheet would run as a formula (it starts with =, +, -, @, tab or carriage return)
    gets a leading apostrophe, as OWASP recommends against CSV injection; anything else is returned as it is
    (numbers such as -0.5 stay numbers)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with `neutralise_formula` applied to every text cell and column name."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object)
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutralise_formula)
    out.columns = [neutralise_formula(str(c)) for c in out.columns]
    return out


def table_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    """The table as CSV (text cells that would run as spreadsheet formulas neutralised, see `csv_safe`) or Parquet
    (raw values) bytes."""
    if fmt == "csv":
        return csv_safe(frame).to_csv(index=False).encode()
    if fmt == "parquet":
        buf = io.BytesIO()
        try:
            frame.to_parquet(buf, index=False)
        except (TypeError, ValueError) as err:  # pyarrow's errors subclass these: a column mixing types
            if not (mixed := _mixed_columns(frame)):
                raise InfluenceError(f"cannot write the table as Parquet: {str(err).splitlines()[0]}") from None
            buf = io.BytesIO()
            frame.assign(**{c: frame[c].map(lambda v: v if pd.isna(v) else str(v)) for c in mixed}).to_parquet(buf, index=False)
        return buf.getvalue()
    raise InfluenceError(f"unknown table format '{fmt}'; choose csv or parquet")


def _mixed_columns(frame: pd.DataFrame) -> list:
    """Object columns holding values of more than one type (a CSV column pandas read as numbers and text)."""
    return [c for c in frame.columns if frame[c].dtype == object and frame[c].dropna().map(type).nunique() > 1]


def cleaned_table(dataset: Dataset, decisions: Mapping[int, Decision], with_splits: bool = False) -> pd.DataFrame:
    """The cleaned data set of a tabular or text data set, to load next: every kept training row with its values as the
    source holds them (`original_rows`: not standardised, not one-hot, missing cells missing) and its final label
    (relabels applied, in the source's own label column and type); removed rows left out. Indexed by the original
    index, also written as the first column ``original_index`` (a re-uploaded file is numbered from 0; the loader
    keeps that column out of the features); a source that has the column already keeps its own (the first file's).

    ``with_splits``: the validation and test rows follow (as given), and a ``split`` column says train / val /
    test, which the CSV loader honours: retraining on the cleaned file keeps the same validation and test rows."""
    if dataset.kind not in ("tabular", "text"):
        raise InfluenceError("the cleaned table is for tabular data sets (and text); use the ImageFolder export for images")
    column = label_column(dataset)
    if with_splits and column == SPLIT_COLUMN:
        raise InfluenceError(f"the label column is named '{SPLIT_COLUMN}', the name of the split column; export "
                             "without the validation and test rows")
    labels, kept = final_labels(dataset, decisions)
    parts = [("train", np.flatnonzero(kept), labels)]
    if with_splits:
        parts += [(split, np.arange(len(getattr(dataset, split))), getattr(dataset, split).y.numpy())
                  for split in ("val", "test")]
    values = np.empty(dataset.num_classes, dtype=object)
    values[:] = label_values(dataset)
    frames = []
    for split, rows, given in parts:
        frame = original_rows(dataset, rows, split)
        frame[column] = pd.Series(values[given[rows]], index=frame.index, dtype=object).infer_objects()
        if with_splits:
            frame[SPLIT_COLUMN] = split
        if ORIGINAL_INDEX_COLUMN not in frame.columns:
            frame.insert(0, ORIGINAL_INDEX_COLUMN, frame.index.to_numpy(dtype=np.int64))
        frames.append(frame)
    return pd.concat(frames) if len(frames) > 1 else frames[0]


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def export_stem(dataset_name: str) -> str:
    """The stem of export file names for a data set: its name (an upload's own file name, without the storage
    digest older workspaces put in front), with characters unsafe in file names replaced."""
    stem = Path(str(dataset_name)).stem if Path(str(dataset_name)).suffix.lower() in (".csv", ".zip") else str(dataset_name)
    stem = re.sub(r"^[0-9a-f]{12}-", "", stem)
    stem = re.sub(r'[\x00-\x1f\x7f/\\:*?"<>|]+', "_", stem).strip(" ._")
    return stem or "dataset"


def safe_names(names: list[str]) -> list[str]:
    """Folder names that cannot leave the archive (no separators, no '..', no leading dots), unique."""
    out: list[str] = []
    for i, name in enumerate(names):
        clean = _UNSAFE.sub("_", str(name)).strip("._") or f"class_{i}"
        while clean in out:
            clean = f"{clean}_{i}"
        out.append(clean)
    return out


def images_uint8(dataset: Dataset, rows: np.ndarray | list[int], split: str = "train") -> np.ndarray:
    """Images of ``split`` at ``rows`` as N×H×W×C uint8 for display and export, reading only those rows (features
    on disk stay there): the data set's normalisation undone when it is recorded (``meta`` pixel_mean /
    pixel_std), else [0, 1] values as they are, else each image stretched to its own range."""
    if split not in SPLITS:
        raise InfluenceError(f"split must be train, val or test, not '{split}'")
    part = getattr(dataset, split)
    part = getattr(part, "pixels", None) or part  # a backbone's embeddings keep their images
    x = part.rows(np.asarray(rows, dtype=np.int64).reshape(-1)).double()
    if "pixel_mean" in dataset.meta:  # as data.prepare.raw_images undoes it
        mean = torch.tensor(dataset.meta["pixel_mean"], dtype=torch.float64).view(1, -1, 1, 1)
        std = torch.tensor(dataset.meta["pixel_std"], dtype=torch.float64).view(1, -1, 1, 1)
        return ((x * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    arr = x.numpy()
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        lo = arr.min(axis=(1, 2, 3), keepdims=True)
        hi = arr.max(axis=(1, 2, 3), keepdims=True)
        arr = (arr - lo) / np.where(hi > lo, hi - lo, 1.0)
    return (np.clip(arr, 0, 1) * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)


_UNSAFE_PART = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_STORED_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}  # compressed already: stored as they are


def safe_file_name(name: str, fallback: str) -> str:
    """One path component as it may sit in an archive and on any file system: the user's name, with only
    separators, control characters and characters Windows refuses replaced by '_', no leading dots, no trailing
    dots or spaces, no device name (CON, NUL, …); ``fallback`` when nothing is left."""
    clean = _UNSAFE_PART.sub("_", str(name)).strip(" ").lstrip(".").rstrip(". ")
    if not clean:
        return fallback
    return "_" + clean if _RESERVED.match(clean) else clean


def class_folders(classes: list[str]) -> list[str]:
    """Folder names for the classes: `safe_file_name` of each, unique even on case-insensitive file systems."""
    out: list[str] = []
    seen: set[str] = set()
    for i, c in enumerate(classes):
        base = name = safe_file_name(c, f"class_{i}")
        k = 1
        while name.casefold() in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name.casefold())
        out.append(name)
    return out


class ImageEntry(NamedTuple):
    """One image of the ImageFolder export."""

    split: str  # "train", "val" or "test"
    row: int  # position in the split
    index: int  # position in the original data (its source index)
    given_label: int
    final_label: int
    action: str  # "keep", "relabel" (training rows decided so), else "none"
    path: str  # where it goes in the export: <split>/<class folder>/<name>
    source_file: str  # its path in the uploaded zip ("" when the data set has no files)


def imagefolder_plan(dataset: Dataset, decisions: Mapping[int, Decision]) -> list[ImageEntry]:
    """What the ImageFolder export writes: kept training images under their final class, validation and test images
    under their label; an uploaded zip's images keep their names (the path below their class folder), others are
    ``<index>.png``. Where two images would share a path (a relabelled image meets one of the same name), the one
    that moved gets ``_<index>`` before its suffix."""
    if dataset.kind != "image":
        raise InfluenceError("the ImageFolder export is for image data sets; use the cleaned table for tables")
    labels, kept = final_labels(dataset, decisions)
    folders = class_folders(list(dataset.classes))
    info = dataset.meta.get("originals") or {}
    names = info.get("names") if "zip" in info else None
    files = dataset.meta.get("files")
    entries: list[tuple[bool, ImageEntry]] = []
    for split in SPLITS:
        part, src = getattr(dataset, split), source_rows(dataset, split)
        given = part.y.numpy()
        final = labels if split == "train" else given
        for row in range(len(part)):
            if split == "train" and not kept[row]:
                continue
            index = int(src[row])
            d = decisions.get(row) if split == "train" else None
            rel = (names[index] if names else "") or f"{index}.png"
            name = "/".join(safe_file_name(p, f"{index}") for p in rel.split("/"))
            entry = ImageEntry(split, row, index, int(given[row]), int(final[row]), d.action if d else "none",
                               f"{split}/{folders[final[row]]}/{name}", str(files[index]) if names and files else "")
            entries.append((entry.final_label != entry.given_label, entry))
    taken: set[str] = set()
    out: dict[tuple[str, int], ImageEntry] = {}
    for _, e in sorted(entries, key=lambda t: t[0]):  # images that stay where they were keep their names first
        path, k = e.path, 0
        while path.casefold() in taken:
            stem, dot, suffix = e.path.rpartition(".")
            tag = f"_{e.index}" + (f"_{k}" if k else "")
            path, k = (f"{stem}{tag}.{suffix}" if dot and "/" not in suffix else f"{e.path}{tag}"), k + 1
        taken.add(path.casefold())
        out[(e.split, e.row)] = e._replace(path=path)
    return [out[key] for key in sorted(out, key=lambda t: (SPLITS.index(t[0]), t[1]))]


def _source_zip(dataset: Dataset) -> zipfile.ZipFile | None:
    """The uploaded zip the data set came from (checked unchanged), or None for data sets without files."""
    info = dataset.meta.get("originals") or {}
    if "zip" not in info:
        return None
    path = check_file(info["zip"], dataset.name)
    from .data.uploads import safe_image_members

    archive = zipfile.ZipFile(path)
    safe_image_members(archive, path.name)  # zip-slip and zip-bomb checks again: nothing escapes, nothing explodes
    return archive


def write_imagefolder(dataset: Dataset, decisions: Mapping[int, Decision], target: str | os.PathLike | BinaryIO) -> None:
    """Write the cleaned image data set as a zip to ``target`` (a path or a binary file), one image at a time:
    ``train/<class>/<name>`` (removed images left out, relabelled ones in their new class), ``val/…`` and
    ``test/…`` as loaded, and ``metadata.csv`` (every image written, plus one row per removed image with action
    "remove" and no file). An uploaded zip's images are copied byte for byte under their own
    names; other images (no files, e.g. CIFAR) are PNGs named by their original index. See `imagefolder_plan`."""
    plan = imagefolder_plan(dataset, decisions)
    final_path = None
    if isinstance(target, (str, os.PathLike)):
        final_path = Path(target)
        target = final_path.with_name(final_path.name + ".part")
    try:
        with contextlib.ExitStack() as stack:
            source = _source_zip(dataset)
            if source is not None:
                stack.enter_context(source)
            zf = stack.enter_context(zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED))
            if source is not None:
                _copy_files(dataset, plan, source, zf)
            else:
                _write_pixels(dataset, plan, zf)
            rows = [{"split": e.split, "file": e.path, "index": e.index, "original_file": e.source_file,
                     "given_label": e.given_label, "final_label": e.final_label, "action": e.action} for e in plan]
            meta = pd.DataFrame(rows + _removed_images(dataset, decisions),
                                columns=["split", "file", "index", "original_file", "given_label", "final_label", "action"])
            zf.writestr("metadata.csv", csv_safe(meta).to_csv(index=False))
    except BaseException:
        if final_path is not None:
            Path(target).unlink(missing_ok=True)
        raise
    if final_path is not None:
        os.replace(target, final_path)


def _removed_images(dataset: Dataset, decisions: Mapping[int, Decision]) -> list[dict]:
    """metadata.csv rows for the removed training images (not in the zip, ``file`` empty, final label −1), so the
    archive keeps a record of every removal."""
    removed = sorted(r for r, d in decisions.items() if d.action == "remove")
    src, given = source_index(dataset), dataset.train.y.numpy()
    files = dataset.meta.get("files")
    has_files = "zip" in (dataset.meta.get("originals") or {}) and files is not None
    return [{"split": "train", "file": "", "index": int(src[r]), "original_file": str(files[int(src[r])]) if has_files else "",
             "given_label": int(given[r]), "final_label": -1, "action": "remove"} for r in removed]


def _copy_files(dataset: Dataset, plan: list[ImageEntry], source: zipfile.ZipFile, zf: zipfile.ZipFile) -> None:
    """The uploaded images, byte for byte, under their export paths (read and written one at a time)."""
    members = {i.filename: i for i in source.infolist()}
    for e in plan:
        info = members.get(e.source_file)
        if info is None:
            raise InfluenceError(f"'{e.source_file}' is no longer in the zip of '{dataset.name}'; load the data set again")
        zi = zipfile.ZipInfo(e.path, date_time=info.date_time)
        zi.compress_type = zipfile.ZIP_STORED if Path(e.path).suffix.lower() in _STORED_SUFFIXES else zipfile.ZIP_DEFLATED
        zi.external_attr = 0o644 << 16
        zf.writestr(zi, source.read(info))


def _write_pixels(dataset: Dataset, plan: list[ImageEntry], zf: zipfile.ZipFile, chunk: int = 512) -> None:
    """PNGs of the images (their normalisation undone), decoded ``chunk`` at a time per split."""
    from PIL import Image

    for split in SPLITS:
        entries = [e for e in plan if e.split == split]
        for start in range(0, len(entries), chunk):
            part = entries[start : start + chunk]
            pixels = images_uint8(dataset, [e.row for e in part], split)
            for e, img in zip(part, pixels):
                png = io.BytesIO()
                Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(png, format="PNG")
                zf.writestr(e.path, png.getvalue())


def imagefolder_zip(dataset: Dataset, decisions: Mapping[int, Decision]) -> bytes:
    """`write_imagefolder` into memory: the zip's bytes (for a download button)."""
    buf = io.BytesIO()
    write_imagefolder(dataset, decisions, buf)
    return buf.getvalue()


def cifar_label_file(original: Mapping[str, np.ndarray], dataset: Dataset, decisions: Mapping[int, Decision],
                     label_key: str) -> bytes:
    """The CIFAR-N label file (npz) with every original key plus ``cleaned_label``: ``label_key``'s labels with
    the data set's training rows replaced by their final label, and −1 where a sample was removed. ``in_subset``
    marks the images of those training rows and ``reviewed`` the decided ones: every other image keeps its given
    (noisy) label in ``cleaned_label`` without having been looked at."""
    if label_key not in original:
        raise InfluenceError(f"the label file has no key '{label_key}'; it has: {', '.join(sorted(original))}")
    cleaned = np.asarray(original[label_key]).astype(np.int64).copy()
    labels, kept = final_labels(dataset, decisions)
    index = source_index(dataset)
    if index.size and index.max() >= len(cleaned):
        raise InfluenceError("the data set's sample indices do not fit this label file")
    cleaned[index] = np.where(kept, labels, -1)
    in_subset = np.zeros(len(cleaned), dtype=bool)
    in_subset[index] = True
    reviewed = np.zeros(len(cleaned), dtype=bool)
    reviewed[index[sorted(decisions)]] = True
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in original.items()}, cleaned_label=cleaned,
                        in_subset=in_subset, reviewed=reviewed)
    return buf.getvalue()


def manifest(dataset: Dataset, model_hash: str, runs: list[dict], decisions: Mapping[int, Decision],
             app_version: str, extra: dict | None = None) -> dict:
    """What produced an export: data and model hashes, methods with their settings, counts per action."""
    counts = {a: 0 for a in ACTIONS}
    for d in decisions.values():
        counts[d.action] += 1
    labels, kept = final_labels(dataset, decisions)
    return {
        "dataset": {"name": dataset.name, "fingerprint": dataset.fingerprint(), "n_train": len(dataset.train),
                    "classes": list(dataset.classes)},
        "model": {"hash": model_hash},
        "methods": runs,
        "counts": counts,
        "n_train_after": int(kept.sum()),
        "app_version": app_version,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "score_sign": "lower = more detrimental",
        **(extra or {}),
    }


def write_export(folder: str | Path, files: Mapping[str, bytes]) -> Path:
    """Write ``files`` (name → bytes) into ``folder`` (created); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        if Path(name).name != name:
            raise InfluenceError(f"export file names must be plain names, got '{name}'")
        (folder / name).write_bytes(files[name])
    return folder


def manifest_bytes(data: dict) -> bytes:
    return json.dumps(data, indent=2, default=str).encode()
