"""Fixtures for the AppTest page tests: a fresh workspace per test, optionally with a trained model and IP scores."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from influence_core.jobs import wait_all
from influence_core.project import Project, ScoreRun

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TRAIN = {"epochs": 40, "lr": 0.01, "l2": 0.001, "seed": 0, "checkpoint_every": 0}


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "ws"
    monkeypatch.setenv("INFLUENCE_WORKSPACE", str(root))
    return root


@pytest.fixture(scope="session")
def scored_template(tmp_path_factory) -> Path:
    """A workspace holding moons, a small MLP and its IP scores (built once, copied per test)."""
    root = tmp_path_factory.mktemp("scored")
    proj = Project.open("default", root)
    proj.use_dataset("moons", seed=0)
    proj.train("mlp", dict(TRAIN))
    proj.score(ScoreRun("ip"))
    return root


@pytest.fixture
def scored(workspace, scored_template) -> Path:
    shutil.copytree(scored_template, workspace)
    return workspace


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    if page:
        at.switch_page(f"app_pages/{page}")
    return at.run()


def settle(at: AppTest) -> AppTest:
    """Let background jobs finish, then re-run the script (what the polling fragment does in a browser)."""
    wait_all(120)
    return at.run()


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def shown(value: str) -> str:
    """What a Markdown element shows: backslash escapes (app_pages/_common.plain) removed."""
    import re

    return re.sub(r"\\(.)", r"\1", value)


def project_of(root: Path, name: str = "default") -> Project:
    """The project a page test's app works in (AppTest runs without a URL: the default project)."""
    return Project.open(name, root)
