"""Retrain-and-evaluate metrics, each recomputed by hand."""

import numpy as np
import pytest
import torch

from influence_core.data import load_dataset
from influence_core.evaluate.retrain import (AttackSettings, attack_subsets, attacked_accuracies, craft_attacks,
                                             evaluate_module, fairness_gap, retrain_and_evaluate)
from influence_core.models import TrainConfig, train_model


@pytest.fixture(scope="module")
def fitted():
    ds = load_dataset("blobs", seed=1)
    return ds, train_model(ds, "logreg", TrainConfig(seed=0))


def test_attack_subsets_are_seeded_and_within_bounds():
    s = AttackSettings(n_attacks=6, min_fraction=0.05, max_fraction=0.25, seed=3)
    a, b = attack_subsets(200, s), attack_subsets(200, s)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(10 <= len(x) <= 50 and len(set(x.tolist())) == len(x) for x in a)
    assert not np.array_equal(a[0], attack_subsets(200, AttackSettings(n_attacks=1, seed=4))[0])


def test_fairness_gap_is_the_demographic_parity_gap_on_test(fitted):
    ds, fm = fitted
    with torch.no_grad():
        p = torch.sigmoid(fm.module(ds.test.x)[:, 0]).numpy()
    s = ds.test.sensitive.numpy()
    assert fairness_gap(fm.module, ds) == pytest.approx(abs(p[s == 0].mean() - p[s == 1].mean()), rel=1e-5)


def test_linear_attack_flips_every_attacked_prediction(fitted):
    ds, fm = fitted
    settings = AttackSettings(n_attacks=3, seed=0)
    with torch.no_grad():
        correct = ((fm.module(ds.test.x)[:, 0] > 0).long() == ds.test.y).numpy()
    expected = []
    for rows in attack_subsets(len(ds.test), settings):
        c = correct.copy()
        c[rows] = ~c[rows]  # c > 1 moves each point past the boundary: right becomes wrong and wrong right
        expected.append(c.mean())
    assert attacked_accuracies(fm.module, ds.test, settings) == pytest.approx(expected)


def test_fixed_attacks_are_evaluated_on_another_model(fitted):
    ds, fm = fitted
    settings = AttackSettings(n_attacks=2, seed=0)
    crafted = craft_attacks(fm.module, ds.test, settings)
    other = torch.nn.Linear(2, 1)  # a constant classifier: predicts class 1 everywhere, attacked or not
    with torch.no_grad():
        other.weight.zero_()
        other.bias.fill_(1.0)
    got = attacked_accuracies(other, ds.test, settings, crafted)
    assert got == pytest.approx([float((ds.test.y == 1).float().mean())] * 2)


def test_retrain_and_evaluate_matches_a_direct_training(fitted):
    ds, _ = fitted
    weights = np.ones(len(ds.train))
    weights[:20] = 0.0
    out = retrain_and_evaluate(ds, "logreg", TrainConfig(), seed=0, sample_weight=weights,
                               attacks=AttackSettings(n_attacks=2))
    direct = train_model(ds.with_train(ds.train.subset(np.arange(20, len(ds.train)))), "logreg", TrainConfig(seed=0))
    ref = evaluate_module(direct.module, ds, AttackSettings(n_attacks=2))
    assert out["accuracy"] == pytest.approx(ref["accuracy"])
    assert out["fairness_gap"] == pytest.approx(ref["fairness_gap"], abs=1e-3)
    assert len(out["attack_accuracies"]) == 2
