"""``python -m influence_core datalab`` (influence_core/cli.py): Datalab's findings as a CSV, one row per sample and
issue type, equal to cleanlab's Datalab called directly on the same model's features and probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from influence_core.api import predicted_probabilities
from influence_core.cli import main
from influence_core.project import Project


@pytest.fixture(scope="module")
def planted_csv(tmp_path_factory):
    """A 4-feature, 3-class CSV of 300 rows where rows 290-299 repeat rows 0-9 exactly."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    x = 10.0 + np.array([[0, 0, 0, 0], [4, 4, 0, 0], [0, 4, 4, 0]])[y] + rng.normal(size=(300, 4))
    x[290:], y[290:] = x[:10], y[:10]
    path = tmp_path_factory.mktemp("data") / "planted.csv"
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(kind=y)
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def run(planted_csv, tmp_path_factory):
    workspace = tmp_path_factory.mktemp("ws")
    out = workspace / "issues.csv"
    code = main(["datalab", "--dataset", str(planted_csv), "--model", "logreg", "--label-column", "kind",
                 "--workspace", str(workspace), "--out", str(out), "--quiet"])
    assert code == 0
    return workspace, pd.read_csv(out)


def test_the_csv_has_one_row_per_sample_and_issue_type(run):
    _, table = run
    assert list(table.columns) == ["index", "issue", "score", "is_issue"]
    assert set(table["issue"]) == {"label", "exact_duplicate", "near_duplicate", "outlier", "non_iid",
                                   "class_imbalance", "underperforming_group"}
    per_issue = table.groupby("issue")["index"].agg(["count", "nunique"])
    assert (per_issue["count"] == per_issue["nunique"]).all() and per_issue["count"].nunique() == 1


def test_planted_duplicates_are_named_by_their_row_in_the_file(run):
    _, table = run
    exact = table[(table["issue"] == "exact_duplicate") & table["is_issue"]]["index"]
    train = set(table["index"])
    expected = {i for i in range(10) if i in train and i + 290 in train} | {
        i + 290 for i in range(10) if i in train and i + 290 in train}
    assert len(expected) >= 6  # most pairs land in the training split together
    assert set(exact) == expected


def test_scores_equal_datalab_called_directly(run):
    from cleanlab import Datalab

    workspace, table = run
    project = Project.open("cli", workspace)
    dataset, fitted = project.dataset(), project.model()
    lab = Datalab(data={"label": dataset.train.y.numpy()}, label_name="label", verbosity=0)
    lab.find_issues(features=dataset.train.x.numpy().astype(np.float64),  # logreg: its features are the inputs
                    pred_probs=predicted_probabilities(dataset, fitted))
    direct = lab.get_issues()
    index = project.source_index()
    for issue in ("label", "near_duplicate", "outlier", "underperforming_group"):
        ours = table[table["issue"] == issue].set_index("index").loc[index]
        np.testing.assert_allclose(ours["score"].to_numpy(), direct[f"{issue}_score"].to_numpy(), rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(ours["is_issue"].to_numpy(), direct[f"is_{issue}_issue"].to_numpy())


@pytest.mark.parametrize("args,message", [
    (["--folds", "1"], "error: --folds takes 0 (in-sample) or a number of folds ≥ 2"),
    (["--neighbours", "0"], "error: k (neighbours) must be a whole number from 1 to 200, not 0"),
    (["--features", "pixels"], "error: features='pixels' needs image data; use the model's features for this data set"),
])
def test_bad_settings_are_one_line(capsys, args, message):
    assert main(["datalab", "--dataset", "blobs", "--model", "logreg", "--quiet", "--no-cache", *args]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [message]


def test_a_larger_threshold_flags_more_near_duplicates(planted_csv, run, capsys):
    workspace, default = run
    out = workspace / "wide.csv"
    assert main(["datalab", "--dataset", str(planted_csv), "--model", "logreg", "--label-column", "kind", "--workspace",
                 str(workspace), "--near-duplicate-threshold", "1.0", "--out", str(out), "--quiet"]) == 0
    wide = pd.read_csv(out)
    near = [t[(t["issue"] == "near_duplicate") & t["is_issue"]]["index"] for t in (default, wide)]
    assert set(near[0]) < set(near[1])  # a superset: the same neighbour graph, a wider radius
    assert Project.open("cli", workspace).data_issues().flagged("near_duplicate").size == len(near[1])


def test_tables_keep_their_near_duplicates_on_the_features_whatever_near_duplicates_says(planted_csv, run):
    workspace, default = run
    out = workspace / "features.csv"
    assert main(["datalab", "--dataset", str(planted_csv), "--model", "logreg", "--label-column", "kind", "--workspace",
                 str(workspace), "--near-duplicates", "features", "--out", str(out), "--quiet"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), default)  # the image descriptor is for images only
