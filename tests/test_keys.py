"""Cache keys (influence_core/keys.py): equal requests (defaults written out or left out) share a key, and every
argument that changes a result changes it — a key that left one out (``params``, a method default) fails here."""

from __future__ import annotations

import pytest

from influence_core.errors import InfluenceError
from influence_core.keys import model_key, score_key, view_key
from influence_core.methods import get_method
from influence_core.models import TrainConfig, train_model


@pytest.fixture(scope="module")
def two_models(blobs):
    """The same architecture trained with two seeds and with checkpoints: other weights, other trajectory."""
    return train_model(blobs, "mlp", TrainConfig(epochs=2, seed=0, checkpoint_every=1)), \
        train_model(blobs, "mlp", TrainConfig(epochs=2, seed=1, checkpoint_every=1))


def test_every_argument_of_a_score_changes_its_key(blobs, moons, two_models):
    fitted, other = two_models
    base = score_key(blobs, fitted, "ip_ensemble", "utility", "all", {"ensemble_size": 3})
    changed = [score_key(moons, fitted, "ip_ensemble", "utility", "all", {"ensemble_size": 3}),
               score_key(blobs, other, "ip_ensemble", "utility", "all", {"ensemble_size": 3}),
               score_key(blobs, fitted, "ip", "utility", "all"),
               score_key(blobs, fitted, "ip_ensemble", "fairness", "all", {"ensemble_size": 3}),
               score_key(blobs, fitted, "ip_ensemble", "utility", "head", {"ensemble_size": 3}),
               score_key(blobs, fitted, "ip_ensemble", "utility", "all", {"ensemble_size": 4}),
               score_key(blobs, fitted, "ip_ensemble", "utility", "all", {"ensemble_size": 3}, {"val_trim": 0.0}),
               score_key(blobs, fitted, "ip_ensemble", "utility", "all", {"ensemble_size": 3}, folds=3)]
    assert len({base, *changed}) == 1 + len(changed)


def test_method_defaults_are_resolved_before_hashing(blobs, two_models):
    fitted, _ = two_models
    defaults = get_method("ip_ensemble").settings  # the method's own defaults, written out
    spelled = {"ensemble_size": defaults.ensemble_size, "dropout": defaults.dropout}
    assert score_key(blobs, fitted, "ip_ensemble") == score_key(blobs, fitted, "ip_ensemble", settings=spelled)
    assert score_key(blobs, fitted, "ip_ensemble") != score_key(blobs, fitted, "ip_ensemble",
                                                               settings={"dropout": defaults.dropout * 2})


def test_model_and_view_keys(blobs, two_models):
    fitted, other = two_models
    assert model_key(blobs, "logreg") == model_key(blobs, "logreg", TrainConfig(l2=1e-2))  # logreg's default l2
    assert model_key(blobs, "logreg") != model_key(blobs, "logreg", TrainConfig(seed=1)) != model_key(blobs, "mlp")
    assert view_key("umap", blobs, fitted) == view_key("umap", blobs, fitted, seed=0)
    assert view_key("umap", blobs, fitted) != view_key("umap", blobs, other)
    assert view_key("angles", blobs, fitted, params="head") != view_key("angles", blobs, fitted)
    with pytest.raises(InfluenceError, match="unknown view 'pca'"):
        view_key("pca", blobs, fitted)
