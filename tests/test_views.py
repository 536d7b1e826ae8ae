"""Review views (influence_core/views.py): each filter against a hand computation on a hand-made table, the URL
round trip, hostile URL parameters ignored with a note, saved views surviving a new Project instance, and the
project's "suspected" and "more like this" filters against cleanlab and scikit-learn called directly."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from influence_core.errors import InfluenceError
from influence_core.project import Project, ScoreRun
from influence_core.views import (MAX_ROWS, ReviewView, SavedViews, ViewChoices, ViewData, apply, from_query,
                                  nearest_rows, to_query)

N = 12
SCORES = np.array([5.0, -3.0, 2.0, -1.0, 0.5, -2.0, 4.0, -4.0, 1.0, 3.0, -0.5, np.nan])  # lower = more detrimental
GIVEN = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
PREDICTED = np.array([0, 2, 2, 1, 1, 0, 0, 1, 1, 0, 2, 2])
DECISIONS = {1: SimpleNamespace(decided_by="ann"), 3: SimpleNamespace(decided_by="bob"),
             7: SimpleNamespace(decided_by="ann")}
ISSUES = pd.DataFrame({"sample": [2, 5, 9, 4, 5], "index": [102, 105, 109, 104, 105],
                       "issue": ["outlier", "outlier", "outlier", "near_duplicate", "near_duplicate"],
                       "score": [0.1, 0.2, 0.9, 0.1, 0.1], "is_issue": [True, True, False, True, True]})
SUSPECTED = np.array([0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0], dtype=bool)
OTHER = np.arange(N, dtype=float)[::-1]  # a second ranking: row 11 first


def _data(**kw) -> ViewData:
    base = dict(rankings={"ip": SCORES, "issue: outlier": OTHER}, default_order="ip", given=GIVEN, predicted=PREDICTED,
                decisions=DECISIONS, flag_share=0.5, issues=ISSUES, suspected=lambda: SUSPECTED,
                neighbours=lambda row, k: np.array([row, (row + 1) % N, (row + 2) % N][: k + 1]))
    return ViewData(**{**base, **kw})


def _by_score(rows, scores=SCORES) -> list[int]:
    """The hand ordering: lowest score first, ties by row, no score last."""
    return sorted(rows, key=lambda r: (np.inf if np.isnan(scores[r]) else scores[r], r))


def test_the_default_view_is_the_flagged_share_still_undecided():
    flagged = [7, 1, 5, 3, 10, 4]  # the 6 lowest scores
    assert apply(ReviewView(), _data()).tolist() == [r for r in flagged if r not in DECISIONS]
    assert apply(ReviewView(status="any"), _data()).tolist() == flagged
    assert apply(ReviewView(scope="all", status="decided"), _data()).tolist() == [7, 1, 3]


@pytest.mark.parametrize("view,keep", [
    (ReviewView(scope="all", status="any", given=2), lambda r: GIVEN[r] == 2),
    (ReviewView(scope="all", status="any", suggested=0), lambda r: PREDICTED[r] == 0),
    (ReviewView(scope="all", status="any", given=1, suggested=2), lambda r: GIVEN[r] == 1 and PREDICTED[r] == 2),
    (ReviewView(scope="all", status="any", disagrees=True), lambda r: GIVEN[r] != PREDICTED[r]),
    (ReviewView(scope="all", status="any", score_min=-2.0, score_max=1.0), lambda r: -2.0 <= SCORES[r] <= 1.0),
    (ReviewView(scope="all", status="undecided", score_max=0.0), lambda r: SCORES[r] <= 0 and r not in DECISIONS),
    (ReviewView(scope="all", status="any", reviewer="ann"), lambda r: r in (1, 7)),
    (ReviewView(scope="all", status="any", issue="outlier"), lambda r: r in (2, 5)),  # row 9: not an issue
    (ReviewView(scope="all", status="any", issue="near_duplicate"), lambda r: r in (4, 5)),
    (ReviewView(scope="suspected", status="any"), lambda r: SUSPECTED[r]),
    (ReviewView(scope="suspected", status="undecided", given=2), lambda r: SUSPECTED[r] and GIVEN[r] == 2 and r != 1),
    (ReviewView(scope="all", status="any", like=10, neighbours=2), lambda r: r in (10, 11, 0)),
    (ReviewView(scope="all", status="any", rows=(9, 0, 7, 11)), lambda r: r in (0, 7, 9, 11)),
])
def test_each_filter_keeps_what_a_hand_computation_keeps(view, keep):
    assert apply(view, _data()).tolist() == _by_score([r for r in range(N) if keep(r)])


def test_any_ranking_orders_and_its_flagged_share_is_its_own():
    view = ReviewView(order="issue: outlier", status="any")
    assert apply(view, _data()).tolist() == [11, 10, 9, 8, 7, 6]  # OTHER's six lowest
    assert apply(ReviewView(order="issue: outlier", scope="all", status="any", given=0), _data()).tolist() == [9, 6, 3, 0]


def test_a_view_refuses_what_it_cannot_mean_in_one_line():
    with pytest.raises(InfluenceError, match="no ranking named 'nope'"):
        apply(ReviewView(order="nope"), _data())
    with pytest.raises(InfluenceError, match="run Datalab first"):
        apply(ReviewView(issue="outlier"), _data(issues=None))
    with pytest.raises(InfluenceError, match="not in the training split"):
        apply(ReviewView(rows=(3, N)), _data())
    with pytest.raises(InfluenceError, match="at most"):
        ReviewView(rows=tuple(range(MAX_ROWS + 1)))
    with pytest.raises(InfluenceError, match="empty"):
        ReviewView(score_min=1.0, score_max=0.0)
    with pytest.raises(InfluenceError, match="one of"):
        ReviewView(scope="everything")


def test_nearest_rows_are_scikit_learns_cosine_neighbours():
    from sklearn.neighbors import NearestNeighbors

    feats = np.random.default_rng(0).normal(size=(60, 5))
    ours = nearest_rows(feats, 17, 6)
    _, theirs = NearestNeighbors(n_neighbors=7, metric="cosine").fit(feats).kneighbors(feats[17:18])
    assert ours[0] == 17 and ours.tolist() == theirs[0].tolist()


# ---------------------------------------------------------------------------------------------- the URL
CHOICES = ViewChoices(classes=("cat", "dog", "7"), rankings=("ip", "issue: outlier"), n_rows=N,
                      issues=("outlier", "near_duplicate"), ids=np.arange(N) * 10 + 1000)


def test_url_round_trip_names_classes_and_samples_as_people_see_them():
    view = ReviewView(order="issue: outlier", scope="suspected", status="decided", issue="outlier", given=1,
                      suggested=2, disagrees=True, score_min=-0.25, score_max=1e-3, reviewer="ann@x.org", like=4,
                      neighbours=30, rows=(3, 0, 11))
    query = to_query(view, CHOICES)
    assert query["given"] == "dog" and query["suggested"] == "7"  # a class named "7" is class 2, not class 7
    assert query["like"] == "1040" and query["rows"] == "1000,1030,1110"  # sample ids, not rows
    assert from_query(query, CHOICES) == (view, [])
    assert to_query(ReviewView(), CHOICES) == {} and from_query({"project": "p"}, CHOICES) == (ReviewView(), [])


@pytest.mark.parametrize("params,note", [
    ({"given": "horse"}, "not a class"),
    ({"suggested": "3"}, "not a class"),
    ({"given": "²"}, "not a class"),
    ({"order": "../../etc/passwd"}, "ranking"),
    ({"issue": "x" * 500}, "not a short text"),
    ({"scope": "everything"}, "sample set"),
    ({"status": 7}, "not a short text"),
    ({"smin": "nan"}, "finite"),
    ({"smax": "1e999"}, "finite"),
    ({"smin": "1", "smax": "0"}, "empty"),
    ({"smin": "one"}, "not a number"),
    ({"disagrees": "maybe"}, "1 or 0"),
    ({"like": "1005"}, "not in the training split"),
    ({"like": "-1000"}, "not in the training split"),
    ({"like": "1000", "k": "100000"}, "neighbours"),
    ({"rows": "1000,abc"}, "not a list"),
    ({"rows": "1000,999999"}, "not in the training split"),
    ({"rows": ",".join(["1000"] * (MAX_ROWS + 1))}, "at most"),
    ({"rows": "1" * 10**6}, "at most"),
    ({"reviewer": "a\nb"}, "not a short text"),
    ({"like": "\u0661\u0660\u0660\u0660"}, "not a number"),  # Arabic-Indic digits: Python's int() reads 1000
    ({"smin": "1_0"}, "not a number"),  # float() reads 10
    ({"smax": "\uff11"}, "not a number"),  # a fullwidth 1
    ({"order": "ip\u202e)txt.exe"}, "'ip\\u202e)txt.exe' is not one"),  # a note never reorders what it shows
    ({"given": "c\u200bat"}, "'c\\u200bat' is not a class"),
])
def test_a_hostile_parameter_is_ignored_with_a_note(params, note):
    view, notes = from_query(params, CHOICES)
    assert len(notes) == 1 and note in notes[0], notes
    kept = {"like": 0} if params.get("k") else {}  # a bad k leaves a good "like" standing
    assert view == ReviewView(**kept)


# ------------------------------------------------------------------------------------------- saved views
def test_saved_views_survive_a_new_project_instance(tmp_path):
    proj = Project.open("p", tmp_path)
    proj.use_dataset("moons", seed=0)
    ids = proj.source_index()
    view = ReviewView(scope="all", status="any", given=1, suggested=0, rows=(4, 2))
    assert proj.save_view("  cats as dogs ", view) == "cats as dogs"
    proj.save_view("decided", ReviewView(scope="all", status="decided"))
    again = Project.open("p", tmp_path)
    saved = again.saved_views()
    assert sorted(saved) == ["cats as dogs", "decided"]
    assert saved["cats as dogs"]["rows"] == f"{ids[2]},{ids[4]}"
    assert again.view_from_query(saved["cats as dogs"]) == (view, [])
    assert again.delete_view("decided") and not again.delete_view("decided")
    assert list(json.loads((tmp_path / "projects" / "p" / "views.json").read_text())) == ["cats as dogs"]
    with pytest.raises(InfluenceError, match="1 to 64"):
        again.save_view("x" * 65, view)
    assert list(Project.open("other", tmp_path).saved_views()) == []  # per project


def test_an_unreadable_views_file_holds_no_views(tmp_path):
    (tmp_path / "views.json").write_text("{not json")
    assert SavedViews(tmp_path).all() == {}
    (tmp_path / "views.json").write_text(json.dumps({"ok": {"given": "1"}, "\x00bad": {}, "list": [1]}))
    assert SavedViews(tmp_path).all() == {"ok": {"given": "1"}}


# ----------------------------------------------------------------------------------- on a real project
@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    proj = Project.open("default", tmp_path_factory.mktemp("views"))
    proj.use_dataset("moons", seed=0)
    proj.train("mlp", {"epochs": 40, "lr": 0.01, "l2": 0.001, "seed": 0, "checkpoint_every": 0})
    proj.score(ScoreRun("ip"))
    return proj


def test_the_suspected_set_is_cleanlabs_find_label_issues(scored):
    from cleanlab.filter import find_label_issues

    _, probs = scored.predictions()
    y = scored.dataset().train.y.numpy()
    mask = find_label_issues(y, probs / probs.sum(1, keepdims=True), n_jobs=1)
    assert 0 < mask.sum() < len(y)
    assert sorted(scored.review_rows(ReviewView(scope="suspected", status="any")).tolist()) == np.flatnonzero(mask).tolist()


def test_more_like_this_is_the_nearest_in_the_models_penultimate_features(scored):
    from sklearn.neighbors import NearestNeighbors

    from influence_core.analysis import penultimate_features

    ds = scored.dataset()
    feats = penultimate_features(scored.model(), ds.train)
    assert feats.shape[1] > 2  # the MLP's hidden layer, not the raw inputs
    _, near = NearestNeighbors(n_neighbors=6, metric="cosine").fit(feats).kneighbors(feats[40:41])
    rows = scored.review_rows(ReviewView(scope="all", status="any", like=40, neighbours=5))
    s = scored.scores()["ip"]
    assert rows.tolist() == sorted(near[0].tolist(), key=lambda r: (s[r], r))


def test_the_project_filters_by_class_pair_and_keeps_the_flagged_order(scored):
    preds, _ = scored.predictions()
    y = scored.dataset().train.y.numpy()
    flagged = scored.flagged().tolist()
    rows = scored.review_rows(ReviewView(given=0, suggested=1, status="any"))
    assert rows.tolist() == [r for r in flagged if y[r] == 0 and preds[r] == 1]
    assert len(rows) > 0


def test_a_project_keeps_at_most_max_saved_views(tmp_path, monkeypatch):
    import influence_core.views as views

    monkeypatch.setattr(views, "MAX_SAVED", 2)
    saved = SavedViews(tmp_path)
    saved.save("a", {"given": "1"})
    saved.save("b", {})
    saved.save("a", {"given": "0"})  # replacing one is not one more
    with pytest.raises(InfluenceError, match="at most 2 saved views"):
        saved.save("c", {})
    assert saved.all() == {"a": {"given": "0"}, "b": {}}


def test_a_saved_views_name_cannot_break_a_line_or_hide_text_and_a_bad_file_is_kept_aside(tmp_path):
    views = SavedViews(tmp_path)
    for bad in ("a\u2028b", "a\u2029b", "evil\u202egnp.exe", "zero\u200bwidth", "tab\tbed", "\u00a0"):
        with pytest.raises(InfluenceError, match="1 to 64 printable"):
            views.save(bad, {})
    assert views.save("../x", {}) == "../x" and views.save("Größe · 大小", {}) == "Größe · 大小"  # only a JSON key
    garbage = "{half a file, written by hand"
    (tmp_path / "views.json").write_text(garbage)
    views.save("new", {"scope": "all"})  # before: the unreadable file (someone's saved views) was overwritten
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("views.json.corrupt-")]
    assert len(kept) == 1 and kept[0].read_text() == garbage
    assert views.all() == {"new": {"scope": "all"}}


def _save_many(folder: str, prefix: str, count: int) -> None:
    for i in range(count):
        SavedViews(folder).save(f"{prefix}{i}", {"scope": "all"})


def test_two_processes_saving_views_at_once_lose_none(tmp_path):
    import multiprocessing

    fork = multiprocessing.get_context("fork")  # two servers sharing one workspace
    workers = [fork.Process(target=_save_many, args=(str(tmp_path), prefix, 40)) for prefix in ("a", "b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    assert len(SavedViews(tmp_path).all()) == 80  # before: a read-modify-write race lost some
