"""Self-LiSSA against −g_iᵀ (H + λI)⁻¹ g_i with the explicit Hessian and brute-force per-sample gradients."""

from __future__ import annotations

import numpy as np
import pytest

from influence_core.api import compute_scores
from influence_core.errors import InfluenceError

from tests.methods.helpers import loop_grads, module_at, objective_hessian, rel_err


def test_converges_to_explicit_self_influence(blobs_logreg):
    ds, fm = blobs_logreg
    damping = 0.01
    grads = loop_grads(module_at(fm), ds.train.x, ds.train.y)
    expected = -np.einsum("ip,ip->i", grads, np.linalg.solve(objective_hessian(fm, ds, damping), grads.T).T)
    ours = compute_scores(ds, fm, "self_lissa", damping=damping, depth=150, scale=0.2,
                          hvp_batch_size=len(ds.train), sample_chunk=40)  # chunks that do not divide N
    assert np.corrcoef(ours, expected)[0, 1] >= 0.999
    assert rel_err(ours, expected) < 0.02
    assert (ours <= 0).all()


def test_tiny_scale_diverges_with_a_one_line_error(moons_mlp):
    ds, fm = moons_mlp
    with pytest.raises(InfluenceError, match="LiSSA diverged"):
        compute_scores(ds, fm, "self_lissa", scale=1e-3, depth=500)
