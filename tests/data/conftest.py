"""Real data for the data tests comes from ../shared/data (or $INFLUENCE_SHARED_DATA); the download cache is an
empty temporary folder so a user's cached CIFAR copy cannot change what the tests see."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "cifar_n" / "cifar10n_labels.npz").exists():
        pytest.skip(f"offline data folder {SHARED_DATA} is missing")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_data_env(shared_data, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("INFLUENCE_SHARED_DATA", str(shared_data))
    monkeypatch.setenv("INFLUENCE_DATA_DIR", str(tmp_path_factory.getbasetemp() / "empty-cache"))
