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
    features = dataset.train.x.numpy().astype(np.float64)  # logistic regression: its features are the inputs
    probs = predicted_probabilities(dataset, fitted)
    lab = Datalab(data={"label": dataset.train.y.numpy()}, label_name="label", verbosity=0)
    lab.find_issues(features=features, pred_probs=probs)
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


def test_group_influence_sums_each_group_and_says_which_way_it_pushes():
    from influence_core.data_issues import group_influence

    scores = np.array([-1.0, -2.0, 0.5, 4.0, 1.0])
    frame = group_influence([[0, 1], [2, 3, 4]], scores, np.array([10, 11, 12, 13, 14]))
    assert frame["samples"].tolist() == ["10, 11", "12, 13, 14"]
    assert frame["summed score"].tolist() == [-3.0, 5.5] and frame["size"].tolist() == [2, 3]
    assert frame["effect"].str.startswith("pulls the validation loss up").tolist() == [True, False]


def test_settings_refuse_unknown_checks():
    with pytest.raises(InfluenceError, match="unknown data check 'duplicates'"):
        DataIssueSettings(checks=("duplicates",))
    with pytest.raises(InfluenceError, match="k"):
        DataIssueSettings(k=0)
    with pytest.raises(InfluenceError, match="near_duplicate_threshold"):
        DataIssueSettings(near_duplicate_threshold=-1.0)
    assert issue_label("near_duplicate") == "issue: near duplicate"


@pytest.fixture(scope="module")
def noise_images():
    """80 noise images in [0, 1] where row 0 is nearly black, row 1 a smooth colour gradient (no edges) and row 79 a
    copy of row 2; a CNN trained for one epoch."""
    rng = np.random.default_rng(0)

    def split(n):
        return rng.uniform(0, 1, size=(n, 3, 32, 32)), rng.integers(0, 2, n)

    x, y = split(80)
    x[0] = 0.02 * rng.uniform(size=(3, 32, 32))
    x[1] = np.linspace(0.2, 0.8, 32)[None, :, None] * np.array([1.0, 0.6, 0.3])[:, None, None] * np.ones((3, 32, 32))
    x[79] = x[2]
    dataset = Dataset("noise images", Split(x, y), Split(*split(20)), Split(*split(20)), ["a", "b"], kind="image")
    return dataset, ic.train_model(dataset, "cnn", ic.TrainConfig(seed=0, epochs=1, augment=False))


def test_image_checks_find_a_planted_dark_and_a_planted_blurry_image(noise_images):
    """cleanvision's checks through Datalab's image path."""
    dataset, fitted = noise_images
    found = find_data_issues(dataset, fitted, settings=DataIssueSettings(checks=("near_duplicate",),
                                                                         image_checks=("dark", "blurry", "light")))
    assert found.flagged("dark").tolist() == [0]
    assert found.flagged("blurry").tolist() == [1]
    assert found.flagged("light").tolist() == []
    assert int(np.argmin(found.rankings()["dark"])) == 0 and int(np.argmin(found.rankings()["blurry"])) == 1
    assert set(found.table["issue"]) == {"near_duplicate", "exact_duplicate", "dark", "blurry", "light"}


def test_pixel_features_are_each_image_pooled_to_8x8_and_standardised(noise_images, planted):
    from influence_core.data_issues import pixel_features
    from influence_core.export import images_uint8

    dataset, fitted = noise_images
    features = pixel_features(dataset)
    img = images_uint8(dataset, [5])[0].astype(np.float64)  # H×W×C
    pooled = img.reshape(8, 4, 8, 4, 3).mean(axis=(1, 3)).transpose(2, 0, 1).ravel()  # C×8×8, as torch flattens
    np.testing.assert_allclose(features[5], (pooled - pooled.mean()) / (pooled.std() + 1e-6), rtol=1e-9, atol=1e-9)
    found = find_data_issues(dataset, fitted, settings=DataIssueSettings(checks=("near_duplicate",), image_checks=(),
                                                                         features="pixels"))
    assert found.flagged("exact_duplicate").tolist() == [2, 79]
    with pytest.raises(InfluenceError, match="needs image data"):
        find_data_issues(*planted, settings=DataIssueSettings(features="pixels"))


def test_the_project_keeps_its_findings_as_rankings_and_in_a_job(tmp_path):
    from influence_core.project import Project

    project = Project.open("issues", tmp_path)
    project.use_dataset("blobs", seed=0)
    project.train("logreg")
    assert project.data_issues() is None and project.issue_rankings() == {}
    found = project.find_data_issues(folds=2)
    assert found.out_of_fold
    rankings = project.issue_rankings()
    assert "issue: near duplicate" in rankings and "issue: label" in rankings
    np.testing.assert_array_equal(rankings["issue: outlier"], found.rankings()["outlier"])
    assert all(len(v) == 150 for v in rankings.values())
    assert Project.open("issues", tmp_path).data_issues().out_of_fold  # the folds of the last run are remembered

    # an issue type orders and flags like a run (Review), chosen by its label
    project.set_flag_share(0.1)
    lowest = np.argsort(rankings["issue: outlier"], kind="stable")[:15]
    assert sorted(project.flagged("issue: outlier").tolist()) == sorted(lowest.tolist())
    project.set_primary("issue: outlier")
    assert project.primary_ranking() == "issue: outlier"
    assert set(project.rankings()) == set(rankings)  # no runs yet: only the issue rankings
    done = project.data_issues_in_background(0).wait(120)
    assert done.state == "done", done.error
    assert done.result["flagged"]["label"] == int(project.data_issues().flagged("label").size)
    assert not project.data_issues().out_of_fold
