"""The Review page's card grid: a Streamlit component that shows one card per sample and turns every click and
key into a decision event that is recorded exactly once, however fast the user goes.

Built on ``st.components.v2.component`` (inline JS and CSS read from ``assets/review_grid/``, no build step), not on
components v1: a v2 component renders in the page's own DOM (a shadow root, no iframe), so keyboard focus moves
between the cards and the rest of the page without an iframe boundary, the theme's ``--st-*`` variables style it,
browser tests reach its cards by test id, and its state value persists across reruns — which the event queue needs.

Protocol: the component keeps a client-side queue of events ``{id, action, rows, label, page, target}``, each id
unique (session id + a per-load nonce + a counter), and sends the whole unacknowledged queue as its state value
``queue``. `process_events` records each one through the facade (``proj.record(..., event=id)``: the decision log
ignores an id it has recorded, so a resent queue is harmless; undo, page and "why" events are remembered by id in
the session) and the page passes the processed ids back as ``acked`` for the component to drop.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, MutableMapping

import numpy as np
import streamlit as st

from influence_core.project import DECISION_ACTIONS, InfluenceError, Project

KEY = "review-grid"
ASSETS = Path(__file__).resolve().parents[1] / "assets" / "review_grid"
MAX_EVENTS = 500  # a queue longer than this is cut (oldest first): nobody clicks that fast between two reruns
REMEMBERED = 5000  # processed event ids kept per session (a resend of an older one is still safe: see below)
EVENTS = (*DECISION_ACTIONS, "undo", "page", "why")

_COMPONENT = st.components.v2.component(
    "influence_review_grid",
    js=(ASSETS / "grid.js").read_text(encoding="utf-8"),
    css=(ASSETS / "grid.css").read_text(encoding="utf-8"),
)


@dataclass
class Outcome:
    """What one pass over the queue did: ids to acknowledge, refused ids with their one-line reason, the last page
    asked for, rows whose "why flagged" was asked for, and how many decisions an undo took back."""

    acked: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    page: int | None = None
    why: list[int] = field(default_factory=list)
    undone: int = 0


def pending_events(key: str = KEY) -> list[dict]:
    """The component's queue as the browser last sent it (read before the page draws anything, so decisions reach
    the log before the page counts them)."""
    value = st.session_state.get(key)
    queue = value.get("queue") if isinstance(value, dict) else None
    if not isinstance(queue, list):
        return []
    return [ev for ev in queue if isinstance(ev, dict)][-MAX_EVENTS:]


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
    """Apply each event of ``events`` once: decisions through ``proj.record`` (with the event id, so the log records
    it once even if this session forgot it), undo through ``proj.undo(session=...)``; page turns and "why" requests
    are returned. ``done`` (kept in the session) maps each processed id to "" or the reason it was refused; only
    undo relies on it, so it stays bounded."""
    out = Outcome()
    for ev in events:
        eid = ev.get("id")
        if not isinstance(eid, str) or not 0 < len(eid) <= 120:
            continue  # nothing to acknowledge it by; the component never sends such an event
        if eid not in done:
            try:
                action = ev.get("action")
                if action in DECISION_ACTIONS:
                    rows = _rows(ev.get("rows"), n_rows)
                    label = None
                    if action == "relabel":
                        label = _int(ev.get("label"), "the new class")
                        if not 0 <= label < n_classes:
                            raise InfluenceError(f"class {label} does not exist (0..{n_classes - 1})")
                    proj.record(rows, action, label, session=session, event=eid)
                elif action == "undo":
                    out.undone += proj.undo(session=session)
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
    """Mount the grid with ``data`` (cards, classes, page, acked / failed ids; see assets/review_grid/grid.js)."""
    _COMPONENT(key=key, data=data, default={"queue": []}, on_queue_change=_nothing, height="content")


def _nothing() -> None:
    """The queue is read at the top of the next run (`pending_events`), not in a callback."""
