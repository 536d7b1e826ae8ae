"""The review grid's event queue on the server (app_pages/review_queue.py, no UI): every event names its project and is
refused elsewhere (kept queued for its own project), undo is scoped by the reviewer id the browser keeps (so it
survives a refresh) and applied once, and a long queue is processed oldest first, every event eventually."""

from __future__ import annotations

import sqlite3

import pytest

from influence_core.project import Project
from app_pages import review_queue as queue

REVIEWER = "0123456789abcdef0123456789abcdef"  # what the browser keeps in localStorage


@pytest.fixture
def proj(tmp_path) -> Project:
    proj = Project.open("a", tmp_path)
    proj.use_dataset("moons", seed=0)
    return proj


def _process(proj, events, *, session="streamlit1", done=None):
    return queue.process_events(proj, events, session=session, done={} if done is None else done,
                               n_rows=len(proj.dataset().train), n_classes=2)


def _ev(eid, action, rows=(), project="a", **more):
    return {"id": eid, "action": action, "rows": list(rows), "label": None, "project": project, "reviewer": REVIEWER,
            **more}


def test_an_event_of_another_project_is_refused_and_stays_queued_for_it(proj):
    out = _process(proj, [_ev("b1", "keep", [3], project="b"), _ev("a1", "keep", [4])])
    assert set(proj.current_decisions()) == {4}  # b's decision is not recorded in a
    assert out.acked == ["a1"] and out.failed == {}  # not acknowledged (the browser keeps it) and not an error …
    assert out.foreign == {"b1": "b"}  # … but handed back to be queued for b
    message = out.foreign_message("a")
    assert "\n" not in message and "'b'" in message and "queued for 'b'" in message
    out = _process(proj, [{k: v for k, v in _ev("x", "keep", [5]).items() if k != "project"}])
    assert "names no project" in out.failed["x"] and 5 not in proj.current_decisions()


def test_undo_after_a_refresh_takes_back_the_reviewers_decision_once(proj):
    _process(proj, [_ev("k1", "keep", [3]), _ev("k2", "remove", [4])], session="streamlit1")
    # A refresh: a new Streamlit session (its own id, nothing remembered), the same reviewer id from the browser.
    out = _process(proj, [_ev("u1", "undo", target=4)], session="streamlit2")
    assert out.acked == ["u1"] and (out.undos, out.undone) == (1, 1)
    assert set(proj.current_decisions()) == {3}
    # the whole queue replayed once more (its acknowledgement was lost in another refresh): nothing changes
    out = _process(proj, [_ev("k1", "keep", [3]), _ev("k2", "remove", [4]), _ev("u1", "undo", target=4)],
                   session="streamlit3")
    assert out.acked == ["k1", "k2", "u1"] and (out.undos, out.undone) == (0, 0)
    assert set(proj.current_decisions()) == {3}
    assert proj.undo(session="streamlit1") == 0  # the decisions belong to the reviewer, not the Streamlit session
    assert proj.undo(session=REVIEWER) == 1


def test_a_malformed_reviewer_id_is_refused(proj):
    out = _process(proj, [{**_ev("k1", "keep", [3]), "reviewer": "../../etc"}, {**_ev("u1", "undo"), "reviewer": 7}])
    assert set(out.failed) == {"k1", "u1"} and all("reviewer" in m and "\n" not in m for m in out.failed.values())
    assert proj.current_decisions() == {}
    assert queue.well_formed_session(REVIEWER) and queue.well_formed_session("0123456789ab")
    assert not any(queue.well_formed_session(v) for v in ("", "0123", "G" * 12, "a" * 33, None, 12))


def test_more_than_500_queued_events_are_all_processed_oldest_first(proj):
    n_rows = len(proj.dataset().train)
    waiting = [_ev(f"e{i}", "keep", [i % n_rows]) for i in range(1199)] + [_ev("last", "remove", [0])]
    first = True
    while waiting:  # what the browser does: send the unacknowledged queue, drop what the server confirmed
        out = _process(proj, queue.pending_events({"queue": waiting}))
        assert out.acked and not out.failed
        if first:
            assert out.acked[0] == "e0" and "last" not in out.acked  # oldest first, bounded per rerun
            first = False
        waiting = [ev for ev in waiting if ev["id"] not in out.acked]
    with sqlite3.connect(proj.folder / "decisions.sqlite") as con:
        assert con.execute("SELECT COUNT(DISTINCT batch) FROM decisions").fetchone()[0] == 1200
    assert proj.current_decisions()[0].action == "remove"  # the newest decision on row 0 is the one that holds


def test_a_batch_event_is_one_decision_and_undo_takes_it_back_whole(proj):
    out = _process(proj, [_ev("b1", "relabel", [3, 4, 5], label=1), _ev("k1", "keep", [6])])
    assert out.acked == ["b1", "k1"]
    assert {r: (d.action, d.new_label) for r, d in proj.current_decisions().items()} == {
        3: ("relabel", 1), 4: ("relabel", 1), 5: ("relabel", 1), 6: ("keep", None)}
    out = _process(proj, [_ev("u1", "undo"), _ev("u2", "undo")])  # the keep, then the whole batch of three
    assert (out.undos, out.undone) == (2, 4) and proj.current_decisions() == {}


def test_page_turns_and_why_requests_are_returned_once_and_bad_events_refused_in_one_line(proj):
    done: dict = {}
    out = _process(proj, [_ev("p1", "page", page=3), _ev("w1", "why", [7, 7, 8]), _ev("x1", "relabel", [2], label=9),
                          _ev("x2", "keep", [10_000]), _ev("x3", "explode", [1])], done=done)
    assert out.page == 3 and out.why == [7, 8] and out.acked == ["p1", "w1"]
    assert set(out.failed) == {"x1", "x2", "x3"} and all("\n" not in m for m in out.failed.values())
    assert "class 9 does not exist" in out.failed["x1"] and "row 10000" in out.failed["x2"]
    assert proj.current_decisions() == {}
    again = _process(proj, [_ev("p1", "page", page=3), _ev("w1", "why", [7])], done=done)  # resent: remembered
    assert again.page is None and again.why == [] and again.acked == ["p1", "w1"]


def test_the_components_state_value_is_read_defensively():
    assert queue.pending_events(None) == [] and queue.pending_events({"queue": "x"}) == []
    assert queue.pending_events({"queue": [1, {"id": "a"}, None]}) == [{"id": "a"}]
    assert queue.browser_session({"reviewer": REVIEWER}) == REVIEWER
    assert queue.browser_session({"reviewer": "../x"}) is None and queue.browser_session([]) is None


def test_more_like_this_is_returned_once_and_a_bad_row_refused(proj):
    done: dict = {}
    out = _process(proj, [_ev("m1", "like", [42]), _ev("m2", "like", [10_000])], done=done)
    assert out.like == 42 and out.acked == ["m1"] and "row 10000" in out.failed["m2"]
    assert proj.current_decisions() == {}
    again = _process(proj, [_ev("m1", "like", [42])], done=done)  # resent: remembered, not asked again
    assert again.like is None and again.acked == ["m1"]
