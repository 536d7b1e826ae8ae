"""Small shared fixtures: the synthetic sets with their models, trained once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import influence_core as ic
import influence_core.engine

# The test models are tiny: one thread is faster than two contending ones (and steadier on a loaded machine).
torch.set_num_threads(1)

SHARED_DATA = Path(os.environ.get("INFLUENCE_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()
# The offline files the real-data tests read (CIFAR-10N labels and image subset, CIFAR-100N labels, Adult, Bank).
SHARED_FILES = ("cifar_n/cifar10n_labels.npz", "cifar_n/cifar100n_labels.npz", "cifar10_subset_original_order.npz",
                "adult/adult.data", "adult/adult.test", "bank/bank-full.csv")


def missing_shared_data() -> str | None:
    """Why the real-data tests cannot run here (the offline files are missing), or None."""
    absent = [f for f in SHARED_FILES if not (SHARED_DATA / f).exists()]
    if not absent:
        return None
    return (f"offline data not found: {SHARED_DATA / absent[0]} is missing (a fresh clone without ../shared/data; "
            "set INFLUENCE_SHARED_DATA to run the real-data tests)")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The offline data folder; a test that asks for it is skipped, with the reason, where the files are missing."""
    reason = missing_shared_data()
    if reason:
        pytest.skip(reason)
    return SHARED_DATA


@pytest.fixture(scope="session")
def blobs():
    return ic.load_dataset("blobs", seed=0)


@pytest.fixture(scope="session")
def blobs_logreg_fit(blobs):
    return ic.train_model(blobs, "logreg", ic.TrainConfig(seed=0))


@pytest.fixture
def tiny_image_zip(tmp_path) -> str:
    """An image zip of two class folders, ten random 8×8 PNGs each (image data without the shared files)."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path / "pets.zip"
    with zipfile.ZipFile(path, "w") as z:
        for c in ("cat", "dog"):
            for i in range(10):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buf, format="PNG")
                z.writestr(f"{c}/{i}.png", buf.getvalue())
    return str(path)


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


@pytest.fixture
def counted(monkeypatch):
    """Counts calls of the real trainer and scorer as the engine sees them (a cache hit calls neither)."""
    calls = {"train": 0, "score": 0}
    real_train, real_score = influence_core.engine.train_model, influence_core.engine.compute_scores

    def train(*args, **kwargs):
        calls["train"] += 1
        return real_train(*args, **kwargs)

    def score(*args, **kwargs):
        calls["score"] += 1
        return real_score(*args, **kwargs)

    monkeypatch.setattr(influence_core.engine, "train_model", train)
    monkeypatch.setattr(influence_core.engine, "compute_scores", score)
    return calls


@pytest.fixture
def scored_blobs(tmp_path):
    """A project "p" of user alice: blobs, a logistic regression, its loss scores, the lowest 20% flagged."""
    from influence_core.project import Project, ScoreRun

    proj = Project.open("p", tmp_path, user="alice")
    proj.use_dataset("blobs", seed=0)
    proj.train("logreg")
    proj.score(ScoreRun("loss"))
    proj.set_flag_share(0.2)
    return proj
