"""Review's views on the page (issue 20): the view in the URL (bookmarkable and shareable; the project stays in it),
the filter bar, saved views and the class-pair map. What a view lists is the library's (`Project.review_rows`,
influence_core/views.py); this module renders and keeps the URL, the widgets and the view in step."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import streamlit as st

from influence_core.figures import class_pair_map, class_pair_of_selection, selected_points
from influence_core.project import InfluenceError, ReviewView
from app_pages._common import plain

NEXT = "view-next"  # a view the next run shows (Explore's selection, a saved view, a button), whatever the URL says
APPLIED = "view-applied"  # the view the filter widgets were last set from
NOTES = "view-notes"
SCOPE_NAMES = {"flagged": "the flagged share", "all": "all samples", "suspected": "cleanlab's suspected set"}
STATUS_NAMES = {"undecided": "to review", "any": "decided or not", "decided": "decided"}
KEYS = {"scope": "view-scope", "status": "view-status", "issue": "view-issue", "given": "view-given",
        "suggested": "view-suggested", "disagrees": "view-disagrees", "score_min": "view-smin",
        "score_max": "view-smax", "reviewer": "view-reviewer", "like": "view-like", "neighbours": "view-k"}
TOP_PAIRS = 6  # class pairs linked under the map
PAIR_CLICKS = "pairs-map-clicks"  # clicks on the class-pair map so far: its key, so each click starts a fresh chart
PAIR_NOTE = "pairs-map-note"  # why the last click on the map opened nothing
# the confident joint first: on CIFAR-10N `worst` it finds the true confusion pairs, the flagged counts do not
# (bench/results/class_pairs.md)
PAIR_COUNTS = {"confident_joint": "cleanlab's confident joint", "flagged": "flagged samples"}


# -------------------------------------------------------------------------------------------- the URL
def current_view(proj, choices) -> ReviewView:
    """The view this run shows: one handed over (Explore's selection, a saved view, a button), else the URL's (each
    parameter it ignores said in one line). Explore's selection becomes the view's rows: exactly those samples."""
    for note in st.session_state.pop(NOTES, []):
        st.warning(plain(note))
    if NEXT in st.session_state:
        return st.session_state.pop(NEXT)
    view, notes = proj.view_from_query(st.query_params.to_dict())
    for note in notes:
        st.warning(plain(note))
    if "review_batch" in st.session_state:
        rows = sorted({int(r) for r in st.session_state.pop("review_batch") if 0 <= int(r) < choices.n_rows})
        if len(rows) > ReviewView.MAX_ROWS:
            st.warning(f"Review shows the first {ReviewView.MAX_ROWS:,} of the {len(rows):,} selected samples.")
            rows = rows[: ReviewView.MAX_ROWS]
        st.session_state["review-from-map"] = rows  # the last selection handed over (Explore's test reads it)
        view = view.with_selection(rows)
    return view


def write_url(proj, view: ReviewView, choices) -> None:
    """Put ``view`` into the URL (its parameters only; the project and any other parameter stay); the widgets show
    it already, so the next run does not set them again."""
    st.session_state[APPLIED] = view
    wanted = proj.view_query(view, choices)
    for key in ReviewView.PARAMS:
        if key in st.query_params and key not in wanted:
            del st.query_params[key]
    for key, value in wanted.items():
        if st.query_params.get(key) != value:
            st.query_params[key] = value


def show_next(view: ReviewView) -> None:
    """Show ``view`` on the next run (a button's callback)."""
    st.session_state[NEXT] = view


def more_like_this(row: int) -> None:
    """Show training row ``row`` and its nearest neighbours next, decided or not, in the current view's order."""
    shown = st.session_state.get(APPLIED)
    show_next(ReviewView(order=shown.order if shown is not None else None, scope="all", status="any", like=int(row)))


# ---------------------------------------------------------------------------------------- the widgets
def _seed(view: ReviewView, choices) -> None:
    """Set the filter widgets from ``view`` when it is not the one they show (a URL, a saved view, a link)."""
    if st.session_state.get(APPLIED) == view:
        return
    for name, key in KEYS.items():
        value = getattr(view, name)
        st.session_state[key] = choices.id_of(value) if name == "like" and value is not None else value
    st.session_state[APPLIED] = view


def scope_and_status(c_scope, c_status, view: ReviewView, choices) -> None:
    """Which samples (the flagged share, all, cleanlab's suspected set) and which of them (to review, decided)."""
    _seed(view, choices)
    c_scope.radio("Samples", ReviewView.SCOPES, key=KEYS["scope"], format_func=SCOPE_NAMES.get,
                  help="The flagged share of the ordering ranking; every training sample; or the samples cleanlab's "
                       "find_label_issues thinks are mislabelled (out of fold when the ranking is).")
    c_status.radio("Show", ReviewView.STATUSES, key=KEYS["status"], format_func=STATUS_NAMES.get)


def filter_bar(proj, ds, view: ReviewView, choices, order: str) -> ReviewView:
    """The filters (issue type, given and suggested class, "model disagrees", a score range of the ordering ranking,
    reviewer, "more like this") and saved views, in an expander; returns the view they describe."""
    classes = list(choices.classes)
    active = view.issue or view.given is not None or view.suggested is not None or view.disagrees or view.reviewer \
        or view.like is not None or view.score_min is not None or view.score_max is not None
    with st.expander("Filters and saved views" + (" · filtered" if active else ""), expanded=bool(active),
                     icon=":material/filter_list:"):
        c = st.columns([1.4, 1.2, 1.2, 1])
        c[0].selectbox("Issue type (Datalab)", [None, *choices.issues], key=KEYS["issue"],
                       format_func=lambda i: "any" if i is None else i,
                       help="Samples cleanlab's Datalab marks with this issue type (once Datalab has run).")
        name = lambda k: "any" if k is None else f"{k} · {classes[k]}"  # noqa: E731
        c[1].selectbox("Given class", [None, *range(len(classes))], key=KEYS["given"], format_func=name)
        c[2].selectbox("Suggested class (the model's prediction)", [None, *range(len(classes))],
                       key=KEYS["suggested"], format_func=name)
        c[3].checkbox("Model disagrees", key=KEYS["disagrees"], help="The model predicts another class than given.")
        c = st.columns([1, 1, 1.4, 1, 0.8])
        c[0].number_input(f"Score from ({plain(order)})", value=None, key=KEYS["score_min"], format="%g",
                          placeholder="lowest")
        c[1].number_input("Score up to", value=None, key=KEYS["score_max"], format="%g", placeholder="highest")
        reviewers = sorted(proj.reviewers()["counts"])
        current = st.session_state.get(KEYS["reviewer"])
        options = [None, *reviewers, *([current] if current and current not in reviewers else [])]
        c[2].selectbox("Decided by", options, key=KEYS["reviewer"], format_func=lambda r: "anyone" if r is None else r,
                       on_change=_reviewer_chosen)
        c[3].number_input("More like this: sample", value=None, min_value=0, step=1, key=KEYS["like"],
                          placeholder="a sample id", help="That sample and its nearest neighbours in the model's "
                                                          "embedding (its penultimate features).")
        c[4].number_input("neighbours", min_value=1, max_value=ReviewView.MAX_NEIGHBOURS, step=1,
                          key=KEYS["neighbours"])
        new = _from_widgets(view, choices)
        if new != ReviewView(order=view.order):
            st.button("Clear the filters", key="view-clear", icon=":material/filter_list_off:", on_click=show_next,
                      args=(ReviewView(order=view.order),))
        _saved_views(proj, new)
    return new


def _reviewer_chosen() -> None:
    """A reviewer picked under "to review" would list nothing (what they decided is not to review): show it."""
    if st.session_state.get(KEYS["reviewer"]) is not None and st.session_state.get(KEYS["status"]) == "undecided":
        st.session_state[KEYS["status"]] = "decided"


def _from_widgets(view: ReviewView, choices) -> ReviewView:
    """The view the widgets describe (the selection and the ordering are not widgets: they stay ``view``'s)."""
    values = {name: st.session_state.get(key) for name, key in KEYS.items()}
    values["disagrees"] = bool(values["disagrees"])
    values["neighbours"] = int(values["neighbours"] or ReviewView.neighbours)
    if values["like"] is not None:
        row = choices.rows_of([int(values["like"])])[0]
        if row is None:
            st.warning(f"No training sample has the id {int(values['like'])}; 'more like this' is off.")
        values["like"] = row
    try:
        return replace(view, **values)
    except InfluenceError as err:
        st.error(plain(err))
        return view


# ------------------------------------------------------------------------------------------ saved views
def _saved_views(proj, view: ReviewView) -> None:
    saved = proj.saved_views()
    c = st.columns([2, 0.8, 0.8, 2, 1], vertical_alignment="bottom")
    chosen = c[0].selectbox("Saved views", [None, *sorted(saved)], key="view-saved",
                            format_func=lambda n: "choose a saved view…" if n is None else n)
    c[1].button("Open", key="view-open", disabled=chosen is None, width="stretch", on_click=_open,
                args=(proj, saved.get(chosen)))
    c[2].button("Delete", key="view-delete", disabled=chosen is None, width="stretch", on_click=_delete,
                args=(proj, chosen))
    c[3].text_input("Save this view as…", key="view-save-name", max_chars=64, placeholder="e.g. cats called dogs")
    c[4].button("Save view", key="view-save", width="stretch", icon=":material/bookmark_add:", on_click=_save,
                args=(proj, view))


def _open(proj, query: dict | None) -> None:
    if query is None:
        return
    view, notes = proj.view_from_query(query)
    show_next(view)
    st.session_state[NOTES] = notes


def _delete(proj, name: str | None) -> None:
    try:
        proj.delete_view(name)
    except InfluenceError as err:
        st.session_state["review-message"] = ("error", str(err))
        return
    st.session_state.pop("view-saved", None)
    st.session_state["review-message"] = ("done", f"Deleted the saved view '{name}'.")


def _save(proj, view: ReviewView) -> None:
    try:
        name = proj.save_view(st.session_state.get("view-save-name", ""), view)
    except InfluenceError as err:
        st.session_state["review-message"] = ("error", str(err))
        return
    st.session_state["review-message"] = ("done", f"Saved this view as '{name}'.")


# ------------------------------------------------------------------------------------- class-pair map
def class_pair_section(proj, view: ReviewView, choices, run, order_title: str) -> None:
    """Given class → suggested class: the flagged samples per pair or cleanlab's confident joint; a click on an
    off-diagonal cell opens Review filtered to that pair, and so do the buttons of the biggest (outlined) cells."""
    with st.expander("Class-pair map: given → suggested class", icon=":material/grid_on:"):
        kind = st.radio("Count", list(PAIR_COUNTS), key="pairs-kind", horizontal=True, format_func=PAIR_COUNTS.get)
        folds = run.folds if run is not None else 0
        try:
            with st.spinner("Counting the class pairs…"):
                pairs = proj.class_pairs(kind, run.label if run is not None else None, folds)
        except InfluenceError as err:
            st.error(plain(err))
            return
        top = pairs.top(TOP_PAIRS)
        what = (f"flagged samples of {order_title}" if kind == "flagged" else
                f"cleanlab's confident joint ({'out of fold' if pairs.out_of_fold else 'in-sample probabilities'})")
        scope = "flagged" if kind == "flagged" else "all"
        key = f"pairs-map-{st.session_state.get(PAIR_CLICKS, 0)}"  # a new key after each click: a fresh chart
        st.plotly_chart(class_pair_map(pairs.matrix, pairs.classes, top, f"Given → suggested class: {what}"),
                        key=key, width="stretch", selection_mode="points",
                        on_select=partial(_open_clicked_pair, key, pairs, view.order, scope))
        note = st.session_state.pop(PAIR_NOTE, None)
        if note:
            st.info(note, icon=":material/info:")
        if not top:
            st.caption("No sample here has a suggested class other than its given one.")
            return
        st.caption("Click an off-diagonal cell to open Review on that pair; the biggest cells (outlined) are also "
                   "buttons here" + (" (of the flagged samples)." if kind == "flagged" else " (every sample given "
                   "the one class and predicted the other; the confident joint counts those cleanlab is confident "
                   "about)."))
        cells = st.columns(3)
        for n, (i, j, count) in enumerate(top):
            pair = _pair_view(view.order, scope, i, j)
            # a button, not st.page_link: a link to the page it is on did not rerun it in the browser; the view
            # goes into the URL all the same, so the pair's list is bookmarkable
            cells[n % 3].button(f"{plain(pairs.classes[i])} → {plain(pairs.classes[j])} · {count}",
                                key=f"pair-{i}-{j}", icon=":material/arrow_forward:", width="stretch",
                                on_click=show_next, args=(pair,))
        rest = pairs.top(pairs.matrix.size)[len(top):]  # every other non-empty cell, biggest first
        if rest:
            other = st.selectbox("Any other pair", rest, index=None, key="pairs-other", placeholder="given → suggested",
                                 format_func=lambda c: f"{plain(pairs.classes[c[0]])} → {plain(pairs.classes[c[1]])} · {c[2]}")
            if other is not None:
                st.button("Open this pair", key="pair-other-open", icon=":material/arrow_forward:", on_click=show_next,
                          args=(_pair_view(view.order, scope, other[0], other[1]),))


def _pair_view(order: str | None, scope: str, given: int, suggested: int) -> ReviewView:
    """Review on one class pair, decided or not (what a cell of the map, its button and the list open)."""
    return ReviewView(order=order, scope=scope, status="any", given=given, suggested=suggested)


def _open_clicked_pair(key: str, pairs, order: str | None, scope: str) -> None:
    """A click on the class-pair map (the chart's selection, data from the browser): open Review on that pair when it
    is an off-diagonal cell of this map with samples in it, else say why nothing opened."""
    event = st.session_state.get(key)
    cell = class_pair_of_selection(event, pairs.matrix)
    if cell is None and not selected_points(event):
        return  # a deselection (a double click): nothing was clicked
    st.session_state[PAIR_CLICKS] = st.session_state.get(PAIR_CLICKS, 0) + 1
    if cell is None:
        st.session_state[PAIR_NOTE] = "The diagonal (given = suggested) is where the model agrees: nothing to review."
    elif cell[2] == 0:
        st.session_state[PAIR_NOTE] = (f"No sample is given {plain(pairs.classes[cell[0]])} and suggested "
                                       f"{plain(pairs.classes[cell[1]])} here: nothing to show.")
    else:
        show_next(_pair_view(order, scope, cell[0], cell[1]))
