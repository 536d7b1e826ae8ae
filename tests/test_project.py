"""The Project facade: state per project, per-session undo, persisted jobs, one cache shared with the runner."""

from __future__ import annotations

import json
import multiprocessing as mp
import time

import numpy as np
import pytest

from influence_core import jobs
from influence_core.errors import InfluenceError
from influence_core.project import ExperimentResult, ExperimentSettings, AttackSettings, Project, ScoreRun, Selection, project_names

TRAIN = {"epochs": 30, "lr": 0.01, "seed": 0}


@pytest.fixture
def moons_project(tmp_path) -> Project:
    proj = Project.open("a", tmp_path)
    proj.use_dataset("moons", seed=0)
    proj.train("logreg")
    return proj


def test_state_round_trip_and_a_broken_file_falls_back(tmp_path):
    proj = Project.open("p", tmp_path)
    sel = Selection()
    sel.arch, sel.train, sel.model_hash = "mlp", {"epochs": 5}, "abc"
    sel.add_run(ScoreRun("ip_ensemble", settings={"ensemble_size": 3}))
    sel.primary = "ip_ensemble[K=3]"
    proj.save_state(sel)
    back = Project.open("p", tmp_path).state()
    assert back == sel and back.runs[0].label == "ip_ensemble[K=3]" and back.primary == "ip_ensemble[K=3]"
    assert back.train_config().epochs == 5
    proj.state_path.write_text("{not json")
    assert proj.state() == Selection()  # the default (moons), not a crash


def test_projects_never_see_each_others_data_model_or_decisions(tmp_path, moons_project):
    b = Project.open("b", tmp_path)
    b.use_dataset("blobs", seed=0)
    assert moons_project.dataset().name == "moons" and b.dataset().name == "blobs"
    assert b.model() is None and moons_project.model() is not None
    moons_project.record([1, 2], "remove", session="s")
    b.record([5], "keep", session="t")
    assert set(moons_project.current_decisions()) == {1, 2} and set(b.current_decisions()) == {5}
    assert project_names(tmp_path) == ["a", "b"]
    assert not (tmp_path / "selection.json").exists()


def test_undo_takes_back_only_this_sessions_last_batch(moons_project):
    moons_project.record([1], "remove", session="alice")
    moons_project.record([2], "keep", session="bob")
    moons_project.record([3], "relabel", 0, session="alice")
    assert moons_project.undo(session="bob") == 1  # bob's only batch, although alice's is newer
    assert set(moons_project.current_decisions()) == {1, 3}
    assert moons_project.undo(session="bob") == 0
    assert moons_project.undo(session="alice") == 1 and set(moons_project.current_decisions()) == {1}


def test_a_click_event_delivered_twice_is_recorded_once(moons_project):
    first = moons_project.record([7], "remove", session="s", event="s-1")
    again = moons_project.record([7], "remove", session="s", event="s-1")
    other = moons_project.record([8], "keep", session="s", event="s-2")
    assert first == again and other == first + 1
    assert len(moons_project.decisions.frame(moons_project.decision_scope())) == 2


def _record_many(args) -> list[int]:
    root, session = args
    proj = Project.open("shared", root)
    return [proj.record([i], "keep", session=session) for i in range(40)]


def test_two_processes_recording_into_one_project_get_distinct_batch_numbers(tmp_path):
    proj = Project.open("shared", tmp_path)
    proj.use_dataset("moons", seed=0)
    with mp.get_context("spawn").Pool(2) as pool:
        batches = pool.map(_record_many, [(str(tmp_path), "p1"), (str(tmp_path), "p2")])
    together = batches[0] + batches[1]
    assert len(together) == 80 and len(set(together)) == 80


def test_rename_moves_the_project_and_refuses_bad_or_taken_names(tmp_path, moons_project):
    Project.open("taken", tmp_path)
    with pytest.raises(InfluenceError, match="exists already"):
        moons_project.rename("taken")
    with pytest.raises(InfluenceError, match="cannot name a project"):
        moons_project.rename("../escape")
    renamed = moons_project.rename("renamed")
    assert renamed.dataset().name == "moons" and renamed.model() is not None
    assert "a" not in project_names(tmp_path)


def test_training_for_a_data_set_the_user_left_does_not_become_current(tmp_path):
    proj = Project.open("p", tmp_path)
    proj.use_dataset("moons", seed=0)
    state = proj.state()
    proj.use_dataset("blobs", seed=0)  # switched while a training job of moons would run
    proj.save_state(state)             # … (simulate: the job read the state before the switch)
    proj.use_dataset("blobs", seed=0)
    proj.train("logreg")
    assert proj.state().arch == "logreg" and proj.dataset().name == "blobs"


def test_scores_come_from_the_one_cache_and_equal_a_direct_computation(moons_project):
    from influence_core.api import compute_scores

    scores = moons_project.score(ScoreRun("ip"))
    direct = compute_scores(moons_project.dataset(), moons_project.model(), "ip")
    np.testing.assert_allclose(scores, direct, rtol=1e-6, atol=1e-9)
    assert list(moons_project.scores()) == ["ip"]
    assert len(list((moons_project.root / "scores").glob("*.npy"))) == 1
    # Impact settings are part of the key: another val_trim is another entry, and another column.
    moons_project.score(ScoreRun("ip", impact_settings={"val_trim": 0.0}))
    assert len(list((moons_project.root / "scores").glob("*.npy"))) == 2
    assert len(moons_project.scores()) == 2


def test_a_finished_job_and_its_result_survive_a_restart(moons_project, monkeypatch):
    job = moons_project.start_job("sum", "Adding", lambda handle: (handle.report(0.5, "half"), {"total": 3})[1])
    job.wait(10)
    monkeypatch.setattr(jobs, "_JOBS", {})  # a new server process: nothing in memory
    back = moons_project.job("sum")
    assert back is not None and back.state == "done" and back.result == {"total": 3}
    assert Project.open("other", moons_project.root).job("sum") is None  # jobs belong to their project


def test_a_job_whose_process_died_shows_as_interrupted(moons_project, monkeypatch):
    import threading

    gate, reported = threading.Event(), threading.Event()

    def slow(handle):
        time.sleep(0.6)  # records are written at most twice a second while a job runs
        handle.report(0.25, "a quarter")
        reported.set()
        gate.wait(10)

    moons_project.start_job("slow", "Waiting", slow)
    reported.wait(10)
    monkeypatch.setattr(jobs, "_JOBS", {})
    monkeypatch.setattr(jobs, "PROCESS", "a-new-server")
    back = moons_project.job("slow")
    gate.set()
    assert back.state == "interrupted" and back.fraction == pytest.approx(0.25) and back.message == "a quarter"


def test_views_are_cached_once(moons_project, monkeypatch):
    import influence_core.analysis as analysis

    calls = []
    real = analysis.embed_2d
    monkeypatch.setattr(analysis, "embed_2d", lambda feats, **kw: (calls.append(1), real(feats, **kw))[1])
    assert not moons_project.has_view("umap")
    first = moons_project.feature_map()
    second = moons_project.feature_map()
    assert moons_project.has_view("umap") and len(calls) == 1
    np.testing.assert_array_equal(first["xy"], second["xy"])


def test_experiment_job_reuses_the_scores_page_scores_and_its_result_reads_back(moons_project, monkeypatch):
    import influence_core.workspace as workspace

    moons_project.score(ScoreRun("ip"))  # what the Scores page computed
    calls = []
    real = workspace.compute_scores
    monkeypatch.setattr(workspace, "compute_scores", lambda *a, **k: (calls.append(a[2]), real(*a, **k))[1])
    settings = ExperimentSettings("moons", model="logreg", methods=("ip",), seeds=1, attacks=AttackSettings(n_attacks=0))
    job = moons_project.experiment_in_background(settings)
    job.wait(120)
    assert job.state == "done", job.error
    assert calls == []  # the experiment scored nothing itself
    monkeypatch.setattr(jobs, "_JOBS", {})
    result = ExperimentResult.from_json(moons_project.job("experiment").result)
    assert result.settings == settings and set(result.rows) == {"full", "random", "ip"}
    assert json.loads((moons_project.folder / "experiments" / "latest.json").read_text())["key"] == result.key


def test_a_model_gone_from_the_cache_is_an_error_not_a_silent_retraining(moons_project):
    import shutil

    from influence_core import project as project_module

    project_module._MODELS.clear()
    shutil.rmtree(moons_project.root / "models")
    with pytest.raises(InfluenceError, match="no longer in the workspace cache"):
        moons_project.model()


def test_the_explicit_hessian_is_computed_once_for_exact_influence_and_the_angle_view(moons_project, monkeypatch):
    import influence_core.methods.exact as exact

    calls = []
    real = exact.explicit_hessian
    monkeypatch.setattr(exact, "explicit_hessian", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    utility = moons_project.score(ScoreRun("exact"))
    fairness = moons_project.score(ScoreRun("exact", "fairness"))
    view = moons_project.angle_view()
    assert len(calls) == 1 and len(list((moons_project.root / "curvature").glob("*.npz"))) == 1
    np.testing.assert_allclose(view["influence"], utility, rtol=1e-6, atol=1e-9)  # gᵀw is exact influence
    assert not np.allclose(utility, fairness)


def test_the_log_keeps_each_decisions_original_index(tmp_path):
    rng = np.random.default_rng(0)
    csv = tmp_path / "table.csv"
    lines = ["a,b,label"] + [f"{rng.normal():.3f},{rng.normal():.3f},{i % 2}" for i in range(60)]
    csv.write_text("\n".join(lines) + "\n")
    proj = Project.open("ids", tmp_path)
    proj.use_dataset(str(csv), seed=0)
    source = proj.source_index()
    assert not np.array_equal(source[:10], np.arange(10))  # shuffled splits: a row is not its original index
    proj.record([3, 9], "remove")
    frame = proj.decisions.frame(proj.decision_scope())
    assert frame["original"].tolist() == [int(source[3]), int(source[9])]
    with pytest.raises(InfluenceError, match="not in the training split"):
        proj.record([10_000], "keep")


def test_exact_influence_on_the_head_of_a_network_uses_the_cached_hessian(tmp_path):
    """The head of an MLP (its parameters require grad inside the Hessian's computation): cached and reused."""
    from influence_core.api import compute_scores

    proj = Project.open("head", tmp_path)
    proj.use_dataset("moons", seed=0)
    proj.train("mlp", {"epochs": 30, "seed": 0})
    first = proj.score(ScoreRun("exact", params="head"))
    again = proj.score(ScoreRun("exact", "fairness", params="head"))
    assert len(list((tmp_path / "curvature").glob("*.npz"))) == 1 and not np.allclose(first, again)
    np.testing.assert_allclose(first, compute_scores(proj.dataset(), proj.model(), "exact", params="head"),
                               rtol=1e-6, atol=1e-9)


def test_ekfac_factors_are_fitted_once_for_every_impact_and_damping(tmp_path, monkeypatch):
    import influence_core.methods.ekfac as ekfac
    from influence_core.api import compute_scores

    proj = Project.open("kfac", tmp_path)
    proj.use_dataset("moons", seed=0)
    proj.train("mlp", {"epochs": 30, "seed": 0})
    calls = []
    real = ekfac.fit_ekfac
    monkeypatch.setattr(ekfac, "fit_ekfac", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    utility = proj.score(ScoreRun("ekfac"))
    proj.score(ScoreRun("ekfac", "fairness"))
    damped = proj.score(ScoreRun("ekfac", settings={"damping": 0.1}))
    assert len(calls) == 1 and not np.allclose(utility, damped)
    np.testing.assert_allclose(utility, compute_scores(proj.dataset(), proj.model(), "ekfac"), rtol=1e-6, atol=1e-9)
    assert len(calls) == 2  # the direct computation has no cache: it fits its own


def test_a_second_compute_while_scoring_runs_is_refused_not_dropped(tmp_path, monkeypatch):
    """Seen on the Scores page: confident learning ticked alone, the progress said "loss·oof5: fold 1/5" — the
    project's score job already running (another tab) was returned in place of the runs asked for, without a word."""
    import threading

    from influence_core.jobs import wait_all

    proj = Project.open("busy", tmp_path)
    proj.use_dataset("moons", seed=0)
    release = threading.Event()
    monkeypatch.setattr(Project, "score", lambda self, run, *a, **k: release.wait(30))
    first = proj.score_in_background([ScoreRun("loss", folds=5)])
    try:
        with pytest.raises(InfluenceError, match="already being computed") as err:
            proj.score_in_background([ScoreRun("confident_learning", folds=5)])
        assert "loss·oof5" in str(err.value) and "\n" not in str(err.value)
    finally:
        release.set()
        wait_all(30)
    assert first.state == "done" and first.result == {"runs": ["loss·oof5"]}
