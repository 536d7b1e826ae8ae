"""LiSSA converges to exact influence (explicit Hessian) on logistic regression; divergence is a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from influence_core.api import compute_scores
from influence_core.errors import InfluenceError

from tests.methods.helpers import loop_grads, module_at, objective_hessian, rel_err, val_loss_gradient


def test_converges_to_exact_influence_on_logistic_regression(blobs_logreg):
    ds, fm = blobs_logreg
    damping = 0.01
    module = module_at(fm)
    direction = np.linalg.solve(objective_hessian(fm, ds, damping), val_loss_gradient(module, ds))
    exact = loop_grads(module, ds.train.x, ds.train.y) @ direction
    # Full-batch HVPs with scale above the largest eigenvalue (0.13 here): the Neumann series converges geometrically.
    lissa = compute_scores(ds, fm, "lissa", damping=damping, depth=150, scale=0.2, hvp_batch_size=len(ds.train))
    assert np.corrcoef(lissa, exact)[0, 1] >= 0.99
    assert rel_err(lissa, exact) < 0.02
    # Stochastic mini-batch HVPs with the automatic scale still rank like exact influence.
    stochastic = compute_scores(ds, fm, "lissa", damping=damping, depth=300, repeats=2)
    assert np.corrcoef(stochastic, exact)[0, 1] >= 0.99


def test_shallow_recursion_is_not_yet_exact(blobs_logreg):
    ds, fm = blobs_logreg
    deep = compute_scores(ds, fm, "lissa", depth=150, scale=0.2, hvp_batch_size=len(ds.train))
    shallow = compute_scores(ds, fm, "lissa", depth=2, scale=2.0, hvp_batch_size=len(ds.train))
    assert rel_err(shallow, deep) > 0.1


def test_tiny_scale_diverges_with_a_one_line_error(moons_mlp):
    ds, fm = moons_mlp
    with pytest.raises(InfluenceError, match="LiSSA diverged .* larger scale") as err:
        compute_scores(ds, fm, "lissa", scale=1e-3, depth=500)
    assert "\n" not in str(err.value)


def test_bad_settings_are_one_line_errors(blobs_logreg):
    ds, fm = blobs_logreg
    with pytest.raises(InfluenceError, match="depth ≥ 1"):
        compute_scores(ds, fm, "lissa", depth=0)
