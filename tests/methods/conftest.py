"""Tiny shared fixtures for the method tests: blobs + logistic regression, moons + MLP (with checkpoints)."""

from __future__ import annotations

import pytest

from influence_core.data import load_dataset
from influence_core.models import TrainConfig, train_model


@pytest.fixture(scope="session")
def blobs_logreg():
    """Blobs with an L-BFGS logistic regression; one checkpoint (the final model, lr 1)."""
    ds = load_dataset("blobs", seed=0)
    return ds, train_model(ds, "logreg", TrainConfig(checkpoint_every=1))


@pytest.fixture(scope="session")
def moons_mlp():
    """Moons (120 training points) with a short-trained MLP and three checkpoints."""
    ds = load_dataset("moons", seed=0, n_train=120, n_val=60, n_test=60, flipped_per_class=5)
    return ds, train_model(ds, "mlp", TrainConfig(epochs=60, checkpoint_every=20))
