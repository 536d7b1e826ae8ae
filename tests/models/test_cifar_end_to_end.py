"""End to end on real images: the small CNN trains one short epoch on a few hundred CIFAR-10N images, IP
matches plain autograd, and its weights survive a save / load round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.autograd_reference import brute_force_ip
from influence_core import compute_scores, load_dataset
from influence_core.models import TrainConfig, train_model
from influence_core.models.loading import load_fitted, save_state_dict


@pytest.fixture(scope="module")
def trained(shared_data):
    ds = load_dataset("cifar10n", label_set="worst", max_train=330, max_test=100, val_fraction=0.1)
    return ds, train_model(ds, "cnn", TrainConfig(epochs=1, batch_size=64, seed=0))


def test_cnn_one_epoch_then_ip_matches_autograd(trained):
    ds, fitted = trained
    assert len(ds.train) == 297 and len(fitted.history) == 1
    # The reference differentiates the whole validation loss: no trimmed target here.
    scores = compute_scores(ds, fitted, "ip", "utility", batch_size=100, impact_settings={"val_trim": 0.0})
    assert scores.shape == (297,) and np.isfinite(scores).all()
    rows = [0, 1, 50, 123, 296]
    np.testing.assert_allclose(scores[rows], brute_force_ip(fitted.module, ds, rows).numpy(), rtol=1e-3, atol=1e-7)


def test_cnn_weights_round_trip(trained, tmp_path):
    ds, fitted = trained
    loaded = load_fitted(save_state_dict(fitted, tmp_path / "cnn.safetensors"), "cnn", ds)
    with torch.no_grad():
        assert torch.equal(loaded.module(ds.test.x), fitted.module(ds.test.x))
