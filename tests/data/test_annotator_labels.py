"""Several annotators' labels as data (issue 20 §4): CIFAR-10N's random1-3 joined by original index (a hand-made
CIFAR-N-like label file always; the real one where ../shared is here), and an upload's annotator columns — only the
file's own columns, each refusal one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from influence_core.data import load_dataset
from influence_core.data.cifar import CIFAR10N_ANNOTATORS
from influence_core.errors import InfluenceError

N_FULL = 50_000


# ------------------------------------------------------------------------------------------------ CIFAR-N
def _label_file(tmp_path, seed: int = 0):
    """A CIFAR-10N-like label file (the release's keys, 50,000 labels each) with random labels."""
    rng = np.random.default_rng(seed)
    keys = ("clean_label", "aggre_label", "worse_label", "random_label1", "random_label2", "random_label3")
    arrays = {k: rng.integers(0, 10, N_FULL).astype(np.int64) for k in keys}
    path = tmp_path / "labels.npz"
    np.savez(path, **arrays)
    return path, arrays


def _images(tmp_path, clean: np.ndarray, index: np.ndarray):
    rng = np.random.default_rng(1)
    path = tmp_path / "images.npz"
    np.savez(path, x_train=rng.integers(0, 256, (len(index), 8, 8, 3), dtype=np.uint8), y_train=clean[index],
             train_index=index, x_test=rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), y_test=np.arange(10))
    return path


def test_cifar10n_annotators_join_the_label_file_by_original_index(tmp_path):
    labels_path, arrays = _label_file(tmp_path)
    index = np.arange(1000, 1080)  # images of original indices 1000..1079
    ds = load_dataset("cifar10n", label_set="worst", images=str(_images(tmp_path, arrays["clean_label"], index)),
                      labels_path=str(labels_path), val_fraction=0.25)
    src = ds.source_index.numpy()
    assert ds.annotator_names == list(CIFAR10N_ANNOTATORS) == ["random1", "random2", "random3"]
    expected = np.stack([arrays[f"random_label{j}"][src] for j in (1, 2, 3)], axis=1)
    assert ds.annotators.dtype == np.float64 and np.array_equal(ds.annotators, expected)
    assert np.array_equal(ds.train.y.numpy(), arrays["worse_label"][src])  # the chosen label set stays the label
    assert ds.summary()["annotators"] == ["random1", "random2", "random3"]


def test_annotators_are_part_of_the_fingerprint_and_follow_the_rows(tmp_path):
    labels_path, arrays = _label_file(tmp_path)
    images = str(_images(tmp_path, arrays["clean_label"], np.arange(60)))
    ds = load_dataset("cifar10n", images=images, labels_path=str(labels_path))
    other = dict(arrays, random_label2=(arrays["random_label2"] + 1) % 10)  # one annotator said something else
    np.savez(tmp_path / "other.npz", **other)
    ds2 = load_dataset("cifar10n", images=images, labels_path=str(tmp_path / "other.npz"))
    assert np.array_equal(ds.train.y.numpy(), ds2.train.y.numpy())  # the same data but for the annotators
    assert ds.fingerprint() != ds2.fingerprint()
    # a subset of the training rows (folds, trimming) keeps each row's annotators
    rows = np.array([3, 0, 7])
    part = ds.with_train(ds.train.subset(rows), source_index=ds.source_index[rows])
    assert np.array_equal(part.annotators, ds.annotators[rows]) and part.annotator_names == ds.annotator_names


def test_real_cifar10n_annotators_are_the_release_random_label_sets(shared_data):
    with np.load(shared_data / "cifar_n" / "cifar10n_labels.npz") as z:
        release = {k: z[k] for k in z.files}
    ds = load_dataset("cifar10n", max_train=400)
    src = ds.source_index.numpy()
    for j, name in enumerate(ds.annotator_names):
        assert np.array_equal(ds.annotators[:, j], release[f"random_label{j + 1}"][src]), name
    # each annotator disagrees with the clean labels about as often as published (17-18% over all 50,000)
    disagree = (ds.annotators != release["clean_label"][src][:, None]).mean(0)
    assert np.all((disagree > 0.08) & (disagree < 0.30))


# ------------------------------------------------------------------------------------------------ uploads
def _table(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = np.where(x[:, 0] > 0, "cat", "dog")
    other = np.where(rng.random(n) < 0.3, np.where(y == "cat", "dog", "cat"), y).astype(object)
    other[:5] = None  # this annotator skipped the first five rows
    return pd.DataFrame({"f1": x[:, 0], "f2": x[:, 1], "ann_a": y, "ann_b": other, "label": y})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_upload_annotator_columns_are_labels_not_features(tmp_path, suffix):
    frame = _table()
    path = tmp_path / f"crowd{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    ds = load_dataset(str(path), annotator_columns=["ann_a", "ann_b"])
    src = ds.source_index.numpy()
    assert ds.classes == ["cat", "dog"] and ds.annotator_names == ["ann_a", "ann_b"]
    expected_b = np.array([np.nan if pd.isna(v) else ["cat", "dog"].index(v) for v in frame["ann_b"]])[src]
    np.testing.assert_array_equal(ds.annotators[:, 0], [["cat", "dog"].index(v) for v in frame["ann_a"][src]])
    np.testing.assert_array_equal(ds.annotators[:, 1], expected_b)  # NaN where the cell is empty
    assert ds.input_shape == (2,)  # f1 and f2 only: annotators' labels are not features
    plain = load_dataset(str(path), text_columns=[])
    assert plain.annotators is None and plain.input_shape[0] > 2 and plain.fingerprint() != ds.fingerprint()


def test_numeric_annotator_labels_read_by_the_label_columns_rule(tmp_path):
    frame = pd.DataFrame({"f": np.arange(40.0), "label": [0, 1] * 20,
                          "a": [1.0, np.nan] * 20, "b": ["0", "1.0"] * 20})  # 1.0 and "1.0" are class "1"
    path = tmp_path / "n.csv"
    frame.to_csv(path, index=False)
    ds = load_dataset(str(path), annotator_columns=["a", "b"])
    src = ds.source_index.numpy()
    np.testing.assert_array_equal(ds.annotators[:, 0], np.where(src % 2 == 0, 1.0, np.nan))
    np.testing.assert_array_equal(ds.annotators[:, 1], (src % 2).astype(float))


@pytest.mark.parametrize("columns, message", [
    (["nope"], "^no annotator column 'nope' in 'crowd.csv'; the columns are: f1, f2, ann_a, ann_b, label$"),
    (["../../etc/passwd"], "^no annotator column '../../etc/passwd' in 'crowd.csv'"),
    (["ann_a", "ann_a"], "^the annotator column 'ann_a' is named twice$"),
    (["label"], "^the column 'label' is the label column; it cannot also be an annotator$"),
    ("ann_a", "^annotator columns must be a list of column names$"),
    ([3], "^annotator columns must be a list of column names$"),
])
def test_hostile_annotator_columns_are_one_line_errors(tmp_path, columns, message):
    path = tmp_path / "crowd.csv"
    _table().to_csv(path, index=False)
    with pytest.raises(InfluenceError, match=message) as err:
        load_dataset(str(path), annotator_columns=columns)
    assert "\n" not in str(err.value)


def test_an_annotator_label_outside_the_classes_or_an_empty_column_is_refused(tmp_path):
    frame = _table()
    frame.loc[7, "ann_b"] = "bird"
    frame["empty"] = np.nan
    path = tmp_path / "crowd.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InfluenceError, match="^the annotator column 'ann_b' has 'bird' in row 7, which is not a class"):
        load_dataset(str(path), annotator_columns=["ann_b"])
    with pytest.raises(InfluenceError, match="^the annotator column 'empty' holds no labels$"):
        load_dataset(str(path), annotator_columns=["empty"])


def test_a_text_tables_annotator_columns_are_read_too(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    phrases = ["good movie great fun", "bad film awful boring"]
    rater = np.where(rng.random(80) < 0.2, 1 - y, y)
    frame = pd.DataFrame({"review": [f"{phrases[int(v)]} take {i}" for i, v in enumerate(y)], "rater": rater, "label": y})
    path = tmp_path / "reviews.csv"
    frame.to_csv(path, index=False)
    ds = load_dataset(str(path), text_columns=["review"], annotator_columns=["rater"])
    assert ds.kind == "text" and ds.annotator_names == ["rater"]
    np.testing.assert_array_equal(ds.annotators[:, 0], rater[ds.source_index.numpy()])


def test_a_message_about_annotator_columns_stays_short_and_on_one_line(tmp_path):
    frame = _table()
    frame["z" * 300] = frame["ann_a"]
    frame["two\nlines"] = frame["ann_a"]
    path = tmp_path / "crowd.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InfluenceError, match=r"the columns are: f1, .*, z{40}…, two\\nlines$") as err:
        load_dataset(str(path), annotator_columns=["nope"])  # before: every column name in full (300 z's)
    assert len(str(err.value)) < 250
    frame.loc[3, "two\nlines"] = "b" * 500
    frame.to_csv(path, index=False)
    with pytest.raises(InfluenceError, match=r"^the annotator column 'two\\nlines' has 'b{40}…' in row") as err:
        load_dataset(str(path), annotator_columns=["two\nlines"])
