"""Real data for the data tests comes from ../shared/data (or $INFLUENCE_SHARED_DATA); the download cache is an
empty temporary folder so a user's cached CIFAR copy cannot change what the tests see."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_data_path() -> Path:
    env = os.environ.get("INFLUENCE_SHARED_DATA")
    return Path(env) if env else (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_path()
    if not (path / "cifar_n" / "cifar10n_labels.npz").exists():
        pytest.skip(f"offline data folder {path} is missing")
    return path


@pytest.fixture(autouse=True)
def _isolated_data_env(shared_data, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("INFLUENCE_SHARED_DATA", str(shared_data))
    monkeypatch.setenv("INFLUENCE_DATA_DIR", str(tmp_path_factory.getbasetemp() / "empty-cache"))
