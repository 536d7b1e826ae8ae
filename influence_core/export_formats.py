"""Exports to the tools people label and train in (issue 20 §7): a FiftyOne dataset, Label Studio tasks with the
model's predictions as pre-annotations, and a Hugging Face `datasets` folder. Each format writes one folder (zipped
for a download) from the same `LabelledRows`: every sample's original index, split, given label, final label
(relabels applied), the model's suggested label, each score run (lower = more detrimental) and the review tag.

Which training rows: the cleaned split (removed rows left out, relabels applied) or, with ``all_rows``, every row
with its review tag (what a labelling tool wants). Validation and test rows follow as loaded, tagged by split.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import pandas as pd

from .data.base import Dataset
from .data.originals import SPLITS, label_column, original_rows, source_rows
from .errors import InfluenceError
from .export import _mixed_columns, _source_zip, export_stem, final_labels, images_uint8, manifest_bytes, safe_file_name
from .review import Decision

# The review tag of a training row, by its decision's action ("" for an undecided row, and for validation and test).
REVIEW_TAGS = {"keep": "kept", "remove": "removed", "relabel": "relabelled"}
HF_SPLITS = {"train": "train", "val": "validation", "test": "test"}  # the names `datasets` users expect


@dataclass(frozen=True)
class LabelledRows:
    """The samples an export writes, one entry per sample in every array (train rows first, then val, then test).
    ``label`` is the final label (relabels applied), ``suggested`` the model's prediction with its probability
    ``confidence``; ``scores`` maps a field name (`score_fields`) to each sample's score, NaN outside training;
    ``score_runs`` maps that field back to the run's label."""

    dataset: Dataset
    split: np.ndarray  # "train" / "val" / "test"
    row: np.ndarray  # position in its split
    original_index: np.ndarray
    given: np.ndarray
    label: np.ndarray
    suggested: np.ndarray
    confidence: np.ndarray
    review: list[str]
    decided_by: list[str]
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    score_runs: dict[str, str] = field(default_factory=dict)
    model_version: str = ""
    all_rows: bool = False

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.dataset.classes]

    def __len__(self) -> int:
        return len(self.split)

    def parts(self) -> Iterator[tuple[str, np.ndarray]]:
        """(split, positions in these arrays) for each split that has samples."""
        for s in SPLITS:
            where = np.flatnonzero(self.split == s)
            if where.size:
                yield s, where


_FIELD_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


def score_fields(labels: list[str]) -> dict[str, str]:
    """A field name per score run label (``score_`` + letters, digits and '_'; unique), mapping to the label: the
    names FiftyOne, Label Studio and Arrow all accept (a run label holds '·', '[', '=', …)."""
    out: dict[str, str] = {}
    for label in labels:
        base = name = "score_" + (_FIELD_UNSAFE.sub("_", str(label)).strip("_") or "run")
        k = 1
        while name in out:
            name, k = f"{base}_{k}", k + 1
        out[name] = label
    return out


def labelled_rows(dataset: Dataset, decisions: Mapping[int, Decision], scores: Mapping[str, np.ndarray],
                  predictions: Mapping[str, tuple[np.ndarray, np.ndarray]], *, all_rows: bool = False,
                  model_version: str = "") -> LabelledRows:
    """The samples to export: the training rows (kept ones only, unless ``all_rows``) with their final labels and
    review tags, then the validation and test rows as loaded. ``predictions``: split → (predicted class, class
    probabilities N×C) of the model."""
    labels, kept = final_labels(dataset, decisions)
    fields = score_fields(list(scores))
    cols: dict[str, list] = {k: [] for k in ("split", "row", "index", "given", "label", "pred", "conf", "review", "by")}
    for split in SPLITS:
        part = getattr(dataset, split)
        rows = np.arange(len(part)) if split != "train" or all_rows else np.flatnonzero(kept)
        pred, proba = predictions[split]
        given = part.y.numpy()
        final = labels if split == "train" else given
        decided = [decisions.get(int(r)) if split == "train" else None for r in rows]
        cols["split"] += [split] * len(rows)
        cols["row"] += rows.tolist()
        cols["index"] += source_rows(dataset, split)[rows].tolist()
        cols["given"] += given[rows].tolist()
        cols["label"] += final[rows].tolist()
        cols["pred"] += np.asarray(pred)[rows].tolist()
        cols["conf"] += np.asarray(proba)[rows, np.asarray(pred)[rows]].tolist() if len(rows) else []
        cols["review"] += [REVIEW_TAGS[d.action] if d else "" for d in decided]
        cols["by"] += [d.decided_by if d else "" for d in decided]
    split = np.asarray(cols["split"], dtype=object)
    train = np.flatnonzero(split == "train")
    train_rows = np.asarray(cols["row"], dtype=np.int64)[train]
    score_arrays = {}
    for name, label in fields.items():
        values = np.full(len(split), np.nan)
        values[train] = np.asarray(scores[label], dtype=np.float64)[train_rows]
        score_arrays[name] = values
    as_int = lambda k: np.asarray(cols[k], dtype=np.int64)  # noqa: E731
    return LabelledRows(dataset, split, as_int("row"), as_int("index"), as_int("given"), as_int("label"), as_int("pred"),
                        np.asarray(cols["conf"], dtype=np.float64), cols["review"], cols["by"], score_arrays, fields,
                        model_version, all_rows)


# ------------------------------------------------------------------------------------------------------ contents
def _sample_files(rows: LabelledRows, chunk: int = 256) -> Iterator[tuple[int, str, bytes]]:
    """(position, file name, bytes) of every image: an uploaded zip's file byte for byte (its own suffix), else a
    PNG of the pixels (normalisation undone). Named ``<split>_<original index><suffix>``: unique, and safe."""
    from PIL import Image

    dataset = rows.dataset
    info = dataset.meta.get("originals") or {}
    names, files = info.get("names") if "zip" in info else None, dataset.meta.get("files")
    source = _source_zip(dataset) if names and files is not None else None
    try:
        for split, where in rows.parts():
            for start in range(0, len(where), chunk):
                part = where[start : start + chunk]
                if source is not None:
                    for i in part:
                        member = str(files[int(rows.original_index[i])])
                        suffix = Path(member).suffix.lower()
                        suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".img"
                        yield int(i), f"{split}_{rows.original_index[i]}{suffix}", source.read(member)
                    continue
                pixels = images_uint8(dataset, rows.row[part], split)
                for i, img in zip(part, pixels):
                    png = io.BytesIO()
                    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(png, format="PNG")
                    yield int(i), f"{split}_{rows.original_index[i]}.png", png.getvalue()
    finally:
        if source is not None:
            source.close()


_RESERVED_COLUMNS = ("original_index", "split", "image", "text", "label", "given_label", "suggested_label",
                     "suggested_confidence", "review", "decided_by")


def _feature_frame(rows: LabelledRows) -> pd.DataFrame:
    """Tables and text: each sample's columns as the source holds them (`original_rows`, the label column left out:
    the label fields carry it), a text set's joined text as ``text``; a column named like one of the export's own
    fields gets a trailing '_' (a re-loaded cleaned file's ``original_index``, the first file's, so stays as
    ``original_index_``). Row-aligned with ``rows``."""
    dataset = rows.dataset
    column = label_column(dataset)
    frames = [original_rows(dataset, rows.row[where], split) for split, where in rows.parts()]
    frame = pd.concat(frames).reset_index(drop=True) if frames else pd.DataFrame()
    frame = frame.drop(columns=[column] if column in frame.columns else [])
    texts = ([dataset.texts[s][int(r)] for s, r in zip(rows.split, rows.row)]
             if dataset.kind == "text" and dataset.texts is not None else None)
    if texts is not None and "text" in frame.columns and frame["text"].astype(str).tolist() == texts:
        texts = None  # the source's own "text" column is the text (a generated set, one text column named so)
    taken = set(_RESERVED_COLUMNS) - ({"text"} if texts is None else set()) | set(rows.scores)
    renamed = {}
    for c in frame.columns:
        name = str(c)
        while name in taken:
            name += "_"
        taken.add(name)
        renamed[c] = name
    frame.columns = [renamed[c] for c in frame.columns]
    if texts is not None:
        frame.insert(0, "text", texts)
    return frame


def _plain(value):
    """A JSON value: numpy scalars as Python numbers, NaN and missing cells as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    try:
        return None if pd.isna(value) else str(value)
    except (TypeError, ValueError):
        return str(value)


def _tags(rows: LabelledRows, i: int) -> dict:
    """The fields every format writes for sample ``i`` besides its content (class names, not numbers)."""
    classes = rows.classes
    return {"original_index": int(rows.original_index[i]), "split": str(rows.split[i]),
            "label": classes[rows.label[i]], "given_label": classes[rows.given[i]],
            "suggested_label": classes[rows.suggested[i]], "suggested_confidence": float(rows.confidence[i]),
            "review": rows.review[i], "decided_by": rows.decided_by[i],
            **{name: _plain(values[i]) for name, values in rows.scores.items()}}


def _info(rows: LabelledRows) -> dict:
    """What the export holds, for its metadata: classes, which rows, the score fields' runs and orientation."""
    return {"classes": rows.classes, "rows": "all training rows, with review tags" if rows.all_rows else
            "the cleaned training split (removed rows left out, relabels applied)",
            "splits": "train, then val and test as loaded", "score_fields": dict(rows.score_runs),
            "score_sign": "lower = more detrimental", "model_version": rows.model_version,
            "review_tags": sorted(REVIEW_TAGS.values())}


# ------------------------------------------------------------------------------------------------------- formats
@dataclass(frozen=True)
class ExportFormat:
    """One export format: its name (a browser choice), a one-line description, the data set kinds it holds, and
    ``write(rows, folder)`` that fills the (empty) folder."""

    name: str
    title: str
    description: str
    kinds: tuple[str, ...]
    write: Callable[[LabelledRows, Path], None]


EXPORT_FORMATS: dict[str, ExportFormat] = {}


def register_export_format(fmt: ExportFormat) -> ExportFormat:
    if fmt.name in EXPORT_FORMATS:
        raise InfluenceError(f"an export format named '{fmt.name}' is registered already")
    EXPORT_FORMATS[fmt.name] = fmt
    return fmt


def formats_for(kind: str) -> dict[str, ExportFormat]:
    """The formats that can hold a data set of ``kind`` ("image", "tabular", "text"), by name."""
    return {n: f for n, f in EXPORT_FORMATS.items() if kind in f.kinds}


def _write_fiftyone(rows: LabelledRows, folder: Path) -> None:
    """FiftyOne's `FiftyOneDataset` layout as its importer reads it without a ``version`` (the plain-JSON form,
    `LegacyFiftyOneDatasetImporter`): ``metadata.json`` (name, media type, info with the classes),
    ``samples.json`` (``{"samples": [...]}``, each a `Sample.from_dict` document whose ``filepath`` is relative to
    the folder) and the images in ``data/``. Labels are `Classification` fields (``ground_truth`` the final label,
    ``given_label``, ``suggestion`` with its confidence); split and review tag are sample tags."""
    (folder / "data").mkdir()
    samples = []
    for i, name, data in _sample_files(rows):
        (folder / "data" / name).write_bytes(data)
        t = _tags(rows, i)
        samples.append({"filepath": f"data/{name}", "tags": [t["split"]] + ([t["review"]] if t["review"] else []),
                        "metadata": None,
                        "ground_truth": {"_cls": "Classification", "label": t["label"]},
                        "given_label": {"_cls": "Classification", "label": t["given_label"]},
                        "suggestion": {"_cls": "Classification", "label": t["suggested_label"],
                                       "confidence": t["suggested_confidence"]},
                        **{k: t[k] for k in ("original_index", "split", "review", "decided_by", *rows.scores)}})
    meta = {"name": export_stem(rows.dataset.name), "media_type": "image", "info": _info(rows)}
    (folder / "metadata.json").write_text(json.dumps(meta, indent=1))
    (folder / "samples.json").write_text(json.dumps({"samples": samples}))


LABEL_STUDIO_CONTROL = "label"  # the Choices tag's name: every prediction's from_name


def label_studio_config(rows: LabelledRows) -> tuple[str, str, str]:
    """(labelling config XML, object tag name, its data key): an Image, Text or Table tag for the sample and a
    single-choice `Choices` over the classes (names escaped as XML attribute values)."""
    obj, key = {"image": ("Image", "image"), "text": ("Text", "text")}.get(rows.dataset.kind, ("Table", "row"))
    view = ET.Element("View")
    ET.SubElement(view, obj, {"name": key, "value": f"${key}"})
    choices = ET.SubElement(view, "Choices", {"name": LABEL_STUDIO_CONTROL, "toName": key, "choice": "single",
                                              "showInline": "true"})
    for c in rows.classes:
        ET.SubElement(choices, "Choice", {"value": c})
    return ET.tostring(view, encoding="unicode"), key, key


def _write_label_studio(rows: LabelledRows, folder: Path) -> None:
    """Label Studio's import JSON (``tasks.json``: a list of ``{"data": ..., "predictions": [...]}``) and the
    labelling config it fits (``label_config.xml``). ``data`` holds the sample (an image as a data URL, the text, or
    a table row as {column: value}) and every field of `_tags`; the model's suggestion is the pre-annotation, its
    probability the prediction's score."""
    config, to_name, key = label_studio_config(rows)
    if rows.dataset.kind == "image":
        mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                ".webp": "image/webp", ".bmp": "image/bmp"}
        content = {i: f"data:{mime.get(Path(n).suffix, 'application/octet-stream')};base64,"
                      f"{base64.b64encode(b).decode()}" for i, n, b in _sample_files(rows)}
    else:
        frame = _feature_frame(rows)
        if rows.dataset.kind == "text":
            content = dict(enumerate(frame["text"].tolist()))
        else:
            content = {i: {str(c): _plain(v) for c, v in rec.items()} for i, rec in enumerate(frame.to_dict("records"))}
    tasks = []
    for i in range(len(rows)):
        t = _tags(rows, i)
        result = {"from_name": LABEL_STUDIO_CONTROL, "to_name": to_name, "type": "choices",
                  "value": {"choices": [t["suggested_label"]]}}
        tasks.append({"data": {key: content[i], **t},
                      "predictions": [{"model_version": rows.model_version or "influence-workbench",
                                       "score": min(1.0, max(0.0, t["suggested_confidence"])), "result": [result]}]})
    (folder / "tasks.json").write_text(json.dumps(tasks))
    (folder / "label_config.xml").write_text(config)


def _write_hugging_face(rows: LabelledRows, folder: Path) -> None:
    """A `datasets.DatasetDict` saved with ``save_to_disk`` (train / validation / test): ``label``, ``given_label``
    and ``suggested_label`` as `ClassLabel` (names = the classes), images as `Image` (the file's bytes), a table's
    or text's own columns, the original index, the review tag, who decided and each score run."""
    import datasets as hf

    names = rows.classes
    table = _feature_frame(rows) if rows.dataset.kind != "image" else None
    images = {i: {"bytes": b, "path": n} for i, n, b in _sample_files(rows)} if table is None else None
    parts = {}
    for split, where in rows.parts():
        columns: dict[str, list] = {"original_index": rows.original_index[where].tolist()}
        if images is not None:
            columns["image"] = [images[int(i)] for i in where]
        else:
            frame = table.iloc[where]
            frame = frame.assign(**{c: frame[c].map(lambda v: None if pd.isna(v) else str(v))
                                    for c in _mixed_columns(frame)})
            columns.update({str(c): [_plain(v) for v in frame[c].tolist()] for c in frame.columns})
        columns.update(label=rows.label[where].tolist(), given_label=rows.given[where].tolist(),
                       suggested_label=rows.suggested[where].tolist(),
                       suggested_confidence=rows.confidence[where].tolist(),
                       review=[rows.review[i] for i in where], decided_by=[rows.decided_by[i] for i in where])
        columns.update({n: [_plain(v) for v in values[where]] for n, values in rows.scores.items()})
        features = hf.Dataset.from_dict({k: v for k, v in columns.items() if k != "image"}).features.copy()
        for name in ("label", "given_label", "suggested_label"):
            features[name] = hf.ClassLabel(names=names)
        for name in rows.scores:
            features[name] = hf.Value("float64")
        if images is not None:
            features["image"] = hf.Image()
        features = hf.Features({k: features[k] for k in columns})
        parts[HF_SPLITS[split]] = hf.Dataset.from_dict(columns, features=features, info=hf.DatasetInfo(
            description=json.dumps(_info(rows)), features=features))
    quiet = hf.are_progress_bars_disabled()
    hf.disable_progress_bars()  # a server's log gets no progress bar per split
    try:
        hf.DatasetDict(parts).save_to_disk(str(folder))
    finally:
        if not quiet:
            hf.enable_progress_bars()


register_export_format(ExportFormat(
    "fiftyone", "FiftyOne dataset", "images with the given, final and suggested labels, scores and review tags; "
    "fo.Dataset.from_dir(folder, dataset_type=fo.types.FiftyOneDataset)", ("image",), _write_fiftyone))
register_export_format(ExportFormat(
    "label_studio", "Label Studio tasks", "tasks.json with the model's suggestion as a pre-annotation, and the "
    "label_config.xml it fits", ("image", "tabular", "text"), _write_label_studio))
register_export_format(ExportFormat(
    "hugging_face", "Hugging Face datasets folder", "train / validation / test with ClassLabel labels; "
    "datasets.load_from_disk(folder)", ("image", "tabular", "text"), _write_hugging_face))


def check_format(fmt: str, kind: str) -> ExportFormat:
    """The format ``fmt`` when it exists and holds data sets of ``kind``; else a one-line error naming the choices."""
    spec = EXPORT_FORMATS.get(fmt)
    if spec is None:
        raise InfluenceError(f"unknown export format '{fmt}'; choose one of: {', '.join(EXPORT_FORMATS)}")
    if kind not in spec.kinds:
        raise InfluenceError(f"the {spec.title} export holds {', '.join(spec.kinds)} data sets, not {kind} ones; "
                             f"choose one of: {', '.join(formats_for(kind))}")
    return spec


def export_zip(fmt: str, rows: LabelledRows, folder_name: str, manifest: dict | None = None) -> bytes:
    """Format ``fmt`` of ``rows`` written into a folder and zipped: every entry under ``folder_name/`` (a safe
    name), nothing outside it; ``manifest`` (what produced it, `export.manifest`) beside the format's files as
    ``manifest.json``, which each tool's loader passes over."""
    spec = check_format(fmt, rows.dataset.kind)
    top = safe_file_name(folder_name, "export")
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="influence-export-") as tmp:
        root = Path(tmp) / top
        root.mkdir()
        spec.write(rows, root)
        if manifest is not None:
            (root / "manifest.json").write_bytes(manifest_bytes(manifest))
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    zf.write(path, f"{top}/{path.relative_to(root).as_posix()}")
    return buf.getvalue()
