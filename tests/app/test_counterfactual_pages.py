"""Scores and Evaluate offer the counterfactual impact (text with twins only) and the joint rankings (issue 18 §2)."""

import numpy as np

from influence_core.api import compute_scores
from influence_core.project import Project

from .conftest import no_errors, open_page, project_of, settle


def _names(box):
    """A selectbox's choices by name (AppTest shows them formatted: "name — description")."""
    return [o.split(" — ")[0] for o in box.options]


def _text_project(root) -> Project:
    proj = Project.open("default", root)
    proj.use_dataset("text-shortcut", seed=0, n_train=200, n_val=60, n_test=60)
    proj.train("text-linear")
    return proj


def test_counterfactual_is_offered_only_where_the_data_has_twins(scored):
    options = _names(open_page("3_Scores.py").selectbox(key="impact"))
    assert "utility+fairness" in options and "fairness" in options
    assert not any("counterfactual" in o for o in options)


def test_scores_page_computes_a_joint_ranking(workspace):
    proj = _text_project(workspace)
    at = open_page("3_Scores.py")
    assert "counterfactual" in _names(at.selectbox(key="impact"))
    at.selectbox(key="impact").set_value("utility+counterfactual").run()
    for box in at.checkbox:
        if box.key and box.key.startswith("method-"):
            box.set_value(box.key == "method-ip")
    at = at.run()
    next(b for b in at.button if b.label == "Compute scores").click().run()
    at = settle(at)
    no_errors(at)
    runs = {r.label: r for r in project_of(workspace).state().runs}
    assert "ip·utility+counterfactual" in runs
    got = proj.score(runs["ip·utility+counterfactual"])
    np.testing.assert_allclose(got, compute_scores(proj.dataset(), proj.model(), "ip", "utility+counterfactual"),
                               rtol=0, atol=1e-12)


def test_evaluate_offers_the_joint_rankings_on_text(workspace):
    _text_project(workspace)
    at = open_page("7_Evaluate.py")
    no_errors(at)
    options = _names(at.selectbox(key="ev-impact"))
    assert {"counterfactual", "utility+counterfactual", "utility+fairness"} <= set(options)


def test_evaluate_runs_a_joint_ranking_and_charts_the_fair_score(workspace, monkeypatch):
    import json

    from influence_core import jobs

    monkeypatch.setattr(jobs, "_JOBS", {})
    proj = _text_project(workspace)
    at = open_page("7_Evaluate.py")
    at.selectbox(key="ev-impact").set_value("utility+counterfactual")
    next(n for n in at.number_input if n.label == "Retraining seeds").set_value(1)
    next(b for b in at.button if b.label == "Run experiment").click()
    at.run()
    jobs.wait_all(180)
    job = proj.job("experiment")
    assert job is not None and job.state == "done", job and job.error
    at.run()
    no_errors(at)
    assert any("utility+counterfactual impact" in c.value.replace("\\", "") for c in at.caption)
    assert any("fair score" in m.value for m in at.markdown if m.value.startswith("| method"))
    charts = [json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart")]
    pareto = next(c for c in charts if c["title"]["text"].startswith("Utility vs fairness"))
    assert pareto["yaxis"]["title"]["text"].startswith("fair score")
