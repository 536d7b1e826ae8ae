"""Impact functions (influence_core/impacts.py): the sign of the scores agrees with actual retraining."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import influence_core as ic
from influence_core.models import TrainConfig, train_model


def _retrain_without(ds, arch, remove, seed=0):
    keep = np.setdiff1d(np.arange(len(ds.train)), remove)
    return train_model(ds.with_train(ds.train.subset(keep)), arch, TrainConfig(seed=seed))


@pytest.mark.parametrize("name,arch", [("blobs", "logreg"), ("moons", "mlp")])
@pytest.mark.parametrize("impact_name", ["fairness", "robustness", "utility"])
def test_removing_most_detrimental_lowers_the_impact(name, arch, impact_name):
    """Retrain without the 5 lowest-IP samples: f goes down; without the 5 highest: it does not go down as much."""
    ds = ic.load_dataset(name, seed=0)
    fitted = train_model(ds, arch, TrainConfig(seed=0))
    impact = ic.make_impact(impact_name)
    scores = ic.compute_scores(ds, fitted, "ip", impact_name)
    order = np.argsort(scores)
    # Robustness: the attacked set is fixed from the full model, so the comparison is on the same inputs.
    from influence_core.impacts import attack
    from influence_core.grads import select_params
    from influence_core.data import Split

    split = ds.val
    if impact_name == "robustness":
        split = Split(attack(fitted.module, select_params(fitted.module), ds.val.x, ds.val.y), ds.val.y, ds.val.sensitive)
    value = lambda m: ic.make_impact("utility" if impact_name == "robustness" else impact_name).value(m, ds, split=split)  # noqa: E731
    base = value(fitted.module)
    worst_removed = value(_retrain_without(ds, arch, order[:5]).module)
    best_removed = value(_retrain_without(ds, arch, order[-5:]).module)
    print(f"{name}/{arch}/{impact_name}: full {base:.4f}, -5 detrimental {worst_removed:.4f}, -5 helpful {best_removed:.4f}")
    assert worst_removed < base
    assert worst_removed < best_removed


def test_fairness_needs_a_sensitive_attribute(blobs, blobs_logreg_fit):
    plain = ic.Dataset("plain", ic.Split(blobs.train.x, blobs.train.y), ic.Split(blobs.val.x, blobs.val.y),
                       ic.Split(blobs.test.x, blobs.test.y), blobs.classes)
    with pytest.raises(ic.InfluenceError, match="needs a sensitive attribute"):
        ic.compute_scores(plain, blobs_logreg_fit, "ip", "fairness")


@pytest.mark.parametrize("impact", ["fairness", "equalized_odds"])
def test_a_positive_class_the_data_set_lacks_is_refused_and_class_0_is_the_complement(impact, blobs, blobs_logreg_fit):
    """On binary data p̂(y = 0) = 1 − p̂(y = 1): class 0 is honoured, class 2 is one line (it used to act as class 0)."""
    with pytest.raises(ic.InfluenceError, match="positive_class 2 is not a class of data set 'blobs' \\(classes 0–1\\)"):
        ic.compute_scores(blobs, blobs_logreg_fit, "ip", impact, impact_settings={"positive_class": 2})
    one = ic.compute_scores(blobs, blobs_logreg_fit, "ip", "fairness")
    zero = ic.compute_scores(blobs, blobs_logreg_fit, "ip", "fairness", impact_settings={"positive_class": 0})
    np.testing.assert_allclose(zero, one, rtol=1e-5, atol=1e-6 * float(np.abs(one).max()))  # |gap| is the same


def test_fairness_value_is_the_parity_gap(blobs, blobs_logreg_fit):
    with torch.no_grad():
        p = torch.sigmoid(blobs_logreg_fit.module(blobs.val.x)[:, 0])
    s = blobs.val.sensitive
    expected = abs(float(p[s == 0].mean() - p[s == 1].mean()))
    assert ic.make_impact("fairness").value(blobs_logreg_fit.module, blobs) == pytest.approx(expected, rel=1e-6)


def test_fgsm_attack_raises_the_loss_for_nonlinear_models(moons, moons_mlp_fit):
    util = ic.make_impact("utility").value(moons_mlp_fit.module, moons)
    robust = ic.make_impact("robustness", epsilon=0.2).value(moons_mlp_fit.module, moons)
    assert robust > util


def test_unknown_impact_is_a_one_line_error(blobs, blobs_logreg_fit):
    with pytest.raises(ic.InfluenceError, match="unknown impact 'speed'; choose one of: utility, fairness, robustness"):
        ic.compute_scores(blobs, blobs_logreg_fit, "ip", "speed")


def test_trimmed_target_leaves_out_the_highest_loss_validation_samples(blobs, blobs_logreg_fit):
    """val_trim = s: the target is the gradient of the mean loss over the validation samples that remain after the
    ⌊s·n⌋ with the highest loss are left out — checked against an autograd gradient over those rows."""
    import numpy as np

    from influence_core.api import describe_target
    from influence_core.grads import flatten, select_params
    from influence_core.impacts import DEFAULT_VAL_TRIM, make_impact
    from tests.reference import loss_terms, validation_loss_grad

    import copy

    ds, fitted = blobs, blobs_logreg_fit
    module = copy.deepcopy(fitted.module).double().eval()
    with torch.no_grad():
        losses = loss_terms(module(ds.val.x.double()), ds.val.y).numpy()
    kept = np.sort(np.argsort(losses)[: len(losses) - int(0.25 * len(losses))])
    expected = validation_loss_grad(module, ds.val.x[kept].double(), ds.val.y[kept])
    params = select_params(module)
    got = flatten(make_impact("utility", val_trim=0.25).target_gradient(module, params, ds, dtype=torch.float64))
    assert torch.allclose(got, expected, rtol=1e-8, atol=1e-12)
    info = describe_target(ds, fitted, "utility", {"val_trim": 0.25})
    assert info["n_used"] == len(kept) and info["left_out"] == sorted(set(range(len(losses))) - set(kept.tolist()))
    assert describe_target(ds, fitted, "utility", {"val_trim": 0.0})["left_out"] == []
    assert describe_target(ds, fitted, "utility")["n_used"] == len(losses) - int(DEFAULT_VAL_TRIM * len(losses))
    full = flatten(make_impact("utility", val_trim=0.0).target_gradient(module, params, ds, dtype=torch.float64))
    assert not torch.allclose(full, got)


# --- counterfactual impact and joint rankings (issue 18 §2)

def _with_twins(ds, twin_of):
    """A copy of ``ds`` whose splits carry counterfactual twins (``split.twin``, set by hand as text data does)."""
    val, test = ({"x": s.x, "y": s.y, "sensitive": s.sensitive} for s in (ds.val, ds.test))
    return ic.Dataset(ds.name + "-twins", ds.train, ic.Split(**val, twin=ic.Split(twin_of(val["x"]), val["y"])),
                      ic.Split(**test, twin=ic.Split(twin_of(test["x"]), test["y"])), ds.classes,
                      noise_mask=ds.noise_mask)


def _mirror(x):
    """The "demographic swap" of the blobs/moons tests: feature 0 mirrored."""
    t = x.clone()
    t[:, 0] = -t[:, 0]
    return t


def _linear(weight, bias, classes):
    from influence_core.models.architectures import LogisticRegression

    module = LogisticRegression((len(weight[0]),), classes)
    with torch.no_grad():
        module.linear.weight.copy_(torch.tensor(weight))
        module.linear.bias.copy_(torch.tensor(bias))
    return module


def _pairs_dataset(x, twin, classes=2):
    y = torch.zeros(len(x), dtype=torch.int64)
    split = ic.Split(torch.tensor(x), y, twin=ic.Split(torch.tensor(twin), y))
    return ic.Dataset("pairs", split, split, split, [str(c) for c in range(classes)])


def test_counterfactual_value_by_hand_binary():
    """x = 0, 1, 2 with twins 1, 1, 0 under p = σ(x): (|σ0−σ1| + 0 + |σ2−σ0|)/3
    = (0.231058578630 + 0 + 0.380797077978)/3 = 0.203951885536."""
    ds = _pairs_dataset([[0.0], [1.0], [2.0]], [[1.0], [1.0], [0.0]])
    value = ic.make_impact("counterfactual").value(_linear([[1.0]], [0.0], 2), ds)
    assert value == pytest.approx(0.203951885536, abs=1e-7)


def test_counterfactual_value_by_hand_multiclass():
    """Three classes, logits = (x, 0, 0): x = ln 2 gives p = (1/2, 1/4, 1/4), its twin x = 0 gives (1/3, 1/3, 1/3);
    TV = ½(1/6 + 1/12 + 1/12) = 1/6; the second pair is its own twin (0); mean 1/12."""
    ds = _pairs_dataset([[np.log(2.0)], [0.5]], [[0.0], [0.5]], classes=3)
    value = ic.make_impact("counterfactual").value(_linear([[1.0], [0.0], [0.0]], [0.0, 0.0, 0.0], 3), ds)
    assert value == pytest.approx(1 / 12, abs=1e-7)


@pytest.mark.parametrize("classes", [2, 3])
def test_counterfactual_gradient_matches_autograd_of_the_formula(classes):
    g = torch.Generator().manual_seed(0)
    x, twin = torch.randn(20, 4, generator=g), torch.randn(20, 4, generator=g)
    n_out = 1 if classes == 2 else classes
    w, b = torch.randn(n_out, 4, generator=g).double(), torch.randn(n_out, generator=g).double()  # float32 values
    ds = _pairs_dataset(x.tolist(), twin.tolist(), classes)
    module = _linear(w.tolist(), b.tolist(), classes).double()
    from influence_core.grads import select_params

    got = ic.make_impact("counterfactual").target_gradient(module, select_params(module), ds, batch_size=7,
                                                           dtype=torch.float64)

    # Independent formula: binary |σ(z) − σ(z̃)|, multiclass ½ Σ_c |softmax_c(z) − softmax_c(z̃)|, averaged.
    wr, br = w.clone().requires_grad_(), b.clone().requires_grad_()
    z, zt = x.double() @ wr.T + br, twin.double() @ wr.T + br
    if classes == 2:
        f = (torch.sigmoid(z[:, 0]) - torch.sigmoid(zt[:, 0])).abs().mean()
    else:
        f = 0.5 * (torch.softmax(z, 1) - torch.softmax(zt, 1)).abs().sum(1).mean()
    gw, gb = torch.autograd.grad(f, (wr, br))
    torch.testing.assert_close(got["linear.weight"], gw, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got["linear.bias"], gb, rtol=1e-10, atol=1e-12)


def test_counterfactual_without_twins_is_one_line(blobs, blobs_logreg_fit):
    with pytest.raises(ic.InfluenceError, match="needs twins") as info:
        ic.compute_scores(blobs, blobs_logreg_fit, "ip", "counterfactual")
    assert "\n" not in str(info.value)


IMPACT_METHODS = ["ip", "ip_ensemble", "ip_classwise", "exact", "lissa", "ekfac", "datainf", "tracin", "tda", "gex"]
FAST_SETTINGS = {"lissa": {"depth": 50}}


@pytest.fixture(scope="module")
def moons_twins():
    ds = _with_twins(ic.load_dataset("moons", seed=0, n_train=80, n_val=40, n_test=40, flipped_per_class=4), _mirror)
    return ds, train_model(ds, "mlp", TrainConfig(epochs=40, checkpoint_every=20))


@pytest.mark.parametrize("method", IMPACT_METHODS)
def test_every_method_scores_counterfactual_and_joint(method, moons_twins):
    """Each impact method runs on the counterfactual impact; utility+counterfactual is the rank average of the
    method's own utility and counterfactual scores (computed here with scipy directly)."""
    from scipy.stats import rankdata

    ds, fitted = moons_twins
    kw = FAST_SETTINGS.get(method, {})
    cf = ic.compute_scores(ds, fitted, method, "counterfactual", **kw)
    util = ic.compute_scores(ds, fitted, method, "utility", **kw)
    assert cf.shape == (len(ds.train),) and np.isfinite(cf).all() and np.abs(cf).max() > 0
    assert not np.allclose(cf, util)
    joint = ic.compute_scores(ds, fitted, method, "utility+counterfactual", **kw)
    if method in ("ip_ensemble", "gex"):  # random masks / perturbations are drawn per run: compare shape only
        assert joint.shape == cf.shape
        return
    expected = (rankdata(util) + rankdata(cf)) / 2 / len(cf)
    np.testing.assert_allclose(joint, expected, rtol=0, atol=1e-12)


def test_joint_refuses_a_method_meant_for_one_impact(moons_twins):
    ds, fitted = moons_twins
    with pytest.raises(ic.InfluenceError, match="meant for the utility impact"):
        ic.compute_scores(ds, fitted, "ip_combined", "utility+counterfactual")


def test_joint_gradient_combination_is_the_sum_of_unit_gradients(moons_twins):
    """combine=gradient: IP against ∇f_u/‖∇f_u‖ + ∇f_c/‖∇f_c‖ equals the same sum of the parts' IP scores."""
    ds, fitted = moons_twins
    from influence_core.grads import flatten, select_params

    module = fitted.module.double()
    params = select_params(module)
    norms = [float(flatten(ic.make_impact(n).target_gradient(module, params, ds, dtype=torch.float64)).norm())
             for n in ("utility", "counterfactual")]
    fitted.module.float()
    joint = ic.compute_scores(ds, fitted, "ip", "utility+counterfactual", impact_settings={"combine": "gradient"})
    parts = [ic.compute_scores(ds, fitted, "ip", n) / norm for n, norm in zip(("utility", "counterfactual"), norms)]
    np.testing.assert_allclose(joint, parts[0] + parts[1], rtol=1e-4, atol=1e-6)


def test_joint_names_settings_and_errors():
    from influence_core.impacts import JointImpact, impact_settings_for

    joint = ic.make_impact("utility+fairness", val_trim=0.0, positive_class=0)
    assert isinstance(joint, JointImpact) and joint.name == "utility+fairness"
    assert joint.parts == (ic.make_impact("utility", val_trim=0.0), ic.make_impact("fairness", positive_class=0))
    assert impact_settings_for("utility+fairness", val_trim=0.1, c=2.0, positive_class=1) == {"val_trim": 0.1,
                                                                                            "positive_class": 1}
    for bad, match in [("utility+nothing", "unknown impact"), ("utility+utility", "twice"),
                       ("utility+", "unknown impact")]:
        with pytest.raises(ic.InfluenceError, match=match):
            ic.make_impact(bad)
    with pytest.raises(ic.InfluenceError, match="no setting epsilon"):
        ic.make_impact("utility+fairness", epsilon=0.1)
    with pytest.raises(ic.InfluenceError, match="combine"):
        ic.make_impact("utility+fairness", combine="max")
    from influence_core.impacts import JOINT_RANKINGS, describe_impact

    assert describe_impact("utility+fairness") == "joint ranking: rank average of utility and fairness"
    assert describe_impact("counterfactual") == ic.IMPACTS["counterfactual"].description
    assert all(ic.make_impact(name).name == name for name in JOINT_RANKINGS)
    # A caller needing one target direction (sharded scoring) is told, in one line, that a rank average has none.
    with pytest.raises(ic.InfluenceError, match="averages ranks") as info:
        joint.target_gradient(None, {}, None)
    assert "\n" not in str(info.value)


def test_trimming_by_counterfactual_lowers_the_test_fair_score_more_than_random():
    """Issue 18 §2: on text-shortcut (training labels follow gender 20% of the time), retraining without the 5%
    most detrimental samples by counterfactual IP lowers the test fair score more than removing a random 5%, for
    each of 3 seeds (measured, mean of 3 seeds at 1,000 training rows: 0.079 full, 0.079 random, 0.056 counterfactual)."""
    fair = ic.make_impact("counterfactual")
    for seed in range(3):
        ds = ic.load_dataset("text-shortcut", seed=seed)  # 1,000 rows: margins 0.02-0.03 (600: 0.005 on seed 1)
        fitted = train_model(ds, "text-linear", TrainConfig(seed=seed))
        k = int(0.05 * len(ds.train))
        by_cf = np.argsort(ic.compute_scores(ds, fitted, "ip", "counterfactual"), kind="stable")[:k]
        at_random = np.random.default_rng(seed).choice(len(ds.train), k, replace=False)
        cf_fair, random_fair = (fair.value(_retrain_without(ds, "text-linear", remove, seed).module, ds, split=ds.test)
                                for remove in (by_cf, at_random))
        assert cf_fair < random_fair, (seed, cf_fair, random_fair)


def test_project_scores_joint_rankings_through_the_cache(tmp_path):
    """The facade takes "utility+counterfactual" like any impact name: cached under its own key, equal to a direct
    computation, and another key than either part."""
    from influence_core.project import Project, ScoreRun

    proj = Project.open("cf", tmp_path)
    proj.use_dataset("text-shortcut", seed=0, n_train=200, n_val=60, n_test=60)
    proj.train("text-linear")
    joint = proj.score(ScoreRun("ip", "utility+counterfactual"))
    direct = ic.compute_scores(proj.dataset(), proj.model(), "ip", "utility+counterfactual")
    np.testing.assert_allclose(joint, direct, rtol=0, atol=1e-12)
    proj.score(ScoreRun("ip", "counterfactual"))
    assert len(list((proj.root / "scores").glob("*.npy"))) == 2


def test_the_impacts_offered_are_those_whose_own_check_passes(blobs, blobs_logreg_fit):
    """No sensitive attribute: fairness, equalised odds and utility+fairness are refused with a reason that says
    where to name the column; no twins: the counterfactual ones; what is left is offered."""
    from influence_core.impacts import impacts_refused
    from influence_core.project import Project

    bare = ic.Dataset("bare", blobs.train, ic.Split(blobs.val.x, blobs.val.y), blobs.test, blobs.classes)
    refused = impacts_refused(bare)
    assert set(refused) == {"fairness", "equalized_odds", "utility+fairness", "counterfactual",
                            "utility+counterfactual"}
    assert "Sensitive attribute column" in refused["fairness"] and "needs twins" in refused["counterfactual"]
    assert Project.impacts_offered(bare, blobs_logreg_fit) == ["utility", "robustness"]
    assert impacts_refused(bare, discrete_inputs=True)["robustness"] == ic.impacts.TOKEN_IDS_REFUSAL


def test_twins_identical_to_their_texts_are_refused_and_one_that_differs_is_counted():
    from influence_core.impacts import twins_that_differ

    same = _pairs_dataset([[0.0], [1.0]], [[0.0], [1.0]])
    assert twins_that_differ(same) == 0
    with pytest.raises(ic.InfluenceError, match="nothing to measure"):
        ic.make_impact("counterfactual").check(same)
    one = _pairs_dataset([[0.0], [1.0]], [[0.0], [2.0]])
    assert twins_that_differ(one) == 1
    ic.make_impact("counterfactual").check(one)


def test_a_joint_rankings_target_describes_each_part(blobs, blobs_logreg_fit):
    """utility+fairness: the utility part leaves out its highest-loss validation samples, the fairness part none; the
    CLI said one count for both before."""
    joint = ic.describe_target(blobs, blobs_logreg_fit, "utility+fairness", {"val_trim": 0.2})
    utility, fairness = joint["parts"]
    n, n_out = len(blobs.val), int(np.floor(0.2 * len(blobs.val)))
    assert (utility["impact"], fairness["impact"], joint["impact"]) == ("utility", "fairness", "utility+fairness")
    assert utility["n_used"] == n - n_out and fairness["n_used"] == n and fairness["left_out"] == []
    with torch.no_grad():  # the highest losses, computed here
        logits = blobs_logreg_fit.module.eval()(blobs.val.x)[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, blobs.val.y.float(), reduction="none")
    assert sorted(utility["left_out"]) == sorted(np.argsort(-loss.numpy())[:n_out].tolist())
    assert joint["left_out"] == utility["left_out"] and joint["n_used"] == n - n_out
