"""Class-target IP against a brute-force autograd loop (per-class validation gradients × per-sample gradients),
and IP + loss against the rank average computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from influence_core.api import compute_scores
from influence_core.errors import InfluenceError
from tests.methods.helpers import loop_grads, module_at, rel_err
from tests.reference import loss_terms, validation_loss_grad


def _class_matrix(ds, fitted) -> np.ndarray:
    """M[i, c] = g_cᵀ∇ℓ_i with g_c the mean-loss gradient over the validation samples of class c (no trimming)."""
    module = module_at(fitted)
    grads = loop_grads(module, ds.train.x, ds.train.y)
    cols = []
    for c in range(ds.num_classes):
        rows = (ds.val.y == c).nonzero()[:, 0]
        g = validation_loss_grad(module, ds.val.x[rows].double(), ds.val.y[rows]).detach().numpy()
        cols.append(grads @ g)
    return np.stack(cols, 1)


@pytest.mark.parametrize("fixture", ["blobs_logreg", "tiny_images_cnn"])
def test_classwise_ip_matches_the_autograd_loop(fixture, request):
    ds, fitted = request.getfixturevalue(fixture)
    m = _class_matrix(ds, fitted)
    y = ds.train.y.numpy()
    others = m.sum(1) - m[np.arange(len(y)), y]
    got = compute_scores(ds, fitted, "ip_classwise", impact_settings={"val_trim": 0.0}, reduce="others")
    assert rel_err(got, others) < 1e-4
    got_min = compute_scores(ds, fitted, "ip_classwise", impact_settings={"val_trim": 0.0})
    assert rel_err(got_min, m.min(1)) < 1e-4


def test_classwise_ip_refuses_the_fairness_gap(blobs_logreg):
    ds, fitted = blobs_logreg
    with pytest.raises(InfluenceError, match="class-conditional targets"):
        compute_scores(ds, fitted, "ip_classwise", "fairness")
    with pytest.raises(InfluenceError, match="reduce must be one of"):
        compute_scores(ds, fitted, "ip_classwise", reduce="max")


def test_ip_combined_is_the_rank_average_of_ip_and_loss(moons_mlp):
    ds, fitted = moons_mlp
    ip = compute_scores(ds, fitted, "ip")
    module = fitted.module.eval()
    with torch.no_grad():
        loss = -loss_terms(module(ds.train.x).double(), ds.train.y).numpy()
    n = len(ip)
    expected = 0.5 * rankdata(loss) / n + 0.5 * rankdata(ip) / n
    np.testing.assert_allclose(compute_scores(ds, fitted, "ip_combined", ip_variant="ip"), expected, atol=1e-12)
    weighted = compute_scores(ds, fitted, "ip_combined", loss_weight=1.0)
    np.testing.assert_allclose(weighted, rankdata(loss) / n, atol=1e-12)
    classwise = compute_scores(ds, fitted, "ip_classwise")
    np.testing.assert_allclose(compute_scores(ds, fitted, "ip_combined", ip_variant="ip_classwise"),
                               0.5 * rankdata(loss) / n + 0.5 * rankdata(classwise) / n, atol=1e-12)
    # auto: two classes -> plain IP
    np.testing.assert_allclose(compute_scores(ds, fitted, "ip_combined"), expected, atol=1e-12)


def test_ip_combined_is_for_the_utility_impact_only(blobs_logreg):
    ds, fitted = blobs_logreg
    with pytest.raises(InfluenceError, match="meant for the utility impact, not fairness"):
        compute_scores(ds, fitted, "ip_combined", "fairness")
