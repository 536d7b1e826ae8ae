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


def test_datalab_reports_progress_after_each_check(planted):
    """One ``find_issues`` call per check: the job hears of each, in order, and the fractions never go back."""
    heard = []
    find_data_issues(*planted, progress=lambda fraction, message: heard.append((fraction, message)))
    fractions = [f for f, _ in heard]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    checks = [m.removeprefix("Datalab: ") for _, m in heard if m.startswith("Datalab: ") and m != "Datalab: done"]
    assert checks == list(DataIssueSettings().checks)
    steps = [f for f, m in heard if m.removeprefix("Datalab: ") in checks]
    assert len(set(steps)) == len(steps) and 0.3 <= steps[0] and steps[-1] < 0.95  # distinct points between 0.35 and 0.95


def smooth_images(n: int, side: tuple[int, int], rng) -> np.ndarray:
    """``n`` smooth random colour images (Gaussian-blurred noise, σ = side/8), N×C×H×W in [0, 1]."""
    from scipy.ndimage import gaussian_filter

    x = np.stack([gaussian_filter(rng.uniform(0, 1, (3, *side)), sigma=(0, side[0] / 8, side[1] / 8)) for _ in range(n)])
    lo, hi = x.min(axis=(1, 2, 3), keepdims=True), x.max(axis=(1, 2, 3), keepdims=True)
    return (x - lo) / (hi - lo)


def crop_and_jitter(img: np.ndarray, top: int, left: int, keep: float) -> np.ndarray:
    """A crop keeping ``keep`` of each side from (top, left), resized back (bilinear), contrast ×1.1, brightness -0.05."""
    c, h, w = img.shape
    crop = torch.from_numpy(img[None, :, top:top + round(keep * h), left:left + round(keep * w)])
    back = torch.nn.functional.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)[0].numpy()
    return np.clip((back - back.mean()) * 1.1 + back.mean() - 0.05, 0, 1)


@pytest.fixture(scope="module")
def cropped_copies():
    """150 smooth 40×48 images; rows 146-149 are crops (88-92% of each side, off centre) of rows 0-3 with contrast and
    brightness jitter; a CNN trained for one epoch."""
    rng = np.random.default_rng(3)
    x = smooth_images(150, (40, 48), rng)
    for i, (top, left, keep) in enumerate([(3, 4, 0.88), (0, 0, 0.9), (4, 2, 0.9), (1, 3, 0.92)]):
        x[146 + i] = crop_and_jitter(x[i], top, left, keep)
    y = rng.integers(0, 2, 150)
    val, test = smooth_images(20, (40, 48), rng), smooth_images(20, (40, 48), rng)
    dataset = Dataset("smooth images", Split(x, y), Split(val, rng.integers(0, 2, 20)), Split(test, rng.integers(0, 2, 20)),
                      ["a", "b"], kind="image")
    return dataset, ic.train_model(dataset, "cnn", ic.TrainConfig(seed=0, epochs=1, augment=False))


def test_cropped_and_jittered_copies_are_near_duplicates_on_the_descriptor(cropped_copies):
    from cleanlab import Datalab

    from influence_core.data_issues import locally_scaled_knn_graph, near_duplicate_descriptor

    dataset, fitted = cropped_copies
    found = find_data_issues(dataset, fitted, settings=DataIssueSettings(checks=("near_duplicate", "outlier"),
                                                                         image_checks=()))
    pairs = [[i, 146 + i] for i in range(4)]
    assert all(p in found.duplicate_sets for p in pairs)
    assert set(found.flagged("near_duplicate")) <= {r for p in pairs for r in p} | set(range(4, 146))
    assert len(found.flagged("near_duplicate")) <= 8 + 4  # the planted pairs, and at most two more pairs
    assert found.flagged("exact_duplicate").size == 0  # none is an exact copy (the model's features say so)
    # what Datalab decides on the descriptor's locally scaled graph, called directly
    lab = Datalab(data={"label": dataset.train.y.numpy()}, label_name="label", verbosity=0)
    lab.find_issues(knn_graph=locally_scaled_knn_graph(near_duplicate_descriptor(dataset), 10),
                    issue_types={"near_duplicate": {"k": 10, "threshold": 0.6}})
    direct = lab.get_issues()
    ours = found.table[found.table["issue"] == "near_duplicate"].sort_values("sample")
    np.testing.assert_allclose(ours["score"].to_numpy(), direct["near_duplicate_score"].to_numpy(), rtol=1e-9)
    np.testing.assert_array_equal(ours["is_issue"].to_numpy(), direct["is_near_duplicate_issue"].to_numpy())
    # the old way (the model's features, Datalab's default threshold) for comparison: the descriptor is what finds them
    old = find_data_issues(dataset, fitted, settings=DataIssueSettings(checks=("near_duplicate",), image_checks=(),
                                                                       near_duplicates="features"))
    assert not all(p in old.duplicate_sets for p in pairs)


def test_the_descriptor_ignores_brightness_and_contrast_and_takes_any_image_size(cropped_copies):
    from influence_core.data_issues import near_duplicate_descriptor

    dataset, _ = cropped_copies
    x = dataset.train.x.numpy().copy()
    x[5] = 0.2 + 0.6 * x[4]  # row 5: row 4 at another brightness and contrast (within [0, 1], rounding to uint8 aside)
    jittered = Dataset("jittered", Split(x, dataset.train.y), dataset.val, dataset.test, ["a", "b"], kind="image")
    d = near_duplicate_descriptor(jittered)
    assert d.shape == (150, 48) and np.isfinite(d).all()
    others = np.linalg.norm(d[6:] - d[4], axis=1)
    assert np.linalg.norm(d[5] - d[4]) < 0.05 * np.median(others)


def test_the_locally_scaled_graph_divides_each_distance_by_its_neighbourhoods():
    from sklearn.metrics.pairwise import cosine_distances

    from influence_core.data_issues import LOCAL_SCALE_K, locally_scaled_knn_graph

    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 6))
    features[59] = features[0]  # an exact duplicate stays at distance 0
    graph = locally_scaled_knn_graph(features, 8)
    d = cosine_distances(features)
    np.fill_diagonal(d, np.inf)
    d[0, 59] = d[59, 0] = 0.0
    sigma = np.sort(d, axis=1)[:, LOCAL_SCALE_K - 1]
    scaled = d / np.sqrt(np.outer(sigma, sigma))
    for i in (0, 7, 59):
        row = graph.getrow(i)
        order = np.argsort(row.data)
        expected = np.array([scaled[i, j] for j in row.indices[order]])
        np.testing.assert_allclose(row.data[order], expected, rtol=1e-6, atol=1e-12)
        assert set(row.indices) == set(np.argsort(d[i])[:8])  # the same 8 neighbours, re-weighed
        assert np.all(np.diff(row.data) >= 0)  # sorted, as Datalab reads the first as the nearest
    assert graph.getrow(0).data[0] == 0.0


def test_near_duplicate_settings_are_checked_and_change_the_key(planted):
    dataset, fitted = planted
    with pytest.raises(InfluenceError, match="near_duplicates must be one of: descriptor, features"):
        DataIssueSettings(near_duplicates="hash")
    assert hash_key(data_issues_key(dataset, fitted, DataIssueSettings())) != hash_key(
        data_issues_key(dataset, fitted, DataIssueSettings(near_duplicates="features")))


def test_gradient_histograms_put_a_vertical_edge_in_the_horizontal_gradient_bin():
    from influence_core.data_issues import HOG_BINS, HOG_CELLS, _gradient_histograms

    image = torch.zeros(1, 3, 32, 32, dtype=torch.float64)
    image[..., 16:] = 255.0  # dark left half, bright right half: every gradient points along +x (angle 0, bin 0)
    h = _gradient_histograms(image)[0].reshape(HOG_BINS, HOG_CELLS, HOG_CELLS)
    assert h[0, :, 1:3].min() > h[1:].max()  # the cells on the edge, bin 0
    np.testing.assert_allclose(h[1:], h.min(), atol=1e-9)  # no other orientation anywhere
    np.testing.assert_allclose(h[0, :, [0, 3]], h.min(), atol=1e-9)  # nor in the flat cells


def test_datalab_starts_no_process_pool(planted, monkeypatch):
    """Datalab's label check runs in this process: cleanlab's default ``n_jobs`` forks a ``multiprocessing.Pool``
    (one worker per core), and forked from the app server's job thread a worker ignored the pool's SIGTERM (the
    server's own handler) and the job hung on "Datalab: label" for good (the Scores page, moons)."""
    import cleanlab.filter
    import psutil

    def no_pool(*args, **kwargs):
        raise AssertionError("cleanlab started a process pool")

    monkeypatch.setattr(cleanlab.filter.multiprocessing, "Pool", no_pool)
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 4)  # as on any machine with more than one core
    found = find_data_issues(*planted)
    assert "label" in set(found.table["issue"])
