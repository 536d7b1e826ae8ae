"""The Evaluate page (through the app's navigation) and the facade calls behind it: the experiment runs as the
project's "experiment" job, its result comes back from the job's record (a refresh, a server restart), it reuses
the scores the Scores page computed, and its cleaned split is rebuilt from the cache."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from influence_core import jobs
from influence_core.project import (AttackSettings, ExperimentResult, ExperimentSettings, InfluenceError, Project,
                                    ScoreRun, cleaned_split_table)

APP = str(Path(__file__).resolve().parents[2] / "app.py")
SUMMARY = "trim the lowest 10% by IP, IP Ensemble · utility impact · 1 seed(s) · no attacks"


def _open() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.switch_page("app_pages/7_Evaluate.py")
    return at.run()


def _shown(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture
def blobs_project(tmp_path, monkeypatch) -> Project:
    """The default project of a fresh workspace on blobs (it has a sensitive attribute) with a logistic regression."""
    root = tmp_path / "ws"
    monkeypatch.setenv("INFLUENCE_WORKSPACE", str(root))
    monkeypatch.setattr(jobs, "_JOBS", {})  # this test's jobs only
    proj = Project.open("default", root)
    proj.use_dataset("blobs", seed=0)
    proj.train("logreg", {"seed": 0})
    return proj


def _result_on_screen(at: AppTest, ip_scores) -> str:
    """Assert the result is shown with its settings (caption, both chart titles, the form) and IP's cleaned split;
    return its table."""
    _no_errors(at)
    table = next(m.value for m in at.markdown if m.value.startswith("| method"))
    assert "| full |" in table and "| random |" in table and "| IP |" in table
    assert any(SUMMARY in _shown(c.value) for c in at.caption)
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # clean accuracy per arm and the Pareto chart (blobs has a sensitive attribute); no attacks
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in charts]
    assert titles[0].startswith("Clean test accuracy per arm") and titles[1].startswith("Utility vs fairness")
    assert all(SUMMARY in t for t in titles)
    # The form shows the settings of the result, not its defaults (3 seeds, 5%).
    assert next(n for n in at.number_input if n.label == "Retraining seeds").value == 1
    assert next(s for s in at.slider if s.label.startswith("Share flagged")).value == pytest.approx(0.1)
    assert next(m for m in at.multiselect if m.label == "Methods").value == ["ip", "ip_ensemble"]
    # The cleaned split of the chosen method (IP), rebuilt from the cache: the 10% with the lowest scores removed.
    split = at.dataframe[0].value
    assert set(split["action"]) == {"remove"}
    assert sorted(split["index"]) == sorted(int(i) for i in ip_scores.argsort()[:15])
    return table


def test_the_result_survives_a_refresh_and_a_restart_until_cleared(blobs_project, monkeypatch):
    at = _open()
    _no_errors(at)
    assert any("blobs" in c.value and "logreg" in c.value for c in at.caption)
    next(n for n in at.number_input if n.label == "Retraining seeds").set_value(1)
    next(s for s in at.slider if s.label.startswith("Share flagged")).set_value(0.1)
    next(b for b in at.button if b.label == "Run experiment").click()
    at.run()
    job = blobs_project.job("experiment")
    assert job is not None and job.title == "Experiment"  # the project's job, not the session's
    jobs.wait_all(120)
    assert job.state == "done", job.error
    at.run()
    ip_scores = blobs_project.score(ScoreRun("ip"), add=False)  # from the cache the experiment filled
    table = _result_on_screen(at, ip_scores)
    assert (blobs_project.folder / "experiments" / "journal.jsonl").exists()  # finished runs journaled: resumable

    # A refresh is a new session: the result comes from the project's job, and the form is set from it again.
    assert _result_on_screen(_open(), ip_scores) == table
    # A server restart: no live job in this process, only the job's record on disk.
    monkeypatch.setattr(jobs, "_JOBS", {})
    monkeypatch.setattr(jobs, "PROCESS", "another-process")
    at = _open()
    assert _result_on_screen(at, ip_scores) == table

    next(b for b in at.button if b.label == "Clear result").click()
    at.run()
    _no_errors(at)
    assert not at.get("plotly_chart") and not any(m.value.startswith("| method") for m in at.markdown)
    assert blobs_project.job("experiment") is None
    assert next(b for b in at.button if b.label == "Run experiment")  # the form is still there


def test_a_running_experiment_shows_its_progress_and_stops(blobs_project):
    settings = ExperimentSettings(dataset="blobs", methods=("ip",), seeds=2, attacks=AttackSettings(n_attacks=0))

    def run(handle):
        handle.report(0.4, "retraining: full, seed 1", record={"settings": settings.as_dict()})
        while not handle.should_stop():
            time.sleep(0.02)
        return None

    job = blobs_project.start_job("experiment", "Experiment", run)
    at = _open()  # e.g. after a refresh: the page finds the project's running job
    _no_errors(at)
    progress = at.get("progress")
    assert len(progress) == 1 and "retraining: full, seed 1" in progress[0].proto.text
    assert any("Running: trim the lowest 5% by IP · utility impact · 2 seed(s)" in _shown(c.value) for c in at.caption)
    assert not [b for b in at.button if b.label == "Run experiment"]  # no second run while one is going
    next(b for b in at.button if b.label == "Stop").click()
    at.run()
    job.wait(30)
    assert job.state == "cancelled"
    at.run()
    assert any("stopped" in w.value for w in at.warning)
    assert next(b for b in at.button if b.label == "Run experiment")


def test_page_without_a_model_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("INFLUENCE_WORKSPACE", str(tmp_path / "empty"))
    at = _open()
    assert not at.exception
    assert any("model" in i.value.lower() for i in at.info)


def test_the_experiment_reuses_the_scores_the_scores_page_computed(blobs_project, monkeypatch):
    scored_first = blobs_project.score(ScoreRun("ip"))  # what the Scores page does
    import influence_core.engine as engine

    computed = []

    def counting(dataset, fitted, method, *args, _real=engine.compute_scores, **kwargs):
        computed.append(method)
        return _real(dataset, fitted, method, *args, **kwargs)

    monkeypatch.setattr(engine, "compute_scores", counting)
    result = blobs_project.experiment(ExperimentSettings(dataset="blobs", methods=("ip", "loss"), seeds=1,
                                                         attacks=AttackSettings(n_attacks=0)))
    assert computed == ["loss"]  # IP came from the cache; only the method not scored before was computed
    assert (result.scores["ip"] == scored_first).all()


def test_the_cleaned_split_is_rebuilt_from_the_job_record(blobs_project, monkeypatch):
    settings = ExperimentSettings(dataset="blobs", methods=("ip",), action="relabel", fraction=0.1, seeds=1,
                                  attacks=AttackSettings(n_attacks=0))
    blobs_project.experiment_in_background(settings).wait(120)
    monkeypatch.setattr(jobs, "_JOBS", {})  # read the record on disk, as after a restart
    job = blobs_project.job("experiment")
    assert job.state == "done" and job.log[0]["settings"] == settings.as_dict()
    stored = ExperimentResult.from_json(job.result)
    assert stored.settings == settings and stored.rows["ip"]["runs"] == 1

    live = blobs_project.experiment(settings)  # resumes from the journal, with the actions in memory
    expected = cleaned_split_table(live, "ip")
    rebuilt = blobs_project.cleaned_split(stored, "ip")
    pd.testing.assert_frame_equal(rebuilt, expected)
    assert (rebuilt["action"] == "relabel").sum() == round(0.1 * len(rebuilt))

    blobs_project.train("logreg", {"seed": 0, "l2": 0.5})  # another model: the result is not of it
    with pytest.raises(InfluenceError, match="another data set or model"):
        blobs_project.cleaned_split(stored, "ip")


def test_no_attacks_by_default_and_an_estimate_before_running(blobs_project):
    """Issue 21: attacks were on by default (a question the user did not ask), and a 115 s run started without an
    estimate."""
    at = _open()
    _no_errors(at)
    assert next(n for n in at.number_input if n.label.startswith("Random attacks")).value == 0
    estimate = next(_shown(c.value) for c in at.caption if c.value.startswith("Estimated time"))
    # 2 methods (IP, IP Ensemble) + full + random, 3 seeds, less the full-data run the current model already is
    assert "11 retrainings" in estimate and "× 3 seed(s)" in estimate


def test_the_settings_are_a_form_sent_only_by_its_buttons(blobs_project):
    """Issue 19: choosing a setting does not rerun the page with it; Update the estimate (or Run experiment) sends
    every setting at once."""
    at = _open()
    _no_errors(at)

    def estimate() -> str:
        return next(_shown(c.value) for c in at.caption if c.value.startswith("Estimated time"))

    assert "11 retrainings" in estimate()  # (2 methods + full + random) × 3 seeds − 1
    next(n for n in at.number_input if n.label == "Retraining seeds").set_value(1)
    at.multiselect(key="ev-methods").set_value(["ip"])
    at.run()
    assert "11 retrainings" in estimate()  # not sent
    next(n for n in at.number_input if n.label == "Retraining seeds").set_value(1)
    at.multiselect(key="ev-methods").set_value(["ip"])
    next(b for b in at.button if b.label == "Update the estimate").click().run()
    _no_errors(at)
    assert "2 retrainings" in estimate() and "× 1 seed(s)" in estimate()  # (1 + 2) × 1 − 1
    assert blobs_project.job("experiment") is None  # the estimate button starts nothing
    at.multiselect(key="ev-methods").set_value([])
    next(b for b in at.button if b.label == "Run experiment").click().run()  # the button cannot know: it says so
    assert [e.value for e in at.error] == ["Choose at least one method."] and blobs_project.job("experiment") is None
