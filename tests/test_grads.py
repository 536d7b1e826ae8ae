"""Functional maths (influence_core/grads.py) against plain autograd."""

from __future__ import annotations

import copy

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
