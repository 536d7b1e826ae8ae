"""User uploads: a good CSV and a good image zip load as documented; every bad input gives its one-line message."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from influence_core.data import load_dataset, raw_images
from influence_core.data import uploads
from influence_core.errors import InfluenceError


def write_csv(tmp_path, frame: pd.DataFrame, name: str = "data.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "income": rng.normal(50, 10, n), "city": rng.choice(["paris", "rome", "oslo"], n),
        "sex": rng.choice(["F", "M"], n), "outcome": rng.choice(["no", "yes"], n),
    })


# ------------------------------------------------------------------------------------------------ CSV
def test_csv_loads_with_string_labels_and_binarised_sensitive(tmp_path):
    frame = table()
    ds = load_dataset(write_csv(tmp_path, frame), label_column="outcome", sensitive_column="sex", seed=1)
    assert ds.classes == ["no", "yes"] and ds.sensitive_name == "sex = M"
    assert len(ds.train) + len(ds.val) + len(ds.test) == 60
    src = ds.source_index.numpy()
    assert np.array_equal(ds.train.y.numpy(), (frame["outcome"] == "yes").to_numpy()[src])
    assert np.array_equal(ds.train.sensitive.numpy(), (frame["sex"] == "M").to_numpy()[src])
    assert set(ds.feature_names) == {"income", "city_oslo", "city_paris", "city_rome", "sex_F", "sex_M"}


def test_csv_semicolons_integer_labels_and_median_imputation(tmp_path):
    frame = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0] * 3, "y": [3, 7] * 15,
                          "age": list(range(20, 50))})
    path = tmp_path / "semi.csv"
    frame.to_csv(path, sep=";", index=False)
    ds = load_dataset(str(path), label_column="y", sensitive_column="age", seed=0)
    assert ds.classes == ["3", "7"] and ds.sensitive_name == "age >= 34.5"
    src = ds.source_index.numpy()
    assert np.array_equal(ds.train.sensitive.numpy(), (frame["age"].to_numpy() >= 34.5)[src].astype(int))
    # The missing x is imputed with the training median, which standardises to the value of that median.
    x_train_raw = frame["x"].to_numpy()[src]
    med = np.nanmedian(x_train_raw)
    mu, sd = np.nanmean(np.where(np.isnan(x_train_raw), med, x_train_raw)), np.nanstd(np.where(np.isnan(x_train_raw), med, x_train_raw))
    rows = np.flatnonzero(np.isnan(x_train_raw))
    assert len(rows) > 0
    assert np.allclose(ds.train.x[rows, ds.feature_names.index("x")].numpy(), (med - mu) / sd, atol=1e-5)


@pytest.mark.parametrize("frame, kwargs, message", [
    (pd.DataFrame({"a": [1, 2], "b": [0, 1]}), {"label_column": "y"},
     "no label column 'y' in 'data.csv'; the columns are: a, b"),
    (pd.DataFrame({"a": [1, 2], "label": [0, 1], "Y": [1, 0]}), {},
     "'data.csv' has several columns that could be the label (label, Y); name the label column"),
    (pd.DataFrame({"a": [1, 2]}), {}, "'data.csv' has one column only ('a'); it needs a label column and features"),
    (pd.DataFrame({"a": [1, 2, 3], "y": [1, 1, 1]}), {"label_column": "y"},
     "the label column 'y' has only one class ('1'); a classifier needs at least two"),
    (pd.DataFrame({"a": [1, 2, 3, 4], "y": ["u", None, "v", None]}), {"label_column": "y"},
     "the label column 'y' is missing in 2 rows (1, 3); fill or drop them"),
    (pd.DataFrame({"a": [1, 2, 3], "y": [0.0, 0.5, 1.0]}), {"label_column": "y"},
     "the label column 'y' holds non-integer numbers (e.g. 0.5 in row 1); labels must be class names or integers"),
    (pd.DataFrame({"a": range(150), "id": [f"r{i}" for i in range(150)]}), {"label_column": "id"},
     "the label column 'id' has 150 distinct values, more than 100 classes; is it the right column?"),
    (pd.DataFrame({"a": range(6), "y": [0, 1] * 3, "race": list("abcabc")}), {"label_column": "y", "sensitive_column": "race"},
     "the sensitive column 'race' has 3 values (a, b, c); it must be binary (two values) or numeric (split at a threshold)"),
    (pd.DataFrame({"a": range(6), "y": [0, 1] * 3, "s": [1, 1, None, 0, 0, 1]}), {"label_column": "y", "sensitive_column": "s"},
     "the sensitive column 's' is missing in 1 rows (2); fill or drop them"),
    (pd.DataFrame({"a": [1.0, None] * 10, "y": [0, 1] * 10}), {"label_column": "y", "missing": "refuse"},
     "missing feature values in 'a' (10 rows: 1, 3, 5, 7, 9, …); fill them or use missing='impute'"),
    (pd.DataFrame({"y": [0, 1, 0, 1]}), {"label_column": "y"},
     "'data.csv' has no feature columns besides the label 'y'"),
])
def test_csv_bad_input_messages(tmp_path, frame, kwargs, message):
    with pytest.raises(InfluenceError) as err:
        load_dataset(write_csv(tmp_path, frame), **kwargs)
    assert str(err.value) == message


def test_blank_label_column_is_the_one_named_label_else_the_last_column(tmp_path):
    frame = table()  # columns income, city, sex, outcome: none is called label / y / target / class
    ds = load_dataset(write_csv(tmp_path, frame), seed=0)
    assert ds.meta["label_column"] == "outcome" and ds.classes == ["no", "yes"]
    assert np.array_equal(ds.train.y.numpy(), (frame["outcome"] == "yes").to_numpy()[ds.source_index.numpy()])
    named = frame.rename(columns={"sex": "Target"})
    ds = load_dataset(write_csv(tmp_path, named, "named.csv"), seed=0)
    assert ds.meta["label_column"] == "Target" and ds.classes == ["F", "M"]


def test_column_list_in_messages_keeps_the_last_columns(tmp_path):
    frame = pd.DataFrame({f"f{i}": [0.0, 1.0] * 10 for i in range(30)} | {"answer": [0, 1] * 10})
    with pytest.raises(InfluenceError) as err:
        load_dataset(write_csv(tmp_path, frame), label_column="Answer")
    assert str(err.value) == ("no label column 'Answer' in 'data.csv'; the columns are: "
                              + ", ".join(f"f{i}" for i in range(25)) + ", …, f27, f28, f29, answer (31 in all)")
    assert "--label-column" not in str(err.value)


def test_csv_empty_file_and_header_only(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InfluenceError, match="^the file 'empty.csv' is empty$"):
        load_dataset(str(empty), label_column="y")
    header = tmp_path / "header.csv"
    header.write_text("a,y\n")
    with pytest.raises(InfluenceError, match="^'header.csv' has a header but no data rows$"):
        load_dataset(str(header), label_column="y")


def test_oversized_upload_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 100)
    path = write_csv(tmp_path, table(50))
    with pytest.raises(InfluenceError, match=r"^'data.csv' is 0\.\d MB; uploads are limited to 0 MB$"):
        load_dataset(path, label_column="outcome")


# ------------------------------------------------------------------------------------------ image zip
def png(color, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def write_zip(tmp_path, entries: dict[str, bytes], name: str = "images.zip", compression=zipfile.ZIP_DEFLATED):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for member, data in entries.items():
            z.writestr(member, data)
    return str(path)


def test_image_zip_loads_resized_with_classes_from_folders(tmp_path):
    entries = {f"pets/cat/{i}.png": png((200, 10, 10)) for i in range(10)}
    entries.update({f"pets/dog/{i}.png": png((10, 10, 200)) for i in range(10)})
    entries["pets/readme.txt"] = b"not an image"
    ds = load_dataset(write_zip(tmp_path, entries), seed=0)
    assert ds.classes == ["cat", "dog"] and ds.input_shape == (3, 32, 32) and ds.kind == "image"
    assert len(ds.train) + len(ds.val) + len(ds.test) == 20
    files = ds.meta["files"]
    pix = raw_images(ds, "train")
    for row, src in enumerate(ds.source_index.numpy()):
        expected = (200, 10, 10) if "/cat/" in files[src] else (10, 10, 200)
        assert ds.classes[int(ds.train.y[row])] in files[src]
        assert tuple(pix[row, 5, 5]) == expected  # a flat colour survives resizing and normalisation exactly


def test_zip_slip_is_refused(tmp_path):
    path = write_zip(tmp_path, {"cat/1.png": png("red"), "../../evil/1.png": png("blue")})
    with pytest.raises(InfluenceError, match=r"^unsafe path '\.\./\.\./evil/1\.png' in 'images\.zip': it points outside"):
        load_dataset(path)
    path = write_zip(tmp_path, {"cat/1.png": png("red"), "/abs/1.png": png("blue")}, name="abs.zip")
    with pytest.raises(InfluenceError, match="unsafe path '/abs/1.png'"):
        load_dataset(path)


def test_zip_bomb_ratio_and_total_size_are_refused(tmp_path, monkeypatch):
    path = write_zip(tmp_path, {"cat/1.png": png("red"), "dog/bomb.png": b"\0" * (4 * 2**20)})
    with pytest.raises(InfluenceError, match=r"^'dog/bomb\.png' in 'images\.zip' is compressed \d+:1 \(limit 100:1\); this looks like a zip bomb$"):
        load_dataset(path)
    monkeypatch.setattr(uploads, "MAX_UNCOMPRESSED_BYTES", 1000)
    path = write_zip(tmp_path, {"cat/1.png": png("red"), "dog/1.png": png("blue")}, name="big.zip", compression=zipfile.ZIP_STORED)
    monkeypatch.setattr(uploads, "MAX_UNCOMPRESSED_BYTES", 100)
    with pytest.raises(InfluenceError, match=r"^'big\.zip' expands to 0 MB; the limit is 0 MB$"):
        load_dataset(path)


def test_unreadable_image_is_named(tmp_path):
    path = write_zip(tmp_path, {"cat/1.png": png("red"), "dog/broken.png": b"\x89PNG garbage"})
    with pytest.raises(InfluenceError, match=r"^cannot read image 'dog/broken\.png' in 'images\.zip': cannot identify image file"):
        load_dataset(path)


@pytest.mark.parametrize("entries, message", [
    ({"cat/1.png": png("red"), "cat/2.png": png("red")}, "'images.zip' has one class only ('cat'); a classifier needs at least two class folders"),
    ({"1.png": png("red"), "dog/2.png": png("red")}, "images must sit in class folders (class_name/file.png); '1.png' in 'images.zip' does not"),
    ({"notes.txt": b"hello"}, "no images found in 'images.zip' (expected class_name/file.png)"),
])
def test_zip_layout_messages(tmp_path, entries, message):
    with pytest.raises(InfluenceError) as err:
        load_dataset(write_zip(tmp_path, entries))
    assert str(err.value) == message


def test_not_a_zip(tmp_path):
    path = tmp_path / "fake.zip"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(InfluenceError, match="^'fake.zip' is not a valid zip file$"):
        load_dataset(str(path))


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_scores_a_csv_and_an_image_zip(tmp_path, capsys):
    import pandas as pd

    from influence_core import cli

    csv_path = write_csv(tmp_path, table(80))
    out = tmp_path / "scores.csv"
    assert cli.main(["score", "--dataset", csv_path, "--label-column", "outcome", "--sensitive-column", "sex",
                     "--model", "logreg", "--method", "ip", "--impact", "fairness", "--val-fraction", "0.25",
                     "--quiet", "--no-cache", "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert len(frame) == 48 and set(frame.columns) >= {"index", "label", "score", "rank"}  # 80 − 16 test − 16 val
    entries = {f"{c}/{i}.png": png(col) for c, col in (("a", "red"), ("b", "blue")) for i in range(10)}
    assert cli.main(["score", "--dataset", write_zip(tmp_path, entries), "--model", "cnn", "--epochs", "1",
                     "--quiet", "--no-cache", "--out", str(tmp_path / "img.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "img.csv")) == 14
    assert cli.main(["score", "--dataset", csv_path, "--label-column", "nope", "--no-cache"]) == 2
    assert "error: no label column 'nope' in 'data.csv'; the columns are: income, city, sex, outcome" in capsys.readouterr().err


# ------------------------------------------------------------------------------- image zip layouts and caps
def test_split_folders_are_splits_not_classes(tmp_path):
    entries = {f"train/{c}/{i}.png": png(col) for c, col in (("cat", "red"), ("dog", "blue")) for i in range(8)}
    entries.update({f"val/{c}/{i}.png": png(col) for c, col in (("cat", "red"), ("dog", "blue")) for i in range(3)})
    entries.update({f"test/{c}/{i}.png": png(col) for c, col in (("cat", "red"), ("dog", "blue")) for i in range(2)})
    ds = load_dataset(write_zip(tmp_path, entries), seed=0)
    assert ds.classes == ["cat", "dog"] and ds.meta["splits"] == "folders"
    assert (len(ds.train), len(ds.val), len(ds.test)) == (16, 6, 4)
    files = ds.meta["files"]
    assert all(files[i].startswith("train/") for i in ds.source_index.numpy())
    assert all(files[i].startswith("val/") for i in ds.meta["val_source_index"])
    assert all(files[i].startswith("test/") for i in ds.meta["test_source_index"])
    for row, src in enumerate(ds.source_index.numpy()):
        assert ds.classes[int(ds.train.y[row])] == files[src].split("/")[1]


def test_train_folder_alone_in_a_wrapper_carves_val_and_test(tmp_path):
    entries = {f"pets/train/{c}/{i}.png": png(col) for c, col in (("cat", "red"), ("dog", "blue")) for i in range(10)}
    ds = load_dataset(write_zip(tmp_path, entries), seed=0, val_fraction=0.25, test_fraction=0.2)
    assert ds.classes == ["cat", "dog"] and ds.meta["splits"] == "folders"
    assert (len(ds.train), len(ds.val), len(ds.test)) == (12, 4, 4)


@pytest.mark.parametrize("entries, message", [
    ({"train/cat/1.png": png("red"), "train/dog/1.png": png("blue"), "cat/2.png": png("red")},
     "'images.zip' mixes split folders (train) with other folders or files ('cat'); use class_name/file.png, "
     "or train/<class>/file.png with optional val/ and test/"),
    ({"val/cat/1.png": png("red"), "test/dog/1.png": png("blue")}, "'images.zip' has test/ and val/ but no train/ folder"),
    ({"train/1.png": png("red"), "train/2.png": png("blue"), "val/3.png": png("red")},
     "images in split folders must sit in class folders (train/<class>/file.png); 'train/1.png' in 'images.zip' does not"),
    ({"train/cat/1.png": png("red"), "train/dog/1.png": png("blue"), "test/bird/1.png": png("red")},
     "class 'bird' of 'images.zip' has images in val/ or test/ but none in train/"),
    ({"train/cat/1.png": png("red"), "train/dog/1.png": png("blue"), "val/cat/1.png": png("red"), "valid/dog/1.png": png("blue")},
     "'images.zip' has two folders for the same split (train, val, valid)"),
])
def test_layouts_that_cannot_be_meant_are_refused(tmp_path, entries, message):
    with pytest.raises(InfluenceError) as err:
        load_dataset(write_zip(tmp_path, entries))
    assert str(err.value) == message


def test_pixel_cap_is_checked_from_the_header_before_decoding(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    monkeypatch.setattr(uploads, "MAX_IMAGE_PIXELS", 1000)
    path = write_zip(tmp_path, {"cat/1.png": png("red", (20, 20)), "dog/big.png": png("blue", (40, 30))})
    decoded = []
    monkeypatch.setattr(PILImage.Image, "load", lambda self: decoded.append(1) or None)
    with pytest.raises(InfluenceError) as err:
        load_dataset(path)
    assert str(err.value) == "image 'dog/big.png' in 'images.zip' is 40x30 pixels; the limit is 1,000 pixels per image (e.g. 31x31)"
    assert decoded == []  # refused from the header: no pixel was decoded


def test_total_pixel_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_TOTAL_PIXELS", 4000)
    entries = {f"{c}/{i}.png": png("red", (40, 30)) for c in ("a", "b") for i in range(2)}
    with pytest.raises(InfluenceError, match=r"^the images in 'images\.zip' have more than 4,000 pixels together \(at 'b/1\.png'\); "):
        load_dataset(write_zip(tmp_path, entries))


def test_an_image_count_cap_refuses_many_tiny_images_before_any_header_is_read(tmp_path, monkeypatch):
    """60,000 8×8 PNGs (a 10 MB zip) took 64 s to load: far under the pixel cap, each image costs its own read,
    decode and resize. A zip holds at most `MAX_IMAGES` images (the cap lowered here), counted from its directory."""
    monkeypatch.setattr(uploads, "MAX_IMAGES", 5, raising=False)
    opened = []
    monkeypatch.setattr(uploads, "_open_image", lambda *a: opened.append(1))
    entries = {f"{c}/{i}.png": png("red", (1, 1)) for c in ("a", "b") for i in range(3)}
    with pytest.raises(InfluenceError) as err:
        load_dataset(write_zip(tmp_path, entries))
    assert str(err.value) == "'images.zip' holds 6 images; the limit is 5 per zip"
    assert opened == []


def test_truncated_png_message_is_clean(tmp_path):
    whole = png("red", (64, 64))
    for cut in (whole[:20], whole[: len(whole) - 30]):
        path = write_zip(tmp_path, {"cat/1.png": png("red"), "dog/cut.png": cut})
        with pytest.raises(InfluenceError) as err:
            load_dataset(path)
        text = str(err.value)
        assert text.startswith("cannot read image 'dog/cut.png' in 'images.zip': ") and "0x" not in text and "<" not in text


# ------------------------------------------------------------------------------------------------ storing
def test_save_upload_keeps_the_users_name_and_loads_before_storing(tmp_path):
    data = table(40).to_csv(index=False).encode()
    stored = uploads.save_upload(data, "C:\\Users\\me\\my data (1).csv", "data", tmp_path,
                                 load=lambda p: load_dataset(str(p), sensitive_column="sex"))
    assert stored.path.name == "my data (1).csv" and stored.path.read_bytes() == data
    assert stored.path.parent.parent == tmp_path / "uploads" / "data"
    assert stored.value.name == "my data (1)" and stored.value.meta["source"] == str(stored.path)
    again = uploads.save_upload(data, "my data (1).csv", "data", tmp_path)
    assert again.path == stored.path and again.value is None
    assert not any((tmp_path / "uploads" / uploads.STAGING).iterdir())


def _stored_files(root):
    return sorted(str(p.relative_to(root)) for p in (root / "uploads").rglob("*") if p.is_file()) if (root / "uploads").exists() else []


def test_refused_uploads_leave_nothing_on_disk(tmp_path, monkeypatch):
    import pickle

    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 2000)
    cases = [
        (table(200).to_csv(index=False).encode(), "big.csv", "data", r"^'big\.csv' is 0\.\d MB; uploads are limited to 0 MB$"),
        (open(write_zip(tmp_path, {"cat/1.png": png("red"), "../../evil/1.png": png("blue")}), "rb").read(), "slip.zip", "data",
         r"^unsafe path '\.\./\.\./evil/1\.png' in 'slip\.zip'"),
        (pickle.dumps({"linear.weight": Evil()}), "evil.pt", "weights", r"^refused to load 'evil\.pt': it holds Python objects"),
        (b"a,b\n1\n", "nolabel.csv", "data", None),
        (b"x", "x.exe", "data", r"^upload a \.csv table or a \.zip of images, not 'x\.exe'$"),
        (b"x", "w.h5", "weights", r"^weights must be \.safetensors, \.pt, \.pth, \.bin, \.ckpt or a \.pt2"),
        (b"", "e.csv", "data", "^the file 'e.csv' is empty$"),
    ]
    for data, name, kind, message in cases:
        def load(p):
            return load_dataset(str(p), label_column="nope")

        with pytest.raises(InfluenceError, match=message or r"^no label column 'nope' in 'nolabel\.csv'; the columns are: a, b$"):
            uploads.save_upload(data, name, kind, tmp_path, load=load if kind == "data" else None)
        assert _stored_files(tmp_path) == [], name
    assert not (tmp_path / "pwned").exists()


def test_workspace_upload_cap(tmp_path, monkeypatch):
    first = table(30).to_csv(index=False).encode()
    second = table(30, seed=1).to_csv(index=False).encode()
    monkeypatch.setattr(uploads, "MAX_WORKSPACE_UPLOAD_BYTES", len(first) + len(second) - 1)
    uploads.save_upload(first, "a.csv", "data", tmp_path)
    uploads.save_upload(first, "a.csv", "data", tmp_path)  # the same file again takes no more room
    with pytest.raises(InfluenceError) as err:
        uploads.save_upload(second, "b.csv", "data", tmp_path)
    assert str(err.value).startswith(f"this workspace's uploads already take 0.0 MB; 'b.csv' (0.0 MB) would pass the limit of 0 MB; "
                                     f"delete old uploads from {tmp_path / 'uploads'}")
    assert len(_stored_files(tmp_path)) == 1


# --------------------------------------------------------------- silent conversions said, or refused (issue 21 §1)
def write_text(tmp_path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_labels_1_and_1_0_are_one_class_and_the_conversion_is_stated(tmp_path):
    spellings = ["1", "1.0", "0", "0.00", "unsure"]  # a stray text label makes pandas keep the column as strings
    labels = [spellings[i % 5] for i in range(40)]
    path = write_text(tmp_path, "a,label\n" + "\n".join(f"{i},{y}" for i, y in enumerate(labels)))
    ds = load_dataset(path)
    assert ds.classes == ["0", "1", "unsure"]
    want = np.array([{"1": 1, "1.0": 1, "0": 0, "0.00": 0, "unsure": 2}[y] for y in labels])
    assert np.array_equal(ds.train.y.numpy(), want[ds.source_index.numpy()])
    assert "labels 0 and 0.00 read as one class" in ds.meta["conversions"]
    assert "labels 1 and 1.0 read as one class" in ds.meta["conversions"]


@pytest.mark.parametrize("encoding, note", [("cp1252", ["read as Windows-1252 (the file is not UTF-8)"]),
                                            ("utf-16", ["read as utf-16 (the file is not UTF-8)"]),
                                            ("utf-8-sig", [])])
def test_a_csv_saved_by_a_spreadsheet_keeps_its_accents_and_says_how_it_was_read(tmp_path, encoding, note):
    """Excel on Windows saves "CSV" as Windows-1252 (café was read as 'caf�') or UTF-16 (was refused as binary);
    UTF-8 with a byte-order mark kept the mark in the first column's name."""
    rows = [f"{'café' if i % 2 else 'thé'},{i % 3 + 0.5},{i % 2}" for i in range(60)]
    path = tmp_path / "data.csv"
    path.write_bytes(("drink,size,label\n" + "\n".join(rows) + "\n").encode(encoding))
    ds = load_dataset(str(path))
    assert sorted(ds.feature_names) == ["drink_café", "drink_thé", "size"]
    assert ds.meta["conversions"] == note
    assert set(uploads._read_csv(str(path))["drink"]) == {"café", "thé"}  # the originals Review shows, the same


def test_thousands_separators_are_read_as_numbers_and_the_conversion_is_stated(tmp_path):
    values = [937 + 37 * i for i in range(60)]  # 937 … 3120: most written "1,037"
    path = write_text(tmp_path, "amount,label\n" + "\n".join(f'"{v:,}",{i % 2}' for i, v in enumerate(values)))
    ds = load_dataset(path)
    assert ds.feature_names == ["amount"]
    assert ds.meta["conversions"] == ["column 'amount': thousands separators read as numbers"]
    raw = np.array(values, dtype=float)[ds.source_index.numpy()]
    standardised = (raw - raw.mean()) / raw.std()
    np.testing.assert_allclose(ds.train.x[:, 0].numpy(), standardised, atol=1e-5)


def test_a_free_text_column_makes_a_text_data_set_and_other_columns_stay_features(tmp_path):
    """Issue 18: a recognised text column loads as text (TF-IDF); the other columns are appended as tabular features
    unless the user chooses otherwise; ``text_columns=[]`` reads the table without the text, saying so."""
    rows = [f"{i % 7},{['paris', 'rome'][i % 2]},the film number {i} was rather good,{i % 2}" for i in range(60)]
    path = write_text(tmp_path, "a,city,review,label\n" + "\n".join(rows))
    ds = load_dataset(path)
    assert ds.kind == "text" and ds.meta["text_columns"] == ["review"] and ds.meta["feature_columns"] == ["a", "city"]
    assert ds.texts["train"] == [rows[i].split(",")[2] for i in ds.source_index.tolist()]
    text_only = load_dataset(path, feature_columns=[])
    assert ds.input_shape[0] == text_only.input_shape[0] + 3  # a (standardised) and city (two one-hot columns)
    table = load_dataset(path, text_columns=[])
    assert table.kind == "tabular" and table.feature_names == ["a", "city_paris", "city_rome"]
    assert table.meta["conversions"] == ["column 'review' looks like free text; it was left out (not named as a text column)"]


def test_identifier_columns_are_not_features_of_a_text_upload_unless_chosen(tmp_path):
    """A row number and a column named like an id, every value distinct, are left out by default (a model could tell
    the samples apart by them), with a note; chosen by name they are kept. Distinct measurements are not ids."""
    rows = [f"{i},r{i * 7},{i % 5},{i * 0.37:.2f},the film number {i} was rather good,{i % 2}" for i in range(60)]
    path = write_text(tmp_path, "id,review_id,stars,price,review,label\n" + "\n".join(rows))
    ds = load_dataset(path)
    assert ds.meta["feature_columns"] == ["stars", "price"]  # price: distinct, but neither a counter nor named an id
    assert "'id', 'review_id' look like an identifier (a distinct value per row): not a feature unless chosen" in \
        ds.meta["conversions"]
    assert load_dataset(path, feature_columns=["id", "stars"]).meta["feature_columns"] == ["id", "stars"]
    frame = pd.DataFrame({"valid": [1, 3, 2], "key": ["a", "a", "b"], "n": [5, 6, 7], "user id": [9, 4, 1]})
    assert uploads.identifier_columns(frame, list(frame.columns)) == ["n", "user id"]  # a counter; a distinct id


def test_a_table_of_free_text_only_without_text_columns_is_refused(tmp_path):
    rows = [f"the film number {i} was rather good,{i % 2}" for i in range(40)]
    path = write_text(tmp_path, "review,label\n" + "\n".join(rows), "text.csv")
    assert load_dataset(path).kind == "text"
    with pytest.raises(InfluenceError) as err:
        load_dataset(path, text_columns=[])
    assert str(err.value) == ("'text.csv' has no feature columns besides the label 'label': column 'review' looks like "
                              "free text (name it as a text column)")


@pytest.mark.parametrize("header", ["a ,a,label", "a,a,label"])
def test_duplicate_column_names_after_trimming_are_refused_in_one_line(tmp_path, header):
    path = write_text(tmp_path, header + "\n" + "\n".join(f"{i},{2 * i},{i % 2}" for i in range(30)), "dup.csv")
    with pytest.raises(InfluenceError) as err:
        load_dataset(path)
    assert str(err.value) == "'dup.csv' has two columns named 'a' (spaces around names are ignored); rename one"


@pytest.mark.parametrize("code", ["ENOSPC", "EROFS", "EACCES"])
def test_a_full_or_read_only_disk_refuses_the_upload_in_one_line_and_leaves_nothing(tmp_path, monkeypatch, code):
    import errno
    import os

    def refuse(src, dst):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), str(dst))

    monkeypatch.setattr(uploads.os, "replace", refuse)
    with pytest.raises(InfluenceError) as err:
        uploads.save_upload(table(40).to_csv(index=False).encode(), "a.csv", "data", tmp_path,
                            load=lambda p: load_dataset(str(p)))
    reason = {"ENOSPC": "the disk is full", "EROFS": "the disk is read-only", "EACCES": "no permission to write there"}[code]
    assert str(err.value) == f"cannot store the upload 'a.csv': {reason} on the server; ask its administrator"
    assert str(tmp_path) not in str(err.value)  # no server paths in a message for the browser
    assert _stored_files(tmp_path) == []


def test_an_infinite_label_is_refused_not_read_as_a_huge_class(tmp_path):
    labels = ["inf" if i == 4 else str(i % 2) for i in range(30)]
    path = write_text(tmp_path, "a,y\n" + "\n".join(f"{i},{y}" for i, y in enumerate(labels)))
    with pytest.raises(InfluenceError) as err:
        load_dataset(path)
    assert str(err.value) == ("the label column 'y' holds non-integer numbers (e.g. inf in row 4); "
                              "labels must be class names or integers")


def test_the_label_column_cannot_also_be_an_input(tmp_path):
    """As a text column, the perturbed column, a feature or the sensitive attribute the label would let the model
    read the answer: each is one line naming the role."""
    rows = [f"{['sport', 'food'][i % 2]},the film number {i} was rather good,{i % 2},{i % 3}" for i in range(40)]
    path = write_text(tmp_path, "topic,review,g,n\n" + "\n".join(rows))
    for kwargs, role in [({"text_columns": ["topic"]}, "a text column"),
                         ({"perturbed_column": "topic"}, "the perturbed column"),
                         ({"feature_columns": ["n", "topic"]}, "a feature"),
                         ({"sensitive_column": "topic"}, "the sensitive attribute")]:
        with pytest.raises(InfluenceError, match=f"^the column 'topic' is the label column; it cannot also be {role}$"):
            load_dataset(path, label_column="topic", **kwargs)
    assert load_dataset(path, label_column="topic", sensitive_column="g").sensitive_name is not None


def test_a_perturbed_column_the_file_lacks_or_that_is_a_text_column_is_one_line(tmp_path):
    """A browser may name the perturbed column: a column the file lacks was a KeyError traceback (with the text
    columns detected), and a text column named as its own twin was read as both."""
    rows = [f"the film number {i} was rather good,{i % 2},a plot of {i} scenes was dull" for i in range(40)]
    path = write_text(tmp_path, "review,label,other\n" + "\n".join(rows))
    with pytest.raises(InfluenceError, match="^no perturbed column 'nope' in 'data.csv'; the columns are: review, label, other$"):
        load_dataset(path, perturbed_column="nope")
    with pytest.raises(InfluenceError, match="^the column 'review' is the perturbed column; it cannot also be a text column$"):
        load_dataset(path, perturbed_column="review", text_columns=["review"])
    with pytest.raises(InfluenceError, match="^the column 'other' is the perturbed column; it cannot also be a feature$"):
        load_dataset(path, perturbed_column="other", text_columns=["review"], feature_columns=["other"])
    assert load_dataset(path, perturbed_column="other", text_columns=["review"]).kind == "text"


def test_a_table_whose_one_hot_features_would_not_fit_in_memory_is_refused_before_encoding(tmp_path, monkeypatch):
    """A column of short distinct values (not free text: no four words) was one-hot encoded densely: a 2 MB CSV of
    100,000 rows asked for 2 GB, a 40 MB one of a million rows took 24 GB and the server was killed. The encoded size
    (rows × columns) is capped before anything is encoded (the cap lowered here to keep the test small)."""
    from influence_core.data import tabular

    monkeypatch.setattr(tabular, "MAX_ENCODED_VALUES", 10**6, raising=False)
    path = write_text(tmp_path, "name,x,label\n" + "\n".join(f"n{i},{i % 7},{i % 2}" for i in range(2000)))
    with pytest.raises(InfluenceError) as err:
        load_dataset(path)
    assert str(err.value) == ("the features would be 2,000 rows × 2,001 columns once encoded (4,002,000 numbers; "
                              "the limit is 1,000,000): column 'name' has 2,000 distinct values, a column each; "
                              "leave it out, or name it as a text column if it is free text")
    assert load_dataset(write_text(tmp_path, "name,x,label\n" + "\n".join(f"n{i % 50},{i % 7},{i % 2}" for i in range(2000)),
                                   "ok.csv")).train.x.shape[1] == 51


def test_a_text_cell_over_the_length_cap_is_refused_in_one_line(tmp_path, monkeypatch):
    """One 50 MB cell in a text column was read (20 s, 1.9 GB more memory) and then sent whole to a Review card;
    a text longer than `MAX_TEXT_CHARS` is refused, naming its column and file row (the cap lowered here)."""
    from influence_core.data import text

    monkeypatch.setattr(text, "MAX_TEXT_CHARS", 1000, raising=False)
    rows = [f"the film number {i} was rather good,{i % 2}" for i in range(40)]
    rows[7] = "word " * 300 + ",1"
    with pytest.raises(InfluenceError, match="^the text in row 7 of column 'review' has 1,500 characters; a text may "
                                             "have at most 1,000$"):
        load_dataset(write_text(tmp_path, "review,label\n" + "\n".join(rows)), text_columns=["review"])
