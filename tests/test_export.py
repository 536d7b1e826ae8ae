"""Exports: corrections CSV content, zip-slip-safe ImageFolder archives, CIFAR-N label file, manifest counts."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from influence_core.data.base import Dataset, Split
from influence_core.errors import InfluenceError
from influence_core.export import (cifar_label_file, class_folders, cleaned_table, corrections_table, csv_safe,
                                   export_stem, imagefolder_zip, images_uint8, manifest, safe_file_name, safe_names,
                                   table_bytes, write_export, write_imagefolder)
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
    scores = {"ip": np.arange(6) - 2.5, "exact": np.arange(6) * 10.0, "loss·oof5": np.arange(6) * 1.0}
    raw = table_bytes(corrections_table(images, decisions, scores), "csv")
    assert raw.split(b"\n")[0].isascii()  # the headers: "loss·oof5" becomes score_loss.oof5
    frame = pd.read_csv(io.BytesIO(raw), keep_default_na=False)
    assert frame["score_loss.oof5"].tolist() == [0.0, 2.0, 5.0]
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


def test_safe_file_name_keeps_names_but_nothing_that_escapes():
    assert safe_file_name("my cat (2).JPG", "x") == "my cat (2).JPG" and safe_file_name("chat_été.png", "x") == "chat_été.png"
    assert safe_file_name("a/b\\c:d*.png", "x") == "a_b_c_d_.png" and safe_file_name("..", "x") == "x"
    assert safe_file_name(" .hidden. ", "x") == "hidden" and safe_file_name("CON.png", "x") == "_CON.png"
    assert safe_file_name("tab\there", "x") == "tab_here" and safe_file_name("", "fallback") == "fallback"
    assert class_folders(["Cat", "cat", "a/b", ""]) == ["Cat", "cat_1", "a_b", "class_3"]


def test_imagefolder_zip_layout_and_metadata(images):
    decisions = {0: _d(0, "relabel", 2), 5: _d(5, "remove")}
    with zipfile.ZipFile(io.BytesIO(imagefolder_zip(images, decisions))) as zf:
        names = zf.namelist()
        meta = pd.read_csv(zf.open("metadata.csv"), keep_default_na=False)
        from PIL import Image

        first = np.asarray(Image.open(zf.open("train/cat/10.png")))
        val0 = np.asarray(Image.open(zf.open(meta.loc[meta["split"] == "val", "file"].iloc[0])))
    files = [n for n in names if n != "metadata.csv"]
    train = [n for n in files if n.startswith("train/")]
    assert len(train) == 5 and len(files) == 5 + 2 + 2  # one training image removed; validation and test all there
    for n in files:
        parts = n.split("/")
        assert parts[0] in ("train", "val", "test") and len(parts) == 3 and ".." not in parts and parts[1] != ""
    assert "train/cat/10.png" in files  # relabelled to class 2, whose folder is "cat"
    assert sorted(n for n in files if not n.startswith("train/")) == ["test/_evil/0.png", "test/a_b/1.png",
                                                                      "val/_evil/0.png", "val/a_b/1.png"]
    train_meta = meta[(meta["split"] == "train") & (meta["file"] != "")]  # the removed image has a row, no file
    assert train_meta["final_label"].tolist() == [2, 1, 2, 0, 1] and 15 not in train_meta["index"].tolist()
    assert train_meta["action"].tolist() == ["relabel", "none", "none", "none", "none"]
    assert meta["original_file"].eq("").all()  # no files: names are the original indices
    expected = (images.train.x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(first, expected)  # pixels survive the round trip
    assert np.array_equal(val0, (images.val.x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


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
        assert set(out.files) == {"clean_label", "aggre_label", "cleaned_label", "in_subset", "reviewed"}
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


# --------------------------------------------------------------------------- the cleaned data set a user loads next
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _neutralised(frame: pd.DataFrame) -> pd.DataFrame:
    """What the CSV should hold, written out independently of export.csv_safe: text starting like a formula gets '."""
    return frame.apply(lambda col: col.map(lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA) else v))


def test_cleaned_csv_and_parquet_of_an_upload_are_the_files_rows(tmp_path):
    from tests.data.test_originals import people, train_names

    from influence_core.data import load_dataset

    frame = people()
    path = tmp_path / "people.csv"
    frame.to_csv(path, index=False)
    ds = load_dataset(str(path), label_column="outcome", seed=0)
    names = train_names(ds)
    given = ds.train.y.numpy()
    decisions = {2: _d(2, "remove"), 9: _d(9, "remove"), 4: _d(4, "relabel", 1 - int(given[4])), 6: _d(6, "keep")}
    # Expected, from the file itself: the training rows by name, minus the removed two, one label flipped 3 <-> 7.
    original = pd.read_csv(path).set_index("name")
    expected = original.loc[[n for i, n in enumerate(names) if i not in (2, 9)]].reset_index()[frame.columns]
    flipped = expected["name"] == names[4]
    expected.loc[flipped, "outcome"] = 10 - expected.loc[flipped, "outcome"]
    assert flipped.sum() == 1 and len(expected) == len(ds.train) - 2

    table = cleaned_table(ds, decisions)
    csv = pd.read_csv(io.BytesIO(table_bytes(table, "csv"))).drop(columns="original_index")
    parquet = pd.read_parquet(io.BytesIO(table_bytes(table, "parquet"))).drop(columns="original_index")
    pd.testing.assert_frame_equal(parquet, expected)  # raw values, the file's column types
    pd.testing.assert_frame_equal(csv, _neutralised(expected))  # cells that would run as formulas neutralised
    assert (csv["city"] == "'=1+1").any() and (csv["city"] == "'-oslo").any() and csv["income"].isna().sum() >= 1
    pd.testing.assert_frame_equal(_neutralised(parquet), csv)  # Parquet = CSV but for the apostrophes

    # ...and it is what a user loads next: the loader reads it back with the same columns, classes and rows.
    again = tmp_path / "people-cleaned.csv"
    again.write_bytes(table_bytes(table, "csv"))
    reloaded = load_dataset(str(again), label_column="outcome", seed=0)
    assert reloaded.classes == ds.classes and len(reloaded.train) + len(reloaded.val) + len(reloaded.test) == len(expected)


def test_cleaned_table_of_generated_data_and_refusals(moons, images):
    table = cleaned_table(moons, {0: _d(0, "remove"), 1: _d(1, "relabel", 1 - int(moons.train.y[1]))})
    assert len(table) == len(moons.train) - 1 and table.columns.tolist() == ["original_index", "x1", "x2", "label"]
    assert table["label"].iloc[0] == moons.classes[1 - int(moons.train.y[1])]
    with pytest.raises(InfluenceError, match="^the cleaned table is for tabular data sets"):
        cleaned_table(images, {})
    with pytest.raises(InfluenceError, match="^the ImageFolder export is for image data sets"):
        imagefolder_zip(moons, {})


def test_csv_safe_neutralises_categories_too():
    frame = pd.DataFrame({"c": pd.Categorical(["=a", "b", "=a"]), "n": [-1, 2, 3]})
    out = csv_safe(frame)
    assert out["c"].tolist() == ["'=a", "b", "'=a"] and out["n"].tolist() == [-1, 2, 3]


def _zip_with_names(tmp_path):
    from tests.data.test_uploads import png, write_zip

    entries = {}
    for c, col in (("cat", "red"), ("my dog", "blue")):
        for i in range(6):
            entries[f"pets/train/{c}/{c[-3:]}_{i}.png"] = png(col, size=(40 + i, 30))
        entries[f"pets/train/{c}/sub/deep.png"] = png(col, size=(33, 33))
        entries[f"pets/val/{c}/v.png"] = png(col, size=(20, 20))
        entries[f"pets/test/{c}/t.png"] = png(col, size=(21, 21))
    entries["pets/train/cat/same.png"] = png("red", size=(50, 50))
    entries["pets/train/my dog/same.png"] = png("blue", size=(51, 51))
    return write_zip(tmp_path, entries, "pets.zip"), entries


def test_imagefolder_of_an_uploaded_zip_keeps_file_names_bytes_and_splits(tmp_path):
    from influence_core.data import load_dataset

    path, entries = _zip_with_names(tmp_path)
    ds = load_dataset(path, seed=0)
    files = ds.meta["files"]
    row_of = {files[s]: r for r, s in enumerate(ds.source_index.numpy())}
    # cat/same.png moves to "my dog", which has a same.png of its own (later in row order: it keeps its name).
    cat_same, cat_0, dog_1 = (row_of[f"pets/train/{n}.png"] for n in ("cat/same", "cat/cat_0", "my dog/dog_1"))
    decisions = {cat_same: _d(cat_same, "relabel", 1), cat_0: _d(cat_0, "remove"), dog_1: _d(dog_1, "relabel", 0)}
    out = tmp_path / "export.zip"
    write_imagefolder(ds, decisions, out)
    with zipfile.ZipFile(out) as zf:
        names = sorted(n for n in zf.namelist() if n != "metadata.csv")
        meta = pd.read_csv(zf.open("metadata.csv"), keep_default_na=False)
        copied = {n: zf.read(n) for n in names}
    cat_same_index = int(ds.source_index[cat_same])
    assert names == sorted([
        "train/cat/cat_1.png", "train/cat/cat_2.png", "train/cat/cat_3.png", "train/cat/cat_4.png", "train/cat/cat_5.png",
        "train/cat/sub/deep.png", "train/cat/dog_1.png",
        "train/my dog/dog_0.png", "train/my dog/dog_2.png", "train/my dog/dog_3.png", "train/my dog/dog_4.png",
        "train/my dog/dog_5.png", "train/my dog/sub/deep.png", "train/my dog/same.png", f"train/my dog/same_{cat_same_index}.png",
        "val/cat/v.png", "val/my dog/v.png", "test/cat/t.png", "test/my dog/t.png"])
    # Every image is the uploaded file itself, byte for byte (full size, not the 32x32 the model sees).
    for _, m in meta[meta["action"] != "remove"].iterrows():
        assert copied[m["file"]] == entries[m["original_file"]]
    by_file = meta.set_index("original_file")
    assert by_file.loc["pets/train/my dog/same.png", "file"] == "train/my dog/same.png"  # it stayed: its name kept
    moved = by_file.loc["pets/train/cat/same.png"]
    assert moved["file"] == f"train/my dog/same_{cat_same_index}.png" and moved["action"] == "relabel"
    assert set(meta["split"]) == {"train", "val", "test"} and by_file.loc["pets/train/cat/cat_0.png", "file"] == ""
    # The export is an upload again: the same splits and classes, the decisions applied.
    back = load_dataset(str(out), seed=0)
    assert back.classes == ["cat", "my dog"] and (len(back.train), len(back.val), len(back.test)) == (len(ds.train) - 1, 2, 2)
    assert int((back.train.y == 0).sum()) == int((ds.train.y == 0).sum()) - 2 + 1


def test_imagefolder_of_a_carved_zip_writes_its_carved_splits(tmp_path):
    from tests.data.test_uploads import png, write_zip

    from influence_core.data import load_dataset

    entries = {f"{c}/{i}.jpg" if c == "cat" else f"{c}/{i}.png": png(col) for c, col in (("cat", "red"), ("dog", "blue"))
               for i in range(10)}
    ds = load_dataset(write_zip(tmp_path, entries), seed=3)
    with zipfile.ZipFile(io.BytesIO(imagefolder_zip(ds, {}))) as zf:
        meta = pd.read_csv(zf.open("metadata.csv"), keep_default_na=False)
    for split in ("train", "val", "test"):
        rows = meta[meta["split"] == split]
        expected = sorted(ds.meta["files"][i] for i in (ds.source_index.tolist() if split == "train" else ds.meta[f"{split}_source_index"]))
        assert sorted(rows["original_file"]) == expected
        assert all(f == f"{split}/{o}" for f, o in zip(rows["file"], rows["original_file"]))


def test_imagefolder_refuses_when_the_uploaded_zip_is_gone(tmp_path):
    from influence_core.data import load_dataset

    path, _ = _zip_with_names(tmp_path)
    ds = load_dataset(path, seed=0)
    Path(path).unlink()
    out = tmp_path / "export.zip"
    with pytest.raises(InfluenceError, match=r"^the source file of 'pets' is gone .*; load the data set again$"):
        write_imagefolder(ds, {}, out)
    assert not out.exists() and not list(tmp_path.glob("*.part"))


def test_imagefolder_of_cifar10n_adds_val_and_test(shared_data):
    from influence_core.data import load_dataset

    ds = load_dataset("cifar10n", seed=0, max_train=60, max_test=20)
    decisions = {0: _d(0, "remove"), 1: _d(1, "relabel", (int(ds.train.y[1]) + 1) % 10)}
    with zipfile.ZipFile(io.BytesIO(imagefolder_zip(ds, decisions))) as zf:
        names = [n for n in zf.namelist() if n != "metadata.csv"]
    by_split = {s: [n for n in names if n.startswith(f"{s}/")] for s in ("train", "val", "test")}
    assert (len(by_split["train"]), len(by_split["val"]), len(by_split["test"])) == (len(ds.train) - 1, len(ds.val), 20)
    index1 = int(ds.source_index[1])
    assert f"train/{ds.classes[(int(ds.train.y[1]) + 1) % 10]}/{index1}.png" in names
    assert sorted(int(n.rsplit("/", 1)[1][:-4]) for n in by_split["val"]) == sorted(ds.meta["val_source_index"])
    assert f"test/{ds.classes[int(ds.test.y[0])]}/0.png" in names


def test_cleaned_table_with_splits_loads_back_with_the_same_validation_and_test_rows(tmp_path):
    """The cleaned file with its split column is loaded back (under another seed) with the kept training rows, the
    same validation and test rows, and the relabels; a 'split' column with other values stays a feature."""
    from tests.data.test_originals import people, train_names

    from influence_core.data import load_dataset

    frame = people(80)
    path = tmp_path / "people.csv"
    frame.to_csv(path, index=False)
    ds = load_dataset(str(path), label_column="outcome", seed=0)
    names = train_names(ds)
    given = ds.train.y.numpy()
    decisions = {2: _d(2, "remove"), 4: _d(4, "relabel", 1 - int(given[4]))}
    table = cleaned_table(ds, decisions, with_splits=True)
    assert table["split"].value_counts().to_dict() == {"train": len(ds.train) - 1, "val": len(ds.val),
                                                        "test": len(ds.test)}
    again = tmp_path / "people-cleaned.csv"
    again.write_bytes(table_bytes(table, "csv"))
    reloaded = load_dataset(str(again), label_column="outcome", seed=7)  # another seed: the column decides
    written = pd.read_csv(again)

    def held_out(dataset, file, split):
        return sorted(file["name"].iloc[dataset.meta[f"{split}_source_index"]])

    assert sorted(train_names(reloaded)) == sorted(n for i, n in enumerate(names) if i != 2)
    for split in ("val", "test"):
        assert held_out(reloaded, written, split) == held_out(ds, frame, split)
    assert reloaded.meta["splits"] == "column" and not any(f.startswith("split") for f in reloaded.feature_names)
    row = train_names(reloaded).index(names[4])
    assert reloaded.classes[int(reloaded.train.y[row])] == ds.classes[1 - int(given[4])]

    other = frame.assign(split=np.where(np.arange(len(frame)) % 2, "train", "holdout"))
    other.to_csv(path, index=False)
    kept_as_feature = load_dataset(str(path), label_column="outcome", seed=0)
    assert kept_as_feature.meta["splits"] == "carved" and "split_holdout" in kept_as_feature.feature_names


def test_csv_header_that_looks_like_a_formula_is_neutralised_and_parquet_keeps_it():
    """A column named like a formula (an uploaded CSV's header) must not run when the export is opened."""
    frame = pd.DataFrame({"=HYPERLINK(\"http://x\",\"y\")": ["a"], "@SUM(A1)": [1], "plain": [2.0], "-1": [3]})
    header = table_bytes(frame, "csv").decode().splitlines()[0]
    cells = next(csv.reader([header]))
    assert cells == ["'=HYPERLINK(\"http://x\",\"y\")", "'@SUM(A1)", "plain", "'-1"]
    raw = pd.read_parquet(io.BytesIO(table_bytes(frame, "parquet")))
    assert list(raw.columns) == list(frame.columns)  # Parquet is read by programs, not spreadsheets: names as they are


# --------------------------------------------------------------------------- the link back to the source (issue 21 §3)
def test_cleaned_table_writes_each_rows_original_index_and_the_loader_keeps_it_out_of_the_features(tmp_path):
    """A re-uploaded cleaned file is renumbered from 0: the original index must travel in a column of its own,
    and loading the file again must not learn from it."""
    from tests.data.test_originals import people

    from influence_core.data import load_dataset

    frame = people(40)
    path = tmp_path / "people.csv"
    frame.to_csv(path, index=False)
    ds = load_dataset(str(path), label_column="outcome", seed=0)
    table = cleaned_table(ds, {1: _d(1, "remove")}, with_splits=True)
    csv = pd.read_csv(io.BytesIO(table_bytes(table, "csv")))
    assert "original_index" in csv.columns
    # each row's original index names the file's row with the same values
    assert (frame["name"].iloc[csv["original_index"]].to_numpy() == csv["name"].to_numpy()).all()
    removed = int(ds.source_index[1])
    assert removed not in csv["original_index"].tolist() and len(set(csv["original_index"])) == len(csv)
    again = tmp_path / "people-cleaned.csv"
    again.write_bytes(table_bytes(table, "csv"))
    reloaded = load_dataset(str(again), label_column="outcome", seed=0)
    assert not any(f.startswith("original_index") for f in reloaded.feature_names)
    # exported again, the first file's index is kept, not the second file's line numbers
    twice = cleaned_table(reloaded, {}, with_splits=True)
    assert sorted(twice["original_index"].tolist()) == sorted(csv["original_index"].tolist())


def test_image_corrections_name_the_uploaded_file(tmp_path):
    from influence_core.data import load_dataset

    path, _ = _zip_with_names(tmp_path)
    ds = load_dataset(path, seed=0)
    table = corrections_table(ds, {0: _d(0, "remove"), 3: _d(3, "relabel", 1)}, {})
    files = ds.meta["files"]
    assert table["file"].tolist() == [files[int(ds.source_index[0])], files[int(ds.source_index[3])]]


def test_zip_metadata_lists_removed_images(images):
    with zipfile.ZipFile(io.BytesIO(imagefolder_zip(images, {5: _d(5, "remove"), 0: _d(0, "keep")}))) as zf:
        meta = pd.read_csv(zf.open("metadata.csv"), keep_default_na=False)
        names = zf.namelist()
    gone = meta[meta["action"] == "remove"]
    assert gone["index"].tolist() == [15] and gone["file"].tolist() == [""] and gone["final_label"].tolist() == [-1]
    assert gone["split"].tolist() == ["train"] and not any(n.endswith("15.png") for n in names)
    assert len(meta) == len(names) - 1 + 1  # every image in the zip plus the removed one


def test_cifar_label_file_marks_the_samples_outside_the_subset(images):
    original = {"clean_label": np.arange(20) % 3, "aggre_label": (np.arange(20) + 1) % 3}
    with np.load(io.BytesIO(cifar_label_file(original, images, {1: _d(1, "relabel", 0)}, "aggre_label"))) as out:
        in_subset, reviewed = out["in_subset"], out["reviewed"]
    assert in_subset.dtype == bool and np.flatnonzero(in_subset).tolist() == list(range(10, 16))
    assert np.flatnonzero(reviewed).tolist() == [11]


def test_cleaned_text_table_keeps_the_original_text_and_columns_and_reloads_as_text(tmp_path):
    """Issue 18: a text upload's cleaned export holds the file's own text and other columns (not TF-IDF values),
    final labels applied, removed rows left out; loaded again it is the same text data set, splits kept."""
    from influence_core.data import load_dataset
    from influence_core.data.text import generated_text_frame
    from influence_core.export import cleaned_table, table_bytes

    frame = generated_text_frame(120, num_classes=2, seed=2, topic_rate=0.5).assign(stars=np.arange(120) % 5)
    path = tmp_path / "reviews.csv"
    frame.to_csv(path, index=False)
    ds = load_dataset(str(path))
    decisions = {0: Decision(0, "remove", None, "t", 1.0), 1: Decision(1, "relabel", 1 - int(ds.train.y[1]), "t", 1.0)}
    table = cleaned_table(ds, decisions, with_splits=True)
    train = table[table["split"] == "train"]
    src = ds.source_index.numpy()
    assert src[0] not in train.index and len(train) == len(ds.train) - 1
    assert train.loc[src[1], "text"] == frame["text"][src[1]] and train.loc[src[1], "stars"] == frame["stars"][src[1]]
    assert train.loc[src[1], "label"] != frame["label"][src[1]]
    again = tmp_path / "cleaned.csv"
    again.write_bytes(table_bytes(table, "csv"))
    reloaded = load_dataset(str(again))
    assert reloaded.kind == "text" and reloaded.texts["test"] == ds.texts["test"] and reloaded.texts["val"] == ds.texts["val"]


def test_generated_text_rows_show_their_text():
    from influence_core.data import load_dataset
    from influence_core.data.originals import original_rows

    ds = load_dataset("text-topics", n_train=40, n_val=20, n_test=20)
    rows = original_rows(ds, [3, 0])
    assert rows["text"].tolist() == [ds.texts["train"][3], ds.texts["train"][0]]
    assert rows["label"].tolist() == [ds.classes[int(ds.train.y[3])], ds.classes[int(ds.train.y[0])]]


def test_the_corrections_of_a_text_data_set_carry_each_decided_text():
    """A person reading the corrections file of text data sees what they decided on (before: index and labels only)."""
    from influence_core.data import load_dataset

    ds = load_dataset("text-topics", n_train=40, n_val=20, n_test=20)
    texts = list(ds.texts["train"])
    texts[3] = "=HYPERLINK(\"http://x\") " + texts[3]  # a text cell is neutralised like every other one
    ds.texts = {**ds.texts, "train": texts}
    table = corrections_table(ds, {7: _d(7, "remove"), 3: _d(3, "relabel", 0)}, {})
    assert table["text"].tolist() == [texts[3], texts[7]]
    frame = pd.read_csv(io.BytesIO(table_bytes(table, "csv")), keep_default_na=False)
    assert frame["text"].tolist() == ["'" + texts[3], texts[7]]
