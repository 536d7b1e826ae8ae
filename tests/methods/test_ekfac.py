"""EKFAC against an independent construction (logistic regression), brute-force per-sample layer gradients
(Conv2d + Linear, multiclass) and exact influence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from influence_core.api import compute_scores
from influence_core.errors import InfluenceError
from influence_core.impacts import make_impact
from influence_core.methods import ScoringContext
from influence_core.methods.ekfac import covered_layers, fit_ekfac
from influence_core.models.train import fitted_from_module

from tests.methods.helpers import loop_grads, module_at, objective_hessian, rel_err, val_loss_gradient
from tests.reference import loss_terms


def test_logistic_regression_matches_an_independent_ekfac(blobs_logreg):
    """One Linear layer, one logit: Q_A = eigenvectors of E[ā āᵀ] (ā = [x, 1]), S is a scalar, and the corrected
    eigenvalues are Λ_k = E_i[p_i(1 − p_i)(q_kᵀ ā_i)²] (the Fisher of BCE taken in expectation over labels)."""
    ds, fm = blobs_logreg
    damping = 0.01
    module = module_at(fm)
    x = ds.train.x.double().numpy()
    a = np.hstack([x, np.ones((len(x), 1))])
    _, q = np.linalg.eigh(a.T @ a / len(a))
    p = torch.sigmoid(module(ds.train.x.double())).detach().numpy()[:, 0]
    lam = ((p * (1 - p))[:, None] * (a @ q) ** 2).mean(0)
    inverse = q @ np.diag(1.0 / (lam + fm.l2 + damping)) @ q.T
    expected = loop_grads(module, ds.train.x, ds.train.y) @ inverse @ val_loss_gradient(module, ds)
    assert rel_err(compute_scores(ds, fm, "ekfac", damping=damping), expected) < 1e-4


def test_correlates_with_exact_influence_on_logistic_regression(blobs_logreg):
    ds, fm = blobs_logreg
    damping = 0.01
    module = module_at(fm)
    exact = loop_grads(module, ds.train.x, ds.train.y) @ np.linalg.solve(objective_hessian(fm, ds, damping), val_loss_gradient(module, ds))
    ekfac = compute_scores(ds, fm, "ekfac", damping=damping)
    assert np.corrcoef(ekfac, exact)[0, 1] >= 0.99  # observed 0.998 (blobs, seed 0)


def test_corrections_match_brute_force_layer_gradients(tiny_images_cnn):
    """Λ = E_i Σ_c p̂(c|x_i) (Q_Sᵀ G_ic Q_A)², with G_ic each layer's gradient of ℓ(x_i, c) by autograd per sample."""
    ds, fm = tiny_images_cnn
    ctx = ScoringContext(fm, ds, make_impact("utility"), batch_size=23)
    module = ctx.module(torch.float64)
    layers = covered_layers(module, ctx.selected_params(module))
    assert [type(l.module) for l in layers] == [nn.Conv2d, nn.Conv2d, nn.Linear, nn.Linear]
    fit_ekfac(ctx, module, layers, (0.0, 1.0))
    expected = [torch.zeros_like(l.corrections) for l in layers]
    x = ds.train.x.double()
    for i in range(len(x)):
        logits = module(x[i : i + 1])
        probs = torch.softmax(logits, -1)[0].detach()
        for c in range(3):
            loss = loss_terms(logits, torch.tensor([c]))[0]
            for k, layer in enumerate(layers):
                gw, gb = torch.autograd.grad(loss, [layer.module.weight, layer.module.bias], retain_graph=True)
                g = torch.cat([gw.reshape(gw.shape[0], -1), gb[:, None]], dim=1)
                expected[k] += probs[c] * (layer.q_s.T @ g @ layer.q_a) ** 2 / len(x)
    for layer, exp in zip(layers, expected):
        assert rel_err(layer.corrections, exp) < 1e-8


def test_layers_other_than_linear_and_conv_are_refused(blobs_logreg):
    ds, _ = blobs_logreg
    model = nn.Sequential(nn.Linear(2, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    fitted = fitted_from_module(model, "custom", ds, l2=0.01)
    with pytest.raises(InfluenceError, match=r"nn.Linear and nn.Conv2d layers only.*'1\.(weight|bias)'"):
        compute_scores(ds, fitted, "ekfac")
    assert np.isfinite(compute_scores(ds, fitted, "ekfac", params="0,2")).all()  # the linear layers alone are fine
