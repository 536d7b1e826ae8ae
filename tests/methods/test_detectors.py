"""The detectors users compare influence with: loss, margin and confident learning, each checked against an
independent computation (a per-sample cross-entropy loop, probabilities by hand, cleanlab called directly)."""

from __future__ import annotations

import numpy as np
import torch

from influence_core.api import compute_scores, estimate_label_issues
from influence_core.methods import METHODS
from tests.reference import loss_terms


def _probabilities(fitted, split) -> np.ndarray:
    with torch.no_grad():
        logits = fitted.module.eval()(split.x).double()
    if logits.shape[-1] == 1:
        p = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - p, p], 1).numpy()
    return torch.softmax(logits, -1).numpy()


def test_loss_is_the_negated_per_sample_loss_of_a_loop(tiny_images_cnn):
    ds, fitted = tiny_images_cnn
    module = fitted.module.eval()
    with torch.no_grad():
        expected = [-float(loss_terms(module(ds.train.x[i : i + 1]).double(), ds.train.y[i : i + 1])) for i in range(len(ds.train))]
    scores = compute_scores(ds, fitted, "loss")
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


def test_margin_is_given_minus_best_other_probability(tiny_images_cnn):
    ds, fitted = tiny_images_cnn
    probs = _probabilities(fitted, ds.train)
    y = ds.train.y.numpy()
    expected = [probs[i, y[i]] - max(p for c, p in enumerate(probs[i]) if c != y[i]) for i in range(len(y))]
    np.testing.assert_allclose(compute_scores(ds, fitted, "margin"), expected, atol=1e-6)
    assert set(np.sign(compute_scores(ds, fitted, "margin"))) <= {-1.0, 0.0, 1.0}


def test_confident_learning_equals_cleanlab_called_directly(blobs_logreg, tiny_images_cnn):
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    for ds, fitted in (blobs_logreg, tiny_images_cnn):
        probs = _probabilities(fitted, ds.train)
        labels = ds.train.y.numpy()
        for score in ("self_confidence", "normalized_margin"):
            expected = get_label_quality_scores(labels, probs, method=score)
            np.testing.assert_allclose(compute_scores(ds, fitted, "confident_learning", score=score), expected, atol=1e-6)
        issues = estimate_label_issues(ds, fitted)
        assert issues["count"] == int(find_label_issues(labels, probs).sum())
        assert not issues["out_of_fold"]


def test_detectors_rank_the_flipped_blobs_first(blobs_logreg):
    ds, fitted = blobs_logreg
    noisy = ds.noise_mask.numpy()
    for name in ("loss", "margin", "confident_learning"):
        assert METHODS[name].kind == "detector" and not METHODS[name].uses_impact
        s = compute_scores(ds, fitted, name)
        lowest = np.argsort(s, kind="stable")[: int(noisy.sum())]
        assert noisy[lowest].mean() >= 0.9, name
