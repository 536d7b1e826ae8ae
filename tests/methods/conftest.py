"""Tiny shared fixtures for the method tests: blobs + logistic regression, moons + MLP (with checkpoints)."""

from __future__ import annotations

import pytest

from influence_core.data import load_dataset
from influence_core.models import TrainConfig, train_model


@pytest.fixture(autouse=True)
def whole_validation_target(monkeypatch):
    """The reference computations here differentiate the whole validation loss, so the methods are compared at
    val_trim = 0; the trimmed default target is tested against its own reference in tests/test_impacts.py."""
    from influence_core import impacts

    monkeypatch.setattr(impacts, "DEFAULT_VAL_TRIM", 0.0)


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


@pytest.fixture(scope="session")
def tiny_images_cnn():
    """A 3-class set of random 3×8×8 'images' (class = brightest channel) with the SmallCNN, two checkpoints."""
    import torch

    from influence_core.data.base import Dataset, Split

    gen = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        x = torch.randn(n, 3, 8, 8, generator=gen)
        y = x.mean((2, 3)).argmax(1)
        return Split(x, y, (torch.rand(n, generator=gen) < 0.5).long())

    ds = Dataset(name="tiny-images", train=split(60), val=split(30), test=split(30), classes=["a", "b", "c"], kind="image")
    return ds, train_model(ds, "cnn", TrainConfig(epochs=4, batch_size=16, checkpoint_every=2))
