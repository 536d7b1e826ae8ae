"""Actions on the most detrimental samples: checked against independent sorting / formulas."""

import math

import numpy as np
import pytest
import torch

from influence_core.data import Dataset, Split, load_dataset
from influence_core.errors import InfluenceError
from influence_core.evaluate.actions import (ActionSettings, apply_action, most_detrimental, relabel, reweight,
                                             softmax_weights, trim)


@pytest.fixture(scope="module")
def blobs():
    return load_dataset("blobs", seed=0)


def _scores(n, seed=0):
    return np.random.default_rng(seed).standard_normal(n)


def _three_class(n=60, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.standard_normal((n, 2)) + 3 * np.stack([np.cos(2 * np.pi * y / 3), np.sin(2 * np.pi * y / 3)], 1)
    split = Split(torch.tensor(x, dtype=torch.float32), torch.tensor(y))
    return Dataset("three", split, split, split, ["a", "b", "c"])


def test_most_detrimental_is_the_lowest_fraction(blobs):
    s = _scores(len(blobs.train))
    k = round(0.05 * len(s))
    expected = sorted(range(len(s)), key=lambda i: s[i])[:k]  # independent of np.argsort
    assert list(most_detrimental(s, 0.05)) == expected


def test_trim_removes_exactly_the_lowest_scored(blobs):
    s = _scores(len(blobs.train), 1)
    out = trim(blobs, s, ActionSettings(fraction=0.1))
    removed = set(np.argsort(s)[: round(0.1 * len(s))].tolist())
    kept = [i for i in range(len(s)) if i not in removed]
    assert set(out.selected.tolist()) == removed
    assert len(out.dataset.train) == len(s) - len(removed)
    assert torch.equal(out.dataset.train.x, blobs.train.x[kept])
    assert torch.equal(out.dataset.train.y, blobs.train.y[kept])
    assert torch.equal(out.dataset.train.sensitive, blobs.train.sensitive[kept])
    assert torch.equal(out.dataset.noise_mask, blobs.noise_mask[kept])
    assert out.dataset.source_index.tolist() == kept
    assert out.dataset.val is blobs.val and out.dataset.test is blobs.test
    assert out.weights[sorted(removed)].sum() == 0 and out.weights.sum() == len(kept)


def test_relabel_binary_flips_exactly_the_chosen(blobs):
    s = _scores(len(blobs.train), 2)
    out = relabel(blobs, s, ActionSettings(fraction=0.05))
    chosen = np.argsort(s)[: round(0.05 * len(s))]
    before, after = blobs.train.y.numpy(), out.dataset.train.y.numpy()
    differs = np.flatnonzero(before != after)
    assert sorted(differs.tolist()) == sorted(chosen.tolist())
    assert (after[chosen] == 1 - before[chosen]).all()
    assert sorted(out.changed.tolist()) == sorted(chosen.tolist())
    # the noise mask now says which labels still disagree with the clean ones
    assert torch.equal(out.dataset.noise_mask, out.dataset.train.y != blobs.clean_labels)


def test_relabelling_the_flipped_samples_cleans_the_data(blobs):
    s = np.where(blobs.noise_mask.numpy(), -1.0, 1.0)  # a perfect detector
    out = relabel(blobs, s, ActionSettings(fraction=int(blobs.noise_mask.sum()) / len(s)))
    assert torch.equal(out.dataset.train.y, blobs.clean_labels)


def test_relabel_multiclass_uses_the_predicted_class_or_a_chosen_one():
    ds = _three_class()
    module = torch.nn.Linear(2, 3)
    torch.manual_seed(0)
    torch.nn.init.normal_(module.weight)
    s = _scores(len(ds.train), 3)
    chosen = np.argsort(s)[:6]
    with torch.no_grad():
        predicted = module(ds.train.x).argmax(1).numpy()
    out = relabel(ds, s, ActionSettings(fraction=0.1), module)
    after, before = out.dataset.train.y.numpy(), ds.train.y.numpy()
    assert (after[chosen] == predicted[chosen]).all()
    others = np.setdiff1d(np.arange(len(s)), chosen)
    assert (after[others] == before[others]).all()
    assert sorted(out.changed.tolist()) == sorted(chosen[predicted[chosen] != before[chosen]].tolist())
    fixed = relabel(ds, s, ActionSettings(fraction=0.1, relabel_class=2))
    assert (fixed.dataset.train.y.numpy()[chosen] == 2).all()
    with pytest.raises(InfluenceError):
        relabel(ds, s, ActionSettings(fraction=0.1))  # multiclass without a model or a class


def test_reweight_matches_the_softmax_formula_and_sums_to_n():
    s = np.array([0.3, -2.0, 1.5, 0.0, -0.1])
    t = 0.7
    e = [math.exp(v / t) for v in s]
    expected = [len(s) * v / sum(e) for v in e]
    assert np.allclose(softmax_weights(s, t, standardize=False), expected)
    z = (s - s.mean()) / s.std()
    e = [math.exp(v / t) for v in z]
    assert np.allclose(softmax_weights(s, t, standardize=True), [len(s) * v / sum(e) for v in e])


def test_reweight_ordering_total_and_temperature(blobs):
    s = _scores(len(blobs.train), 4)
    out = reweight(blobs, s, ActionSettings(temperature=0.5))
    w = out.sample_weight
    assert w.sum() == pytest.approx(len(s))
    assert (np.argsort(w, kind="stable") == np.argsort(s, kind="stable")).all()  # lowest score, lowest weight
    assert w[np.argmin(s)] < 1 < w[np.argmax(s)]
    hot = softmax_weights(s, 1e9)
    assert np.allclose(hot, 1.0) and hot.sum() == pytest.approx(len(s))
    assert out.dataset is blobs  # data unchanged, only weights
    big = softmax_weights(np.array([1e4, 0.0, -1e4]), 1.0, standardize=False)  # no overflow
    assert np.isfinite(big).all() and big.sum() == pytest.approx(3)


def test_bad_inputs_raise_one_line_errors(blobs):
    n = len(blobs.train)
    with pytest.raises(InfluenceError):
        trim(blobs, np.zeros(n - 1))
    with pytest.raises(InfluenceError):
        most_detrimental(np.zeros(n), 1.5)
    with pytest.raises(InfluenceError):
        softmax_weights(np.zeros(3), 0.0)
    with pytest.raises(InfluenceError):
        apply_action("burn", blobs, np.zeros(n))
    with pytest.raises(InfluenceError):
        trim(blobs, np.full(n, np.nan))


def test_downweight_only_never_raises_a_weight_above_the_rest():
    s = np.array([-3.0, -1.0, 0.5, 2.0, 9.0])
    w = softmax_weights(s, 1.0, standardize=False, upweight=False)
    capped = np.minimum(s, s.mean())
    e = np.exp(capped - capped.max())
    assert np.allclose(w, len(s) * e / e.sum())
    assert w[3] == pytest.approx(w[4]) and w[0] < w[1] < w[2] < w[3]  # 2 and 9 are above the mean 1.5
    assert w.sum() == pytest.approx(len(s))
