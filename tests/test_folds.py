"""Out-of-fold scoring equals scores computed by hand from K separately trained models, each sample once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import influence_core as ic
from influence_core.api import compute_scores, out_of_fold_probabilities
from influence_core.errors import InfluenceError
from influence_core.folds import FoldSettings, fold_assignment, train_fold_models
from influence_core.models import TrainConfig, train_model


@pytest.fixture(scope="module")
def moons_small():
    ds = ic.load_dataset("moons", seed=1, n_train=90, n_val=40, n_test=40, flipped_per_class=4)
    return ds, train_model(ds, "mlp", TrainConfig(epochs=40))


def test_folds_cover_every_sample_once_and_are_stratified(moons_small):
    ds, _ = moons_small
    y = ds.train.y.numpy()
    a = fold_assignment(y, FoldSettings(3, seed=0))
    assert sorted(np.unique(a)) == [0, 1, 2] and len(a) == len(y)
    for fold in range(3):
        share = y[a == fold].mean()
        assert abs(share - y.mean()) < 0.05  # the class balance of the whole set
    assert (fold_assignment(y, FoldSettings(3, seed=0)) == a).all()
    assert (fold_assignment(y, FoldSettings(3, seed=1)) != a).any()


@pytest.mark.parametrize("method", ["ip", "loss"])
def test_out_of_fold_scores_equal_scores_by_hand(moons_small, method):
    ds, fitted = moons_small
    settings = FoldSettings(3)
    got = compute_scores(ds, fitted, method, folds=3)
    # By hand: train each fold model separately, score the held-out rows with it on a dataset built here.
    a = fold_assignment(ds.train.y.numpy(), settings)
    expected = np.full(len(a), np.nan)
    for fold in range(3):
        held, kept = np.flatnonzero(a == fold), np.flatnonzero(a != fold)
        model = train_model(ds.with_train(ds.train.subset(kept)), "mlp", fitted.config)
        expected[held] = compute_scores(ds.with_train(ds.train.subset(held)), model, method)
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    assert not np.allclose(got, compute_scores(ds, fitted, method))  # not the in-sample scores


def test_out_of_fold_probabilities_come_from_the_model_that_did_not_see_the_sample(moons_small):
    ds, fitted = moons_small
    settings = FoldSettings(3)
    models = train_fold_models(ds, "mlp", fitted.config, settings)
    probs = out_of_fold_probabilities(ds, models, settings)
    assert probs.shape == (len(ds.train), 2)
    np.testing.assert_allclose(probs.sum(1), 1.0)
    # By hand: each fold model's own probabilities (numpy sigmoid of its one logit) on all rows; a sample's row must
    # come from the one model whose training part left it out, and differ from every other fold model's.
    a = fold_assignment(ds.train.y.numpy(), settings)
    x = ds.train.rows(slice(0, len(ds.train)))
    by_model = []
    for model in models:
        with torch.no_grad():
            z = model.module.eval()(x).numpy().astype(np.float64)
        assert z.shape[1] == 1  # moons' MLP: one logit, p(class 1) = sigmoid
        p1 = 1 / (1 + np.exp(-z[:, 0]))
        by_model.append(np.stack([1 - p1, p1], axis=1))
    for fold in range(3):
        held = a == fold
        np.testing.assert_allclose(probs[held], by_model[fold][held], rtol=0, atol=1e-6)  # float32 sigmoid vs float64
        for other in set(range(3)) - {fold}:
            assert np.abs(probs[held] - by_model[other][held]).max() > 1e-3
    issues = ic.estimate_label_issues(ds, fitted, fold_models=models, folds=settings)
    assert issues["out_of_fold"] and 0 < issues["count"] < len(ds.train)


def test_out_of_fold_refuses_uploaded_models_and_bad_fold_counts(moons_small):
    from influence_core.models.train import fitted_from_module

    ds, fitted = moons_small
    uploaded = fitted_from_module(fitted.module, "mlp", ds)
    with pytest.raises(InfluenceError, match="uploaded model"):
        compute_scores(ds, uploaded, "ip", folds=3)
    with pytest.raises(InfluenceError, match="folds"):
        fold_assignment(ds.train.y.numpy(), FoldSettings(1))
