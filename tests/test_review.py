"""The SQLite decision log: persistence across connections, latest decision wins, undo by batch, scopes."""

import sqlite3

import pytest

from influence_core.errors import InfluenceError
from influence_core.review import DecisionLog


def test_decisions_persist_across_a_new_connection(tmp_path):
    path = tmp_path / "d.sqlite"
    log = DecisionLog(path)
    log.record("moons:abc", [4, 9], "remove", user="ana")
    log.record("moons:abc", [4], "relabel", new_label=1, user="ben")
    del log
    again = DecisionLog(path)
    current = again.current("moons:abc")
    assert set(current) == {4, 9}
    assert (current[4].action, current[4].new_label, current[4].decided_by) == ("relabel", 1, "ben")
    assert (current[9].action, current[9].new_label) == ("remove", None)
    assert again.counts("moons:abc") == {"keep": 0, "remove": 1, "relabel": 1}
    # the rows are really in the file, readable without the class
    rows = sqlite3.connect(path).execute("SELECT sample, action FROM decisions ORDER BY id").fetchall()
    assert rows == [(4, "remove"), (9, "remove"), (4, "relabel")]


def test_undo_takes_back_the_latest_batch_only(tmp_path):
    log = DecisionLog(tmp_path / "d.sqlite")
    log.record("s", [1], "keep")
    log.record("s", [1, 2, 3], "remove")
    assert log.undo("s") == 3
    assert {k: v.action for k, v in log.current("s").items()} == {1: "keep"}
    assert log.undo("s") == 1
    assert log.current("s") == {} and not log.can_undo("s")
    assert log.undo("s") == 0
    # undone decisions stay undone after reopening
    assert DecisionLog(tmp_path / "d.sqlite").current("s") == {}


def test_scopes_are_separate_and_bad_input_is_refused(tmp_path):
    log = DecisionLog(tmp_path / "d.sqlite")
    log.record("a", [1], "remove")
    assert log.current("b") == {}
    log.record("b", [1], "keep")
    log.undo("b")
    assert log.current("a")[1].action == "remove"
    with pytest.raises(InfluenceError, match="unknown action"):
        log.record("a", [1], "delete")
    with pytest.raises(InfluenceError, match="new class"):
        log.record("a", [1], "relabel")
    with pytest.raises(InfluenceError, match="at least one"):
        log.record("a", [], "keep")
    frame = log.frame("a")
    assert frame["sample"].tolist() == [1] and frame["decided_at"].str.endswith("Z").all()


def _record_many(path: str, n: int, offset: int) -> list[int]:
    from influence_core.review import DecisionLog

    log = DecisionLog(path)
    return [log.record("scope", [offset + i], "keep") for i in range(n)]


def test_concurrent_writers_get_distinct_batch_numbers(tmp_path):
    """Two processes recording into one log at once: every batch number is allocated once (inside the write lock)."""
    from concurrent.futures import ProcessPoolExecutor

    from influence_core.review import DecisionLog

    path = str(tmp_path / "decisions.sqlite")
    DecisionLog(path)
    with ProcessPoolExecutor(2) as pool:
        batches = [b for f in [pool.submit(_record_many, path, 150, k * 1000) for k in range(2)] for b in f.result()]
    assert sorted(batches) == list(range(1, 301))


def test_a_log_made_in_wal_mode_is_switched_to_a_rollback_journal(tmp_path):
    """Logs written by older versions in WAL mode are switched on open (WAL raced between processes under load)."""
    import sqlite3

    from influence_core.review import DecisionLog

    path = tmp_path / "decisions.sqlite"
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    log = DecisionLog(path)
    log.record("a", [3], "keep")
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()
    assert list(log.current("a")) == [3]


def test_an_undo_event_takes_back_once_even_replayed_after_a_reopen(tmp_path):
    """The browser resends an undo whose acknowledgement it missed (a refresh, a new server session): the log
    remembers the undo's event id, so the replay takes back nothing more."""
    path = tmp_path / "d.sqlite"
    log = DecisionLog(path)
    log.record("s", [1], "keep", session="r1")
    log.record("s", [2, 3], "remove", session="r1")
    assert log.undo("s", session="r1", event="u1") == 2
    again = DecisionLog(path)  # another process, after a restart
    assert again.undo("s", session="r1", event="u1") == 0
    assert set(again.current("s")) == {1}
    # an undo that found nothing is remembered too: replayed after a new decision, it does not take that back
    assert again.undo("s", session="r2", event="u2") == 0
    again.record("s", [4], "keep", session="r2")
    assert again.undo("s", session="r2", event="u2") == 0
    assert set(again.current("s")) == {1, 4}
    assert again.undo("s", session="r1", event="u3") == 1 and set(again.current("s")) == {4}


def test_a_decision_outside_the_split_or_the_classes_is_refused_in_one_line():
    from types import SimpleNamespace

    from influence_core.review import check_new_label, check_rows

    assert check_rows([2, "0"], 3) == [2, 0]
    with pytest.raises(InfluenceError, match=r"^training row 3 is not in the training split \(0..2\)$"):
        check_rows([1, 3, -1], 3)
    dataset = SimpleNamespace(num_classes=3, name="blobs")
    check_new_label(2, dataset)
    check_new_label(1.0, dataset)
    for bad in (3, -1, 1.5, True, "cat"):
        with pytest.raises(InfluenceError, match=r"^cannot relabel to .*: the classes of 'blobs' are 0..2$"):
            check_new_label(bad, dataset)
