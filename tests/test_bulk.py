"""Bulk fixes: the preview is the rule computed by hand, applying writes ONE batch, one undo takes all of it back
(also from a fresh Project object, as after a page refresh), and the decisions afterwards equal those before."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import torch

from influence_core.bulk import dedupe_preview, relabel_preview
from influence_core.errors import InfluenceError
from influence_core.project import Project, ScoreRun


def test_relabel_preview_by_hand_on_three_classes():
    probs = np.array([[0.1, 0.8, 0.1],    # 0: suggests 1 at 0.8, given 0 -> in (0.8 >= 0.7)
                      [0.2, 0.2, 0.6],    # 1: suggests 2 at 0.6 -> below the threshold
                      [0.05, 0.05, 0.9],  # 2: suggests 2, given 2 -> agrees, not a fix
                      [0.9, 0.05, 0.05],  # 3: suggests 0 at 0.9, given 1 -> in, but not flagged
                      [0.0, 0.25, 0.75]])  # 4: suggests 2 at 0.75, given 0 -> in, but decided already
    given = np.array([0, 0, 2, 1, 0])
    preview = relabel_preview([4, 2, 1, 0], probs, given, 0.7, decided=[4])
    assert preview.rows == (0,) and preview.new_labels == (1,) and preview.action == "relabel" and preview.count == 1
    assert preview.sample == ({"row": 0, "given": 0, "suggested": 1, "probability": 0.8},)
    everything = relabel_preview([4, 3, 2, 1, 0], probs, given, 0.0)  # in flagged order: most detrimental first
    assert everything.rows == (4, 3, 1, 0) and everything.new_labels == (2, 0, 2, 1)
    with pytest.raises(InfluenceError, match="between 0 and 1"):
        relabel_preview([0], probs, given, 1.5)


def test_dedupe_preview_keeps_the_best_scored_or_the_first_of_each_group():
    scores = np.array([0.0, -1.0, 5.0, 2.0, 0.0, 3.0, 0.0, 0.0, 0.0, 1.0])
    groups = [[9, 1, 5], [2, 3], [7], [4, 6]]  # [7]: a group of one is no duplicate; scores of 4 and 6 tie
    best = dedupe_preview(groups, scores, "best")
    assert best.rows == (1, 3, 6, 9) and best.action == "remove"  # kept: 5 (3.0), 2 (5.0), 4 (tie: the first)
    first = dedupe_preview(groups, scores, "first", decided={3: object()})
    assert first.rows == (5, 6, 9)  # kept: 1, 2, 4; row 3 is decided already
    assert [s["row"] for s in first.sample] == [1, 4]
    with pytest.raises(InfluenceError, match="ranking"):
        dedupe_preview(groups, None, "best")


@pytest.fixture
def scored(scored_blobs) -> Project:
    return scored_blobs


def _batches(proj: Project) -> list[tuple]:
    with sqlite3.connect(proj.folder / "decisions.sqlite") as con:
        return con.execute("SELECT batch, COUNT(*), MIN(decided_by), MAX(decided_by), MIN(session), MIN(event), "
                           "SUM(undone) FROM decisions GROUP BY batch ORDER BY batch").fetchall()


def test_project_preview_apply_one_batch_and_one_undo(scored):
    ds, fitted = scored.dataset(), scored.model()
    with torch.no_grad():  # the model's probabilities, independently of the project's predictions: one logit z,
        p1 = torch.sigmoid(fitted.module(ds.train.x)[:, 0]).numpy()  # p(class 1) = σ(z)
    probs = np.stack([1 - p1, p1], axis=1)
    given = ds.train.y.numpy()
    flagged = np.argsort(scored.scores()["loss"], kind="stable")[:30]  # 20% of 150, lowest loss scores first
    scored.record([int(flagged[0])], "keep", session="s1")  # a reviewer's decision: the bulk fix leaves it alone
    before = scored.current_decisions()
    preview = scored.bulk_relabel_preview(0.6)
    expected = [int(r) for r in flagged[1:] if probs[r].argmax() != given[r] and probs[r].max() >= 0.6]
    assert list(preview.rows) == expected and len(expected) >= 3
    assert list(preview.new_labels) == [int(probs[r].argmax()) for r in expected]
    within = [int(r) for r in range(len(given)) if r % 2]  # only the rows a Review view lists, in its order
    assert list(scored.bulk_relabel_preview(0.6, rows=within).rows) == [
        r for r in within if r != flagged[0] and probs[r].argmax() != given[r] and probs[r].max() >= 0.6]

    batch = scored.apply_bulk_fix(preview, session="s1")
    rows = _batches(scored)
    assert len(rows) == 2 and rows[1][:4] == (batch, len(expected), "alice", "alice")
    assert rows[1][5].startswith("bulk:relabel_confident:")
    now = scored.current_decisions()
    assert {r: now[r].new_label for r in expected} == dict(zip(expected, preview.new_labels))

    refreshed = Project.open(scored.name, scored.root, user="alice")  # a page refresh: a new object, the log on disk
    assert refreshed.last_bulk_fix() == {"batch": batch, "count": len(expected), "kind": "relabel_confident"}
    assert Project.open(scored.name, scored.root, user="bob").last_bulk_fix() is None  # only your own bulk fixes
    assert refreshed.undo_bulk_fix() == len(expected)  # the whole batch in one step
    assert refreshed.current_decisions() == before and refreshed.last_bulk_fix() is None
    assert refreshed.undo_bulk_fix() == 0


def test_the_reviewers_undo_key_takes_back_a_bulk_fix_whole_and_later_decisions_stay(scored):
    before = scored.current_decisions()
    preview = scored.bulk_dedupe_preview("first", groups=[[0, 1, 2], [10, 11]])
    assert preview.rows == (1, 2, 11)
    scored.apply_bulk_fix(preview, session="s1")
    assert scored.undo(session="s1") == 3 and scored.current_decisions() == before  # `u`: the latest batch, whole

    batch = scored.apply_bulk_fix(preview, session="s1")
    scored.record([20], "remove", session="s1")  # decided after the bulk fix: undoing the fix keeps it
    assert scored.undo_bulk_fix(batch) == 3
    assert set(scored.current_decisions()) == {20}
    with pytest.raises(InfluenceError, match="changes no sample"):
        scored.apply_bulk_fix(scored.bulk_dedupe_preview("first", groups=[]))


def test_suggested_labels_come_out_of_fold_when_the_ranking_is(scored):
    from influence_core.api import out_of_fold_probabilities
    from influence_core.folds import FoldSettings

    scored.score(ScoreRun("loss", folds=2))
    scored.set_primary("loss·oof2")
    probs, oof = scored.suggested_probabilities()
    ds = scored.dataset()
    expected = out_of_fold_probabilities(ds, scored.fold_models(2), FoldSettings(2))
    assert oof and np.allclose(probs, expected) and not np.allclose(probs, scored.predictions()[1])


def test_the_duplicate_fix_takes_datalabs_groups_and_keeps_the_best_scored(scored, monkeypatch):
    import pandas as pd

    from influence_core.data_issues import DataIssues

    assert scored.duplicate_sets() == []  # Datalab has not run yet
    monkeypatch.setattr(type(scored), "data_issues", lambda self: DataIssues(pd.DataFrame(), [[0, 1], [4, 5, 6]]))
    monkeypatch.setattr(type(scored), "issue_rankings", lambda self: {})  # only the groups are made up here
    s = scored.scores()["loss"]
    keep = [max(g, key=lambda r: (s[r], -r)) for g in ([0, 1], [4, 5, 6])]  # highest = least detrimental
    preview = scored.bulk_dedupe_preview("best")
    assert preview.rows == tuple(sorted(r for r in (0, 1, 4, 5, 6) if r not in keep))
    assert [x["row"] for x in preview.sample] == keep


def test_a_viewer_may_neither_apply_nor_undo_a_bulk_fix_nor_save_a_version(scored):
    from influence_core.access import Access, Members, write_members

    write_members(scored.folder, Members("alice", {"carol@example.com": "viewer"}))
    carol = Project.open_existing(scored.name, Access("carol@example.com", signed_in=True), scored.root)
    preview = carol.bulk_dedupe_preview("first", groups=[[0, 1]])  # looking is allowed
    assert preview.rows == (1,)
    for act in (lambda: carol.apply_bulk_fix(preview), carol.undo_bulk_fix, lambda: carol.save_version("v")):
        with pytest.raises(InfluenceError, match="not decide"):
            act()
    assert scored.current_decisions() == {} and scored.versions() == []


def test_a_bulk_fix_is_checked_against_the_data_before_it_is_recorded():
    from influence_core.bulk import BulkPreview, check_fix

    fix = BulkPreview("relabel_confident", "", (4, 1), "relabel", (2, 0), ())
    assert check_fix(fix, 5, 3) == [4, 1]
    for preview, rows, classes, message in (
            (BulkPreview("relabel_confident", "", (), "relabel", (), ()), 5, 3, "changes no sample"),
            (fix, 4, 3, "names rows outside the training split"),
            (fix, 5, 2, r"relabels outside the classes 0..1")):
        with pytest.raises(InfluenceError, match=message):
            check_fix(preview, rows, classes)


# --------------------------------------------------------------------------------- attacks (the audit, issue 20)
def test_hostile_thresholds_and_rows_are_refused_in_one_line():
    probs = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    given = np.array([0, 1, 0])
    for bad in (float("nan"), -1, 2, float("inf"), None, "abc", True, [0.5]):
        with pytest.raises(InfluenceError, match="between 0 and 1") as err:
            relabel_preview([0, 1, 2], probs, given, bad)
        assert "\n" not in str(err.value)
    with pytest.raises(InfluenceError, match="row -1, not in the training split"):
        relabel_preview([-1], probs, given, 0.5)  # -1 would have been the last row (numpy wraps it)
    with pytest.raises(InfluenceError, match="row 3, not in the training split"):
        relabel_preview([3], probs, given, 0.5)
    scores = np.array([0.0, 1.0, 2.0])
    with pytest.raises(InfluenceError, match="row -1"):
        dedupe_preview([[-1, 0]], scores, "best")  # before: kept row -1 (= row 2, the best score) and removed row 0
    with pytest.raises(InfluenceError, match="row 7"):
        dedupe_preview([[0, 7]], scores, "best")
    for group in (["ab"], [0, 1.5], [True, 0], "01"):
        with pytest.raises(InfluenceError, match="whole numbers"):
            dedupe_preview([group], None, "first")
    assert dedupe_preview([[np.int64(2), 1]], scores, "best").rows == (1,)  # numpy integers are rows


def test_undo_bulk_fix_takes_back_only_your_own_latest_bulk_fix(scored):
    ordinary = scored.record([5], "remove", session="s1")
    assert scored.undo_bulk_fix(ordinary) == 0  # before: it took back any batch by number, a bulk fix or not
    fix = scored.apply_bulk_fix(scored.bulk_dedupe_preview("first", groups=[[0, 1]]), session="s1")
    bob = Project.open(scored.name, scored.root, user="bob")
    assert bob.undo_bulk_fix(fix) == 0 and bob.undo_bulk_fix() == 0  # alice's fix: not bob's to take back
    for stale in ("x", -1, fix + 1, True):
        assert scored.undo_bulk_fix(stale) == 0
    assert set(scored.current_decisions()) == {1, 5}
    assert scored.undo_bulk_fix(fix) == 1 and scored.undo_bulk_fix(fix) == 0  # a second click: nothing more
    assert set(scored.current_decisions()) == {5}


def test_concurrent_apply_and_undo_leave_each_fix_whole_or_absent(scored):
    import threading

    preview = scored.bulk_dedupe_preview("first", groups=[list(range(0, 40))])
    assert preview.count == 39
    for _ in range(5):
        barrier = threading.Barrier(3)
        errors = []

        def run(fn):
            barrier.wait()
            try:
                fn()
            except Exception as err:  # noqa: BLE001  (reported below)
                errors.append(err)

        threads = [threading.Thread(target=run, args=(fn,)) for fn in
                   (lambda: scored.apply_bulk_fix(preview, session="s1"), scored.undo_bulk_fix, scored.undo_bulk_fix)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        decided = set(scored.current_decisions())
        assert decided in (set(), set(preview.rows)), len(decided)  # never half a fix
        scored.undo_bulk_fix()
        assert scored.current_decisions() == {}


class HalfWay:
    """A decision-log connection that calls ``pause`` after inserting a batch's rows, before they are committed."""

    def __init__(self, con, pause):
        self.con, self.pause = con, pause

    def __getattr__(self, name):
        return getattr(self.con, name)

    def __enter__(self):
        self.con.__enter__()
        return self

    def __exit__(self, *exc):
        return self.con.__exit__(*exc)

    def executemany(self, *args):
        cursor = self.con.executemany(*args)
        self.pause()
        return cursor


def test_a_version_saved_while_a_bulk_fix_is_half_written_holds_none_of_it(scored, monkeypatch):
    import threading

    from influence_core.review import DecisionLog

    preview = scored.bulk_dedupe_preview("first", groups=[list(range(0, 60))])
    inserted, proceed, connect = threading.Event(), threading.Event(), DecisionLog._connect
    writer = threading.Thread(target=lambda: scored.apply_bulk_fix(preview, session="s1"))
    monkeypatch.setattr(DecisionLog, "_connect", lambda self: HalfWay(
        connect(self), lambda: (inserted.set(), proceed.wait(30))) if threading.current_thread() is writer
        else connect(self))
    writer.start()
    assert inserted.wait(30)
    try:
        assert scored.save_version("midway").rows == ()  # the 59 rows are written but not committed: none of them
    finally:
        proceed.set()
        writer.join()
    assert len(scored.save_version("after").removed) == 59 and scored.version("after").parent == "midway"


_KILLED_APPLY = """
import sys, time
from influence_core.project import Project
from influence_core.review import DecisionLog
from tests.test_bulk import HalfWay
proj = Project.open(sys.argv[1], sys.argv[2], user="alice")
connect = DecisionLog._connect
DecisionLog._connect = lambda self: HalfWay(connect(self), lambda: (open(sys.argv[3], "w").close(), time.sleep(60)))
proj.apply_bulk_fix(proj.bulk_dedupe_preview("first", groups=[list(range(30))]))
"""


def test_a_bulk_fix_killed_midway_leaves_nothing_and_the_next_one_applies_whole(scored):
    from .test_versions import kill_at_marker

    scored.record([40], "remove", session="s1")
    kill_at_marker(_KILLED_APPLY, scored.name, str(scored.root), marker=scored.root / "inserted")  # before the commit
    again = Project.open(scored.name, scored.root, user="alice")  # a restart: the log as the disk holds it
    assert set(again.current_decisions()) == {40} and again.last_bulk_fix() is None
    preview = again.bulk_dedupe_preview("first", groups=[list(range(30))])
    again.apply_bulk_fix(preview)
    assert set(again.current_decisions()) == set(range(1, 30)) | {40}
    assert again.undo_bulk_fix() == 29 and set(again.current_decisions()) == {40}


def test_a_preview_made_stale_by_other_data_or_new_decisions_is_refused_not_applied(scored):
    preview = scored.bulk_dedupe_preview("first", groups=[[0, 1, 2], [10, 11]])
    other = Project.open(scored.name, scored.root, user="bob")  # another tab or reviewer
    other.record([11], "keep", session="b")  # a person decided one of its samples after the preview
    with pytest.raises(InfluenceError, match="decided since the preview: preview it again"):
        scored.apply_bulk_fix(preview)  # before: bob's keep was overwritten by the rule
    assert {r: d.action for r, d in scored.current_decisions().items()} == {11: "keep"}
    fresh = scored.bulk_dedupe_preview("first", groups=[[0, 1, 2], [10, 11]])
    assert fresh.rows == (1, 2)
    other.use_dataset("moons", seed=1)  # the data set switched in another tab; moons has as many rows or more
    assert len(other.dataset().train) > max(fresh.rows)
    with pytest.raises(InfluenceError, match="previewed on other data"):
        scored.apply_bulk_fix(fresh)  # before: recorded on rows 1 and 2 of the other data set
    assert other.current_decisions() == {}
