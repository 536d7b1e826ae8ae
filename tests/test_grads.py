"""Functional maths (influence_core/grads.py) against plain autograd."""

from __future__ import annotations

import copy

import pytest
import torch

from influence_core.grads import (explicit_hessian, flatten, per_sample_grads, select_params, training_objective_hvp,
                                  unflatten)

from tests.reference import per_sample_grad_loop, relative_error


def test_per_sample_grads_match_loop(moons, moons_mlp_fit):
    module = copy.deepcopy(moons_mlp_fit.module).eval()
    params = select_params(module)
    x, y = moons.train.x[:30], moons.train.y[:30]
    got = per_sample_grads(module, params, x, y)
    flat = torch.cat([got[k].reshape(30, -1) for k in params], dim=1)
    assert relative_error(flat, per_sample_grad_loop(module, x, y)) < 1e-6


def test_hvp_and_explicit_hessian_match_double_backward(moons, moons_mlp_fit):
    module = copy.deepcopy(moons_mlp_fit.module).double().eval()
    params = select_params(module)
    x, y = moons.train.x.double(), moons.train.y
    l2 = 0.01
    hessian = explicit_hessian(module, params, lambda: [(x[:100], y[:100]), (x[100:], y[100:])], len(y), l2, chunk=64)
    v = torch.randn(hessian.shape[0], dtype=torch.float64)
    # Independent: double backward through the module's own parameters.
    from tests.reference import loss_terms

    loss = loss_terms(module(x), y).mean() + 0.5 * l2 * sum((p * p).sum() for p in module.parameters())
    g = torch.autograd.grad(loss, list(module.parameters()), create_graph=True)
    hv_ref = torch.autograd.grad(flatten(dict(enumerate(g))), list(module.parameters()), grad_outputs=v)
    hv_ref = torch.cat([h.reshape(-1) for h in hv_ref])
    assert relative_error(hessian @ v, hv_ref) < 1e-10
    hv = training_objective_hvp(module, params, unflatten(v, params), [(x, y)], len(y), l2)
    assert relative_error(flatten(hv), hv_ref) < 1e-10


def test_select_params_head_and_prefix(moons_mlp_fit):
    assert set(select_params(moons_mlp_fit.module, "head", "head")) == {"head.weight", "head.bias"}
    assert set(select_params(moons_mlp_fit.module, "body.1")) == {"body.1.weight", "body.1.bias"}
    import pytest

    from influence_core.errors import InfluenceError

    with pytest.raises(InfluenceError, match="no parameters match 'decoder'"):
        select_params(moons_mlp_fit.module, "decoder")


def test_lanczos_finds_an_extreme_eigenvalue_power_iteration_misses():
    """A spectrum like a trained network's Hessian: λ_min = −0.1 beside 150 eigenvalues near 0 and a few up to 4.
    40 Lanczos steps find both ends (eigvalsh of the same matrix is the reference); all `dim` steps are exact."""
    from influence_core.grads import lanczos_extremes

    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(200, 200, generator=gen, dtype=torch.float64))
    spectrum = torch.cat([torch.tensor([-0.1]), 1e-3 * torch.rand(150, generator=gen, dtype=torch.float64),
                          torch.linspace(0.5, 4.0, 49, dtype=torch.float64)])
    a = q @ torch.diag(spectrum) @ q.T
    truth = torch.linalg.eigvalsh(a)
    smallest, largest = lanczos_extremes(lambda v: a @ v, 200, steps=40)
    assert smallest == pytest.approx(float(truth[0]), abs=1e-6) and largest == pytest.approx(float(truth[-1]), abs=1e-9)
    full = lanczos_extremes(lambda v: a @ v, 200, steps=200)
    assert full == pytest.approx((float(truth[0]), float(truth[-1])), abs=1e-9)
