"""The decision log: keep / remove / relabel decisions on training samples, saved to SQLite as they are made.

Every call to `DecisionLog.record` is one *batch* (one click in the app, one or many samples); `undo` takes
back the latest batch — of one reviewer session when ``session`` is given, so two people on one project never
undo each other's work (the app's session id is kept in the browser, so it survives a refresh). A sample's current decision is its latest decision that has not been undone. Decisions
are scoped by a ``scope`` string (data set name + content hash). A click carries an ``event`` id, so a click
delivered twice (a browser retry, a component resending its queue) is recorded once; so is an undo with an
``event`` id (kept in the file, so a replay after a refresh or a restart takes back nothing more).
"""

from __future__ import annotations

import getpass
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from .errors import InfluenceError

ACTIONS = ("keep", "remove", "relabel")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL,
    batch INTEGER NOT NULL,
    sample INTEGER NOT NULL,
    action TEXT NOT NULL,
    new_label INTEGER,
    decided_by TEXT NOT NULL,
    decided_at REAL NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0,
    session TEXT,
    event TEXT,
    original INTEGER
);
CREATE INDEX IF NOT EXISTS decisions_scope ON decisions (scope, undone, sample);
"""
# Undo events already applied (event ids from the browser's queue), so a replayed undo takes back nothing more.
_UNDO_SCHEMA = """
CREATE TABLE IF NOT EXISTS undo_events (scope TEXT NOT NULL, event TEXT NOT NULL, batch INTEGER,
                                        PRIMARY KEY (scope, event));
"""
# Columns added after the first release: older files get them on open (ALTER TABLE ADD COLUMN keeps the rows).
_ADDED_COLUMNS = {"session": "TEXT", "event": "TEXT", "original": "INTEGER"}


@dataclass(frozen=True)
class Decision:
    """The current decision on one training sample (``sample`` is its row in the training split, ``original`` its
    index in the original data — the id the app and the exports show — when it was recorded)."""

    sample: int
    action: str
    new_label: int | None
    decided_by: str
    decided_at: float
    original: int | None = None


def default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


class DecisionLog:
    """A SQLite file of decisions; each method opens its own short connection (safe across app threads)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            # A rollback journal, not WAL: every call opens and closes its own connection, and under load two
            # processes doing that on a WAL file raced on the WAL's deletion at last close (SQLITE_IOERR_SHORT_READ,
            # reproduced). Writers serialise on BEGIN IMMEDIATE either way; logs made in WAL mode are switched back.
            if con.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                con.execute("PRAGMA journal_mode=DELETE")
            con.executescript(_SCHEMA + _UNDO_SCHEMA)
            have = {row[1] for row in con.execute("PRAGMA table_info(decisions)")}
            for name, kind in _ADDED_COLUMNS.items():
                if name not in have:
                    con.execute(f"ALTER TABLE decisions ADD COLUMN {name} {kind}")
            con.execute("CREATE INDEX IF NOT EXISTS decisions_event ON decisions (scope, event)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def record(self, scope: str, samples: Iterable[int], action: str, new_label: int | None = None,
               user: str | None = None, session: str | None = None, event: str | None = None,
               originals: Iterable[int] | None = None, new_labels: Iterable[int] | None = None) -> int:
        """Save one batch of decisions (committed before returning); returns its batch number.

        ``session``: the browser session that made it (its Undo takes back only its own batches). ``event``: an id
        unique to the click; a batch already recorded under it is not recorded again (its number is returned).
        ``originals``: each sample's index in the original data, kept beside its row. ``new_labels``: a relabel's
        class per sample (a bulk fix relabels each sample to its own suggested class), instead of ``new_label``."""
        samples = [int(s) for s in samples]
        originals = [int(o) for o in originals] if originals is not None else [None] * len(samples)
        if len(originals) != len(samples):
            raise InfluenceError("one original index per sample, please")
        if action not in ACTIONS:
            raise InfluenceError(f"unknown action '{action}'; choose one of: {', '.join(ACTIONS)}")
        if action == "relabel" and new_label is None and new_labels is None:
            raise InfluenceError("relabel needs the new class")
        if not samples:
            raise InfluenceError("select at least one sample")
        labels = [int(k) for k in new_labels] if action == "relabel" and new_labels is not None else None
        if labels is not None and len(labels) != len(samples):
            raise InfluenceError("one new class per sample, please")
        labels = labels or [int(new_label) if action == "relabel" else None] * len(samples)
        now, who = time.time(), user or default_user()
        with self._connect() as con:
            # Take the write lock before reading MAX(batch): two writers can then never get the same batch number.
            con.execute("BEGIN IMMEDIATE")
            if event is not None:
                seen = con.execute("SELECT batch FROM decisions WHERE scope = ? AND event = ? LIMIT 1",
                                   (scope, event)).fetchone()
                if seen is not None:
                    return int(seen[0])
            batch = con.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM decisions WHERE scope = ?", (scope,)).fetchone()[0]
            con.executemany(
                "INSERT INTO decisions (scope, batch, sample, action, new_label, decided_by, decided_at, session, event, "
                "original) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(scope, batch, s, action, label, who, now, session, event, o)
                 for s, o, label in zip(samples, originals, labels)],
            )
        return int(batch)

    def undo(self, scope: str, session: str | None = None, event: str | None = None, batch: int | None = None) -> int:
        """Take back the latest batch not yet undone (of ``session`` when given; batch ``batch`` when given, e.g. a
        bulk fix); returns how many decisions it held (0 when none). ``event``: an id unique to the undo click; an
        undo already applied under it (even one that found nothing) takes back nothing more."""
        where, args = ("AND session = ?", (scope, session)) if session is not None else ("", (scope,))
        if batch is not None:
            where, args = where + " AND batch = ?", (*args, int(batch))
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            if event is not None and con.execute("SELECT 1 FROM undo_events WHERE scope = ? AND event = ?",
                                                 (scope, event)).fetchone() is not None:
                return 0
            batch = con.execute(f"SELECT MAX(batch) FROM decisions WHERE scope = ? AND undone = 0 {where}", args).fetchone()[0]
            if event is not None:
                con.execute("INSERT INTO undo_events (scope, event, batch) VALUES (?,?,?)", (scope, event, batch))
            if batch is None:
                return 0
            cur = con.execute("UPDATE decisions SET undone = 1 WHERE scope = ? AND batch = ?", (scope, batch))
            return int(cur.rowcount)

    def latest_batch(self, scope: str, event_prefix: str, user: str | None = None) -> tuple[int, int, str] | None:
        """(batch, how many samples, its event id) of the latest batch not undone whose event id starts with
        ``event_prefix`` (made by ``user`` when given), or None: how a bulk fix is found again after a refresh."""
        where, args = ("AND decided_by = ?", (user,)) if user is not None else ("", ())
        if any(c in event_prefix for c in "*?[]"):
            raise InfluenceError("an event prefix is plain text")
        with self._connect() as con:
            row = con.execute(f"SELECT batch, COUNT(*), MIN(event) FROM decisions WHERE scope = ? AND undone = 0 AND "
                              f"event GLOB ? {where} GROUP BY batch ORDER BY batch DESC LIMIT 1",
                              (scope, event_prefix + "*", *args)).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), str(row[2]))

    def current(self, scope: str) -> dict[int, Decision]:
        """Each decided sample's latest decision that has not been undone."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT sample, action, new_label, decided_by, decided_at, original FROM decisions "
                "WHERE scope = ? AND undone = 0 ORDER BY batch, id", (scope,)
            ).fetchall()
        return {int(r[0]): Decision(int(r[0]), r[1], None if r[2] is None else int(r[2]), r[3], float(r[4]),
                                    None if r[5] is None else int(r[5])) for r in rows}

    def frame(self, scope: str) -> pd.DataFrame:
        """`current` as a table: sample (training row), original (index in the original data), action, new_label,
        decided_by, decided_at (ISO time, UTC)."""
        rows = [d.__dict__ for d in self.current(scope).values()]
        frame = pd.DataFrame(rows, columns=["sample", "original", "action", "new_label", "decided_by", "decided_at"])
        frame["decided_at"] = pd.to_datetime(frame["decided_at"], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        return frame.sort_values("sample").reset_index(drop=True)

    def by_reviewer(self, scope: str) -> dict[str, dict[int, str]]:
        """Each reviewer's (``decided_by``) own latest decision per sample that has not been undone, as a category —
        the action, or "relabel:<class>" — what per-reviewer counts and their agreement are computed from."""
        with self._connect() as con:
            rows = con.execute("SELECT decided_by, sample, action, new_label FROM decisions "
                               "WHERE scope = ? AND undone = 0 ORDER BY batch, id", (scope,)).fetchall()
        out: dict[str, dict[int, str]] = {}
        for who, sample, action, label in rows:
            out.setdefault(who, {})[int(sample)] = action if action != "relabel" else f"relabel:{label}"
        return out

    def counts(self, scope: str) -> dict[str, int]:
        """How many samples currently carry each action."""
        out = {a: 0 for a in ACTIONS}
        for d in self.current(scope).values():
            out[d.action] += 1
        return out

    def can_undo(self, scope: str, session: str | None = None) -> bool:
        where, args = ("AND session = ?", (scope, session)) if session is not None else ("", (scope,))
        with self._connect() as con:
            return con.execute(f"SELECT 1 FROM decisions WHERE scope = ? AND undone = 0 {where} LIMIT 1",
                               args).fetchone() is not None


def reviewer_agreement(by_reviewer: dict[str, dict[int, str]]) -> list[dict]:
    """For each pair of reviewers who both decided some samples: how many, the share decided alike, and Cohen's κ
    over those samples (scikit-learn's ``cohen_kappa_score``; the categories are the action or the new class). κ is
    None where both gave one and the same category to every shared sample (chance agreement is then 1: κ is 0/0)."""
    from sklearn.metrics import cohen_kappa_score

    out = []
    names = sorted(by_reviewer)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = sorted(set(by_reviewer[a]) & set(by_reviewer[b]))
            if not shared:
                continue
            x, y = [by_reviewer[a][s] for s in shared], [by_reviewer[b][s] for s in shared]
            kappa = None if len(set(x) | set(y)) == 1 else float(cohen_kappa_score(x, y))
            out.append({"reviewers": (a, b), "samples": len(shared),
                        "agreement": sum(p == q for p, q in zip(x, y)) / len(shared), "kappa": kappa})
    return out


def check_rows(rows, n_rows: int) -> list[int]:
    """``rows`` as ints, each a row of a training split of ``n_rows``; else a one-line refusal naming the first outside."""
    rows = [int(r) for r in rows]
    outside = [r for r in rows if not 0 <= r < n_rows]
    if outside:
        raise InfluenceError(f"training row {outside[0]} is not in the training split (0..{n_rows - 1})")
    return rows


def check_new_label(new_label, dataset) -> None:
    """A one-line refusal of a relabel to a class ``dataset`` lacks (it would only fail at Export)."""
    try:
        value = float(new_label)
    except (TypeError, ValueError):
        value = -1.0
    if isinstance(new_label, bool) or not value.is_integer() or not 0 <= value < dataset.num_classes:
        raise InfluenceError(f"cannot relabel to {new_label}: the classes of '{dataset.name}' are "
                             f"0..{dataset.num_classes - 1}")
