"""Text data (issue 18 §1): TF-IDF features against scikit-learn's own vectorizer, fitted on train only; splits,
texts and counterfactual twins aligned with the rows; detection of free-text columns; features on disk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.feature_extraction.text import TfidfVectorizer

from influence_core.data.text import (FEATURIZERS, TEXT_SEPARATOR, TfidfSettings, detect_text_columns,
                                      generated_text_frame, register_featurizer, text_dataset)
from influence_core.errors import InfluenceError


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    f = generated_text_frame(200, num_classes=3, seed=1)
    f["group"] = np.arange(len(f)) % 2
    f["swapped"] = f["text"].str.upper() + " extra"
    return f


def _sklearn(train_texts, texts, settings=TfidfSettings()):
    vec = TfidfVectorizer(ngram_range=(1, settings.ngram_max), min_df=settings.min_df,
                          max_features=settings.max_features, sublinear_tf=settings.sublinear_tf)
    vec.fit(train_texts)
    return vec.transform(texts).toarray()


def test_tfidf_features_equal_sklearn_fitted_on_train_only(frame):
    ds = text_dataset(frame, text_columns=["text"], label_column="label", name="t")
    assert ds.kind == "text" and set(ds.texts) == {"train", "val", "test"}
    train_texts = ds.texts["train"]
    for split in ("train", "val", "test"):
        expected = _sklearn(train_texts, ds.texts[split])
        assert getattr(ds, split).x.shape == expected.shape
        np.testing.assert_allclose(getattr(ds, split).x.numpy(), expected, rtol=1e-5, atol=1e-6)
    # fitted on all texts the vocabulary (and idf) would differ: the vectorizer never saw val/test text
    every = train_texts + ds.texts["val"] + ds.texts["test"]
    assert _sklearn(every, ds.texts["val"]).shape[1] != ds.val.x.shape[1]


def test_the_featurizer_gets_only_training_texts_to_fit(frame):
    seen = {}

    def spy(train_texts, texts_by_split, settings):
        seen["fit"], seen["splits"] = list(train_texts), {k: list(v) for k, v in texts_by_split.items()}
        return FEATURIZERS["tfidf"](train_texts, texts_by_split, settings)

    register_featurizer("spy", spy)
    try:
        ds = text_dataset(frame, text_columns=["text"], label_column="label", features="spy")
    finally:
        FEATURIZERS.pop("spy")
    assert seen["fit"] == ds.texts["train"]
    assert not set(seen["fit"]) & (set(ds.texts["val"]) | set(ds.texts["test"]))


def test_rows_texts_and_labels_stay_aligned_with_the_source_frame(frame):
    ds = text_dataset(frame, text_columns=["text"], label_column="label")
    classes = ds.classes
    assert len(ds.train) + len(ds.val) + len(ds.test) == len(frame)
    for split, rows in (("train", ds.source_index.numpy()), ("val", ds.meta["val_source_index"]),
                        ("test", ds.meta["test_source_index"])):
        assert ds.texts[split] == frame["text"].iloc[rows].tolist()
        assert [classes[c] for c in getattr(ds, split).y.tolist()] == frame["label"].iloc[rows].tolist()
    # carved as tabular uploads are: 20% test, then 20% of the rest validation
    assert len(ds.test) == 40 and len(ds.val) == 32


def test_given_validation_and_test_frames_are_used_as_they_are(frame):
    ds = text_dataset(frame.iloc[:120], frame.iloc[120:160], frame.iloc[160:], text_columns=["text"], label_column="label")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (120, 40, 40)
    assert ds.texts["test"] == frame["text"].iloc[160:].tolist()


def test_several_text_columns_are_joined_with_the_separator(frame):
    f = frame.assign(second=frame["text"].str[:5])
    ds = text_dataset(f, text_columns=["text", "second"], label_column="label")
    rows = ds.source_index.numpy()
    assert ds.texts["train"][0] == f["text"].iloc[rows[0]] + TEXT_SEPARATOR + f["second"].iloc[rows[0]]


def test_twins_from_a_perturbed_column_or_a_perturber(frame):
    by_column = text_dataset(frame, text_columns=["text"], label_column="label", perturbed_column="swapped")
    assert by_column.train.twin is None
    rows = by_column.meta["val_source_index"]
    expected = _sklearn(by_column.texts["train"], frame["swapped"].iloc[rows].tolist())
    np.testing.assert_allclose(by_column.val.twin.x.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(by_column.val.twin.y, by_column.val.y)

    def perturb(t):
        return " ".join(reversed(t.split()[:3]))

    by_fn = text_dataset(frame, text_columns=["text"], label_column="label", perturber=perturb)
    expected = _sklearn(by_fn.texts["train"], [perturb(t) for t in by_fn.texts["test"]])
    np.testing.assert_allclose(by_fn.test.twin.x.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert by_fn.fingerprint() != text_dataset(frame, text_columns=["text"], label_column="label").fingerprint()
    # twins travel with subsets and relabelling
    sub = by_fn.test.subset(np.array([3, 1]))
    assert torch.equal(sub.twin.x, by_fn.test.twin.x[[3, 1]])
    assert by_fn.test.with_labels(torch.zeros(len(by_fn.test), dtype=torch.int64)).twin.y.sum() == 0


def test_with_train_keeps_training_texts_aligned(frame):
    ds = text_dataset(frame, text_columns=["text"], label_column="label")
    keep = np.array([5, 0, 7])
    by_source = ds.with_train(ds.train.subset(keep), source_index=ds.source_index[keep])
    assert by_source.texts["train"] == [ds.texts["train"][i] for i in keep]
    by_index = ds.with_train(ds.train.subset(keep), train_index=keep)
    assert by_index.texts["train"] == by_source.texts["train"] and by_index.texts["val"] == ds.texts["val"]
    assert ds.with_train(ds.train.subset(keep)).texts is None  # nothing says which rows these are


def test_sensitive_column_is_binarised_per_row(frame):
    ds = text_dataset(frame, text_columns=["text"], label_column="label", sensitive_column="group")
    assert ds.train.sensitive.tolist() == frame["group"].iloc[ds.source_index.numpy()].tolist()


def test_detect_text_columns():
    f = pd.DataFrame({"review": [f"this film number {i} was fine" for i in range(10)],
                      "city": ["Paris", "Rome"] * 5, "short": [f"id{i}" for i in range(10)], "n": range(10)})
    assert detect_text_columns(f) == ["review"]


def test_tfidf_features_stay_sparse_and_read_as_the_dense_rows(frame, tmp_path, monkeypatch):
    monkeypatch.setenv("INFLUENCE_DATA_DIR", str(tmp_path))
    ds = text_dataset(frame, text_columns=["text"], label_column="label")
    dense = _sklearn(ds.texts["train"], ds.texts["train"]).astype(np.float32)
    assert ds.train.sparse is not None and not ds.train.on_disk and ds.val.sparse is not None
    assert ds.train.sparse.nnz == int((dense != 0).sum()) < dense.size / 5  # a few terms a row
    np.testing.assert_allclose(ds.train.rows([4, 2]).numpy(), dense[[4, 2]], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(ds.train.rows(slice(3, 9)).numpy(), ds.train.x[3:9].numpy())
    view = ds.train.subset(np.array([7, 1, 5]))
    assert view.sparse is not None and torch.equal(view.rows([2, 0]), ds.train.x[[5, 7]])
    np.testing.assert_allclose(ds.train.sparse.torch_sparse().to_dense().numpy(), ds.train.x.numpy())
    assert list(tmp_path.rglob("*.npy")) == []  # nothing written
    # same texts, same fingerprint; a view of other rows, another
    assert ds.fingerprint() == text_dataset(frame, text_columns=["text"], label_column="label").fingerprint()
    assert ds.train.subset(np.arange(5)).sparse.token() != ds.train.subset(np.arange(1, 6)).sparse.token()


def test_dense_features_on_disk_when_asked_read_the_same(frame, tmp_path, monkeypatch):
    monkeypatch.setenv("INFLUENCE_DATA_DIR", str(tmp_path))
    sparse = text_dataset(frame, text_columns=["text"], label_column="label")
    stored = text_dataset(frame, text_columns=["text"], label_column="label", on_disk=True)
    assert stored.train.on_disk and stored.test.on_disk and stored.val.twin is None
    np.testing.assert_array_equal(stored.train.rows([4, 2]).numpy(), sparse.train.x[[4, 2]].numpy())
    np.testing.assert_array_equal(stored.test.x.numpy(), sparse.test.x.numpy())
    assert stored.fingerprint() == text_dataset(frame, text_columns=["text"], label_column="label", on_disk=True).fingerprint()


def test_one_line_errors(frame):
    with pytest.raises(InfluenceError, match="no text column 'nope'"):
        text_dataset(frame, text_columns=["nope"], label_column="label")
    with pytest.raises(InfluenceError, match="no terms"):
        text_dataset(frame.assign(text="a"), text_columns=["text"], label_column="label")
    with pytest.raises(InfluenceError, match="unknown text features"):
        text_dataset(frame, text_columns=["text"], label_column="label", features="bag")


def test_generated_topics_set_has_moved_labels():
    from influence_core.data import load_dataset

    ds = load_dataset("text-topics", n_train=200, n_val=50, n_test=50)
    assert ds.kind == "text" and ds.num_classes == 4 and int(ds.noise_mask.sum()) == 20
    assert torch.equal(ds.noise_mask, ds.train.y != ds.clean_labels)
    assert len(ds.texts["train"]) == 200


def test_a_parquet_table_with_a_text_column_loads_as_text_and_keeps_its_originals(frame, tmp_path):
    from influence_core.data import load_dataset
    from influence_core.data.originals import original_rows
    from influence_core.data.uploads import check_upload_content

    path = tmp_path / "reviews.parquet"
    frame[["text", "group", "label"]].to_parquet(path, index=False)
    check_upload_content(path.read_bytes(), path.name, "data")
    ds = load_dataset(str(path), feature_columns=[])
    as_csv = text_dataset(frame, text_columns=["text"], label_column="label")
    assert ds.kind == "text" and ds.texts == as_csv.texts
    np.testing.assert_array_equal(ds.train.x.numpy(), as_csv.train.x.numpy())
    assert original_rows(ds, [0])["text"].iloc[0] == ds.texts["train"][0]
    with pytest.raises(InfluenceError, match="cannot read 'bad.parquet' as Parquet"):
        check_upload_content(b"PAR1 not really", "bad.parquet", "data")


def test_tfidf_settings_are_capped_and_change_the_fingerprint(frame):
    from influence_core.data.text import MAX_NGRAM, MAX_TFIDF_FEATURES, tfidf_settings

    base = text_dataset(frame, text_columns=["text"], label_column="label")
    for change in ({"ngram_max": 1}, {"min_df": 1}, {"max_features": 20}):
        settings = tfidf_settings(**change)
        other = text_dataset(frame, text_columns=["text"], label_column="label", tfidf=settings)
        assert other.fingerprint() != base.fingerprint() and other.meta["tfidf"] == {**base.meta["tfidf"], **change}
        np.testing.assert_allclose(other.train.x.numpy(), _sklearn(base.texts["train"], base.texts["train"], settings),
                                   rtol=1e-5, atol=1e-6)
    assert tfidf_settings() == TfidfSettings() and tfidf_settings(min_df=None, ngram_max=3).ngram_max == 3
    for bad in ({"ngram_max": MAX_NGRAM + 1}, {"max_features": MAX_TFIDF_FEATURES + 1}, {"min_df": 0},
                {"max_features": "all"}, {"ngram_max": 1.5}):
        with pytest.raises(InfluenceError, match=f"TF-IDF setting {next(iter(bad))} must be a whole number from 1"):
            TfidfSettings(**bad)


def test_a_browser_gets_tfidf_settings_only_within_the_caps(tmp_path):
    """The settings are loader keywords: part of the project's data-set memo key; a browser's over-cap value is one
    line and the data set does not change."""
    from influence_core.project import Project

    proj = Project.open("t", str(tmp_path))
    small = dict(n_train=60, n_val=30, n_test=30)
    a = proj.use_dataset("text-topics", from_browser=True, **small)
    b = proj.use_dataset("text-topics", from_browser=True, max_features=25, ngram_max=1, **small)
    assert b.input_shape == (25,) and a.input_shape != b.input_shape and a.fingerprint() != b.fingerprint()
    assert proj._memo_key("text-topics", {**small, "max_features": 25}) != proj._memo_key("text-topics", small)
    with pytest.raises(InfluenceError, match="max_features must be a whole number from 1 to 65,536"):
        proj.use_dataset("text-topics", from_browser=True, max_features=70_000, **small)
    assert proj.state().dataset_kwargs == {"max_features": 25, "ngram_max": 1, **small}


def test_the_twins_that_differ_are_counted_on_what_the_model_sees(frame):
    """A twin counts when its features differ from its text's: a word outside the vocabulary (fitted on the training
    texts) changes nothing; one inside does. With no twin that differs the counterfactual impact is refused."""
    from influence_core.impacts import make_impact, twins_that_differ

    common = pd.Series(" ".join(frame["text"]).split()).value_counts().index[0]  # in every vocabulary
    changed = {t for t in frame["text"] if len(t.split()) % 2 == 0}

    def perturb(word):
        return lambda t: f"{t} {word}" if t in changed else t  # an even word count gets one more word

    known = text_dataset(frame, text_columns=["text"], label_column="label", perturber=perturb(common))
    unknown = text_dataset(frame, text_columns=["text"], label_column="label", perturber=perturb("zzzunseen"))
    for split in ("val", "test"):
        expected = sum(t in changed for t in known.texts[split])
        assert 0 < expected < len(known.texts[split])
        assert twins_that_differ(known, split) == expected
        assert twins_that_differ(unknown, split) == 0  # the texts differ, the TF-IDF features do not
    make_impact("counterfactual").check(known)
    with pytest.raises(InfluenceError, match="nothing to measure") as info:
        make_impact("counterfactual").check(unknown)
    assert "\n" not in str(info.value)
