"""Adult and Bank Marketing: documented sizes, labels and sensitive attribute checked against the raw files."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
import torch

from influence_core.data import load_dataset
from influence_core.data.tabular import encode_tabular
from influence_core.errors import InfluenceError


@pytest.fixture(scope="module")
def adult(shared_data):
    return load_dataset("adult", seed=0)


def test_adult_sizes_labels_and_sex(adult, shared_data):
    assert (len(adult.train), len(adult.val), len(adult.test)) == (26_049, 6_512, 16_281)
    assert adult.classes == ["<=50K", ">50K"] and adult.has_sensitive
    # Counts from the README (computed from the raw files, independently of this loader).
    assert int(adult.test.y.sum()) == 3_846 and int(adult.test.sensitive.sum()) == 10_860
    assert int(adult.train.y.sum() + adult.val.y.sum()) == 7_841
    assert int(adult.train.sensitive.sum() + adult.val.sensitive.sum()) == 21_790
    # Row-level check of the join: read adult.data with the csv module and compare at source_index.
    with open(shared_data / "adult" / "adult.data") as f:
        rows = [r for r in csv.reader(f, skipinitialspace=True) if r]
    src = adult.source_index.numpy()
    assert np.array_equal(adult.train.y.numpy(), np.array([r[14] == ">50K" for r in rows])[src])
    assert np.array_equal(adult.train.sensitive.numpy(), np.array([r[9] == "Male" for r in rows])[src])


def test_adult_encoder_fitted_on_train_only(adult):
    names = adult.feature_names
    age = names.index("age")
    assert abs(float(adult.train.x[:, age].mean())) < 1e-4 and abs(float(adult.train.x[:, age].std()) - 1) < 1e-3
    assert abs(float(adult.val.x[:, age].mean())) > 1e-4  # val is transformed with train statistics, not its own
    # '?' in workclass is imputed as its own category; one-hot rows sum to one per categorical column.
    assert "workclass_missing" in names
    onehot = [i for i, n in enumerate(names) if n.startswith("workclass_")]
    assert torch.allclose(adult.train.x[:, onehot].sum(1), torch.ones(len(adult.train)))


def test_bank_sizes_and_age_attribute(shared_data):
    ds = load_dataset("bank", seed=0)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 45_211
    assert (len(ds.test), len(ds.val)) == (9_042, 7_234)
    raw = pd.read_csv(shared_data / "bank" / "bank-full.csv", sep=";")
    src = ds.source_index.numpy()
    assert np.array_equal(ds.train.sensitive.numpy(), (raw["age"].to_numpy() >= 25)[src].astype(int))
    assert np.array_equal(ds.train.y.numpy(), (raw["y"] == "yes").to_numpy()[src].astype(int))
    total_yes = int(ds.train.y.sum() + ds.val.y.sum() + ds.test.y.sum())
    assert total_yes == 5_289


def test_bank_max_rows_subsamples(shared_data):
    ds = load_dataset("bank", max_rows=1000, seed=3)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 1000


def test_missing_refuse_names_columns_and_rows():
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0, 5.0, np.nan, 7.0, 8.0, 9.0, 10.0], "b": list("xyxyxyxyxy")})
    y = np.array([0, 1] * 5)
    with pytest.raises(InfluenceError, match=r"missing feature values in 'a' \(2 rows: 1, 5\)"):
        encode_tabular("t", frame, y, None, ["0", "1"], missing="refuse", test_fraction=0.2, val_fraction=0.25)


# ------------------------------------------------------------------------------------- the way back to the files
def _raw_rows(path, skip: int = 0) -> list[list[str]]:
    with open(path) as f:
        return [r for r in csv.reader(f, skipinitialspace=True) if r][skip:]


def _as_text(value) -> str:
    return "?" if pd.isna(value) else str(int(value) if isinstance(value, (int, np.integer)) else value)


def test_adult_original_rows_are_the_files_lines(adult, shared_data):
    from influence_core.data.originals import original_rows

    rows = _raw_rows(shared_data / "adult" / "adult.data")
    src = adult.source_index.numpy()
    picks = [0, 1, 2, len(adult.train) - 1, next(r for r in range(len(src)) if "?" in rows[src[r]])]
    got = original_rows(adult, picks)
    assert got.columns.tolist() == ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
                                    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
                                    "hours-per-week", "native-country", "income"]
    for (_, row), i in zip(got.iterrows(), src[picks]):
        assert [_as_text(v) for v in row] == rows[i]  # every cell as written ('?' = missing), not standardised
    assert got.iloc[-1].isna().any()  # a row with '?' in the file: missing, not the imputed category
    test_rows = _raw_rows(shared_data / "adult" / "adult.test", skip=1)
    got_test = original_rows(adult, [0, len(adult.test) - 1], "test")
    for (_, row), i in zip(got_test.iterrows(), [0, len(adult.test) - 1]):
        assert [_as_text(v) for v in row] == test_rows[i][:-1] + [test_rows[i][-1].rstrip(".")]


def test_adult_cleaned_table_after_decisions(adult, shared_data):
    from influence_core.export import cleaned_table
    from influence_core.review import Decision

    rows = _raw_rows(shared_data / "adult" / "adult.data")
    flip = 1 - int(adult.train.y[7])
    decisions = {3: Decision(3, "remove", None, "t", 0.0), 7: Decision(7, "relabel", flip, "t", 0.0)}
    table = cleaned_table(adult, decisions)
    assert (table.pop("original_index") == table.index).all()  # the link back, written as a column
    src = adult.source_index.numpy()
    assert len(table) == len(adult.train) - 1 and int(src[3]) not in table.index
    assert table.index[3] == src[4] and [_as_text(v) for v in table.iloc[3]] == rows[src[4]]
    relabelled = table.loc[int(src[7])]
    assert relabelled["income"] == adult.classes[flip] and [_as_text(v) for v in relabelled][:-1] == rows[src[7]][:-1]


def test_bank_subsample_original_rows(shared_data):
    from influence_core.data.originals import original_rows

    ds = load_dataset("bank", max_rows=300, seed=3)
    raw = pd.read_csv(shared_data / "bank" / "bank-full.csv", sep=";")
    chosen = np.sort(np.random.default_rng(3).choice(len(raw), size=300, replace=False))  # the documented subsample
    got = original_rows(ds, np.arange(len(ds.train)))
    expected = raw.iloc[chosen[ds.source_index.numpy()]]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False)
    test = original_rows(ds, np.arange(len(ds.test)), "test")
    assert np.array_equal((test["y"] == "yes").to_numpy(), ds.test.y.numpy().astype(bool))


def test_infinity_or_overflow_in_a_feature_names_the_column_and_rows():
    """A cell of inf (or a number float32 cannot hold) used to end in scikit-learn's traceback naming no column."""
    n = 40
    a = np.arange(n, dtype=float)
    a[3], a[8] = np.inf, -1e39  # -1e39 overflows float32, the features' type
    features = pd.DataFrame({"b": np.arange(n, dtype=float), "a": a})
    y = np.arange(n) % 2
    with pytest.raises(InfluenceError) as err:
        encode_tabular("t", features, y, None, ["0", "1"])
    assert str(err.value) == ("feature column 'a' holds infinite or too large numbers in 2 rows (3, 8); "
                              "replace them with numbers or leave the cells empty")
