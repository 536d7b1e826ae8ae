"""influence_core.annotators: cleanlab's multiannotator analysis as the product reports it — equal to cleanlab called
directly on the same inputs, NaN handled, a random annotator found, and the facade's stored report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cleanlab.multiannotator import get_label_quality_multiannotator

from influence_core.annotators import (AnnotatorSettings, annotator_report, annotator_table, consensus_ranking,
                                       describe_labels)
from influence_core.errors import InfluenceError


def _crowd(n: int = 400, k: int = 4, seed: int = 0, missing: float = 0.2):
    """Three annotators of a k-class task: two right 90% of the time, one answering at random; a model whose
    probabilities favour the true class; about ``missing`` of the labels left out (every row keeps at least one)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)

    def careful():
        wrong = rng.random(n) < 0.1
        return np.where(wrong, (truth + rng.integers(1, k, n)) % k, truth)

    labels = np.stack([careful(), careful(), rng.integers(0, k, n)], axis=1).astype(float)
    gone = rng.random(labels.shape) < missing
    gone[np.arange(n), rng.integers(0, 3, n)] = False  # one label per row stays
    labels[gone] = np.nan
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[truth]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return truth, labels, probs


def test_consensus_and_qualities_equal_cleanlab_called_directly():
    _, labels, probs = _crowd()
    report = annotator_report(labels, probs, ["ann", "bob", "cat"])
    direct = get_label_quality_multiannotator(labels, probs, consensus_method="best_quality",
                                              quality_method="crowdlab", verbose=False)
    per_sample, stats = direct["label_quality"], direct["annotator_stats"].sort_index()
    assert np.array_equal(report["consensus_label"], per_sample["consensus_label"].to_numpy())
    np.testing.assert_allclose(report["consensus_quality"], per_sample["consensus_quality_score"], rtol=1e-12)
    np.testing.assert_allclose(report["annotator_agreement"], per_sample["annotator_agreement"], rtol=1e-12)
    assert np.array_equal(report["num_annotations"], (~np.isnan(labels)).sum(1))
    np.testing.assert_allclose(report["label_quality"], direct["detailed_label_quality"].to_numpy(), rtol=1e-12)
    # per annotator, in the columns' order (cleanlab lists them worst first)
    np.testing.assert_allclose(report["annotator_quality"], stats["annotator_quality"], rtol=1e-12)
    np.testing.assert_allclose(report["agreement_with_consensus"], stats["agreement_with_consensus"], rtol=1e-12)
    assert report["num_labeled"].tolist() == (~np.isnan(labels)).sum(0).tolist()
    assert report["worst_class"].tolist() == stats["worst_class"].tolist()
    assert report["names"].tolist() == ["ann", "bob", "cat"]


def test_the_random_annotator_has_the_lowest_quality_and_the_consensus_beats_each_annotator():
    truth, labels, probs = _crowd(n=600, seed=1)
    report = annotator_report(labels, probs, ["careful 1", "careful 2", "random"])
    assert int(np.argmin(report["annotator_quality"])) == 2
    assert int(np.argmin(report["agreement_with_consensus"])) == 2
    table = annotator_table(report, ["a", "b", "c", "d"])
    assert table["annotator"].iloc[0] == "random"  # the table lists the worst first
    consensus_acc = (report["consensus_label"] == truth).mean()
    for j in range(3):
        given = ~np.isnan(labels[:, j])
        assert consensus_acc > (labels[given, j] == truth[given]).mean()
    # as a ranking, lower quality = the consensus more likely wrong: wrong consensus labels rank low
    ranking = consensus_ranking(report)
    wrong = report["consensus_label"] != truth
    assert wrong.any() and ranking[wrong].mean() < ranking[~wrong].mean()


def test_unlabelled_rows_and_annotators_are_left_out_of_the_call_not_refused():
    _, labels, probs = _crowd(n=200, seed=2)
    labels = np.concatenate([labels, np.full((200, 1), np.nan)], axis=1)  # a fourth annotator who labelled nothing
    labels[[5, 17], :] = np.nan  # two samples nobody labelled
    report = annotator_report(labels, probs)
    keep = np.setdiff1d(np.arange(200), [5, 17])
    direct = get_label_quality_multiannotator(labels[np.ix_(keep, [0, 1, 2])], probs[keep], verbose=False)
    assert np.array_equal(report["consensus_label"][keep], direct["label_quality"]["consensus_label"].to_numpy())
    assert report["consensus_label"][[5, 17]].tolist() == [-1, -1]
    assert np.isnan(report["consensus_quality"][[5, 17]]).all()
    assert consensus_ranking(report)[[5, 17]].tolist() == [1.0, 1.0]  # nobody's label: nothing to suspect
    assert np.isnan(report["annotator_quality"][3]) and report["num_labeled"][3] == 0
    assert report["worst_class"][3] == -1
    assert report["names"].tolist() == ["annotator 1", "annotator 2", "annotator 3", "annotator 4"]


def test_describe_labels_leaves_out_missing_labels():
    labels = np.array([[0, 1, 0], [np.nan, 2, np.nan]], dtype=float)
    assert describe_labels(labels, ["random1", "random2", "random3"], ["cat", "dog", "frog"]) == [
        "random1: cat · random2: dog · random3: cat", "random2: frog"]


@pytest.mark.parametrize("labels, match", [
    (np.array([[0, 3]], dtype=float), "class indices 0..2"),
    (np.array([[0.5, 1]], dtype=float), "class indices"),
    (np.array([[np.nan, np.nan]]), "no sample has an annotator's label"),
    (np.array([0, 1], dtype=float), "N samples × M annotators"),
])
def test_bad_labels_are_one_line_errors(labels, match):
    probs = np.full((len(labels), 3), 1 / 3)
    with pytest.raises(InfluenceError, match=match):
        annotator_report(labels, probs)


def test_settings_are_checked():
    with pytest.raises(InfluenceError, match="consensus_method must be one of"):
        AnnotatorSettings(consensus_method="dawid_skene")
    _, labels, probs = _crowd(n=100, seed=3)
    report = annotator_report(labels, probs, settings=AnnotatorSettings("majority_vote", "agreement"))
    direct = get_label_quality_multiannotator(labels, probs, consensus_method="majority_vote",
                                              quality_method="agreement", verbose=False)
    assert np.array_equal(report["consensus_label"], direct["label_quality"]["consensus_label"].to_numpy())


# ------------------------------------------------------------------------------------------- the facade
def test_project_report_is_stored_and_uses_the_models_probabilities(tmp_path):
    from influence_core.project import Project

    rng = np.random.default_rng(0)
    n = 240
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    noisy = np.where(rng.random(n) < 0.5, 1 - y, y)  # an annotator right half of the time
    table = pd.DataFrame({"f1": x[:, 0], "f2": x[:, 1], "careful": y, "coin": noisy, "label": y})
    table.loc[:9, "coin"] = np.nan
    path = tmp_path / "crowd.csv"
    table.to_csv(path, index=False)
    proj = Project.open("crowd", tmp_path / "ws")
    ds = proj.use_dataset(str(path), annotator_columns=["careful", "coin"])
    fitted = proj.train("logreg", {"epochs": 30})
    assert proj.annotator_names() == ["careful", "coin"]
    report = proj.annotator_report()
    probs = proj.predictions()[1]
    direct = get_label_quality_multiannotator(ds.annotators, probs, verbose=False)
    assert np.array_equal(report["consensus_label"], direct["label_quality"]["consensus_label"].to_numpy())
    assert proj.annotator_table()["annotator"].tolist() == ["coin", "careful"]
    assert list((tmp_path / "ws").rglob("annotators/*.npz"))  # stored in the workspace's cache
    src = ds.source_index.numpy()
    lines = proj.annotator_labels([0, 1])
    assert lines[0].startswith(f"careful: {ds.classes[int(y[src[0]])]}")
    assert fitted is not None


def test_the_consensus_quality_is_a_ranking_review_can_order_and_flag_by(tmp_path):
    from influence_core.project import CONSENSUS_RANKING, Project

    rng = np.random.default_rng(1)
    n = 200
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] > 0).astype(int)
    table = pd.DataFrame({"f1": x[:, 0], "f2": x[:, 1], "a": y, "b": np.where(rng.random(n) < 0.3, 1 - y, y),
                          "c": np.where(rng.random(n) < 0.3, 1 - y, y), "label": y})
    path = tmp_path / "crowd.csv"
    table.to_csv(path, index=False)
    proj = Project.open("crowd", tmp_path / "ws")
    proj.use_dataset(str(path), annotator_columns=["a", "b", "c"])
    assert CONSENSUS_RANKING not in proj.rankings()  # no model yet: nothing to rank with
    proj.train("logreg", {"epochs": 30})
    ranking = proj.rankings()[CONSENSUS_RANKING]
    assert np.array_equal(ranking, proj.annotator_ranking(0))
    proj.set_primary(CONSENSUS_RANKING)
    assert proj.primary_ranking() == CONSENSUS_RANKING
    share = proj.state().flag_share
    expected = np.argsort(ranking, kind="stable")[: max(1, round(share * len(ranking)))]
    assert sorted(proj.flagged(CONSENSUS_RANKING).tolist()) == sorted(expected.tolist())
