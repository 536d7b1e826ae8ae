"""influence_core/data_issues.py: Datalab's findings on the model's features and probabilities, stored and memoised.

Planted problems in small synthetic sets must be found, and the table must hold exactly what cleanlab's Datalab
returns when called directly on the same features and probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import influence_core as ic
from influence_core.api import predicted_probabilities
from influence_core.data.base import Dataset, Split
from influence_core.data_issues import (DataIssueSettings, DataIssues, duplicate_groups, find_data_issues,
                                        issue_label, stored_data_issues)
from influence_core.errors import InfluenceError
from influence_core.keys import data_issues_key, hash_key
from influence_core.workspace import Workspace

DUPLICATES = np.arange(190, 200)  # rows 190..199 are copies of rows 0..9
OUTLIER = 189


def planted_table() -> Dataset:
    """Three Gaussian blobs in 4-D (in the positive orthant), 200 training rows: 10 exact duplicates (rows 190-199 copy rows 0-9) and one
    outlier far from every blob (row 189)."""
    rng = np.random.default_rng(0)
    centres = 10.0 + np.array([[0, 0, 0, 0], [4, 4, 0, 0], [0, 4, 4, 0]], dtype=np.float64)

    def split(n):
        y = rng.integers(0, 3, n)
        return centres[y] + rng.normal(size=(n, 4)), y

    x, y = split(200)
    x[DUPLICATES], y[DUPLICATES] = x[:10], y[:10]
    x[OUTLIER] = [-20.0, 20.0, -20.0, 20.0]  # Datalab compares 4-D features by cosine distance
    (xv, yv), (xt, yt) = split(60), split(60)
    return Dataset("planted", Split(x, y), Split(xv, yv), Split(xt, yt), ["a", "b", "c"],
                   source_index=torch.arange(1000, 1200))


@pytest.fixture(scope="module")
def planted():
    dataset = planted_table()
    return dataset, ic.train_model(dataset, "logreg", ic.TrainConfig(seed=0))


@pytest.fixture(scope="module")
def found(planted):
    return find_data_issues(*planted)


def test_planted_exact_duplicates_and_the_outlier_are_found(found):
    assert set(DUPLICATES) | set(range(10)) <= set(found.flagged("exact_duplicate"))
    assert set(found.flagged("exact_duplicate")) <= set(DUPLICATES) | set(range(10))  # nothing else is exactly equal
    assert [sorted([i, i + 190]) for i in range(10)] == [g for g in found.duplicate_sets if g[0] < 10]
    assert OUTLIER in found.flagged("outlier")
    assert int(np.argmin(found.rankings()["outlier"])) == OUTLIER  # the most outlying row
    assert set(found.table["issue"]) == {"label", "exact_duplicate", "near_duplicate", "outlier", "non_iid",
                                          "class_imbalance", "underperforming_group"}


def test_the_table_is_what_datalab_finds_on_the_same_features_and_probabilities(planted, found):
    from cleanlab import Datalab

    dataset, fitted = planted
    features = dataset.train.x.numpy()  # logistic regression has no hidden layer: its features are the inputs
    probs = predicted_probabilities(dataset, fitted)
    lab = Datalab(data={"label": dataset.train.y.numpy()}, label_name="label", verbosity=0)
    lab.find_issues(features=features.astype(np.float32), pred_probs=probs)
    direct = lab.get_issues()
    for issue in ("label", "near_duplicate", "outlier", "non_iid", "class_imbalance", "underperforming_group"):
        ours = found.table[found.table["issue"] == issue].sort_values("sample")
        np.testing.assert_allclose(ours["score"].to_numpy(), direct[f"{issue}_score"].to_numpy(), rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(ours["is_issue"].to_numpy(), direct[f"is_{issue}_issue"].to_numpy())
    exact = found.table[found.table["issue"] == "exact_duplicate"].sort_values("sample")
    np.testing.assert_array_equal(exact["is_issue"].to_numpy(), direct["near_duplicate_score"].to_numpy() == 0)
    ours = found.table[found.table["issue"] == "label"]
    np.testing.assert_array_equal(ours["index"].to_numpy(), 1000 + ours["sample"].to_numpy())  # the original index


def test_summary_counts_each_flagged_issue(found):
    summary = found.summary().set_index("issue")
    for issue in ("exact_duplicate", "outlier", "label"):
        count = int(found.table[(found.table["issue"] == issue) & found.table["is_issue"]].shape[0])
        assert summary.loc[issue, "count"] == count
        assert summary.loc[issue, "share"] == pytest.approx(count / 200)


def test_duplicate_groups_join_datalab_sets_into_components():
    sets = [np.array([1]), np.array([0, 2]), np.array([1]), np.array([], dtype=int), np.array([5]), np.array([4])]
    assert duplicate_groups(sets, 6) == [[0, 1, 2], [4, 5]]


def test_stored_round_trip_and_the_key_changes_with_the_model(planted, found, tmp_path):
    dataset, fitted = planted
    store = Workspace(tmp_path)
    first = stored_data_issues(store, dataset, fitted, memo_scope=str(tmp_path))
    again = DataIssues.from_arrays(first.to_arrays())
    assert again.duplicate_sets == first.duplicate_sets == found.duplicate_sets
    assert again.table.equals(first.table)
    other = ic.train_model(dataset, "mlp", ic.TrainConfig(seed=0, epochs=5))
    settings = DataIssueSettings()
    assert hash_key(data_issues_key(dataset, fitted, settings)) != hash_key(data_issues_key(dataset, other, settings))
    assert hash_key(data_issues_key(dataset, fitted, settings)) != hash_key(data_issues_key(dataset, fitted, settings, 3))
    assert hash_key(data_issues_key(dataset, fitted, settings)) != hash_key(
        data_issues_key(dataset, fitted, DataIssueSettings(k=5)))
    assert len(list((tmp_path / "data_issues").glob("*.npz"))) == 1


def test_settings_refuse_unknown_checks():
    with pytest.raises(InfluenceError, match="unknown data check 'duplicates'"):
        DataIssueSettings(checks=("duplicates",))
    with pytest.raises(InfluenceError, match="k"):
        DataIssueSettings(k=0)
    assert issue_label("near_duplicate") == "issue: near duplicate"
