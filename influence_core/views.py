"""Review views: which training samples the Review grid lists, and in which order, as one frozen value.

A `ReviewView` is a set of filters (issue type, given class, the model's predicted — "suggested" — class, "model
disagrees", a score range of the ordering ranking, decided / undecided, reviewer, cleanlab's suspected set, "more
like this", an explicit selection) plus the ranking that orders what is left (lower = more detrimental first).
`apply` turns a view and the project's data (`ViewData`) into ordered training rows; `to_query` / `from_query` write
it into a URL and read it back from one — every URL parameter is hostile: bad values are ignored with a one-line
note, never trusted; `SavedViews` keeps named views per project in ``views.json`` (atomic writes).
Pure library: no streamlit, no model code (the project hands the lazy parts in as functions).
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from .atomic import exclusive, write_text_atomic
from .errors import InfluenceError, escaped
from .state import flagged_rows

SCOPES = ("flagged", "all", "suspected")  # the flagged share of the ordering ranking; every sample; cleanlab's mask
STATUSES = ("undecided", "any", "decided")
MAX_ROWS = 2000  # samples an explicit selection (a lasso, a URL) may name
MAX_NEIGHBOURS = 200  # "more like this": at most this many nearest neighbours
DEFAULT_NEIGHBOURS = 12
MAX_TEXT = 64  # characters of a ranking, issue, class or reviewer name in a URL
MAX_SAVED = 100  # saved views per project
VIEWS_FILE = "views.json"
_VIEW_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
_SAVE_LOCK = threading.Lock()
_ID = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class ReviewView:
    """What Review lists: the samples passing every filter, ordered by the ranking ``order`` (a run label or a Datalab
    issue ranking; None = the project's primary ranking), lowest score first. Rows are training rows."""

    order: str | None = None
    scope: str = "flagged"  # one of SCOPES
    status: str = "undecided"  # one of STATUSES
    issue: str | None = None  # samples Datalab marks with this issue type
    given: int | None = None  # given class
    suggested: int | None = None  # the model's predicted class
    disagrees: bool = False  # predicted class ≠ given class
    score_min: float | None = None  # of the ordering ranking, inclusive
    score_max: float | None = None
    reviewer: str | None = None  # decided by this reviewer (their latest decision)
    like: int | None = None  # "more like this": this row and its nearest neighbours in the model's embedding
    neighbours: int = DEFAULT_NEIGHBOURS
    rows: tuple[int, ...] = ()  # an explicit selection (Explore's lasso); empty = no such filter
    # what a front end offers (pages import only the facade, which re-exports this class)
    SCOPES: ClassVar[tuple[str, ...]] = SCOPES
    STATUSES: ClassVar[tuple[str, ...]] = STATUSES
    PARAMS: ClassVar[tuple[str, ...]] = ()  # set below, with PARAMS
    MAX_ROWS: ClassVar[int] = MAX_ROWS
    MAX_NEIGHBOURS: ClassVar[int] = MAX_NEIGHBOURS

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise InfluenceError(f"a view's samples are one of {', '.join(SCOPES)}, not '{str(self.scope)[:20]}'")
        if self.status not in STATUSES:
            raise InfluenceError(f"a view's status is one of {', '.join(STATUSES)}, not '{str(self.status)[:20]}'")
        if not 1 <= int(self.neighbours) <= MAX_NEIGHBOURS:
            raise InfluenceError(f"'more like this' shows 1 to {MAX_NEIGHBOURS} neighbours, not {self.neighbours}")
        if len(self.rows) > MAX_ROWS:
            raise InfluenceError(f"a selection names at most {MAX_ROWS} samples, not {len(self.rows)}")
        for bound in (self.score_min, self.score_max):
            if bound is not None and not math.isfinite(bound):
                raise InfluenceError("a score range needs finite bounds")
        if self.score_min is not None and self.score_max is not None and self.score_min > self.score_max:
            raise InfluenceError(f"the score range is empty ({self.score_min:g} > {self.score_max:g})")
        object.__setattr__(self, "rows", tuple(sorted({int(r) for r in self.rows})))

    def with_selection(self, rows) -> "ReviewView":
        """Exactly the samples ``rows`` (at most `MAX_ROWS`), decided or not; the other filters cleared."""
        return ReviewView(order=self.order, scope="all", status="any", rows=tuple(int(r) for r in rows))


@dataclass(frozen=True)
class ViewData:
    """What `apply` filters with: every ranking by name (lower = more detrimental), the default ordering, given and
    predicted classes per training row, the current decisions (row → an object with ``decided_by``), the flagged
    share, Datalab's issue table (columns sample, issue, is_issue; None before it ran) and the expensive parts as
    functions called only when a view uses them: cleanlab's suspected mask and (row, k) → nearest rows."""

    rankings: Mapping[str, np.ndarray]
    default_order: str
    given: np.ndarray
    predicted: np.ndarray
    decisions: Mapping[int, Any]
    flag_share: float
    issues: Any = None
    suspected: Callable[[], np.ndarray] | None = None
    neighbours: Callable[[int, int], np.ndarray] | None = None


def ordering(view: ReviewView, data: ViewData) -> str:
    """The ranking ``view`` orders by (its own, else the default), checked to exist."""
    order = view.order or data.default_order
    if order not in data.rankings:
        raise InfluenceError(f"no ranking named '{order[:MAX_TEXT]}' in this project")
    return order


def apply(view: ReviewView, data: ViewData) -> np.ndarray:
    """The training rows ``view`` lists, most detrimental first (lowest score of its ranking; ties by row; samples
    without a score last)."""
    order = ordering(view, data)
    scores = np.asarray(data.rankings[order], dtype=float)
    n = len(data.given)
    if len(scores) != n:
        raise InfluenceError(f"the ranking '{order[:MAX_TEXT]}' scores {len(scores)} samples, not the {n} of the "
                             "training split")
    keep = np.zeros(n, dtype=bool)
    if view.scope == "flagged":
        keep[flagged_rows(scores, data.flag_share)] = True
    elif view.scope == "suspected":
        keep = _mask(_need(data.suspected, "cleanlab's suspected set")(), n)
    else:
        keep[:] = True
    decided = np.zeros(n, dtype=bool)
    decided[[r for r in data.decisions if 0 <= int(r) < n]] = True
    if view.status == "decided":
        keep &= decided
    elif view.status == "undecided":
        keep &= ~decided
    if view.reviewer is not None:
        keep &= np.isin(np.arange(n), [r for r, d in data.decisions.items() if d.decided_by == view.reviewer])
    if view.issue is not None:
        keep &= _mask(issue_rows(data.issues, view.issue), n)
    given, predicted = np.asarray(data.given), np.asarray(data.predicted)
    if view.given is not None:
        keep &= given == view.given
    if view.suggested is not None:
        keep &= predicted == view.suggested
    if view.disagrees:
        keep &= predicted != given
    if view.score_min is not None:
        keep &= scores >= view.score_min
    if view.score_max is not None:
        keep &= scores <= view.score_max
    if view.like is not None:
        if not 0 <= view.like < n:
            raise InfluenceError(f"'more like this' names row {view.like}, not in the training split")
        keep &= _mask(_need(data.neighbours, "'more like this'")(view.like, view.neighbours), n)
    if view.rows:
        if view.rows[-1] >= n:
            raise InfluenceError(f"the selection names row {view.rows[-1]}, not in the training split (0..{n - 1})")
        keep &= _mask(np.asarray(view.rows), n)
    rows = np.flatnonzero(keep)
    return rows[np.lexsort((rows, np.nan_to_num(scores[rows], nan=np.inf)))]


def issue_rows(issues, issue: str) -> np.ndarray:
    """Training rows Datalab marks with ``issue`` (its ``is_issue``); a one-line error before Datalab ran."""
    if issues is None:
        raise InfluenceError("no data issues yet: run Datalab first to filter by an issue type")
    table = issues[(issues["issue"] == issue) & issues["is_issue"].astype(bool)]
    return table["sample"].to_numpy(dtype=np.int64)


def nearest_rows(features: np.ndarray, row: int, k: int) -> np.ndarray:
    """``row`` and its ``k`` nearest training rows by cosine similarity of the model's embedding (ties by row)."""
    feats = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(feats, axis=1)
    norms[norms == 0] = 1.0
    sim = feats @ feats[row] / (norms * norms[row])
    sim[row] = np.inf  # itself first
    order = np.lexsort((np.arange(len(sim)), -sim))
    return order[: int(k) + 1]


def _need(fn, what: str):
    if fn is None:
        raise InfluenceError(f"{what} is not available for this project")
    return fn


def _mask(rows, n: int) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.dtype == bool:
        return rows.copy()
    mask = np.zeros(n, dtype=bool)
    mask[rows[(rows >= 0) & (rows < n)].astype(np.int64)] = True
    return mask


# ---------------------------------------------------------------------------------------------- the URL
@dataclass(frozen=True)
class ViewChoices:
    """What a URL's view may name in this project: class names, ranking names, issue types and each training row's
    sample id (its index in the original data, the id people see; None = rows are ids)."""

    classes: tuple[str, ...]
    rankings: tuple[str, ...]
    n_rows: int
    issues: tuple[str, ...] = ()
    ids: np.ndarray | None = None

    def id_of(self, row: int) -> int:
        return int(self.ids[row]) if self.ids is not None else int(row)

    def rows_of(self, ids: list[int]) -> list[int | None]:
        """The training row of each sample id (None where no row has it)."""
        if self.ids is None:
            return [i if 0 <= i < self.n_rows else None for i in ids]
        where = {int(v): r for r, v in enumerate(self.ids)}
        return [where.get(i) for i in ids]


PARAMS = ("order", "scope", "status", "issue", "given", "suggested", "disagrees", "smin", "smax", "reviewer", "like",
          "k", "rows")  # every URL parameter a view uses (the page keeps the others, e.g. project)
ReviewView.PARAMS = PARAMS


def to_query(view: ReviewView, choices: ViewChoices) -> dict[str, str]:
    """``view`` as URL parameters (only what differs from the default view): classes by name, samples by id."""
    out: dict[str, str] = {}
    default = ReviewView()
    if view.order is not None:
        out["order"] = view.order
    if view.scope != default.scope:
        out["scope"] = view.scope
    if view.status != default.status:
        out["status"] = view.status
    if view.issue is not None:
        out["issue"] = view.issue
    for key in ("given", "suggested"):
        k = getattr(view, key)
        if k is not None:
            out[key] = choices.classes[k] if 0 <= k < len(choices.classes) else str(k)
    if view.disagrees:
        out["disagrees"] = "1"
    if view.score_min is not None:
        out["smin"] = repr(float(view.score_min))
    if view.score_max is not None:
        out["smax"] = repr(float(view.score_max))
    if view.reviewer is not None:
        out["reviewer"] = view.reviewer
    if view.like is not None:
        out["like"] = str(choices.id_of(view.like))
        if view.neighbours != default.neighbours:
            out["k"] = str(view.neighbours)
    if view.rows:
        out["rows"] = ",".join(str(choices.id_of(r)) for r in view.rows)
    return out


def from_query(params: Mapping[str, Any], choices: ViewChoices) -> tuple[ReviewView, list[str]]:
    """The view URL parameters ``params`` describe, and one note per parameter ignored (hostile or stale: a wrong
    type, out of range, too long, an unknown class, ranking, issue or sample). Other parameters are not looked at."""
    notes: list[str] = []
    values: dict[str, Any] = {}

    def text(key: str, limit: int = MAX_TEXT) -> str | None:
        raw = params.get(key)
        if isinstance(raw, (list, tuple)):
            raw = raw[-1] if raw else None
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str) or len(raw) > limit or any(ord(c) < 32 or ord(c) == 127 for c in raw):
            notes.append(f"the view's '{key}' is not a short text; ignored")
            return None
        return raw

    def one_of(key: str, allowed, what: str):
        raw = text(key)
        if raw is None:
            return None
        if raw not in allowed:
            notes.append(f"{what} '{escaped(raw)}' is not one of this project's; ignored")
            return None
        return raw

    def number(key: str, kind):
        raw = text(key, 32)
        if raw is None:
            return None
        try:
            if not raw.isascii() or "_" in raw:  # Python also reads "٣" and "1_0" as numbers; a URL should not
                raise ValueError(raw)
            value = kind(raw)
        except ValueError:
            notes.append(f"the view's '{key}' is not a number; ignored")
            return None
        if not math.isfinite(value):
            notes.append(f"the view's '{key}' is not a finite number; ignored")
            return None
        return value

    values["order"] = one_of("order", choices.rankings, "the ranking")
    values["scope"] = one_of("scope", SCOPES, "the sample set")
    values["status"] = one_of("status", STATUSES, "the status")
    values["issue"] = one_of("issue", choices.issues, "the issue type")
    for key in ("given", "suggested"):
        raw = text(key)
        if raw is None:
            continue
        if raw in choices.classes:
            values[key] = choices.classes.index(raw)
        elif _ID.fullmatch(raw) and int(raw) < len(choices.classes):
            values[key] = int(raw)
        else:
            notes.append(f"the class '{escaped(raw)}' is not a class of this data set; ignored")
    disagrees = text("disagrees", 8)
    if disagrees is not None:
        if disagrees in ("1", "true", "0", "false"):
            values["disagrees"] = disagrees in ("1", "true")
        else:
            notes.append("the view's 'disagrees' is not 1 or 0; ignored")
    values["score_min"] = number("smin", float)
    values["score_max"] = number("smax", float)
    low, high = values["score_min"], values["score_max"]
    if low is not None and high is not None and low > high:
        notes.append("the view's score range is empty; ignored")
        values["score_min"] = values["score_max"] = None
    values["reviewer"] = text("reviewer")
    like = number("like", int)
    if like is not None:
        row = choices.rows_of([like])[0]
        if row is None:
            notes.append(f"'more like this' names sample {like}, not in the training split; ignored")
        else:
            values["like"] = row
            k = number("k", int)
            if k is not None and not 1 <= k <= MAX_NEIGHBOURS:
                notes.append(f"'more like this' shows 1 to {MAX_NEIGHBOURS} neighbours; {k} ignored")
            elif k is not None:
                values["neighbours"] = k
    raw_rows = params.get("rows")
    if isinstance(raw_rows, str) and raw_rows:
        values["rows"] = _selection(raw_rows, choices, notes)
    view = ReviewView(**{k: v for k, v in values.items() if v is not None})
    return view, notes


def _selection(raw: str, choices: ViewChoices, notes: list[str]) -> tuple[int, ...] | None:
    parts = raw.split(",") if len(raw) <= MAX_ROWS * 13 else []
    if not parts or len(parts) > MAX_ROWS:
        notes.append(f"a selection names at most {MAX_ROWS} samples; ignored")
        return None
    if not all(_ID.fullmatch(p.strip()) for p in parts):
        notes.append("the view's selection is not a list of sample ids; ignored")
        return None
    ids = [int(p) for p in parts]
    rows = choices.rows_of(ids)
    missing = [i for i, r in zip(ids, rows) if r is None]
    if missing:
        notes.append(f"the selection names sample {missing[0]}, not in the training split; ignored")
        return None
    return tuple(rows)


# ---------------------------------------------------------------------------------------- saved views
class SavedViews:
    """A project's named views in ``<project>/views.json`` (name → URL parameters, so a saved view is read back
    through `from_query`'s checks, like a bookmark); written whole or not at all."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / VIEWS_FILE

    def all(self) -> dict[str, dict[str, str]]:
        """Every saved view's URL parameters by name (an unreadable file: none)."""
        return self._read()[0]

    def _read(self) -> tuple[dict[str, dict[str, str]], bool]:
        """(the saved views, whether the file is missing or readable)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}, True
        except (OSError, ValueError):
            return {}, False
        if not isinstance(data, dict):
            return {}, False
        return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in data.items()
                if isinstance(v, dict) and _VIEW_NAME.fullmatch(str(k))}, True

    def _write(self, views: dict, readable: bool) -> None:
        """Write ``views``; an unreadable file is first kept aside (``views.json.corrupt-<time>``), never overwritten."""
        if not readable:
            import time

            self.path.replace(self.path.with_name(f"{VIEWS_FILE}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"))
        write_text_atomic(self.path, json.dumps(views, indent=1, sort_keys=True))

    def _locked(self):
        """One writer at a time: threads of this process, and processes sharing the workspace."""
        return exclusive(self.path.with_name(".views.lock"), _SAVE_LOCK)

    def save(self, name: str, query: Mapping[str, str]) -> str:
        """Save (or replace) the view ``name``; returns the name as stored (trimmed)."""
        name = valid_view_name(name)
        with self._locked():
            views, readable = self._read()
            if name not in views and len(views) >= MAX_SAVED:
                raise InfluenceError(f"a project keeps at most {MAX_SAVED} saved views: delete one first")
            views[name] = dict(query)
            self._write(views, readable)
        return name

    def delete(self, name: str) -> bool:
        """Delete the view ``name``; whether there was one."""
        with self._locked():
            views, readable = self._read()
            if views.pop(name, None) is None:
                return False
            self._write(views, readable)
        return True


def valid_name(name: str) -> bool:
    """1 to 64 printable characters: none that breaks a line (U+2028) or hides or reorders text (U+202E, U+200B)."""
    return bool(_VIEW_NAME.fullmatch(name)) and escaped(name) == name


def valid_view_name(name: Any) -> str:
    """``name`` trimmed when it can name a saved view (1 to 64 printable characters), else a one-line error."""
    name = str(name or "").strip()
    if not valid_name(name):
        raise InfluenceError("a saved view's name is 1 to 64 printable characters")
    return name


__all__ = ["ReviewView", "ViewData", "ViewChoices", "SavedViews", "apply", "to_query", "from_query", "nearest_rows",
           "issue_rows", "valid_view_name", "SCOPES", "STATUSES", "PARAMS", "MAX_ROWS"]
