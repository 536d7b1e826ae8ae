"""Exports to labelling and training tools (issue 20 §7): the Hugging Face folder loaded back with `datasets`, Label
Studio tasks checked against the config they come with (and by label-studio-sdk where it is installed), FiftyOne's
FiftyOneDataset layout (read back by FiftyOne's own importer where it is installed), zips that stay in their folder,
hostile class and column names kept safely."""

from __future__ import annotations

import base64
import io
import json
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from influence_core.data import load_dataset
from influence_core.data.base import Dataset, Split
from influence_core.errors import InfluenceError
from influence_core.export import images_uint8
from influence_core.export_formats import EXPORT_FORMATS, export_zip, formats_for, labelled_rows, score_fields
from influence_core.review import Decision

datasets = pytest.importorskip("datasets")

HOSTILE_CLASSES = ["../evil", '</Choice><x y="1">&amp;', "a/b"]


def _d(row, action, new=None, who="tester"):
    return Decision(row, action, new, who, 1_700_000_000.0)


def _predictions(ds: Dataset) -> dict:
    """Made-up model outputs: the class (row + 1) mod C with probability 0.6, the rest spread evenly."""
    out = {}
    for split in ("train", "val", "test"):
        n, c = len(getattr(ds, split)), ds.num_classes
        pred = (np.arange(n) + 1) % c
        proba = np.full((n, c), 0.4 / (c - 1))
        proba[np.arange(n), pred] = 0.6
        out[split] = (pred, proba)
    return out


def _unzip(data: bytes, tmp_path: Path, top: str) -> Path:
    """Extract an export zip after checking every entry sits under ``top/`` (no absolute path, no '..')."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for name in z.namelist():
            assert name.startswith(f"{top}/") and ".." not in name.split("/") and not name.startswith("/"), name
        z.extractall(tmp_path)
    return tmp_path / top


@pytest.fixture
def images() -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 4, 4, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    small = Split(x[:2], torch.tensor([2, 1]))
    return Dataset("../tiny", Split(x, y), small, small, list(HOSTILE_CLASSES), kind="image",
                   source_index=torch.tensor([10, 11, 12, 13, 14, 15]))


DECISIONS = {0: _d(0, "relabel", 2), 5: _d(5, "remove"), 2: _d(2, "keep", who="ann")}
SCORES = {"ip_ensemble[K=5,p=0.01]·fairness": np.arange(6) - 2.5, "loss": np.arange(6) * 10.0}


def test_score_fields_are_plain_unique_names():
    fields = score_fields(["ip·trim=0", "ip[trim=0]", "loss", "…"])
    assert list(fields) == ["score_ip_trim_0", "score_ip_trim_0_1", "score_loss", "score_run"]
    assert list(fields.values()) == ["ip·trim=0", "ip[trim=0]", "loss", "…"]


def test_hugging_face_folder_loads_back_cleaned(images, tmp_path):
    rows = labelled_rows(images, DECISIONS, SCORES, _predictions(images), model_version="abc")
    folder = _unzip(export_zip("hugging_face", rows, "tiny-hf"), tmp_path, "tiny-hf")
    loaded = datasets.load_from_disk(str(folder))
    assert sorted(loaded) == ["test", "train", "validation"]
    train = loaded["train"]
    assert train.features["label"].names == HOSTILE_CLASSES and train.features["suggested_label"].names == HOSTILE_CLASSES
    # Row 5 removed; row 0 relabelled 0 -> 2; the rest as given. Original index kept.
    assert train["original_index"] == [10, 11, 12, 13, 14]
    assert train["label"] == [2, 1, 2, 0, 1] and train["given_label"] == [0, 1, 2, 0, 1]
    assert train["review"] == ["relabelled", "", "kept", "", ""] and train["decided_by"] == ["tester", "", "ann", "", ""]
    assert train["suggested_label"] == [1, 2, 0, 1, 2] and np.allclose(train["suggested_confidence"], 0.6)
    assert train["score_ip_ensemble_K_5_p_0_01_fairness"] == [-2.5, -1.5, -0.5, 0.5, 1.5]
    assert train["score_loss"] == [0.0, 10.0, 20.0, 30.0, 40.0]
    pixels = images_uint8(images, [0, 1, 2, 3, 4])
    assert all(np.array_equal(np.asarray(img), px) for img, px in zip(train["image"], pixels))
    val = loaded["validation"]
    assert val["label"] == [2, 1] and val["original_index"] == [0, 1] and val["score_loss"] == [None, None]
    assert json.loads(train.info.description)["score_fields"]["score_loss"] == "loss"


def test_all_rows_keep_the_removed_ones_with_their_tag(images, tmp_path):
    rows = labelled_rows(images, DECISIONS, SCORES, _predictions(images), all_rows=True)
    train = datasets.load_from_disk(str(_unzip(export_zip("hugging_face", rows, "x"), tmp_path, "x")))["train"]
    assert train["original_index"] == [10, 11, 12, 13, 14, 15]
    assert train["review"][5] == "removed" and train["label"][5] == 2 and train["given_label"][5] == 2


def _config(folder: Path) -> ET.Element:
    return ET.fromstring((folder / "label_config.xml").read_text())


def test_label_studio_tasks_fit_their_config(images, tmp_path):
    rows = labelled_rows(images, DECISIONS, SCORES, _predictions(images), model_version="abc")
    folder = _unzip(export_zip("label_studio", rows, "ls"), tmp_path, "ls")
    config = _config(folder)
    image, choices = config.find("Image"), config.find("Choices")
    assert [c.get("value") for c in choices.findall("Choice")] == HOSTILE_CLASSES  # escaped in XML, read back as is
    assert choices.get("toName") == image.get("name") and choices.get("choice") == "single"
    tasks = json.loads((folder / "tasks.json").read_text())
    assert [t["data"]["original_index"] for t in tasks] == [10, 11, 12, 13, 14, 0, 1, 0, 1]
    for t in tasks:
        key = image.get("value").removeprefix("$")
        assert t["data"][key].startswith("data:image/png;base64,")
        (pred,) = t["predictions"]
        assert pred["model_version"] == "abc" and 0 <= pred["score"] <= 1
        (result,) = pred["result"]
        assert result["from_name"] == choices.get("name") and result["to_name"] == image.get("name")
        assert result["type"] == "choices" and set(result["value"]["choices"]) <= set(HOSTILE_CLASSES)
    first = tasks[0]["data"]
    assert (first["label"], first["given_label"], first["review"]) == (HOSTILE_CLASSES[2], HOSTILE_CLASSES[0], "relabelled")
    assert tasks[0]["predictions"][0]["result"][0]["value"]["choices"] == [HOSTILE_CLASSES[1]]
    from PIL import Image

    png = base64.b64decode(first["image"].split(",", 1)[1])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), images_uint8(images, [0])[0])


def test_label_studio_sdk_accepts_the_config_and_predictions(images, tmp_path):
    sdk = pytest.importorskip("label_studio_sdk.label_interface")
    rows = labelled_rows(images, DECISIONS, SCORES, _predictions(images))
    folder = _unzip(export_zip("label_studio", rows, "ls"), tmp_path, "ls")
    interface = sdk.LabelInterface((folder / "label_config.xml").read_text())
    interface.validate()
    for t in json.loads((folder / "tasks.json").read_text()):
        assert interface.validate_prediction(t["predictions"][0], return_errors=True) == []
    wrong = {"result": [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["nope"]}}]}
    assert interface.validate_prediction(wrong, return_errors=True)  # the validator does check the choices


def test_fiftyone_layout_is_what_its_importer_reads(images, tmp_path):
    rows = labelled_rows(images, DECISIONS, SCORES, _predictions(images), all_rows=True)
    folder = _unzip(export_zip("fiftyone", rows, "fo"), tmp_path, "fo")
    meta = json.loads((folder / "metadata.json").read_text())
    # No "version": FiftyOneDatasetImporter hands the folder to its plain-JSON importer (one Sample.from_dict each).
    assert "version" not in meta and meta["media_type"] == "image" and meta["info"]["classes"] == HOSTILE_CLASSES
    samples = json.loads((folder / "samples.json").read_text())["samples"]
    assert len(samples) == 6 + 2 + 2
    for s in samples:
        assert s["filepath"].startswith("data/") and (folder / s["filepath"]).is_file()
        assert s["ground_truth"]["_cls"] == "Classification" and s["suggestion"]["_cls"] == "Classification"
    removed = next(s for s in samples if s["original_index"] == 15 and s["split"] == "train")
    assert removed["tags"] == ["train", "removed"] and removed["score_loss"] == 50.0
    relabelled = samples[0]
    assert relabelled["ground_truth"]["label"] == HOSTILE_CLASSES[2] and relabelled["given_label"]["label"] == HOSTILE_CLASSES[0]
    assert samples[6]["tags"] == ["val"] and samples[6]["score_loss"] is None


def test_fiftyone_reads_the_export_back(images, tmp_path):
    importers = pytest.importorskip("fiftyone.utils.data.importers")
    rows = labelled_rows(images, DECISIONS, SCORES, _predictions(images))
    folder = _unzip(export_zip("fiftyone", rows, "fo"), tmp_path, "fo")
    importer = importers._handle_legacy_formats(importers.FiftyOneDatasetImporter(str(folder)))
    with importer:
        assert importer.get_dataset_info()["classes"] == HOSTILE_CLASSES
        samples = list(importer)
    assert [s.original_index for s in samples] == [10, 11, 12, 13, 14, 0, 1, 0, 1]
    assert samples[0].ground_truth.label == HOSTILE_CLASSES[2] and samples[0].tags == ["train", "relabelled"]
    assert samples[0].suggestion.confidence == pytest.approx(0.6) and samples[0]["score_loss"] == 0.0
    assert all(Path(s.filepath).is_file() for s in samples)


def test_uploaded_images_are_copied_byte_for_byte(tiny_image_zip, tmp_path):
    ds = load_dataset(tiny_image_zip, seed=0)
    rows = labelled_rows(ds, {1: _d(1, "remove")}, {}, _predictions(ds))
    train = datasets.load_from_disk(str(_unzip(export_zip("hugging_face", rows, "p"), tmp_path, "p")))["train"]
    files, names = ds.meta["files"], ds.meta["originals"]["names"]
    assert len(train) == len(ds.train) - 1 and int(ds.source_index[1]) not in train["original_index"]
    with zipfile.ZipFile(tiny_image_zip) as z:
        raw = train.cast_column("image", datasets.Image(decode=False))
        for index, image in zip(train["original_index"], raw["image"]):
            assert image["bytes"] == z.read(files[index]) and names[index].endswith(".png")


def _hostile_table(tmp_path) -> tuple[Path, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 40
    frame = pd.DataFrame({"original_index": 1000 + np.arange(n),  # a cleaned export loaded again: the first file's
                          "name": [f"r{i:02d}" for i in range(n)], "a.b <x>": rng.normal(size=n).round(3),
                          "label": rng.choice(["=1+1", "plain"], n),  # a feature named like the export's own field
                          "outcome": rng.choice(["</Choice>&\"x", "<b>ok</b>"], n)})
    path = tmp_path / "people.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_tabular_exports_keep_the_files_values_and_odd_names(tmp_path):
    path, frame = _hostile_table(tmp_path)
    ds = load_dataset(str(path), label_column="outcome", seed=0)
    given = ds.train.y.numpy()
    decisions = {0: _d(0, "remove"), 1: _d(1, "relabel", 1 - int(given[1]))}
    rows = labelled_rows(ds, decisions, {"ip": np.arange(len(ds.train), dtype=float)}, _predictions(ds))
    train = datasets.load_from_disk(str(_unzip(export_zip("hugging_face", rows, "t"), tmp_path / "hf", "t")))["train"]
    assert train.features["label"].names == ds.classes and sorted(ds.classes) == sorted(frame["outcome"].unique())
    assert "label_" in train.column_names and "a.b <x>" in train.column_names and "outcome" not in train.column_names
    original = frame.set_index("name")
    assert len(train) == len(ds.train) - 1
    for rec in train:
        src = original.loc[rec["name"]]
        assert rec["a.b <x>"] == src["a.b <x>"] and rec["label_"] == src["label"]
        assert ds.classes[rec["given_label"]] == src["outcome"]
        assert rec["original_index_"] == src["original_index"] and rec["original_index"] == src["original_index"] - 1000
    relabelled = train[0]
    assert relabelled["review"] == "relabelled" and relabelled["label"] == 1 - given[1]
    assert train["score_ip"] == list(range(1, len(ds.train)))

    folder = _unzip(export_zip("label_studio", rows, "t"), tmp_path / "ls", "t")
    config = _config(folder)
    assert config.find("Table").get("value") == "$row"
    assert [c.get("value") for c in config.find("Choices")] == ds.classes
    tasks = json.loads((folder / "tasks.json").read_text())
    assert tasks[0]["data"]["row"]["a.b <x>"] == original.loc[tasks[0]["data"]["row"]["name"], "a.b <x>"]
    with pytest.raises(InfluenceError, match="FiftyOne dataset export holds image"):
        export_zip("fiftyone", rows, "t")
    assert "fiftyone" not in formats_for("tabular") and set(formats_for("image")) == set(EXPORT_FORMATS)


def test_text_exports_carry_the_text(tmp_path):
    ds = load_dataset("text-topics", n_train=40, n_val=20, n_test=20)
    rows = labelled_rows(ds, {3: _d(3, "remove")}, {}, _predictions(ds))
    loaded = datasets.load_from_disk(str(_unzip(export_zip("hugging_face", rows, "t"), tmp_path / "hf", "t")))
    kept = [r for r in range(40) if r != 3]
    assert loaded["train"]["text"] == [ds.texts["train"][r] for r in kept]
    assert loaded["train"]["original_index"] == ds.source_index.numpy()[kept].tolist()
    assert loaded["test"]["text"] == ds.texts["test"] and loaded["train"].features["label"].names == ds.classes
    assert "text_" not in loaded["train"].column_names  # the source's own text column is not written twice
    folder = _unzip(export_zip("label_studio", rows, "t"), tmp_path / "ls", "t")
    assert _config(folder).find("Text").get("value") == "$text"
    tasks = json.loads((folder / "tasks.json").read_text())
    assert [t["data"]["text"] for t in tasks[:39]] == [ds.texts["train"][r] for r in kept]


def test_unknown_format_and_the_folder_name_is_safe(images, tmp_path):
    rows = labelled_rows(images, {}, {}, _predictions(images))
    with pytest.raises(InfluenceError, match="unknown export format 'coco'"):
        export_zip("coco", rows, "x")
    names = zipfile.ZipFile(io.BytesIO(export_zip("label_studio", rows, "../../etc"))).namelist()
    assert names and all(n.startswith("_.._etc/") or n.startswith("etc/") for n in names), names
    assert not any(n.startswith("/") or ".." in n.split("/") for n in names)


def test_project_export_uses_its_model_and_scores(tmp_path):
    from influence_core.project import Project, ScoreRun

    proj = Project.open("p", tmp_path)
    proj.use_dataset("moons", n_samples=120, seed=0)
    proj.train("logreg")
    proj.score(ScoreRun("loss"))
    proj.record([4], "remove")
    assert set(proj.export_formats()) == {"label_studio", "hugging_face"}
    folder = _unzip(proj.export_as("hugging_face"), tmp_path / "out", "moons-hugging_face")
    train = datasets.load_from_disk(str(folder))["train"]
    kept = [r for r in range(len(proj.dataset().train)) if r != 4]
    pred, proba = proj.predictions("train")
    assert train["suggested_label"] == pred[kept].tolist()
    assert np.allclose(train["suggested_confidence"], proba[kept, pred[kept]])
    assert np.allclose(train["score_loss"], proj.scores()["loss"][kept])
    manifest = json.loads((folder / "manifest.json").read_text())  # what produced it, beside the format's files
    assert manifest["counts"]["remove"] == 1 and manifest["export_format"] == "hugging_face"
