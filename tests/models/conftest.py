"""Model tests read real images from ../shared/data (or $INFLUENCE_SHARED_DATA), never a user's download cache."""

from __future__ import annotations

import pytest

from tests.conftest import SHARED_DATA


@pytest.fixture(autouse=True)
def _offline_data(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("INFLUENCE_SHARED_DATA", str(SHARED_DATA))
    monkeypatch.setenv("INFLUENCE_DATA_DIR", str(tmp_path_factory.getbasetemp() / "empty-cache"))
