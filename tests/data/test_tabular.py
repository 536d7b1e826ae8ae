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
