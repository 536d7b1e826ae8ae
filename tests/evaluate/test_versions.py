"""Evaluate two versions of the cleaned data set: each retrained model equals an independent retrain, with the same
seed, on the training split built by hand from the version's removals and relabels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from influence_core.data.base import Split
from influence_core.errors import InfluenceError
from influence_core.evaluate.versions import version_table
from influence_core.models import train_model
from influence_core.project import Project, ScoreRun


def _by_hand(ds, config, removed: set[int], relabelled: dict[int, int], seed: int) -> tuple[float, float]:
    """Test accuracy and mean test loss of logreg trained on the cleaned rows (built here, not by the library)."""
    keep = [r for r in range(len(ds.train)) if r not in removed]
    y = ds.train.y.clone()
    for r, k in relabelled.items():
        y[r] = k
    train = Split(ds.train.x[keep], y[keep])
    fitted = train_model(ds.with_train(train), "logreg", replace(config, seed=seed, checkpoint_every=0))
    with torch.no_grad():
        z = fitted.module(ds.test.x)[:, 0]  # one logit: p(class 1) = σ(z)
    target = ds.test.y.float()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, target).item()
    return float(((z > 0).long() == ds.test.y).float().mean()), loss


def test_two_versions_retrained_equal_an_independent_retrain(tmp_path):
    proj = Project.open("ev", tmp_path, user="alice")
    proj.use_dataset("blobs", seed=0)
    proj.train("logreg")
    proj.score(ScoreRun("loss"))
    ds = proj.dataset()
    proj.save_version("raw")
    flagged = [int(r) for r in proj.flagged()][:8]
    proj.record(flagged[:5], "remove", session="s")
    flip = {r: 1 - int(ds.train.y[r]) for r in flagged[5:]}
    for r, k in flip.items():
        proj.record([r], "relabel", k, session="s")
    proj.save_version("cleaned")

    progress = []
    records = proj.compare_versions("raw", "cleaned", seeds=2, progress=lambda f, m: progress.append(f))
    assert [(r["version"], r["seed"]) for r in records] == [("raw", 0), ("raw", 1), ("cleaned", 0), ("cleaned", 1)]
    config = proj.model().config
    for r in records:
        removed, relabelled = (set(), {}) if r["version"] == "raw" else (set(flagged[:5]), flip)
        accuracy, loss = _by_hand(ds, config, removed, relabelled, r["seed"])
        assert r["accuracy"] == pytest.approx(accuracy, abs=1e-12)
        assert r["loss"] == pytest.approx(loss, rel=1e-5)  # float32 sums in another order
        assert r["n_train"] == len(ds.train) - len(removed)
    assert progress[-1] == 1.0 and progress == sorted(progress)
    table = version_table(records)
    assert table["version"].tolist() == ["raw", "cleaned"] and table["seeds"].tolist() == [2, 2]
    assert table["accuracy"].iloc[1] == pytest.approx(np.mean([r["accuracy"] for r in records[2:]]))
    with pytest.raises(InfluenceError, match="seeds"):
        proj.compare_versions("raw", "cleaned", seeds=0)
