"""The Review page's card grid: a Streamlit component that shows one card per sample and turns every click and
key into a decision event that is recorded exactly once, however fast the user goes.

Built on ``st.components.v2.component`` (inline JS and CSS read from ``assets/review_grid/``, no build step), not on
components v1: a v2 component renders in the page's own DOM (a shadow root, no iframe), so keyboard focus moves
between the cards and the rest of the page without an iframe boundary, the theme's ``--st-*`` variables style it,
browser tests reach its cards by test id, and its state value persists across reruns — which the event queue needs.

Protocol: the component keeps a client-side queue per project (sessionStorage) of events ``{id, action, rows, label,
page, target, project, reviewer}``, each id unique (reviewer id + a per-load nonce + a counter), and sends the whole
unacknowledged queue as its state value ``queue``. ``reviewer`` is the reviewer-session id the browser keeps per
project (localStorage), so Undo takes back the same reviewer's decisions after a refresh; the component also sends it
as its state value ``reviewer`` for the page's own buttons. `process_events` records each one through the facade
(``proj.record(..., event=id)`` and ``proj.undo(..., event=id)``: the decision log ignores an id it has applied, so a
resent queue is harmless; page and "why" events are remembered by id in the session), oldest first, at most
`MAX_EVENTS` per run; the page passes the processed ids back as ``acked`` for the component to drop, and an event of
another project back as ``foreign``: not recorded here, it goes back to its own project's queue.
"""

from __future__ import annotations

import base64
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, MutableMapping

import numpy as np
import streamlit as st

from influence_core.project import DECISION_ACTIONS, InfluenceError, Project

KEY = "review-grid"
ASSETS = Path(__file__).resolve().parents[1] / "assets" / "review_grid"
MAX_EVENTS = 500  # events processed per run, oldest first; the rest wait for the next run (the browser resends them)
REMEMBERED = 5000  # processed event ids kept per session (a resend of an older one is still safe: see below)
EVENTS = (*DECISION_ACTIONS, "undo", "page", "why")
SESSION_ID = re.compile(r"[0-9a-f]{12,32}")  # a reviewer-session id: this server's (12 hex) or the browser's (32 hex)

_COMPONENT = st.components.v2.component(
    "influence_review_grid",
    js=(ASSETS / "grid.js").read_text(encoding="utf-8"),
    css=(ASSETS / "grid.css").read_text(encoding="utf-8"),
)


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


def browser_session(state: Mapping = st.session_state, key: str = KEY) -> str | None:
    """The reviewer-session id the browser keeps for this project (so Undo survives a refresh), when it sent a
    well-formed one."""
    value = state.get(key)
    sent = value.get("reviewer") if isinstance(value, Mapping) else None
    return sent if well_formed_session(sent) else None


def pending_events(state: Mapping = st.session_state, key: str = KEY) -> list[dict]:
    """The oldest `MAX_EVENTS` of the component's queue as the browser last sent it (read before the page draws
    anything, so decisions reach the log before the page counts them; the rest come with the next run)."""
    value = state.get(key)
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


def thumbnail(pixels: np.ndarray) -> str:
    """An H×W×C uint8 image as a PNG data URL (the card scales it up without smoothing)."""
    from PIL import Image

    arr = np.asarray(pixels, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def number(value) -> float | None:
    """A float the browser's JSON can read (NaN and infinities become None)."""
    value = float(value)
    return value if math.isfinite(value) else None


def show(data: dict, key: str = KEY) -> None:
    """Mount the grid with ``data`` (project, session, cards, classes, page, acked / failed / foreign ids; see
    assets/review_grid/grid.js)."""
    _COMPONENT(key=key, data=data, default={"queue": [], "reviewer": None}, on_queue_change=_nothing,
               on_reviewer_change=_nothing, height="content")


def _nothing() -> None:
    """The queue and the reviewer id are read at the top of the next run (`pending_events`, `browser_session`), not in
    a callback."""
