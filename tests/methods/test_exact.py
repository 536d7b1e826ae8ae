"""Exact influence (influence_core/methods/exact.py) against an explicit autograd Hessian and leave-one-out retraining."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import influence_core as ic
from influence_core.models import TrainConfig, train_model

from tests.reference import loss_terms, per_sample_grad_loop, relative_error, validation_loss_grad


def _autograd_hessian(fitted, dataset) -> torch.Tensor:
    """H of the flat training objective by torch.autograd.functional.hessian."""
    module = copy.deepcopy(fitted.module).double().eval()
    shapes = [p.shape for p in module.parameters()]
    names = [n for n, _ in module.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
    x, y = dataset.train.x.double(), dataset.train.y

    def objective(flat):
        params, start = {}, 0
        for n, s in zip(names, shapes):
            k = int(np.prod(s))
            params[n] = flat[start : start + k].view(s)
            start += k
        out = torch.func.functional_call(module, params, (x,))
        return loss_terms(out, y).mean() + 0.5 * fitted.l2 * (flat * flat).sum()

    return torch.autograd.functional.hessian(objective, theta)


def _explicit_reference(fitted, dataset, damping=0.0):
    """grad fᵀ (H + λI)⁻¹ grad ℓ_i with H from torch.autograd.functional.hessian of the flat objective."""
    module = copy.deepcopy(fitted.module).double().eval()
    x, y = dataset.train.x.double(), dataset.train.y
    hessian = _autograd_hessian(fitted, dataset)
    hessian += damping * torch.eye(len(hessian), dtype=hessian.dtype)
    target = validation_loss_grad(module, dataset.val.x.double(), dataset.val.y)
    grads = per_sample_grad_loop(module, x, y)
    return grads @ torch.linalg.solve(hessian, target)


def test_exact_matches_explicit_autograd_hessian_logreg(blobs, blobs_logreg_fit):
    got = ic.compute_scores(blobs, blobs_logreg_fit, "exact")
    assert relative_error(got, _explicit_reference(blobs_logreg_fit, blobs)) < 1e-8


def test_exact_matches_explicit_autograd_hessian_mlp_with_damping(moons, moons_mlp_fit):
    got = ic.compute_scores(moons, moons_mlp_fit, "exact", damping=0.01)
    assert relative_error(got, _explicit_reference(moons_mlp_fit, moons, damping=0.01)) < 1e-6


def test_exact_agrees_with_leave_one_out_retraining(blobs, blobs_logreg_fit):
    """Spearman ≥ 0.9 between predicted and actual change in validation loss when each sample is removed."""
    impact = ic.make_impact("utility")
    base = impact.value(blobs_logreg_fit.module, blobs)
    predicted = ic.compute_scores(blobs, blobs_logreg_fit, "exact") / len(blobs.train)
    actual = np.empty(len(blobs.train))
    state = {k: v.clone() for k, v in blobs_logreg_fit.module.state_dict().items()}
    for i in range(len(blobs.train)):
        keep = np.delete(np.arange(len(blobs.train)), i)
        loo = blobs.with_train(blobs.train.subset(keep))
        # Warm start from θ: L-BFGS then converges to the leave-one-out optimum precisely and fast.
        refit = train_model(loo, "logreg", TrainConfig(seed=0), init_state=state)
        actual[i] = impact.value(refit.module, blobs) - base
    rho = spearmanr(predicted, actual)[0]
    print(f"exact vs leave-one-out: Spearman {rho:.3f}, Pearson {np.corrcoef(predicted, actual)[0, 1]:.3f}")
    assert rho >= 0.9


def test_exact_refuses_models_over_the_size_limit():
    from influence_core.data import Dataset, Split

    wide = Dataset("wide", Split(torch.randn(20, 3, 32, 32), torch.randint(0, 2, (20,))),
                   Split(torch.randn(8, 3, 32, 32), torch.randint(0, 2, (8,))),
                   Split(torch.randn(8, 3, 32, 32), torch.randint(0, 2, (8,))), ["a", "b"], kind="image")
    fitted = train_model(wide, "cnn", TrainConfig(epochs=1, batch_size=10))
    with pytest.raises(ic.InfluenceError, match="at most 20,000 parameters"):
        ic.compute_scores(wide, fitted, "exact")


def test_exact_reports_the_hessian_spectrum_and_damps_automatically(moons, moons_mlp_fit):
    """The MLP's Hessian at the trained weights has a negative eigenvalue (checked by an independent autograd
    Hessian); damping 0 says so, automatic damping makes H + λI positive definite with the stated λ."""
    from influence_core.api import compute_scores

    hessian = _autograd_hessian(moons_mlp_fit, moons).numpy()
    smallest, largest = np.linalg.eigvalsh(hessian)[[0, -1]]
    assert smallest < 0
    raw: dict = {}
    compute_scores(moons, moons_mlp_fit, "exact", damping=0.0, details=raw)
    assert abs(raw["hessian_min_eigenvalue"] - smallest) < 1e-6 * abs(largest)
    assert "not positive definite" in raw["note"] and "does not fix it" in raw["note"]
    auto: dict = {}
    got = compute_scores(moons, moons_mlp_fit, "exact", details=auto)
    assert auto["automatic"] and auto["damping"] == pytest.approx(-smallest + 0.01 * abs(largest), rel=1e-6)
    expected = compute_scores(moons, moons_mlp_fit, "exact", damping=auto["damping"])
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    convex: dict = {}
    compute_scores(*_blobs_pair(), "exact", details=convex)
    assert convex["damping"] == 0.0 and convex["note"] is None  # logistic regression with L2: positive definite


def _blobs_pair():
    import influence_core as ic
    from influence_core.models import train_model

    ds = ic.load_dataset("blobs", seed=0)
    return ds, train_model(ds, "logreg")
