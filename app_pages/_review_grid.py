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
as its state value ``reviewer`` for the page's own buttons. `app_pages.review_queue.process_events` (no UI, unit
tested) records each one once; the page passes the processed ids back as ``acked`` for the component to drop, and an
event of another project back as ``foreign``: not recorded here, it goes back to its own project's queue.

The page mounts the grid inside a fragment of the project's own (Review's ``_grid_fragment``), keyed by the project
(`key`): a key press reruns the grid and what counts its decisions, not the sidebar or the rest of the page.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

KEY = "review-grid"
ASSETS = Path(__file__).resolve().parents[1] / "assets" / "review_grid"

_COMPONENT = st.components.v2.component(
    "influence_review_grid",
    js=(ASSETS / "grid.js").read_text(encoding="utf-8"),
    css=(ASSETS / "grid.css").read_text(encoding="utf-8"),
)


def key(project: str) -> str:
    """The grid's component key in ``project``: each project's grid is a widget of its own, so a value the browser
    still holds for another project's grid is never read as this one's."""
    return f"{KEY}-{project}"


def state(project: str) -> Any:
    """The component's state value in ``project`` as the browser last sent it (``{"queue": [...], "reviewer": ...}``),
    or None."""
    return st.session_state.get(key(project))


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


def show(data: dict) -> None:
    """Mount the grid of ``data["project"]`` with ``data`` (project, session, cards, classes, page, acked / failed /
    foreign ids; see assets/review_grid/grid.js)."""
    _COMPONENT(key=key(data["project"]), data=data, default={"queue": [], "reviewer": None}, on_queue_change=_nothing,
               on_reviewer_change=_nothing, height="content")


def _nothing() -> None:
    """The queue and the reviewer id are read at the top of the next run (`pending_events`, `browser_session`), not in
    a callback."""
