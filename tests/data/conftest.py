"""Real data for the data tests comes from ../shared/data (or $INFLUENCE_SHARED_DATA); the download cache is an
empty temporary folder so a user's cached CIFAR copy cannot change what the tests see. Tests that read the real
files ask for the `shared_data` fixture (tests/conftest.py), which skips them with a reason when the folder is
missing; the others (CSV, zip, paths, synthetic) always run."""

from __future__ import annotations

import pytest

from tests.conftest import SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_data_env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("INFLUENCE_SHARED_DATA", str(SHARED_DATA))
    monkeypatch.setenv("INFLUENCE_DATA_DIR", str(tmp_path_factory.getbasetemp() / "empty-cache"))
