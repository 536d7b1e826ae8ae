"""Exports: corrections CSV content, zip-slip-safe ImageFolder archives, CIFAR-N label file, manifest counts."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from influence_core.data.base import Dataset, Split
from influence_core.errors import InfluenceError
from influence_core.export import (cifar_label_file, corrections_table, export_stem, imagefolder_zip, images_uint8,
                                   manifest, safe_names, table_bytes, write_export)
from influence_core.review import Decision


def _d(row, action, new=None):
    return Decision(row, action, new, "tester", 1_700_000_000.0)


@pytest.fixture
def images() -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 4, 4, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    small = Split(x[:2], y[:2])
    return Dataset("tiny", Split(x, y), small, small, ["../evil", "a/b", "cat"], kind="image",
                   source_index=torch.tensor([10, 11, 12, 13, 14, 15]), noise_mask=torch.tensor([1, 0, 0, 0, 0, 1]).bool())


def test_corrections_csv_content(images):
    decisions = {0: _d(0, "relabel", 2), 5: _d(5, "remove"), 2: _d(2, "keep")}
    scores = {"ip": np.arange(6) - 2.5, "exact": np.arange(6) * 10.0}
    frame = pd.read_csv(io.BytesIO(table_bytes(corrections_table(images, decisions, scores), "csv")), keep_default_na=False)
    assert frame["index"].tolist() == [10, 12, 15]
    assert frame["given_label"].tolist() == [0, 2, 2]
    assert frame["final_label"].tolist() == [2, 2, -1]
    assert frame["final_class"].tolist() == ["cat", "cat", ""]
    assert frame["action"].tolist() == ["relabel", "keep", "remove"]
    assert frame["score_ip"].tolist() == [-2.5, -0.5, 2.5] and frame["score_exact"].tolist() == [0.0, 20.0, 50.0]
    assert frame["known_noisy"].tolist() == [True, False, True]
    assert frame["decided_by"].eq("tester").all() and frame["decided_at"].eq("2023-11-14T22:13:20Z").all()
    parquet = pd.read_parquet(io.BytesIO(table_bytes(corrections_table(images, decisions, scores), "parquet")))
    assert parquet["final_label"].tolist() == [2, 2, -1]


def test_csv_neutralises_formulas_but_keeps_numbers_and_parquet_keeps_raw_values(images):
    images.classes = ["=HYPERLINK(\"http://x\")", "+1+2", "@SUM(A1)"]
    decisions = {0: _d(0, "relabel", 1), 1: _d(1, "relabel", 2), 2: _d(2, "keep"), 5: _d(5, "remove")}
    decisions[2] = Decision(2, "keep", None, "-me\t", 1_700_000_000.0)
    scores = {"ip": np.array([-0.5, -1e-3, 2.0, 0.0, 1.0, -7.25])}
    table = corrections_table(images, decisions, scores)
    text = table_bytes(table, "csv").decode()
    frame = pd.read_csv(io.StringIO(text), keep_default_na=False)
    assert frame["given_class"].tolist() == ["'=HYPERLINK(\"http://x\")", "'+1+2", "'@SUM(A1)", "'@SUM(A1)"]
    assert frame["final_class"].tolist() == ["'+1+2", "'@SUM(A1)", "'@SUM(A1)", ""]
    assert frame["decided_by"].tolist() == ["tester", "tester", "'-me\t", "tester"]
    assert frame["score_ip"].tolist() == [-0.5, -0.001, 2.0, -7.25]  # numbers stay numbers, minus sign and all
    assert frame["final_label"].tolist() == [1, 2, 2, -1]
    assert "\n-0.5," not in text and ",-0.5," in text
    raw = pd.read_parquet(io.BytesIO(table_bytes(table, "parquet")))
    assert raw["given_class"].tolist() == ["=HYPERLINK(\"http://x\")", "+1+2", "@SUM(A1)", "@SUM(A1)"]
    assert raw["decided_by"].tolist()[2] == "-me\t"


def test_export_stem_is_the_users_file_name():
    assert export_stem("points") == "points"
    assert export_stem("db402117cf86-nolabel") == "nolabel"  # workspaces from before the digest folders
    assert export_stem("my data (1)") == "my data (1)" and export_stem("a/b:c") == "a_b_c" and export_stem("..") == "dataset"


def test_safe_names_cannot_escape():
    names = safe_names(["../evil", "a/b", "..", ".hidden", "ok", "ok", "c:\\x"])
    for n in names:
        assert "/" not in n and "\\" not in n and not n.startswith(".") and n not in ("", "..")
    assert len(set(names)) == len(names)


def test_imagefolder_zip_layout_and_metadata(images):
    decisions = {0: _d(0, "relabel", 2), 5: _d(5, "remove")}
    with zipfile.ZipFile(io.BytesIO(imagefolder_zip(images, decisions))) as zf:
        names = zf.namelist()
        meta = pd.read_csv(zf.open("metadata.csv"))
        from PIL import Image

        first = np.asarray(Image.open(zf.open(meta.loc[meta["index"] == 10, "file"].item())))
    files = [n for n in names if n != "metadata.csv"]
    assert len(files) == 5  # one removed
    for n in files:
        parts = n.split("/")
        assert parts[0] == "train" and len(parts) == 3 and ".." not in parts
    assert "train/cat/10.png" in files  # relabelled to class 2, whose folder is "cat"
    assert meta["final_label"].tolist() == [2, 1, 2, 0, 1] and 15 not in meta["index"].tolist()
    expected = (images.train.x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(first, expected)  # pixels survive the round trip


def test_images_uint8_undoes_normalisation(images):
    mean, std = np.array([0.5, 0.4, 0.3]), np.array([0.2, 0.25, 0.3])
    raw = images.train.x.numpy().copy()
    images.train.x = torch.tensor((raw - mean[None, :, None, None]) / std[None, :, None, None], dtype=torch.float32)
    images.meta.update(pixel_mean=mean.tolist(), pixel_std=std.tolist())
    out = images_uint8(images, [0, 1])
    assert np.abs(out.astype(int) - (raw[:2].transpose(0, 2, 3, 1) * 255).round()).max() <= 1
    # without recorded statistics each image is stretched to its own range
    del images.meta["pixel_mean"]
    stretched = images_uint8(images, [0])[0]
    assert stretched.min() == 0 and stretched.max() == 255


def test_cifar_label_file_keeps_keys_and_adds_cleaned(images):
    original = {"clean_label": np.arange(20) % 3, "aggre_label": (np.arange(20) + 1) % 3}
    decisions = {1: _d(1, "relabel", 0), 3: _d(3, "remove")}
    with np.load(io.BytesIO(cifar_label_file(original, images, decisions, "aggre_label"))) as out:
        assert set(out.files) == {"clean_label", "aggre_label", "cleaned_label"}
        cleaned = out["cleaned_label"]
        assert np.array_equal(out["aggre_label"], original["aggre_label"])
    expected = original["aggre_label"].copy()
    expected[10:16] = images.train.y.numpy()
    expected[11], expected[13] = 0, -1
    assert np.array_equal(cleaned, expected)
    with pytest.raises(InfluenceError, match="no key"):
        cifar_label_file(original, images, decisions, "worse_label")


def test_manifest_counts_and_plain_file_names(images, tmp_path):
    decisions = {0: _d(0, "keep"), 1: _d(1, "remove"), 2: _d(2, "remove"), 3: _d(3, "relabel", 1)}
    info = manifest(images, "abc", [{"method": "ip"}], decisions, "0.1.0")
    assert info["counts"] == {"keep": 1, "remove": 2, "relabel": 1}
    assert info["n_train_after"] == 4 and info["dataset"]["fingerprint"] == images.fingerprint()
    write_export(tmp_path / "out", {"a.csv": b"x"})
    assert (tmp_path / "out" / "a.csv").read_bytes() == b"x"
    with pytest.raises(InfluenceError):
        write_export(tmp_path / "out", {"../b.csv": b"x"})
