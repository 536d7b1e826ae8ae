"""Gradient geometry, gradient similarity, features and the decision grid against hand-written references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from influence_core.analysis import (angle_geometry, decision_grid, gradient_similarity, penultimate_features,
                                     plane_coordinates, predict)

from tests.reference import per_sample_grad_loop, validation_loss_grad


def test_plane_coordinates_match_a_qr_basis():
    rng = np.random.default_rng(0)
    u, w = rng.normal(size=7), rng.normal(size=7)
    g = rng.normal(size=(40, 7))
    coords, u_xy, w_xy = plane_coordinates(g @ u, g @ w, u @ u, u @ w, w @ w)
    q, r = np.linalg.qr(np.stack([u, w], axis=1))
    q = q * np.sign(np.diag(r))  # first axis along +u, second with w on its positive side
    assert np.allclose(coords, g @ q)
    assert np.allclose(u_xy, q.T @ u) and np.allclose(w_xy, q.T @ w)
    assert np.allclose(coords @ u_xy, g @ u) and np.allclose(coords @ w_xy, g @ w)


def test_angle_geometry_on_logistic_regression(blobs, blobs_logreg_fit):
    geo = angle_geometry(blobs, blobs_logreg_fit, impact_settings={"val_trim": 0.0})
    module = blobs_logreg_fit.module.double()
    try:
        x, y = blobs.train.x.double(), blobs.train.y
        grads = per_sample_grad_loop(module, x, y)
        u = validation_loss_grad(module, blobs.val.x.double(), blobs.val.y)
        # Hessian of the L2-regularised mean logistic loss, by hand: (1/n) Σ σ(1−σ) x̃x̃ᵀ + λI, x̃ = [x, 1].
        xt = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
        p = torch.sigmoid(module(x)[:, 0]).detach()
        hessian = (xt * (p * (1 - p))[:, None]).T @ xt / len(x) + blobs_logreg_fit.l2 * torch.eye(3, dtype=x.dtype)
        w = torch.linalg.solve(hessian, u)
    finally:
        blobs_logreg_fit.module.float()
    np.testing.assert_allclose(geo.ip, (grads @ u).numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(geo.influence, (grads @ w).numpy(), rtol=1e-5, atol=1e-8)
    assert geo.coords.shape == (len(blobs.train), 2)


def test_angle_geometry_lissa_path_agrees_with_exact(blobs, blobs_logreg_fit):
    exact = angle_geometry(blobs, blobs_logreg_fit, damping=0.01)
    # full-batch LiSSA is the deterministic Neumann series: it converges to the exact damped solve
    lissa = angle_geometry(blobs, blobs_logreg_fit, damping=0.01, hessian="lissa",
                           lissa_settings={"depth": 3000, "hvp_batch_size": len(blobs.train)})
    assert lissa.hessian.startswith("LiSSA")
    np.testing.assert_allclose(lissa.ip, exact.ip, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(lissa.influence, exact.influence, rtol=1e-3, atol=1e-5)


def test_gradient_similarity_equals_per_sample_dot_products(moons, moons_mlp_fit):
    row = 7
    sim = gradient_similarity(moons, moons_mlp_fit, row)
    grads = per_sample_grad_loop(moons_mlp_fit.module, moons.train.x, moons.train.y).double()
    np.testing.assert_allclose(sim, (grads @ grads[row]).numpy(), rtol=1e-4, atol=1e-6)
    assert sim[row] == pytest.approx(float(grads[row] @ grads[row]), rel=1e-4)


def test_features_predictions_and_grid(moons, moons_mlp_fit):
    module = moons_mlp_fit.module
    feats = penultimate_features(moons_mlp_fit, moons.train)
    with torch.no_grad():
        np.testing.assert_allclose(feats, module.body(moons.train.x).double().numpy(), rtol=1e-6, atol=1e-6)
        logits = module(moons.train.x)[:, 0]
    labels, probs = predict(moons_mlp_fit, moons.train)
    assert np.array_equal(labels, (logits > 0).long().numpy())
    np.testing.assert_allclose(probs[:, 1], torch.sigmoid(logits).numpy(), rtol=1e-6)
    xs, ys, grid = decision_grid(moons_mlp_fit, moons.train.x.numpy(), steps=9)
    with torch.no_grad():
        corner = torch.sigmoid(module(torch.tensor([[xs[3], ys[5]]], dtype=torch.float32)))[0, 0].item()
    assert grid[5, 3] == pytest.approx(corner, rel=1e-5)
