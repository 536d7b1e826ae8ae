"""Model tests that need real images read them from ../shared/data (or $INFLUENCE_SHARED_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _offline_data(tmp_path_factory, monkeypatch):
    env = os.environ.get("INFLUENCE_SHARED_DATA")
    shared = Path(env) if env else (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
    monkeypatch.setenv("INFLUENCE_SHARED_DATA", str(shared))
    monkeypatch.setenv("INFLUENCE_DATA_DIR", str(tmp_path_factory.getbasetemp() / "empty-cache"))
