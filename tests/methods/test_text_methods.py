"""Every method runs on a text-linear model over TF-IDF features (issue 18 §1); IP and exact influence are
checked against autograd loops on the same model, and the moved labels rank as detrimental."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from influence_core.api import compute_scores
from influence_core.data.prepare import with_label_noise
from influence_core.data.text import TfidfSettings, generated_text_frame, text_dataset
from influence_core.methods import METHODS
from influence_core.models import TrainConfig, train_model
from influence_core.models.registry import default_architecture

from tests.reference import per_sample_grad_loop, relative_error, validation_loss_grad

FAST = {"lissa": {"depth": 100}, "self_lissa": {"depth": 30}}
EVERY_METHOD = ["ip", "ip_ensemble", "ip_classwise", "ip_combined", "tracin", "exact", "lissa", "ekfac", "datainf",
                "tda", "gex", "self_tracin", "self_lissa", "loss", "margin", "confident_learning"]


@pytest.fixture(scope="module")
def text_fit():
    """120 generated documents on 3 topics, 10% of the training labels moved; 48 TF-IDF features (147 parameters)
    and a text-linear model with one checkpoint."""
    frame = generated_text_frame(200, num_classes=3, seed=3, topic_rate=0.5, confusion_rate=0.05)
    frame["group"] = np.random.default_rng(0).integers(0, 2, len(frame))
    ds = text_dataset(frame.iloc[:120], frame.iloc[120:160], frame.iloc[160:], text_columns=["text"],
                      label_column="label", sensitive_column="group", tfidf=TfidfSettings(max_features=48))
    ds = with_label_noise(ds, 0.1, seed=0, include_val=False)
    return ds, train_model(ds, "text-linear", TrainConfig(checkpoint_every=1))


def test_every_method_is_listed():
    assert set(EVERY_METHOD) == set(METHODS)
    assert default_architecture("text") == "text-linear"


@pytest.mark.parametrize("method", EVERY_METHOD)
def test_every_method_runs_on_text_linear(method, text_fit):
    ds, fitted = text_fit
    scores = compute_scores(ds, fitted, method, **FAST.get(method, {}))
    assert scores.shape == (len(ds.train),) and np.isfinite(scores).all() and np.abs(scores).max() > 0


@pytest.mark.parametrize("method", ["ip_classwise", "exact", "loss", "confident_learning"])
def test_moved_labels_rank_as_detrimental(method, text_fit):
    """The class-target IP, exact influence and the loss-based detectors find the moved labels (AUROC > 0.8;
    plain IP averages the classes' pulls away on a multiclass set: see methods/ip_classwise.py)."""
    ds, fitted = text_fit
    assert roc_auc_score(ds.noise_mask.numpy(), -compute_scores(ds, fitted, method)) > 0.8


def test_ip_is_the_autograd_dot_product(text_fit):
    ds, fitted = text_fit
    module = copy.deepcopy(fitted.module).double().eval()
    target = validation_loss_grad(module, ds.val.x.double(), ds.val.y)
    expected = per_sample_grad_loop(module, ds.train.x.double(), ds.train.y) @ target
    assert relative_error(compute_scores(ds, fitted, "ip"), expected) < 1e-4


def test_exact_is_the_explicit_hessian_solve(text_fit):
    from tests.methods.helpers import objective_hessian

    ds, fitted = text_fit
    module = copy.deepcopy(fitted.module).double().eval()
    target = validation_loss_grad(module, ds.val.x.double(), ds.val.y).numpy()
    grads = per_sample_grad_loop(module, ds.train.x.double(), ds.train.y).numpy()
    expected = grads @ np.linalg.solve(objective_hessian(fitted, ds), target)
    assert relative_error(compute_scores(ds, fitted, "exact"), expected) < 1e-6


@pytest.mark.parametrize("method", ["ip", "exact", "tracin"])
def test_every_impact_reaches_the_scores_on_text(method, text_fit):
    ds, fitted = text_fit
    results = {impact: compute_scores(ds, fitted, method, impact) for impact in ("utility", "fairness", "robustness")}
    for impact, scores in results.items():
        assert np.isfinite(scores).all() and np.abs(scores).max() > 0, impact
    assert not np.allclose(results["utility"], results["fairness"])
    assert not np.allclose(results["utility"], results["robustness"])


def _dense(split):
    """The same split with its features as one dense in-memory tensor (what text features were before CSR)."""
    twin = None if split.twin is None else _dense(split.twin)
    return type(split)(split.x.clone(), split.y, split.sensitive, twin)


@pytest.fixture(scope="module")
def dense_twin(text_fit):
    """``text_fit``'s data set with dense features, and the model trained on those."""
    from dataclasses import replace

    ds, _ = text_fit
    dense = replace(ds, train=_dense(ds.train), val=_dense(ds.val), test=_dense(ds.test))
    return dense, train_model(dense, "text-linear", TrainConfig(checkpoint_every=1))


def test_features_are_sparse_and_training_on_them_equals_the_dense_path(text_fit, dense_twin):
    ds, fitted = text_fit
    dense, dense_fitted = dense_twin
    assert ds.train.sparse is not None and ds.val.sparse is not None and dense.train.sparse is None
    # L-BFGS on X Wᵀ over the nonzeros reaches the dense run's optimum (a strictly convex objective)
    for name, p in fitted.module.state_dict().items():
        torch.testing.assert_close(p, dense_fitted.module.state_dict()[name], rtol=1e-3, atol=1e-4)
    assert fitted.metrics["test_accuracy"] == dense_fitted.metrics["test_accuracy"]
    from influence_core.models.train import _objective
    from influence_core.models.sparse_linear import sparse_logits

    module = fitted.module
    sparse_value = _objective(module, ds.train.sparse.torch_sparse(), ds.train.y, None, 1e-2,
                              lambda x: sparse_logits(module, x))
    torch.testing.assert_close(sparse_value, _objective(module, dense.train.x, dense.train.y, None, 1e-2))


@pytest.mark.parametrize("method", EVERY_METHOD)
def test_every_method_scores_sparse_features_as_the_dense_ones(method, text_fit, dense_twin):
    """One model, the same features as CSR (read dense a batch at a time) or as one dense tensor: equal scores to
    float32 rounding (batch sums in another order at most)."""
    ds, fitted = text_fit
    dense, _ = dense_twin
    sparse_scores = compute_scores(ds, fitted, method, **FAST.get(method, {}))  # seeded methods: the same seed
    dense_scores = compute_scores(dense, fitted, method, **FAST.get(method, {}))
    np.testing.assert_allclose(sparse_scores, dense_scores, rtol=1e-4, atol=1e-5 * np.abs(dense_scores).max())
