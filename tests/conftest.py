"""Small shared fixtures: the synthetic sets with their models, trained once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import influence_core as ic

SHARED_DATA = Path(os.environ.get("INFLUENCE_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def blobs():
    return ic.load_dataset("blobs", seed=0)


@pytest.fixture(scope="session")
def blobs_logreg_fit(blobs):
    return ic.train_model(blobs, "logreg", ic.TrainConfig(seed=0))


@pytest.fixture(scope="session")
def moons():
    return ic.load_dataset("moons", seed=0)


@pytest.fixture(scope="session")
def moons_mlp_fit(moons):
    return ic.train_model(moons, "mlp", ic.TrainConfig(seed=0))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _private_workspace(tmp_path_factory, monkeypatch):
    """Every test gets its own workspace folder: no test writes ./workspace or sees another's cache."""
    monkeypatch.setenv("INFLUENCE_WORKSPACE", str(tmp_path_factory.mktemp("workspace")))
