"""GEX: zero extra steps is IP; with steps it is IP at models reached by an independent torch.optim.SGD loop."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from influence_core.api import compute_scores
from influence_core.errors import InfluenceError
from influence_core.models.train import fitted_from_module

from tests.methods.helpers import rel_err
from tests.reference import loss_terms


@pytest.mark.parametrize("case", ["blobs_logreg", "moons_mlp"])
def test_zero_steps_equals_ip(case, request):
    ds, fm = request.getfixturevalue(case)
    for impact in ("utility", "fairness", "robustness"):
        gex = compute_scores(ds, fm, "gex", impact, steps=0, ensemble_size=3)
        np.testing.assert_allclose(gex, compute_scores(ds, fm, "ip", impact), rtol=1e-6, atol=1e-9)


def _sgd_copy(ds, fm, steps, lr, batch, seed):
    """The same mini-batches as GEX (torch.randint with the seed), stepped by torch.optim.SGD on loss + L2."""
    module = copy.deepcopy(fm.module).train(False)
    opt = torch.optim.SGD(module.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(ds.train), (batch,), generator=gen)
        opt.zero_grad()
        loss = loss_terms(module(ds.train.x[idx]), ds.train.y[idx]).mean()
        loss = loss + 0.5 * fm.l2 * sum((p * p).sum() for p in module.parameters())
        loss.backward()
        opt.step()
    return fitted_from_module(module, fm.arch, ds, l2=fm.l2)


def test_steps_equal_ip_averaged_over_sgd_models(moons_mlp):
    ds, fm = moons_mlp
    settings = dict(steps=5, lr=0.05, sgd_batch_size=16, seed=3)
    gex = compute_scores(ds, fm, "gex", ensemble_size=2, **settings)
    models = [_sgd_copy(ds, fm, 5, 0.05, 16, 3 + k) for k in range(2)]
    expected = np.mean([compute_scores(ds, m, "ip") for m in models], axis=0)
    assert rel_err(gex, expected) < 1e-4
    assert rel_err(gex, compute_scores(ds, fm, "ip")) > 1e-3  # the extra steps do move the model


def test_diverging_sgd_is_a_one_line_error(moons_mlp):
    ds, fm = moons_mlp
    with pytest.raises(InfluenceError, match="smaller lr"):
        compute_scores(ds, fm, "gex", steps=50, lr=1e30, ensemble_size=1)
