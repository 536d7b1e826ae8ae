"""Review's views on the page (issue 20): a class pair named in the URL lists exactly those samples, the class-pair
map's links carry that view, hostile URL parameters are ignored with a note and dropped from the URL, the filter
widgets write the view into the URL, and a view saved on the page is opened again in a new session."""

from __future__ import annotations

import json

import numpy as np

from .conftest import no_errors, open_page, project_of, shown
from .test_review_page import _grid


def _rows(at) -> list[int]:
    return [c["row"] for c in _grid(at)["cards"]]


def _open_with(**params):
    from streamlit.testing.v1 import AppTest

    from .conftest import APP

    at = AppTest.from_file(APP, default_timeout=90)
    at.switch_page("app_pages/5_Review.py")
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def test_a_class_pair_in_the_url_lists_exactly_those_samples(scored):
    proj = project_of(scored)
    ds = proj.dataset()
    y, (preds, _) = ds.train.y.numpy(), proj.predictions()
    s = proj.scores()["ip"]
    a, b = ds.classes
    at = _open_with(given=str(a), suggested=str(b), scope="all", status="any")
    no_errors(at)
    expected = sorted(np.flatnonzero((y == 0) & (preds == 1)).tolist(), key=lambda r: (s[r], r))
    assert 0 < len(expected) <= 24 and _rows(at) == expected
    assert at.selectbox(key="view-given").value == 0 and at.selectbox(key="view-suggested").value == 1
    assert at.query_params["project"] == "default" and at.query_params["given"] == str(a)  # the view stays bookmarkable
    # the class-pair map's buttons: the flagged samples of each pair, their count in the label; one opens that view
    flagged = proj.flagged()
    count = int(((y[flagged] == 1) & (preds[flagged] == 0)).sum())
    assert at.radio(key="pairs-kind").value == "confident_joint"  # the default: it finds true pairs, flagged does not
    at.radio(key="pairs-kind").set_value("flagged").run()
    (chart,) = at.get("plotly_chart")  # the map: a click on a cell selects it (the points mode)
    assert list(chart.proto.selection_mode) == [chart.proto.SelectionMode.POINTS]
    assert [c[:3] for c in json.loads(chart.proto.spec)["data"][0]["customdata"]] == [[0, 1, int(
        ((y[flagged] == 0) & (preds[flagged] == 1)).sum())], [1, 0, count]]  # [given, suggested, count, names]
    button = at.button(key="pair-1-0")
    assert button.label == f"{b} → {a} · {count}"
    button.click().run()
    no_errors(at)
    assert {k: at.query_params[k] for k in ("given", "suggested", "status")} == {"given": str(b), "suggested": str(a),
                                                                               "status": "any"}
    assert "scope" not in at.query_params  # the flagged share: the default
    assert sorted(_rows(at)) == sorted(int(r) for r in flagged if y[r] == 1 and preds[r] == 0)
    assert at.selectbox(key="view-given").value == 1  # the filter bar shows the pair


def test_hostile_url_parameters_are_ignored_with_a_note_and_dropped(scored):
    at = _open_with(given="<script>", rows="1,2,x", smin="nan", order="../../etc", k="9" * 40, like="0",
                    scope="all")
    no_errors(at)
    notes = [shown(w.value) for w in at.warning]
    assert len(notes) == 5, notes
    assert any("'<script>' is not a class" in n for n in notes)
    assert dict(at.query_params).keys() == {"project", "like", "scope"}  # only what was good stays
    assert sorted(_rows(at)) == sorted(project_of(scored).nearest_samples(0, 12).tolist())  # sample 0 and 12 more


def test_filters_write_the_url_and_a_saved_view_reopens_in_a_new_session(scored):
    proj = project_of(scored)
    at = open_page("5_Review.py")
    at.radio(key="view-scope").set_value("all").run()
    at.radio(key="view-status").set_value("any").run()
    at.checkbox(key="view-disagrees").check().run()
    no_errors(at)
    y, (preds, _) = proj.dataset().train.y.numpy(), proj.predictions()
    s = proj.scores()["ip"]
    disagree = sorted(np.flatnonzero(y != preds).tolist(), key=lambda r: (s[r], r))
    assert _rows(at) == disagree[:24]
    assert {k: at.query_params[k] for k in ("scope", "status", "disagrees")} == {"scope": "all", "status": "any",
                                                                                "disagrees": "1"}
    at.text_input(key="view-save-name").input("model disagrees").run()
    at.button(key="view-save").click().run()
    no_errors(at)
    assert proj.saved_views() == {"model disagrees": {"scope": "all", "status": "any", "disagrees": "1"}}
    fresh = open_page("5_Review.py")  # a new session, no URL
    assert fresh.query_params.get("disagrees") is None and len(_rows(fresh)) == 24
    fresh.selectbox(key="view-saved").set_value("model disagrees").run()
    fresh.button(key="view-open").click().run()
    no_errors(fresh)
    assert _rows(fresh) == disagree[:24] and fresh.query_params["disagrees"] == "1"
    assert fresh.checkbox(key="view-disagrees").value


def test_an_issue_type_from_the_url_filters_and_its_ranking_orders(scored):
    """Datalab's findings (h-datalab's `Project.find_data_issues`): the outliers it marks, lowest outlier score first."""
    proj = project_of(scored)
    table = proj.find_data_issues().table
    outliers = table[(table["issue"] == "outlier") & table["is_issue"]]
    assert len(outliers) > 0
    expected = outliers.sort_values(["score", "sample"])["sample"].tolist()[:24]
    at = _open_with(issue="outlier", order="issue: outlier", scope="all", status="any")
    no_errors(at)
    assert _rows(at) == expected
    assert at.selectbox[0].value == "issue: outlier" and proj.state().primary is None  # the view's, not the project's
    assert at.selectbox(key="view-issue").value == "outlier"


def test_an_explore_selection_over_the_cap_is_cut_with_a_warning(scored, monkeypatch):
    from influence_core.project import ReviewView

    monkeypatch.setattr(ReviewView, "MAX_ROWS", 3)  # the page's cap (2,000) at a size moons can exceed
    at = open_page("5_Review.py")
    at.session_state["review_batch"] = [10, 3, 4, 200, 7]
    at.run()
    no_errors(at)
    s = project_of(scored).scores()["ip"]
    assert any("first 3 of the 5 selected samples" in w.value for w in at.warning)
    assert _rows(at) == sorted([3, 4, 7], key=lambda r: (s[r], r))
    assert at.query_params["rows"] == ",".join(str(int(project_of(scored).source_index()[r])) for r in (3, 4, 7))


def test_more_like_this_on_a_card_shows_that_sample_and_its_neighbours(scored):
    proj = project_of(scored)
    at = open_page("5_Review.py")
    row = _rows(at)[3]
    at.session_state["review-grid-default"] = {"queue": [{"id": "m1", "action": "like", "rows": [row], "label": None,
                                                  "project": "default"}]}
    at.run()
    no_errors(at)
    s = proj.scores()["ip"]
    assert _rows(at) == sorted(proj.nearest_samples(row, 12).tolist(), key=lambda r: (s[r], r))
    assert at.query_params["like"] == str(int(proj.source_index()[row])) and at.query_params["scope"] == "all"
    assert at.number_input(key="view-like").value == int(proj.source_index()[row])


def test_a_pair_outside_the_biggest_cells_opens_from_the_any_other_pair_list(scored, monkeypatch):
    import app_pages._review_views as review_views

    monkeypatch.setattr(review_views, "TOP_PAIRS", 1)  # only the biggest cell as a button: the other is in the list
    proj = project_of(scored)
    ds = proj.dataset()
    y, (preds, _) = ds.train.y.numpy(), proj.predictions()
    flagged = proj.flagged()
    counts = {(i, j): int(((y[flagged] == i) & (preds[flagged] == j)).sum()) for i, j in ((0, 1), (1, 0))}
    (big, _), (small, n_small) = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    assert n_small > 0, "the fixture's flagged samples fall in both off-diagonal cells"
    at = _open_with()
    no_errors(at)
    at.radio(key="pairs-kind").set_value("flagged").run()
    assert at.button(key=f"pair-{big[0]}-{big[1]}") is not None
    other = at.selectbox(key="pairs-other")
    assert other.options == [f"{ds.classes[small[0]]} → {ds.classes[small[1]]} · {n_small}"]
    other.set_value((small[0], small[1], n_small)).run()
    at.button(key="pair-other-open").click().run()
    no_errors(at)
    assert (at.query_params["given"], at.query_params["suggested"]) == (str(ds.classes[small[0]]), str(ds.classes[small[1]]))
    assert sorted(_rows(at)) == sorted(int(r) for r in flagged if y[r] == small[0] and preds[r] == small[1])


def _click_on_the_map(points):
    """A click on the class-pair map as the page's callback sees it (AppTest cannot click a Plotly chart)."""
    from types import SimpleNamespace

    import numpy as np
    import streamlit as st

    from app_pages import _review_views as views

    pairs = SimpleNamespace(matrix=np.array([[5, 3, 0], [2, 6, 1], [0, 0, 4]]), classes=("cat", "dog", "bird"))
    st.session_state["pairs-map-0"] = {"selection": {"points": points}}
    views._open_clicked_pair("pairs-map-0", pairs, "ip", "flagged")


def test_a_click_on_a_cell_opens_its_pair_and_the_diagonal_or_an_empty_cell_says_why_not():
    from streamlit.testing.v1 import AppTest

    from app_pages._review_views import NEXT, PAIR_CLICKS, PAIR_NOTE
    from influence_core.project import ReviewView

    def clicked(*points):
        at = AppTest.from_function(_click_on_the_map, args=(list(points),)).run()
        no_errors(at)
        state = {k: at.session_state[k] for k in (NEXT, PAIR_NOTE, PAIR_CLICKS) if k in at.session_state}
        return state.get(NEXT), state.get(PAIR_NOTE), state.get(PAIR_CLICKS)

    view, note, clicks = clicked({"curve_number": 0, "customdata": [1, 0], "text": "999"})
    assert view == ReviewView(order="ip", scope="flagged", status="any", given=1, suggested=0) and clicks == 1
    assert note is None
    view, note, clicks = clicked({"curve_number": 0, "customdata": [0, 2]})  # an empty cell
    assert view is None and clicks == 1 and note == "No sample is given cat and suggested bird here: nothing to show."
    view, note, clicks = clicked({"curve_number": 1, "customdata": None, "x": 1, "y": 1})  # the diagonal
    assert view is None and clicks == 1 and "nothing to review" in note
    view, note, clicks = clicked({"curve_number": 0, "customdata": [5, 0]})  # not a cell of this map
    assert view is None and clicks == 1 and "nothing to review" in note
    assert clicked() == (None, None, None)  # a deselection (double click) changes nothing


def test_a_view_that_lists_nothing_says_so_not_that_the_review_is_done(scored):
    """A filter that matches no sample (given a, suggested a, "model disagrees") said "Nothing left to review here.
    Export the decisions when you are done." while every flagged sample was still to review."""
    a = project_of(scored).dataset().classes[0]
    at = _open_with(given=str(a), suggested=str(a), disagrees="1")
    no_errors(at)
    assert not any("Nothing left to review" in s.value for s in at.success)
    assert any("This view lists no samples" in shown(i.value) and "still to review" in shown(i.value) for i in at.info)


def test_choosing_who_decided_shows_their_decisions(scored):
    """"Decided by" under the default "to review" listed nothing, always (a decided sample is not to review): picking a
    reviewer shows what they decided."""
    proj = project_of(scored)
    flagged = [int(r) for r in proj.flagged()[:2]]
    proj.record(flagged, "remove", user="ann@example.org")
    at = open_page("5_Review.py")
    assert at.radio(key="view-status").value == "undecided"
    at.selectbox(key="view-reviewer").set_value("ann@example.org").run()
    no_errors(at)
    assert at.radio(key="view-status").value == "decided"
    assert sorted(_rows(at)) == sorted(flagged)
    assert at.query_params["reviewer"] == "ann@example.org" and at.query_params["status"] == "decided"
