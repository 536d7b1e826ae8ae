"""Scores page: says what is missing; methods are ticked (never added by typing) with their estimated time; computes
the ticked ones as the project's "score" job (in-sample or out of fold, with the chosen validation target and impact
settings); the leaderboard where the wrong labels are known; cleanlab's estimate; a column per method, rows named
by their original index."""

import numpy as np

from influence_core.api import compute_scores, describe_target, estimate_label_issues
from influence_core.figures import detection_report, format_duration
from influence_core.project import METHODS, Project, ScoreRun

from .conftest import no_errors, open_page, project_of, settle


def _fitted(root):
    proj = project_of(root)
    ds = proj.dataset()
    return ds, proj.model(ds)


def _tick(at, methods):
    """Tick exactly ``methods`` (unticking the defaults)."""
    for name in METHODS:
        box = at.checkbox(key=f"method-{name}")
        if box.value != (name in methods):
            box.set_value(name in methods)
    return at.run()


def _compute(at, methods=None):
    if methods is not None:
        at = _tick(at, methods)
    next(b for b in at.button if b.label == "Compute scores").click().run()
    at = settle(at)
    no_errors(at)
    return at


def _frame(at, column):
    """The first table with ``column``; in the scores table, whose headings are run titles, ``column`` may be a run's
    label (the titles are renamed to labels)."""
    from app_pages._common import run_title

    for shown_table in at.dataframe:
        frame = shown_table.value
        if {"sample", "row"} <= set(frame.columns) and column not in frame.columns:
            frame = frame.rename(columns={run_title(r): r.label for r in Project.open("default").state().runs})
        if column in frame.columns:
            return frame
    raise AssertionError(f"no table with a column {column!r}")


def test_without_model_links_to_the_model_page(workspace):
    at = open_page("3_Scores.py")
    assert not at.exception
    assert any("train or upload a model first" in i.value for i in at.info)


def test_methods_are_checkboxes_with_their_estimated_time_and_three_are_ticked(scored):
    """Issue 12: a multiselect let "Select 3 matches" + Enter add unpicked expensive methods; checkboxes cannot."""
    at = open_page("3_Scores.py")
    no_errors(at)
    assert not at.multiselect  # nothing to type into
    ticked = {name for name in METHODS if at.checkbox(key=f"method-{name}").value}
    assert ticked == {"ip_combined", "loss", "ip"}
    costs = project_of(scored).method_costs()
    assert set(costs) == set(METHODS) and all(np.isfinite(v) and v > 0 for v in costs.values())
    for name in METHODS:  # each label is the method's name and its estimate here (same process: same timing)
        cost = "no checkpoints" if METHODS[name].needs_checkpoints else format_duration(costs[name])  # (none saved)
        assert at.checkbox(key=f"method-{name}").label == f"{(METHODS[name].label or name).split(' (')[0]} · {cost}"
    assert costs["self_lissa"] > costs["ip"]
    assert at.number_input(key="folds").value == 0


def test_on_multiclass_text_the_class_target_ip_is_ticked_too(workspace):
    """Plain IP averages the classes' pulls away on multiclass text (bench/results/detect_text.md): the page ticks
    the class-target IP beside the three."""
    from influence_core.data.text import generated_text_frame

    proj = Project.open("default", workspace)
    frame = generated_text_frame(240, num_classes=3, seed=0)[["text", "label"]]
    proj.upload_dataset(frame.to_csv(index=False).encode(), "topics.csv")
    assert proj.dataset().kind == "text" and len(proj.dataset().classes) == 3
    proj.train("text-linear")
    at = open_page("3_Scores.py")
    no_errors(at)
    assert {name for name in METHODS if at.checkbox(key=f"method-{name}").value} == {"ip_combined", "loss", "ip",
                                                                                     "ip_classwise"}


def test_compute_adds_only_the_ticked_methods_equal_to_the_library(scored):
    at = _compute(open_page("3_Scores.py"), ["ip_ensemble"])
    assert [r.label for r in project_of(scored).state().runs] == ["ip", "ip_ensemble"]  # ip came with the fixture
    table = _frame(at, "ip_ensemble")
    ds, fitted = _fitted(scored)
    expected = compute_scores(ds, fitted, "ip_ensemble", "utility")
    np.testing.assert_allclose(table.sort_values("row")["ip_ensemble"].to_numpy(), expected, rtol=1e-6)
    assert np.all(np.diff(table["ip"].to_numpy()) >= 0)  # sorted most detrimental first by the primary method
    # one sample id everywhere: the original index, with the training row beside it
    np.testing.assert_array_equal(table.sort_values("row")["sample"].to_numpy(), ds.source_index.numpy()
                                  if ds.source_index is not None else np.arange(len(ds.train)))
    assert not project_of(scored).job("score")  # the finished job was reported and forgotten


def test_leaderboard_matches_the_detection_report(scored):
    at = _compute(open_page("3_Scores.py"), ["loss", "margin"])
    proj = project_of(scored)
    scores = proj.scores()
    assert set(scores) == {"ip", "loss", "margin"}
    ds = proj.dataset()
    board = _frame(at, "AUROC")
    expected = detection_report(scores, ds.noise_mask.numpy())
    assert board["method"].tolist() == expected["method"].tolist()  # best first
    np.testing.assert_allclose(board["AUROC"].to_numpy(), expected["AUROC"].to_numpy())
    np.testing.assert_allclose(board["precision@5%"].to_numpy(), expected["precision@5%"].to_numpy())
    assert board["ranking"].tolist()[board["method"].tolist().index("loss")] == "Loss, in-sample"
    assert (board["AUROC"] > 0.8).all()  # moons' flipped labels are easy to find


def test_out_of_fold_run_equals_a_fresh_project_and_cleanlab_estimates_the_wrong_labels(scored, tmp_path):
    at = open_page("3_Scores.py")
    at.number_input(key="folds").set_value(2).run()
    assert any("training the 2 fold models takes" in c.value for c in at.caption)
    at = _compute(at, ["ip", "confident_learning"])
    runs = project_of(scored).state().runs
    assert [r.label for r in runs] == ["ip", "ip·oof2", "confident_learning·oof2"]
    assert [r.folds for r in runs] == [0, 2, 2]
    ds, fitted = _fitted(scored)
    table = _frame(at, "ip·oof2").sort_values("row")
    # the same call made directly, in a fresh workspace (fold models trained from scratch there)
    fresh = Project.open("fresh", tmp_path / "fresh")
    expected = fresh.engine.scores(ds, fitted, "ip", "utility", folds=2)
    np.testing.assert_allclose(table["ip·oof2"].to_numpy(), expected, rtol=1e-6)
    assert not np.allclose(table["ip·oof2"].to_numpy(), table["ip"].to_numpy())  # not the in-sample scores
    np.testing.assert_allclose(table["confident_learning·oof2"].to_numpy(),
                               fresh.engine.scores(ds, fitted, "confident_learning", folds=2), rtol=1e-6)
    # cleanlab's own count of wrong labels, on the fold models' out-of-fold probabilities
    est = estimate_label_issues(ds, fitted, fold_models=fresh.engine.fold_models(ds, fitted, 2), folds=2)
    assert {m.label: m.value for m in at.metric}["Wrong labels (cleanlab's estimate)"] == f"{est['count']:,}"
    assert any("out-of-fold probabilities (2 folds)" in c.value for c in at.caption)


def test_validation_target_is_shown_and_clean_labels_use_all_of_them(scored):
    at = open_page("3_Scores.py")
    no_errors(at)
    ds, fitted = _fitted(scored)
    info = describe_target(ds, fitted, "utility")
    n_out = len(info["left_out"])
    assert n_out > 0
    assert any(f"Target: {info['n_used']} of {info['n_val']} validation samples; {n_out} left out as least plausible"
               in c.value for c in at.caption)
    left_out = _frame(at, "validation sample")
    assert left_out["validation sample"].tolist() == info["left_out"]
    predicted = fitted.module.eval()(ds.val.x[info["left_out"]]).detach()
    assert left_out["predicted"].tolist() == [ds.classes[int(p)] for p in (predicted[:, 0] > 0).long()]
    at.number_input(key="val-trim").set_value(0.2).run()
    assert any(f"Target: {ds.val.x.shape[0] - 20} of {ds.val.x.shape[0]} validation samples; 20 left out" in c.value
               for c in at.caption)
    at.checkbox(key="val-clean").check().run()
    assert any(f"Target: {info['n_val']} of {info['n_val']} validation samples (all of them)" in c.value for c in at.caption)
    at = _compute(at, ["ip"])
    runs = project_of(scored).state().runs
    assert [r.label for r in runs] == ["ip", "ip·trim=0"] and runs[1].impact_settings == {"val_trim": 0.0}
    table = _frame(at, "ip·trim=0").sort_values("row")
    expected = compute_scores(ds, fitted, "ip", "utility", impact_settings={"val_trim": 0.0})
    np.testing.assert_allclose(table["ip·trim=0"].to_numpy(), expected, rtol=1e-6)
    assert not np.allclose(table["ip·trim=0"].to_numpy(), table["ip"].to_numpy())  # the default trims


def test_impact_settings_go_into_the_run_and_its_scores(scored):
    """Issue 10: the fairness positive class and the attack's ε are set on the page; they name the column and key
    the cache, and the scores are the library's with those settings."""
    at = open_page("3_Scores.py")
    at.selectbox(key="impact").set_value("robustness").run()
    at.number_input(key="impact-robustness-epsilon").set_value(0.3).run()
    at = _compute(at, ["ip"])
    at.selectbox(key="impact").set_value("fairness").run()
    at.selectbox(key="impact-fairness-positive_class").set_value(0).run()
    at = _compute(at)
    runs = {r.label: r for r in project_of(scored).state().runs}
    assert set(runs) == {"ip", "ip·robustness·epsilon=0.3", "ip·fairness·positive_class=0"}
    assert runs["ip·robustness·epsilon=0.3"].impact_settings == {"epsilon": 0.3}
    assert runs["ip·fairness·positive_class=0"].impact_settings == {"positive_class": 0}
    ds, fitted = _fitted(scored)
    table = _frame(at, "ip·fairness·positive_class=0").sort_values("row")
    np.testing.assert_allclose(table["ip·robustness·epsilon=0.3"].to_numpy(),
                               compute_scores(ds, fitted, "ip", "robustness", impact_settings={"epsilon": 0.3}), rtol=1e-6)
    fair = compute_scores(ds, fitted, "ip", "fairness", impact_settings={"positive_class": 0})
    np.testing.assert_allclose(table["ip·fairness·positive_class=0"].to_numpy(), fair, rtol=1e-6)
    # (binary data: the gap in P(class 0) is the gap in P(class 1), so the scores match the default's)
    np.testing.assert_allclose(fair, compute_scores(ds, fitted, "ip", "fairness"), rtol=1e-6)
    # an impossible setting is said in one line and nothing can be computed
    at.selectbox(key="impact").set_value("robustness").run()
    at.number_input(key="impact-robustness-c").set_value(0.0).run()
    assert any("c must be positive" in e.value for e in at.error)
    assert next(b for b in at.button if b.label == "Compute scores").disabled


def test_ip_combined_is_left_out_for_the_fairness_impact(scored):
    at = open_page("3_Scores.py")
    at.selectbox(key="impact").set_value("fairness").run()
    no_errors(at)
    assert any("meant for the utility impact" in i.value for i in at.info)


def test_exact_influence_on_a_non_convex_model_says_what_its_hessian_is(scored):
    """Damping 0 on the MLP: the page warns that the Hessian is not positive definite, with the library's numbers."""
    ds, fitted = _fitted(scored)
    at = _tick(open_page("3_Scores.py"), ["exact"])
    at.number_input(key="setting-exact-damping").set_value(0.0)  # in the form: sent with Compute scores
    at = _compute(at)
    details: dict = {}
    compute_scores(ds, fitted, "exact", damping=0.0, details=details)
    if details["hessian_min_eigenvalue"] < 0:
        shown = [w.value for w in at.warning if "not positive definite" in w.value]
        assert shown, [w.value for w in at.warning]
        assert f"{details['hessian_min_eigenvalue']:.3g}".lstrip("-") in shown[0]
    else:
        assert not any("not positive definite" in w.value for w in at.warning)


def test_cached_results_are_keyed_by_project_and_data_not_only_by_the_model(workspace):
    """The same weights on two data sets: each project shows its own cleanlab count and validation target (the
    page's st.cache_data is shared by every session of the server)."""
    from safetensors.torch import save
    from streamlit.testing.v1 import AppTest

    from .conftest import APP

    a = Project.open("default", workspace)
    a.use_dataset("moons", seed=0)
    fitted = a.train("logreg", {"epochs": 30, "seed": 0})
    b = Project.open("b", workspace)
    b.use_dataset("moons", seed=1)  # other data, the same weights
    b.upload_weights(save({k: v.contiguous() for k, v in fitted.module.state_dict().items()}), "w.safetensors", "logreg")
    assert a.state().model_hash == b.state().model_hash
    expected = {}
    for proj in (a, b):
        proj.score(ScoreRun("confident_learning"))
        expected[proj.name] = (proj.label_issues(0)["count"], proj.describe_target("utility", {})["left_out"])
    assert expected["default"][0] != expected["b"][0] and expected["default"][1] != expected["b"][1]
    for name, (count, left_out) in expected.items():
        at = AppTest.from_file(APP, default_timeout=90)
        at.switch_page("app_pages/3_Scores.py")
        at.query_params["project"] = name
        at.run()
        no_errors(at)
        assert {m.label: m.value for m in at.metric}["Wrong labels (cleanlab's estimate)"] == f"{count:,}"
        assert _frame(at, "validation sample")["validation sample"].tolist() == left_out


def test_dask_clusters_are_picked_by_name_and_one_that_never_answers_fails_in_one_line(scored, monkeypatch):
    """Issue 21 §1: no address field; the clusters offered are the administrator's names. A named cluster whose port
    accepts and never answers (not a Dask scheduler) fails in one line, and Compute is usable again."""
    import socket

    monkeypatch.delenv("INFLUENCE_CONFIG", raising=False)
    monkeypatch.delenv("INFLUENCE_DASK_SCHEDULER", raising=False)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel completes connects; nobody ever answers
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        (scored / "server.toml").write_text(f'[server]\nmax_local_workers = 2\ndask_connect_timeout_s = 1\n'
                                            f'[server.clusters]\nsilent = "{address}"\n')
        at = open_page("3_Scores.py")
        no_errors(at)
        assert not [t for t in at.text_input if "dask" in t.label.lower() or "scheduler" in t.label.lower()]
        box = at.selectbox(key="dask-cluster")
        assert list(box.options) == ["this process", "local:1", "local:2", "silent"] and box.value == "this process"
        at = _tick(at, ["loss"])
        at.selectbox(key="dask-cluster").set_value("silent")  # in the form: sent with Compute scores
        next(b for b in at.button if b.label == "Compute scores").click().run()
        at = settle(at)
    failed = [e.value for e in at.error]
    assert len(failed) == 1 and "Dask cluster 'silent' did not answer as a Dask scheduler within 1 s" in failed[0]
    assert "\n" not in failed[0] and address not in failed[0]
    assert not next(b for b in at.button if b.label == "Compute scores").disabled


def _noisy_breast_cancer(workspace, tmp_path):
    """Breast cancer as a CSV with 10% of all labels flipped (validation rows included), logistic regression."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.data.iloc[:, :8].copy()
    rng = np.random.default_rng(0)
    label = data.target.to_numpy().copy()
    flipped = rng.choice(len(label), len(label) // 10, replace=False)
    label[flipped] = 1 - label[flipped]
    frame["label"] = label
    path = tmp_path / "cancer.csv"
    frame.to_csv(path, index=False)
    proj = project_of(workspace)
    proj.use_dataset(str(path), seed=0)
    proj.train("logreg")
    return proj, frame


def test_left_out_validation_samples_are_named_by_their_row_in_the_file(workspace, tmp_path):
    proj, frame = _noisy_breast_cancer(workspace, tmp_path)
    at = open_page("3_Scores.py")
    no_errors(at)
    ds = proj.dataset()
    info = describe_target(ds, proj.model(ds), "utility")
    shown_rows = _frame(at, "validation sample")
    rows = shown_rows["validation sample"].tolist()
    assert rows == info["left_out_index"] and rows != info["left_out"]  # carved at random: rows ≠ positions
    # The named rows are the file's: their labels in the file are the labels the table gives.
    assert [ds.classes[int(v)] for v in frame["label"].to_numpy()[rows]] == shown_rows["given label"].tolist()


def test_trusting_a_noisy_validation_split_warns_with_the_count_and_says_so_in_the_title(workspace, tmp_path):
    proj, _ = _noisy_breast_cancer(workspace, tmp_path)
    ds = proj.dataset()
    info = describe_target(ds, proj.model(ds), "utility")
    rows = np.asarray(info["left_out"])
    contradicted = int((proj.predictions("val")[0][rows] != ds.val.y.numpy()[rows]).sum())
    assert contradicted > 0  # the flipped validation labels the model sees through
    at = open_page("3_Scores.py")
    assert not at.warning or all("validation label" not in w.value for w in at.warning)
    at.checkbox(key="val-clean").check().run()
    no_errors(at)
    assert any(f"another class than the given label for {contradicted} of the {len(rows)} validation samples"
               in w.value for w in at.warning), [w.value for w in at.warning]
    at = _compute(at, ["ip"])
    assert any("IP" in c and "target trusts every validation label" in c for c in _frame(at, "row").columns)


def test_a_fairness_ranking_shows_which_group_and_label_cells_its_flagged_samples_come_from(scored):
    """Issue 17: the breakdown of the flagged samples by group × label cell, counted here by hand from the scores."""
    proj = project_of(scored)
    proj.score(ScoreRun("ip", "fairness"))
    at = open_page("3_Scores.py")
    no_errors(at)
    frame = next(t.value for t in at.dataframe if "reweighing weight" in t.value.columns)
    ds = proj.dataset()
    run = next(r for r in proj.state().runs if r.impact == "fairness")
    flagged = np.argsort(proj.scores()[run.label], kind="stable")[: len(proj.flagged(run.label))]
    y, s = ds.train.y.numpy(), ds.train.sensitive.numpy()
    for _, row in frame.iterrows():
        g, label = int(row["cell"].split(" = ")[1][0]), row["cell"].rsplit("label ", 1)[1]
        cell = (s == g) & (y == ds.classes.index(label))
        assert row["samples"] == cell.sum() and row["flagged"] == cell[flagged].sum()
    assert frame["flagged"].sum() == len(flagged)
    assert any("flagged samples" in c.value for c in at.caption)


def test_a_run_added_while_the_table_draws_does_not_break_it(scored, monkeypatch):
    """CI found it: the scoring job added "loss" between the table's read of the scores and of the primary run, and
    the page said "KeyError: 'loss'". The table shows the runs it read; the next run shows the new one."""
    proj = project_of(scored)
    monkeypatch.setattr(proj.dataset(), "noise_mask", None)  # primary run: the loss as soon as there is one
    original, added = Project.scores, []

    def scores_then_a_job_adds_a_run(self, state=None):
        out = original(self, state)
        if out and not added:
            added.append(self.score(ScoreRun("loss")))
        return out

    monkeypatch.setattr(Project, "scores", scores_then_a_job_adds_a_run)
    at = open_page("3_Scores.py")
    no_errors(at)
    assert added and any("ordered by IP, in-sample" in m.value for m in at.markdown)
    assert any("ordered by Loss, in-sample" in m.value for m in open_page("3_Scores.py").markdown)
