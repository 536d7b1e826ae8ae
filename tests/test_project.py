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


def test_state_round_trip_and_a_broken_file_falls_back_to_the_last_good_state(tmp_path):
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
    assert proj.state() == sel  # the last good state, not a crash nor the default (moons)


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
    batches = [proj.record([i], "keep", session=session) for i in range(40)]
    for i in range(40):  # and change the state as often: no change may overwrite the other server's
        proj._update_state(lambda s, i=i: s.add_run(ScoreRun("loss", settings={"n": f"{session}-{i}"})))
    return batches


def test_two_processes_recording_into_one_project_get_distinct_batch_numbers_and_lose_no_state_change(tmp_path):
    proj = Project.open("shared", tmp_path)
    proj.use_dataset("moons", seed=0)
    with mp.get_context("spawn").Pool(2) as pool:
        batches = pool.map(_record_many, [(str(tmp_path), "p1"), (str(tmp_path), "p2")])
    together = batches[0] + batches[1]
    assert len(together) == 80 and len(set(together)) == 80
    assert len(proj.state().runs) == 80


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


def test_training_the_current_model_again_keeps_its_score_runs_and_another_model_clears_them(moons_project, counted):
    """Issue 19: the cache returns the identical model, so the runs scored on it stay (a CLI project keeps every
    run); other settings give another model, whose runs start empty."""
    moons_project.score(ScoreRun("loss"))
    moons_project.score(ScoreRun("ip"))
    model_hash = moons_project.state().model_hash
    again = moons_project.train("logreg")
    assert counted["train"] == 0 and again.fingerprint() == model_hash  # from the cache
    assert [r.label for r in moons_project.state().runs] == ["loss", "ip"]
    moons_project.train("logreg", {"seed": 1, "l2": 0.1})
    assert moons_project.state().runs == [] and moons_project.state().model_hash != model_hash


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


def test_a_page_reads_runs_scores_and_primary_run_from_one_state(moons_project):
    """A scoring job adds its runs one by one while a page draws (CI: the Scores page said "KeyError: 'loss'"): the
    runs, their scores and the primary run a page reads all come from the one state it read first."""
    moons_project.score(ScoreRun("ip"))
    before = moons_project.state()
    moons_project.score(ScoreRun("loss"))  # the job adds a run after the page read the state
    assert [r.label for r in moons_project.state().runs] == ["ip", "loss"]
    assert list(moons_project.scores(before)) == ["ip"]
    assert moons_project.primary_run(before).label == "ip"
    assert list(moons_project.scores()) == ["ip", "loss"]


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
    record = jobs._record_path(moons_project.jobs_folder, "slow")
    for _ in range(300):  # the report reaches the record by the throttled write or, at the latest, the heartbeat (5 s)
        if json.loads(record.read_text()).get("fraction") == 0.25:
            break
        time.sleep(0.05)
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
    import influence_core.engine as engine

    moons_project.score(ScoreRun("ip"))  # what the Scores page computed
    calls = []
    real = engine.compute_scores
    monkeypatch.setattr(engine, "compute_scores", lambda *a, **k: (calls.append(a[2]), real(*a, **k))[1])
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

    project_module.MEMORY.clear("models")
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


# ------------------------------------------------------------------ data sets from a browser, caps, arrays, quotas
def _points_csv(folder, n: int = 80, name: str = "points.csv") -> str:
    """A small two-feature CSV with a 'target' column."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    path = folder / name
    path.write_text("f1,f2,target\n" + "\n".join(f"{a:.4f},{b:.4f},{'yes' if a + b > 0 else 'no'}" for a, b in x) + "\n")
    return str(path)


def _server_toml(root, **settings) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "server.toml").write_text("[server]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))


def test_a_browser_cannot_read_server_files_and_cannot_tell_which_exist(tmp_path):
    """Attacker: the Data page's code path with 'data path' / a data set name set to files on the server."""
    proj = Project.open("p", tmp_path / "ws")
    existing = _points_csv(tmp_path)
    for param in ("data_path", "test_path"):
        messages = set()
        for value in (existing, str(tmp_path / "missing.csv"), "/etc/passwd"):
            with pytest.raises(InfluenceError) as err:
                proj.use_dataset("adult", from_browser=True, **{param: value})
            messages.add(str(err.value))
        assert len(messages) == 1 and "server-side" in messages.pop()
    for name, kwargs in (("cifar10n", {"images": existing}), ("cifar10n", {"labels_path": existing}),
                         ("cifar100n", {"download": True}), ("bank", {"download": True})):
        with pytest.raises(InfluenceError, match="server-side"):
            proj.use_dataset(name, from_browser=True, **kwargs)
    messages = set()
    for name in (existing, str(tmp_path / "missing.csv"), "/etc/passwd"):
        with pytest.raises(InfluenceError) as err:
            proj.use_dataset(name, from_browser=True)
        messages.add(str(err.value).split("'")[2])  # the same words around the echoed name
    assert len(messages) == 1
    assert proj.state().dataset == "moons"
    assert proj.use_dataset(existing, label_column="target").num_classes == 2  # the library and CLI keep paths


def test_browser_sizes_are_capped_by_the_server_config(tmp_path):
    root = tmp_path / "ws"
    _server_toml(root, max_generated_samples=1000)
    proj = Project.open("p", root)
    with pytest.raises(InfluenceError, match=r"^moons: 'n_train' = 10,000,000 is over this server's cap of 1,000 samples$"):
        proj.use_dataset("moons", from_browser=True, n_train=10**7)
    assert len(proj.use_dataset("moons", from_browser=True, n_train=600).train) == 600
    assert len(proj.use_dataset("moons", n_train=1200).train) == 1200  # the library is not capped


def test_loaded_data_sets_in_memory_are_bounded_by_the_server_config(tmp_path):
    from influence_core import project as project_module

    root = tmp_path / "ws"
    _server_toml(root, max_loaded_datasets=1)
    proj = Project.open("p", root)
    for seed in range(3):
        proj.use_dataset("blobs", seed=seed)
    assert len(project_module.MEMORY.keys("datasets")) == 1


def test_stored_arrays_live_in_the_project_and_count_against_the_quotas(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("INFLUENCE_DATA_DIR", raising=False)
    csv = _points_csv(tmp_path)
    root = tmp_path / "ws"
    proj = Project.open("p", root)
    ds = proj.use_dataset(csv, label_column="target", on_disk=True)
    assert ds.train.on_disk and ds.train.store.array.path.parent == proj.folder / "arrays"
    assert not (tmp_path / "home").exists()  # nothing under ~/.cache

    other = Project.open("q", root)
    for cap, value, message in (("user_quota_bytes", proj.storage_usage(root)["owners"][proj.user] + 100, "your storage cap"),
                                ("project_upload_bytes", 100, "this project's cap")):
        _server_toml(root, **{cap: value})
        with pytest.raises(InfluenceError, match=f"would pass {message} of"):
            other.use_dataset(_points_csv(tmp_path, 90, "more.csv"), label_column="target", on_disk=True)
        assert not list((other.folder / "arrays").glob("*")) and other.state().dataset == "moons"


@pytest.mark.parametrize("cap", ["project_upload_bytes", "user_quota_bytes", "workspace_quota_bytes"])
def test_an_upload_over_a_cap_is_refused_and_leaves_nothing(tmp_path, cap):
    root = tmp_path / "ws"
    data = open(_points_csv(tmp_path), "rb").read()
    _server_toml(root, **{cap: len(data) - 1})
    proj = Project.open("p", root)
    with pytest.raises(InfluenceError) as err:
        proj.upload_dataset(data, "points.csv", label_column="target")
    assert "\n" not in str(err.value)
    assert not [p for p in (proj.folder / "uploads").rglob("*") if p.is_file()]


# ----------------------------------------------------------------- decisions the export could not use (issue 21 §1)
@pytest.fixture
def moons_data_project(tmp_path) -> Project:
    proj = Project.open("d", tmp_path)
    proj.use_dataset("moons", seed=0)
    return proj


@pytest.mark.parametrize("label", [99, -1, 2, 1.5])
def test_record_refuses_a_relabel_to_a_class_the_data_set_does_not_have(moons_data_project, label):
    with pytest.raises(InfluenceError) as err:
        moons_data_project.record([0, 1], "relabel", label)
    assert str(err.value) == f"cannot relabel to {label}: the classes of 'moons' are 0..1"
    assert moons_data_project.current_decisions() == {}
    moons_data_project.record([0], "relabel", 1)  # a class it has is recorded
    assert moons_data_project.current_decisions()[0].new_label == 1


@pytest.mark.parametrize("how, reason", [("full", "the disk is full"), ("read-only", "the disk is read-only")])
def test_a_full_or_read_only_disk_refuses_a_decision_in_one_line(moons_data_project, monkeypatch, how, reason):
    import sqlite3

    from influence_core.review import DecisionLog

    moons_data_project.record([5], "keep")  # the file exists, as after a first click

    def connect(log):
        if how == "read-only":  # what SQLite says on a read-only file system or file
            return sqlite3.connect(f"file:{log.path}?mode=ro", uri=True)
        con = sqlite3.connect(log.path)
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        con.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own 'database or disk is full'
        return con

    monkeypatch.setattr(DecisionLog, "_connect", connect)
    with pytest.raises(InfluenceError) as err:
        moons_data_project.record(list(range(200)), "remove")
    assert str(err.value) == f"cannot record the decisions: {reason} on the server; ask its administrator"
    monkeypatch.undo()
    assert set(moons_data_project.current_decisions()) == {5}  # nothing half-written


def test_a_full_disk_refuses_a_state_change_in_one_line_and_keeps_the_old_state(moons_data_project, monkeypatch):
    import errno
    import os

    import influence_core.project as project_module

    def refuse(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(project_module.os, "replace", refuse)
    with pytest.raises(InfluenceError) as err:
        moons_data_project.use_dataset("blobs", seed=0)
    assert str(err.value) == "cannot save the project's state: the disk is full on the server; ask its administrator"
    monkeypatch.undo()
    assert moons_data_project.state().dataset == "moons"
    assert sorted(p.name for p in moons_data_project.folder.iterdir() if p.name.endswith(".tmp")) == []  # no half-written state


def test_a_corrupt_state_file_restores_the_last_good_state_keeps_the_bad_one_and_says_so(tmp_path, moons_project):
    moons_project.score(ScoreRun("loss"))
    good = moons_project.state()
    moons_project.state_path.write_text('{"dataset": "moo')  # truncated by a full disk, or a hand edit gone wrong
    fresh = Project.open("a", tmp_path)
    assert fresh.state() == good  # not moons without a model
    kept = list(fresh.folder.glob("state.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == '{"dataset": "moo'
    notice = fresh.notice()
    assert notice and "\n" not in notice and "state.json was unreadable" in notice and "restored" in notice
    fresh.set_flag_share(0.2)  # the next change builds on the restored state
    assert Project.open("a", tmp_path).state().runs == good.runs


def test_a_corrupt_state_file_without_a_good_copy_is_kept_and_reported_not_silently_reset(tmp_path):
    proj = Project.open("p", tmp_path)
    proj.state_path.write_text("\x00\x00\x00")
    assert proj.state() == Selection()
    assert list(proj.folder.glob("state.json.corrupt-*")) and "no good copy" in proj.notice()
    assert Project.open("fresh", tmp_path).notice() is None


def test_a_session_still_on_the_old_name_follows_a_rename_and_nothing_it_records_is_lost(tmp_path, moons_project):
    held = moons_project  # another session's project object, opened before the rename
    Project.open("a", tmp_path).rename("b")
    held.record([1, 2], "remove", session="s")
    held.set_flag_share(0.3)
    b = Project.open("b", tmp_path)
    assert set(b.current_decisions()) == {1, 2} and b.state().flag_share == 0.3 and held.name == "b"
    again = Project.open("a", tmp_path)  # a bookmark of the old name
    assert again.name == "b" and again.renamed_from == "a" and again.model() is not None
    assert project_names(tmp_path) == ["b"]
    assert sorted(p.name for p in (tmp_path / "projects" / "a").iterdir()) == ["renamed.json"]
    b.rename("a")  # the old name is free again: a forwarding record is replaced, not "taken"
    assert project_names(tmp_path) == ["a"] and Project.open("b", tmp_path).name == "a"
    assert set(Project.open("a", tmp_path).current_decisions()) == {1, 2}


def test_a_job_finishing_after_a_rename_attaches_its_result_to_the_renamed_project(tmp_path, monkeypatch):
    import threading

    proj = Project.open("a", tmp_path)
    proj.use_dataset("moons", seed=0)
    gate = threading.Event()

    def train(handle):
        gate.wait(30)
        return {"arch": proj.train("logreg").arch}

    job = proj.start_job("train", "Training", train)
    with pytest.raises(InfluenceError, match="running"):
        Project.open("a", tmp_path).rename("b")
    # The race the check cannot close: the rename passed its check just before the job started.
    monkeypatch.setattr(Project, "jobs", lambda self: [])
    Project.open("a", tmp_path).rename("b")
    gate.set()
    job.wait(60)
    b = Project.open("b", tmp_path)
    assert job.state == "done" and b.state().arch == "logreg" and b.model() is not None
    assert b.job("train").state == "done" and b.job("train").result == {"arch": "logreg"}
    assert sorted(p.name for p in (tmp_path / "projects" / "a").iterdir()) == ["renamed.json"]


def _train_in_another_server(root: str) -> None:
    """Another server on the same workspace: project p's training job, which waits for the file ``release``."""
    from pathlib import Path

    proj = Project.open("p", root)

    def train(handle):
        handle.report(0.1, "epoch 1")
        while not (Path(root) / "release").exists():
            time.sleep(0.02)
        proj.train("logreg")
        return {}

    job = proj.start_job("train", "Training", train)
    job.persist(force=True)
    (Path(root) / "started").touch()
    job.wait(120)


def test_another_servers_running_training_is_running_here_and_blocks_a_rename(tmp_path):
    Project.open("p", tmp_path).use_dataset("moons", seed=0)
    process = mp.get_context("spawn").Process(target=_train_in_another_server, args=(str(tmp_path),))
    process.start()
    try:
        while not (tmp_path / "started").exists():
            assert process.is_alive(), "the other server ended early"
            process.join(0.05)
        here = Project.open("p", tmp_path)
        assert here.job("train").state == "running"
        with pytest.raises(InfluenceError, match="running"):
            here.rename("q")
        (tmp_path / "release").touch()
        process.join(120)
    finally:
        if process.is_alive():
            process.kill()
    assert here.job("train").state == "done"
    renamed = here.rename("q")
    assert renamed.state().arch == "logreg" and renamed.model() is not None


def test_a_damaged_current_model_is_one_line_that_says_so(tmp_path, moons_project):
    from influence_core import project as project_module

    weights = next((tmp_path / "models").glob("*/weights.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8])
    project_module.MEMORY.clear("models")  # a fresh server process: nothing in memory
    with pytest.raises(InfluenceError, match=r"^the current model \(logreg\) was damaged in the workspace") as err:
        Project.open("a", tmp_path).model()
    assert "\n" not in str(err.value) and "checksum" in str(err.value)


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


def test_background_jobs_report_progress_as_data_and_their_records_keep_it(moons_project, monkeypatch):
    """Issue 19: the library reports what a job is doing as data (stage, counts, numbers); the words are the
    front end's. The record on disk holds the same data, so another server (or the CLI) reads it back."""
    job = moons_project.train_in_background("mlp", {"epochs": 3, "seed": 0, "checkpoint_every": 0}).wait(60)
    assert job.state == "done", job.error
    last = moons_project.model().history[-1]
    assert job.detail == {"stage": "epoch", "epoch": last["epoch"], "loss": last["loss"],
                          "val_accuracy": last["val_accuracy"]}
    runs = [ScoreRun("loss"), ScoreRun("ip", impact_settings={"val_trim": 0.0})]
    job = moons_project.score_in_background(runs).wait(60)
    assert job.state == "done", job.error
    assert job.detail["stage"] == "run" and (job.detail["index"], job.detail["count"]) == (1, 2)
    assert ScoreRun(**job.detail["run"]) == runs[1] and job.detail["label"] == runs[1].label
    assert not job.message.startswith(f"{runs[1].label}: ")  # the status line is the method's own; no wording added
    monkeypatch.setattr(jobs, "_JOBS", {})  # a new server process: the stored record
    assert moons_project.job("score").detail == job.detail


def test_a_viewer_changes_nothing_of_the_project_but_may_start_jobs_that_only_look(tmp_path):
    """The audit: a viewer could switch the data set, train, score, and set Review's ranking and share."""
    from influence_core.project import Access, InfluenceError, Project

    owner = Project.create("shared", Access("olga@example.com", signed_in=True), tmp_path)
    owner.use_dataset("moons", seed=0)
    owner.set_member("vic@example.com", "viewer")
    viewer = Project.open_existing("shared", Access("vic@example.com", signed_in=True), tmp_path)
    state = owner.state()
    for attempt in (lambda: viewer.use_dataset("blobs"), lambda: viewer.set_primary("loss"),
                    lambda: viewer.set_flag_share(0.5), lambda: viewer.train_in_background("mlp", {}),
                    lambda: viewer.start_job("score", "Scoring", lambda handle: None)):
        with pytest.raises(InfluenceError, match="not decide"):
            attempt()
    assert owner.state() == state and viewer.job("score") is None and viewer.job("train") is None
    job = viewer.start_job("why", "Why flagged", lambda handle: {"ok": 1})  # looks only: allowed
    assert job.title == "Why flagged" and viewer.job("why") is not None
