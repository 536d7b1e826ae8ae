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
    at = open_page("3_Scores.py")
    options = _names(at.selectbox(key="impact"))
    assert "utility+fairness" in options and "fairness" in options
    assert not any("counterfactual" in o for o in options)
    left_out = next(e for e in at.expander if e.label.startswith("Not offered for this data"))
    assert left_out.label == "Not offered for this data (1)"  # the joint ranking follows from its part
    assert "needs twins" in " ".join(c.value for c in left_out.caption)


def test_impacts_needing_a_sensitive_attribute_are_not_offered_without_one(workspace):
    rng = np.random.default_rng(0)
    y = np.arange(120) % 2
    rows = "\n".join(f"{a:.4f},{b:.4f},{c}" for (a, b), c in zip(rng.normal(size=(120, 2)) + y[:, None], y))
    proj = Project.open("default", workspace)
    proj.upload_dataset(f"a,b,label\n{rows}\n".encode(), "plain.csv")  # no sensitive column named
    proj.train("logreg", {"epochs": 5})
    at = open_page("3_Scores.py")
    no_errors(at)
    assert _names(at.selectbox(key="impact")) == ["utility", "robustness"]
    reasons = " ".join(c.value for c in next(e for e in at.expander if e.label.startswith("Not offered")).caption)
    assert "**fairness**" in reasons and "Sensitive attribute column" in reasons  # says where to name it


def test_scores_page_computes_a_joint_ranking(workspace):
    proj = _text_project(workspace)
    at = open_page("3_Scores.py")
    assert "counterfactual" in _names(at.selectbox(key="impact"))
    at.selectbox(key="impact").set_value("utility+counterfactual").run()
    differ = proj.counterfactual_pairs(proj.dataset())
    assert 0 < differ[0] <= differ[1] == 60
    assert any(c.value.startswith(f"{differ[0]} of 60 validation texts have a twin that differs") for c in at.caption)
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
