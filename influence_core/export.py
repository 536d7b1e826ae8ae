"""Exports of reviewed decisions: a corrections table (CSV / Parquet), an ImageFolder zip, a CIFAR-N label file
and a JSON manifest that says what produced them. Scores in the table: lower = more detrimental.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import torch

from .data.base import Dataset
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
    n = len(dataset.train)
    return dataset.source_index.numpy() if dataset.source_index is not None else np.arange(n)


def corrections_table(dataset: Dataset, decisions: Mapping[int, Decision], scores: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per decided sample: index (in the original data), row (in the training split), given and final
    label (number and class name), action, each method's score (lower = more detrimental), who and when."""
    rows = sorted(decisions)
    labels, _ = final_labels(dataset, decisions)
    given = dataset.train.y.numpy()
    frame = pd.DataFrame({
        "index": source_index(dataset)[rows].astype(np.int64),
        "row": np.asarray(rows, dtype=np.int64),
        "given_label": given[rows].astype(np.int64),
        "given_class": [dataset.classes[given[r]] for r in rows],
        "final_label": [int(labels[r]) if decisions[r].action != "remove" else -1 for r in rows],
        "final_class": [dataset.classes[labels[r]] if decisions[r].action != "remove" else "" for r in rows],
        "action": [decisions[r].action for r in rows],
    })
    for name, s in scores.items():
        frame[f"score_{name}"] = np.asarray(s, dtype=np.float64)[rows] if rows else np.zeros(0)
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
        frame.to_parquet(buf, index=False)
        return buf.getvalue()
    raise InfluenceError(f"unknown table format '{fmt}'; choose csv or parquet")


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


def images_uint8(dataset: Dataset, rows: np.ndarray | list[int]) -> np.ndarray:
    """Training images at ``rows`` as N×H×W×C uint8 for display and export: the data set's normalisation undone
    when it is recorded (``meta`` pixel_mean / pixel_std), else [0, 1] values as they are, else each image
    stretched to its own range."""
    if "pixel_mean" in dataset.meta:
        from .data.prepare import raw_images

        return raw_images(dataset, "train", rows)
    arr = dataset.train.x[torch.as_tensor(np.asarray(rows), dtype=torch.int64)].double().numpy()
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        lo = arr.min(axis=(1, 2, 3), keepdims=True)
        hi = arr.max(axis=(1, 2, 3), keepdims=True)
        arr = (arr - lo) / np.where(hi > lo, hi - lo, 1.0)
    return (np.clip(arr, 0, 1) * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)


def imagefolder_zip(dataset: Dataset, decisions: Mapping[int, Decision]) -> bytes:
    """The cleaned training split as ``train/<class>/<index>.png`` plus ``metadata.csv`` (removed rows left out)."""
    if dataset.kind != "image":
        raise InfluenceError("the ImageFolder export is for image data sets; use the corrections table for tables")
    from PIL import Image

    labels, kept = final_labels(dataset, decisions)
    folders = safe_names(list(dataset.classes))
    index = source_index(dataset)
    meta = []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for start in range(0, len(labels), 512):
            pixels = images_uint8(dataset, np.arange(start, min(start + 512, len(labels))))
            for offset, img in enumerate(pixels):
                row = start + offset
                if not kept[row]:
                    continue
                name = f"train/{folders[labels[row]]}/{int(index[row])}.png"
                png = io.BytesIO()
                Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(png, format="PNG")
                zf.writestr(name, png.getvalue())
                d = decisions.get(row)
                meta.append({"file": name, "index": int(index[row]), "given_label": int(dataset.train.y[row]),
                             "final_label": int(labels[row]), "action": d.action if d else "none"})
        zf.writestr("metadata.csv", pd.DataFrame(meta, columns=["file", "index", "given_label", "final_label", "action"]).to_csv(index=False))
    return buf.getvalue()


def cifar_label_file(original: Mapping[str, np.ndarray], dataset: Dataset, decisions: Mapping[int, Decision],
                     label_key: str) -> bytes:
    """The CIFAR-N label file (npz) with every original key plus ``cleaned_label``: ``label_key``'s labels with
    the reviewed training rows replaced by their final label, and −1 where a sample was removed."""
    if label_key not in original:
        raise InfluenceError(f"the label file has no key '{label_key}'; it has: {', '.join(sorted(original))}")
    cleaned = np.asarray(original[label_key]).astype(np.int64).copy()
    labels, kept = final_labels(dataset, decisions)
    index = source_index(dataset)
    if index.size and index.max() >= len(cleaned):
        raise InfluenceError("the data set's sample indices do not fit this label file")
    cleaned[index] = np.where(kept, labels, -1)
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in original.items()}, cleaned_label=cleaned)
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
