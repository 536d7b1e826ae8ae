"""Review page: the card grid's event queue (each event recorded once, however often it is sent), per-session undo,
batches and the Explore hand-off, ordering by any run, pages and "why flagged" — all checked through the facade."""

from __future__ import annotations

import json

import numpy as np

from influence_core.project import Project, ScoreRun

from .conftest import TRAIN, no_errors, open_page, project_of, settle, shown


def _grid(at) -> dict:
    """The data the page gave the review grid component on its last run."""
    def walk(node):
        if getattr(node, "type", None) == "bidi_component" and node.proto.component_name == "influence_review_grid":
            return node
        for child in (node.children.values() if isinstance(getattr(node, "children", None), dict) else []):
            found = walk(child)
            if found is not None:
                return found
        return None

    found = walk(at.main)
    assert found is not None, "the review grid is not on the page"
    return json.loads(found.proto.json)


def _send(at, *events: dict):
    """What the browser does: the whole unacknowledged queue (each event names its project) as the component's value,
    then a rerun."""
    at.session_state["review-grid-default"] = {"queue": [{"project": "default", **ev} for ev in events]}
    return at.run()


def _keep(eid, row):
    return {"id": eid, "action": "keep", "rows": [row], "label": None}


def test_without_model_links_to_the_model_page(workspace):
    at = open_page("5_Review.py")
    assert not at.exception
    assert any("train or upload a model first" in i.value for i in at.info)


def test_each_event_is_recorded_once_however_often_it_is_sent(scored):
    proj = project_of(scored)
    at = open_page("5_Review.py")
    no_errors(at)
    cards = _grid(at)["cards"]
    r = [c["row"] for c in cards[:5]]
    other = 1 - cards[2]["given"]  # moons: the other class
    e1, e2 = _keep("e1", r[0]), {"id": "e2", "action": "remove", "rows": [r[1]], "label": None}
    e3 = {"id": "e3", "action": "relabel", "rows": [r[2]], "label": other}
    _send(at, e1, e2, e3)
    assert _grid(at)["acked"] == ["e1", "e2", "e3"]
    # the component had not seen the acknowledgement yet: it resends, with two more events
    e4, e5 = _keep("e4", r[3]), {"id": "e5", "action": "remove", "rows": [r[4]], "label": None}
    _send(at, e1, e2, e3, e4, e5)
    _send(at, e4, e5)  # and a stale value once more
    no_errors(at)
    assert _grid(at)["acked"] == ["e4", "e5"]
    current = proj.current_decisions()
    assert {row: (d.action, d.new_label) for row, d in current.items()} == {
        r[0]: ("keep", None), r[1]: ("remove", None), r[2]: ("relabel", other), r[3]: ("keep", None),
        r[4]: ("remove", None)}
    # the cards show the saved decisions
    shown_decisions = {c["row"]: c["decision"] for c in _grid(at)["cards"] if c["decision"]}
    assert shown_decisions[r[2]] == {"action": "relabel", "label": other}
    # exactly five batches: five undos take back one decision each, a sixth finds nothing
    session = at.session_state["session-id"]
    assert [proj.undo(session=session) for _ in range(6)] == [1, 1, 1, 1, 1, 0]


def test_a_refused_event_is_reported_not_acknowledged(scored):
    at = open_page("5_Review.py")
    _send(at, {"id": "bad", "action": "relabel", "rows": [0], "label": 7}, _keep("k", 10_000))
    data = _grid(at)
    assert data["acked"] == []
    assert set(data["failed"]) == {"bad", "k"} and "class 7 does not exist" in data["failed"]["bad"]
    assert project_of(scored).current_decisions() == {}


def test_undo_takes_back_only_this_sessions_last_decision(scored):
    proj = project_of(scored)
    at = open_page("5_Review.py")
    r = [c["row"] for c in _grid(at)["cards"][:3]]
    proj.record([r[2]], "remove", session="someone-else")  # another browser on the same project
    _send(at, _keep("k1", r[0]), _keep("k2", r[1]))
    undo = {"id": "u1", "action": "undo", "rows": [], "label": None, "target": r[1]}
    _send(at, _keep("k1", r[0]), _keep("k2", r[1]), undo)
    assert set(proj.current_decisions()) == {r[0], r[2]}
    _send(at, _keep("k1", r[0]), _keep("k2", r[1]), undo)  # a resent undo takes back nothing more
    assert set(proj.current_decisions()) == {r[0], r[2]}
    next(b for b in at.button if b.label == "Undo").click().run()
    no_errors(at)
    assert set(proj.current_decisions()) == {r[2]}  # the other session's decision stays
    assert next(b for b in at.button if b.label == "Undo").disabled


def test_a_lasso_selection_from_explore_becomes_the_grids_cards(scored):
    """Issue 21: the map's selection arrived as chips in the batch box above the unchanged flagged grid, with
    "relabel all" preset to a class, and its banner stayed after the batch was cleared."""
    proj = project_of(scored)
    at = open_page("5_Review.py")
    flagged_first = _rows(at)
    at.session_state["review_batch"] = [200, 3, 4]
    at.run()
    no_errors(at)
    s = proj.scores()["ip"]
    assert _rows(at) == sorted([200, 3, 4], key=lambda r: (s[r], r))  # the selection is the grid, most detrimental first
    assert any("3 samples selected on the Explore map" in i.value for i in at.info)
    assert at.multiselect(key="batch-rows").value == []  # nothing preloaded into a batch
    assert at.selectbox(key="batch-target").value is None  # "relabel all" has no class preset
    at.multiselect(key="batch-rows").set_value([3, 4]).run()
    assert next(b for b in at.button if b.label == "Relabel all").disabled  # it waits for a chosen class
    next(b for b in at.button if b.label == "Remove all").click().run()
    no_errors(at)
    assert {r: d.action for r, d in proj.current_decisions().items()} == {3: "remove", 4: "remove"}
    assert at.multiselect(key="batch-rows").value == []
    at.button(key="leave-map-selection").click().run()
    no_errors(at)
    assert not any("selected on the Explore map" in i.value for i in at.info)  # the banner goes with the selection
    assert _rows(at) == [r for r in flagged_first if r not in (3, 4)]


def test_one_selected_sample_is_named_in_the_singular(scored):
    at = open_page("5_Review.py")
    at.session_state["review_batch"] = [7]
    at.run()
    assert any("the 1 sample selected on the Explore map" in i.value for i in at.info)


def _rows(at) -> list[int]:
    return [c["row"] for c in _grid(at)["cards"]]


def _ordered_by(at):
    return [shown(m.value).replace("**", "") for m in at.markdown if "Ordered by:" in m.value]


def test_order_by_any_computed_run_says_which_and_is_kept(scored):
    proj = project_of(scored)
    ip = proj.scores()["ip"]
    loss = proj.score(ScoreRun("loss"))
    proj.set_primary("ip")
    at = open_page("5_Review.py")
    no_errors(at)
    assert _ordered_by(at) == ["Ordered by: IP, in-sample"]
    assert _rows(at) == np.argsort(ip, kind="stable")[: len(_rows(at))].tolist()
    at.selectbox[0].set_value("loss").run()
    no_errors(at)
    assert _ordered_by(at) == ["Ordered by: Loss, in-sample"]
    rows = _rows(at)
    assert rows == np.argsort(loss, kind="stable")[: len(rows)].tolist()
    assert rows != np.argsort(ip, kind="stable")[: len(rows)].tolist()
    assert proj.state().primary == "loss"
    # every computed run's score and rank is on each card (for "why flagged")
    card = _grid(at)["cards"][0]
    assert {m["label"]: m["rank"] for m in card["methods"]} == {
        "ip": int((ip < ip[card["row"]]).sum()) + 1, "loss": 1}
    again = open_page("5_Review.py")  # a fresh session (restart) keeps the choice
    assert again.selectbox[0].value == "loss" and _rows(again) == rows


def test_pages_ids_features_and_why_flagged(scored):
    proj = project_of(scored)
    src = proj.source_index()
    at = open_page("5_Review.py")
    data = _grid(at)
    assert data["page"] == {"number": 1, "count": 2}  # 25 flagged, 24 a page
    first = data["cards"][0]
    assert first["id"] == int(src[first["row"]])
    assert [name for name, _ in first["features"]] == ["x1", "x2"]  # tabular: the sample's values, not its label
    _send(at, {"id": "p", "action": "page", "page": 2})
    data = _grid(at)
    assert data["page"]["number"] == 2 and len(data["cards"]) == 1
    row = data["cards"][0]["row"]
    _send(at, {"id": "p", "action": "page", "page": 2}, {"id": "w", "action": "why", "rows": [row]})
    at = settle(at)
    no_errors(at)
    similar = _grid(at)["cards"][0]["similar"]
    assert similar["status"] == "done"
    sim = proj.similar_samples(row)
    support = [s["row"] for s in similar["support"]]
    assert support and all(sim[j] > 0 for j in support) and row not in support
    assert support[0] == max((j for j in range(len(sim)) if j != row), key=lambda j: sim[j])
    assert all(s["id"] == int(src[s["row"]]) for s in similar["support"] + similar["oppose"])


def test_a_table_card_shows_its_values_as_the_uploaded_file_holds_them(workspace):
    rng = np.random.default_rng(0)
    cities = ["Paris", "Lyon", "Nice"]
    income = ["high" if (i % 50) + rng.normal(0, 9) > 25 else "low" for i in range(150)]
    lines = ["age,city,income"] + [f"{20 + i % 50},{cities[i % 3]},{income[i]}" for i in range(150)]
    proj = project_of(workspace)
    proj.upload_dataset("\n".join(lines).encode(), "people.csv")
    proj.train("logreg", {"epochs": 30, "seed": 0})
    proj.score(ScoreRun("loss"))
    at = open_page("5_Review.py")
    no_errors(at)
    card = _grid(at)["cards"][0]
    age, city, income = lines[1 + card["id"]].split(",")  # the card's id is the line of the file
    assert dict(card["features"]) == {"age": age, "city": city}  # the label (income) is the card's "given"
    assert proj.sample_values([card["row"]]).loc[card["id"], "city"] == city


def test_a_batch_chosen_in_one_project_does_not_reach_another(scored):
    """Page state is the project's: after a switch, project default's batch rows (and Explore hand-off) are gone, so
    "Keep all" cannot record them in b."""
    b = Project.open("b", scored)
    b.use_dataset("moons", seed=0)
    b.train("mlp", dict(TRAIN))  # the same data and settings: from the cache
    b.score(ScoreRun("ip"))
    at = open_page("5_Review.py")
    at.multiselect(key="batch-rows").set_value([3, 4]).run()
    at.session_state["review_batch"] = [5]  # a lasso selection on the way from Explore
    at.query_params["project"] = "b"  # the switcher, a link or an edited address: the session's project changes
    at.run()
    no_errors(at)
    assert at.query_params["project"] == "b" and _grid(at)["project"] == "b"
    assert at.multiselect(key="batch-rows").value == []
    assert next(btn for btn in at.button if btn.label == "Keep all").disabled
    assert b.current_decisions() == {} and project_of(scored).current_decisions() == {}


def test_the_undo_message_counts_what_was_undone(scored):
    at = open_page("5_Review.py")
    rows = [c["row"] for c in _grid(at)["cards"][:12]]
    _send(at, *[_keep(f"k{i}", r) for i, r in enumerate(rows)])
    undos = [{"id": f"u{i}", "action": "undo", "rows": [], "label": None} for i in range(13)]
    _send(at, *undos)
    no_errors(at)
    assert project_of(scored).current_decisions() == {}
    assert [t.value for t in at.toast] == ["Undid your last 12 decisions (12 samples)."]


def _best_on_the_leaderboard(proj) -> str:
    from influence_core.figures import detection_report

    return detection_report(proj.scores(), proj.dataset().noise_mask.numpy())["method"][0]


def test_review_orders_by_the_leaderboard_s_best_and_a_new_run_reaches_it(scored):
    """Moons' wrong labels are known: Review orders by the ranking that finds them best, not by the first run;
    a run computed later on the Scores page takes the order when it is better, even after Review was opened."""
    from influence_core.figures import detection_auroc

    proj = project_of(scored)
    open_page("5_Review.py")  # ip alone: Review orders by it (opening the page chooses nothing)
    assert proj.state().primary is None
    scores_page = open_page("3_Scores.py")
    for name in ("loss", "ip_combined", "ip"):
        scores_page.checkbox(key=f"method-{name}").set_value(name == "ip_combined")
    next(b for b in scores_page.run().button if b.label == "Compute scores").click().run()
    settle(scores_page)
    noisy = proj.dataset().noise_mask.numpy()
    scores = proj.scores()
    assert detection_auroc(scores["ip_combined"], noisy) > detection_auroc(scores["ip"], noisy)
    at = open_page("5_Review.py")
    no_errors(at)
    assert _best_on_the_leaderboard(proj) == "ip_combined"
    assert _ordered_by(at) == ["Ordered by: IP + loss (rank average), in-sample"]
    assert _rows(at) == np.argsort(scores["ip_combined"], kind="stable")[: len(_rows(at))].tolist()
    expected = np.sort(np.argsort(scores["ip_combined"], kind="stable")[: len(proj.flagged())])
    np.testing.assert_array_equal(np.sort(proj.flagged()), expected)


def test_without_known_wrong_labels_review_orders_by_the_loss(scored, monkeypatch):
    proj = project_of(scored)
    proj.score(ScoreRun("margin"))
    proj.score(ScoreRun("loss"))
    proj.score(ScoreRun("ip_ensemble"))
    monkeypatch.setattr(proj.dataset(), "noise_mask", None)  # the memoised data set: as if the truth were unknown
    assert proj.primary_run().label == "loss"
    proj.set_primary("margin")
    assert proj.primary_run().label == "margin"  # a choice made on Review is kept


def test_a_run_added_while_the_page_draws_does_not_break_it(scored, monkeypatch):
    """A scoring job in another tab adds "loss" after Review read the rankings: without known wrong labels the newest
    state's primary run would be "loss", which the page's rankings lack. The page orders by what it read."""
    proj = project_of(scored)
    monkeypatch.setattr(proj.dataset(), "noise_mask", None)  # primary run: the loss as soon as there is one
    original, added = Project.rankings, []

    def rankings_then_a_job_adds_a_run(self, state=None):
        out = original(self, state)
        if not added:
            added.append(self.score(ScoreRun("loss")))
        return out

    monkeypatch.setattr(Project, "rankings", rankings_then_a_job_adds_a_run)
    at = open_page("5_Review.py")
    no_errors(at)
    assert added and [r.label for r in proj.state().runs] == ["ip", "loss"]
    assert _ordered_by(at) == ["Ordered by: IP, in-sample"]
    assert _ordered_by(open_page("5_Review.py")) == ["Ordered by: Loss, in-sample"]  # the next run sees it


def test_the_flag_share_moves_in_coarse_steps(scored):
    at = open_page("5_Review.py")
    no_errors(at)
    share = next(w for w in at.select_slider if w.label.startswith("Flag the most detrimental share"))
    assert share.options == ["1%", "2%", "5%", "10%", "15%", "20%", "25%", "30%", "40%", "50%"]
    share.set_value(0.2).run()
    assert project_of(scored).state().flag_share == 0.2


def test_a_text_card_shows_its_text_and_the_other_columns(workspace):
    """Issue 18: a text upload's card carries the sample's text (the grid shortens long ones behind a <details>)
    and its other columns as the file holds them, not the text again."""
    from influence_core.data.text import generated_text_frame

    frame = generated_text_frame(150, num_classes=2, seed=0, topic_rate=0.5).assign(stars=np.arange(150) % 5)
    proj = project_of(workspace)
    proj.upload_dataset(frame.to_csv(index=False).encode(), "reviews.csv")
    proj.train("text-linear", {"seed": 0})
    proj.score(ScoreRun("loss"))
    at = open_page("5_Review.py")
    no_errors(at)
    card = _grid(at)["cards"][0]
    assert card["text"] == frame["text"][card["id"]]
    assert dict(card["features"]) == {"stars": str(frame["stars"][card["id"]])}  # not the text, not the label
