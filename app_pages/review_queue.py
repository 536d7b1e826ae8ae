"""The Review grid's event queue on the server, without any UI: the browser (assets/review_grid/grid.js) keeps a
queue per project of events ``{id, action, rows, label, page, target, project, reviewer}`` and sends the whole
unacknowledged queue as the component's state value; `process_events` applies each event once, oldest first, at
most `MAX_EVENTS` per run: decisions (one event = one batch, one or many rows) through ``proj.record(..., event=id)``
and undo through ``proj.undo(..., event=id)`` — the decision log ignores an id it has applied, so a resent queue is
harmless — while page turns and "why" requests are remembered by id in ``done``. An event of another project is
neither recorded nor acknowledged: it goes back (``foreign``) to its own project's queue."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, MutableMapping

from influence_core.project import DECISION_ACTIONS, InfluenceError, Project

MAX_EVENTS = 500  # events processed per run, oldest first; the rest wait for the next run (the browser resends them)
REMEMBERED = 5000  # processed event ids kept per session (a resend of an older one is still safe: see below)
EVENTS = (*DECISION_ACTIONS, "undo", "page", "why", "like")
SESSION_ID = re.compile(r"[0-9a-f]{12,32}")  # a reviewer-session id: this server's (12 hex) or the browser's (32 hex)


@dataclass
class Outcome:
    """What one pass over the queue did: ids to acknowledge, refused ids with their one-line reason, ids of another
    project's events with that project, the last page asked for, rows whose "why flagged" was asked for, and how
    many undone batches (``undos``) held how many decisions (``undone``)."""

    acked: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    foreign: dict[str, str] = field(default_factory=dict)
    page: int | None = None
    why: list[int] = field(default_factory=list)
    undos: int = 0
    undone: int = 0
    like: int | None = None  # "more like this" asked on a card (issue 20): Review shows its nearest neighbours

    def foreign_message(self, project: str) -> str:
        """One line on the events of other projects that this project refused."""
        others = ", ".join(f"'{p}'" for p in sorted(set(self.foreign.values())))
        n = len(self.foreign)
        return (f"{n} review event{'s' if n != 1 else ''} of project {others} {'were' if n != 1 else 'was'} not "
                f"recorded in '{project}': {'they stay' if n != 1 else 'it stays'} queued for {others} and "
                f"{'are' if n != 1 else 'is'} recorded when you open its Review page.")


def well_formed_session(value: Any) -> bool:
    """Whether ``value`` is a reviewer-session id (the browser chooses it: anything else is refused)."""
    return isinstance(value, str) and SESSION_ID.fullmatch(value) is not None


def browser_session(value: Any) -> str | None:
    """The reviewer-session id the browser keeps for this project (so Undo survives a refresh), when the component's
    state ``value`` holds a well-formed one."""
    sent = value.get("reviewer") if isinstance(value, Mapping) else None
    return sent if well_formed_session(sent) else None


def pending_events(value: Any) -> list[dict]:
    """The oldest `MAX_EVENTS` of the queue in the component's state ``value`` as the browser last sent it (read
    before the grid draws anything, so decisions reach the log before they are counted; the rest come with the next
    run)."""
    queue = value.get("queue") if isinstance(value, Mapping) else None
    if not isinstance(queue, list):
        return []
    return [ev for ev in queue if isinstance(ev, dict)][:MAX_EVENTS]


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise InfluenceError(f"{what} must be a whole number, not {str(value)[:20]!r}")
    return int(value)


def _rows(value: Any, n_rows: int) -> list[int]:
    if not isinstance(value, list) or not value:
        raise InfluenceError("an event names no sample")
    rows = [_int(v, "a sample's row") for v in value]
    bad = [r for r in rows if not 0 <= r < n_rows]
    if bad:
        raise InfluenceError(f"row {bad[0]} is not in the training split (0..{n_rows - 1})")
    return rows


def process_events(proj: Project, events: list[dict], *, session: str, done: MutableMapping[str, str],
                   n_rows: int, n_classes: int) -> Outcome:
    """Apply each event of ``events`` once, in order: decisions through ``proj.record`` and undo through
    ``proj.undo``, both with the event id (the log applies an id once, even if this session forgot it) and the
    event's reviewer id (``session`` for an event without one); page turns and "why" requests are returned. An event
    of another project is neither recorded nor acknowledged (``foreign``). ``done`` (kept in the session) maps each
    processed id to "" or the reason it was refused; only page and "why" events rely on it, so it stays bounded."""
    out = Outcome()
    for ev in events:
        eid = ev.get("id")
        if not isinstance(eid, str) or not 0 < len(eid) <= 120:
            continue  # nothing to acknowledge it by; the component never sends such an event
        owner = ev.get("project")
        if isinstance(owner, str) and owner and owner != proj.name:
            out.foreign[eid] = owner[:64]
            continue
        if eid not in done:
            try:
                if not isinstance(owner, str) or not owner:
                    raise InfluenceError("the event names no project; it was not recorded")
                reviewer = ev.get("reviewer", session)
                if not well_formed_session(reviewer):
                    raise InfluenceError("the event's reviewer id is not well formed; it was not recorded")
                action = ev.get("action")
                if action in DECISION_ACTIONS:
                    rows = _rows(ev.get("rows"), n_rows)
                    label = None
                    if action == "relabel":
                        label = _int(ev.get("label"), "the new class")
                        if not 0 <= label < n_classes:
                            raise InfluenceError(f"class {label} does not exist (0..{n_classes - 1})")
                    proj.record(rows, action, label, session=reviewer, event=eid)
                elif action == "undo":
                    n = proj.undo(session=reviewer, event=eid)
                    out.undos += n > 0
                    out.undone += n
                elif action == "page":
                    out.page = _int(ev.get("page"), "a page number")
                elif action == "why":
                    out.why.extend(r for r in _rows(ev.get("rows"), n_rows) if r not in out.why)
                elif action == "like":
                    out.like = _rows(ev.get("rows"), n_rows)[0]
                else:
                    raise InfluenceError(f"unknown review event '{str(action)[:20]}'")
                done[eid] = ""
            except InfluenceError as err:
                done[eid] = str(err)
        if done[eid]:
            out.failed[eid] = done[eid]
        else:
            out.acked.append(eid)
    while len(done) > REMEMBERED:
        done.pop(next(iter(done)))
    return out
