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
