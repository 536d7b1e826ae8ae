"""IP Ensemble (influence_core/methods/ip_ensemble.py)."""

from __future__ import annotations

import copy

import numpy as np
import torch

import influence_core as ic

from tests.reference import per_sample_grad_loop, relative_error, validation_loss_grad


def test_zero_dropout_equals_ip(moons, moons_mlp_fit):
    ip = ic.compute_scores(moons, moons_mlp_fit, "ip")
    ens = ic.compute_scores(moons, moons_mlp_fit, "ip_ensemble", ensemble_size=3, dropout=0.0)
    np.testing.assert_allclose(ens, ip, rtol=1e-6, atol=1e-9)


def test_seeded_dropout_is_reproducible_and_differs_from_ip(moons, moons_mlp_fit):
    a = ic.compute_scores(moons, moons_mlp_fit, "ip_ensemble", ensemble_size=4, dropout=0.2, seed=7)
    b = ic.compute_scores(moons, moons_mlp_fit, "ip_ensemble", ensemble_size=4, dropout=0.2, seed=7)
    c = ic.compute_scores(moons, moons_mlp_fit, "ip_ensemble", ensemble_size=4, dropout=0.2, seed=8)
    ip = ic.compute_scores(moons, moons_mlp_fit, "ip")
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a, ip)


def test_ensemble_is_mean_of_ip_at_masked_models(blobs, blobs_logreg_fit):
    """Rebuild the K masked models by hand (same mask draws) and average brute-force IP at each."""
    k, p, seed = 3, 0.5, 3
    gen = torch.Generator().manual_seed(seed)
    expected = torch.zeros(len(blobs.train), dtype=torch.float64)
    for _ in range(k):
        module = copy.deepcopy(blobs_logreg_fit.module)
        with torch.no_grad():
            for prm in module.parameters():
                prm.mul_((torch.rand(prm.shape, generator=gen) >= p).to(prm.dtype))
        target = validation_loss_grad(module, blobs.val.x, blobs.val.y)
        expected += (per_sample_grad_loop(module, blobs.train.x, blobs.train.y) @ target).double()
    got = ic.compute_scores(blobs, blobs_logreg_fit, "ip_ensemble", ensemble_size=k, dropout=p, seed=seed)
    assert relative_error(got, expected / k) < 1e-5


def test_bad_settings_fail_with_one_line_message(moons, moons_mlp_fit):
    import pytest

    with pytest.raises(ic.InfluenceError, match="0 ≤ dropout < 1"):
        ic.compute_scores(moons, moons_mlp_fit, "ip_ensemble", dropout=1.5)
    with pytest.raises(ic.InfluenceError, match="has no setting depth"):
        ic.compute_scores(moons, moons_mlp_fit, "ip_ensemble", depth=3)


def test_setting_of_the_wrong_type_is_a_one_line_error(moons, moons_mlp_fit):
    import pytest

    with pytest.raises(ic.InfluenceError, match="setting ensemble_size must be a whole number, got 2.5"):
        ic.compute_scores(moons, moons_mlp_fit, "ip_ensemble", ensemble_size=2.5)
    with pytest.raises(ic.InfluenceError, match="setting dropout must be a float, got 'x'"):
        ic.compute_scores(moons, moons_mlp_fit, "ip_ensemble", dropout="x")
    # Ints are accepted where a float is expected (e.g. --set dropout=0 from the command line).
    assert ic.compute_scores(moons, moons_mlp_fit, "ip_ensemble", ensemble_size=1, dropout=0).shape == (len(moons.train),)
