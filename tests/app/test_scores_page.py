"""Scores page: says what is missing; computes methods in the background (in-sample or out of fold, with the chosen
validation target); the leaderboard where the wrong labels are known; cleanlab's estimate; a column per method."""

import numpy as np
import pytest

from influence_core.api import compute_scores, describe_target, estimate_label_issues
from influence_core.data import load_dataset
from influence_core.figures import detection_report
from influence_core.session import get_workspace, load_selection

from .conftest import no_errors, open_page, settle


def _fitted(root):
    ds = load_dataset("moons", seed=0)
    return ds, get_workspace(root).get_or_train(ds, "mlp", load_selection(root).train_config())


def _compute(at, methods):
    at.multiselect[0].set_value(methods).run()
    next(b for b in at.button if b.label == "Compute scores").click().run()
    at = settle(at)
    no_errors(at)
    return at


def _frame(at, column):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_without_model_links_to_the_model_page(workspace):
    at = open_page("3_Scores.py")
    assert not at.exception
    assert any("train or upload a model first" in i.value for i in at.info)


def test_ip_combined_loss_and_ip_come_first_and_are_the_default(scored):
    at = open_page("3_Scores.py")
    no_errors(at)
    from influence_core.methods import METHODS

    expected = [f"{METHODS[n].label} ({METHODS[n].kind}, {METHODS[n].cost})" for n in ("ip_combined", "loss", "ip")]
    assert at.multiselect[0].options[:3] == expected
    assert at.multiselect[0].value == ["ip_combined", "loss", "ip"]
    assert at.number_input(key="folds").value == 0


def test_compute_ip_ensemble_adds_a_column_equal_to_the_library(scored):
    at = _compute(open_page("3_Scores.py"), ["ip", "ip_ensemble"])
    sel = load_selection(scored)
    assert [r.label for r in sel.runs] == ["ip", "ip_ensemble"]
    table = _frame(at, "ip_ensemble")
    ds, fitted = _fitted(scored)
    expected = compute_scores(ds, fitted, "ip_ensemble", "utility")
    np.testing.assert_allclose(table.sort_values("index")["ip_ensemble"].to_numpy(), expected, rtol=1e-6)
    # sorted most detrimental first by the primary method
    assert np.all(np.diff(table["ip"].to_numpy()) >= 0)


def test_leaderboard_matches_the_detection_report(scored):
    at = _compute(open_page("3_Scores.py"), ["loss", "margin"])
    ds, fitted = _fitted(scored)
    ws = get_workspace(scored)
    scores = {r.label: ws.get_or_score(ds, fitted, **r.score_kwargs()) for r in load_selection(scored).runs}
    assert set(scores) == {"ip", "loss", "margin"}
    board = _frame(at, "AUROC")
    expected = detection_report(scores, ds.noise_mask.numpy())
    assert board["method"].tolist() == expected["method"].tolist()  # best first
    np.testing.assert_allclose(board["AUROC"].to_numpy(), expected["AUROC"].to_numpy())
    np.testing.assert_allclose(board["precision@5%"].to_numpy(), expected["precision@5%"].to_numpy())
    assert board["ranking"].tolist()[board["method"].tolist().index("loss")] == "Loss, in-sample"
    assert (board["AUROC"] > 0.8).all()  # moons' flipped labels are easy to find


def test_out_of_fold_run_equals_the_workspace_and_cleanlab_estimates_the_wrong_labels(scored, tmp_path):
    at = open_page("3_Scores.py")
    at.number_input(key="folds").set_value(2).run()
    at = _compute(at, ["ip", "confident_learning"])
    sel = load_selection(scored)
    assert [r.label for r in sel.runs] == ["ip", "ip·oof2", "confident_learning·oof2"]
    assert [r.folds for r in sel.runs] == [0, 2, 2]
    ds, fitted = _fitted(scored)
    table = _frame(at, "ip·oof2").sort_values("index")
    # the same call made directly, in a fresh workspace (fold models trained from scratch there)
    fresh = get_workspace(tmp_path / "fresh")
    expected = fresh.get_or_score(ds, fitted, "ip", "utility", folds=2)
    np.testing.assert_allclose(table["ip·oof2"].to_numpy(), expected, rtol=1e-6)
    assert not np.allclose(table["ip·oof2"].to_numpy(), table["ip"].to_numpy())  # not the in-sample scores
    np.testing.assert_allclose(table["confident_learning·oof2"].to_numpy(),
                               fresh.get_or_score(ds, fitted, "confident_learning", folds=2), rtol=1e-6)
    # cleanlab's own count of wrong labels, on the fold models' out-of-fold probabilities
    est = estimate_label_issues(ds, fitted, fold_models=fresh.fold_models(ds, fitted, 2), folds=2)
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
    assert _frame(at, "validation sample")["validation sample"].tolist() == info["left_out"]
    at.number_input(key="val-trim").set_value(0.2).run()
    assert any(f"Target: {ds.val.x.shape[0] - 20} of {ds.val.x.shape[0]} validation samples; 20 left out" in c.value
               for c in at.caption)
    at.checkbox(key="val-clean").check().run()
    assert any(f"Target: {info['n_val']} of {info['n_val']} validation samples (all of them)" in c.value for c in at.caption)
    at = _compute(at, ["ip"])
    sel = load_selection(scored)
    assert [r.label for r in sel.runs] == ["ip", "ip·trim=0"] and sel.runs[1].impact_settings == {"val_trim": 0.0}
    table = _frame(at, "ip·trim=0").sort_values("index")
    expected = compute_scores(ds, fitted, "ip", "utility", impact_settings={"val_trim": 0.0})
    np.testing.assert_allclose(table["ip·trim=0"].to_numpy(), expected, rtol=1e-6)
    assert not np.allclose(table["ip·trim=0"].to_numpy(), table["ip"].to_numpy())  # the default trims


def test_ip_combined_is_left_out_for_the_fairness_impact(scored):
    at = open_page("3_Scores.py")
    at.selectbox[0].set_value("fairness").run()
    no_errors(at)
    assert any("meant for the utility impact" in i.value for i in at.info)


def test_exact_influence_on_a_non_convex_model_says_what_its_hessian_is(scored):
    """Damping 0 on the MLP: the page warns that the Hessian is not positive definite, with the library's numbers."""
    ds, fitted = _fitted(scored)
    at = open_page("3_Scores.py")
    at.multiselect[0].set_value(["exact"]).run()
    at.number_input(key="setting-exact-damping").set_value(0.0).run()
    next(b for b in at.button if b.label == "Compute scores").click().run()
    at = settle(at)
    no_errors(at)
    details: dict = {}
    compute_scores(ds, fitted, "exact", damping=0.0, details=details)
    if details["hessian_min_eigenvalue"] < 0:
        shown = [w.value for w in at.warning if "not positive definite" in w.value]
        assert shown, [w.value for w in at.warning]
        assert f"{details['hessian_min_eigenvalue']:.3g}".lstrip("-") in shown[0]
    else:
        assert not any("not positive definite" in w.value for w in at.warning)
