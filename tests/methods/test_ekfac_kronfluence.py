"""EKFAC against the peer library kronfluence (skipped where it is not installed: it is not a requirement, as it
brings the accelerate / huggingface_hub stack; `pip install kronfluence` beside torch 2.14.1 works).

Our EKFAC takes the Fisher in exact expectation over labels. kronfluence samples labels or uses the empirical
Fisher, so it gets the same matrix from a factor set holding every (x_n, c) pair with loss weight √p̂(c|x_n) and
use_empirical_fisher=True. It divides by the N·C rows it saw, so its Λ is ours / C: with damping (l2+λ)/C its
preconditioned gradient is C times ours. Its pairwise scores are per validation sample; our utility score is
their mean.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from influence_core.api import compute_scores

from tests.methods.helpers import rel_err

kronfluence = pytest.importorskip("kronfluence")


class WeightedClassification(kronfluence.Task):
    def compute_train_loss(self, batch, model, sample=False):
        x, y, w = batch
        logits = model(x)
        if logits.shape[-1] == 1:
            losses = F.binary_cross_entropy_with_logits(logits[:, 0], y.to(logits.dtype), reduction="none")
        else:
            losses = F.cross_entropy(logits, y, reduction="none")
        return (w.sqrt() * losses).sum()

    def compute_measurement(self, batch, model):
        return self.compute_train_loss(batch, model)


def kronfluence_ekfac(ds, fm, damping: float, tmp_path):
    model = copy.deepcopy(fm.module).double().eval()
    x = ds.train.x.double()
    with torch.no_grad():
        logits = model(x)
    probs = torch.cat([1 - torch.sigmoid(logits), torch.sigmoid(logits)], 1) if logits.shape[-1] == 1 else torch.softmax(logits, -1)
    n, c = probs.shape
    factor_set = TensorDataset(x.repeat_interleave(c, 0), torch.arange(c).repeat(n), probs.reshape(-1))
    ones = lambda split: TensorDataset(split.x.double(), split.y, torch.ones(len(split.y), dtype=torch.float64))  # noqa: E731
    task = WeightedClassification()
    model = kronfluence.prepare_model(model, task)
    analyzer = kronfluence.Analyzer("peer", model, task, cpu=True, disable_tqdm=True, output_dir=str(tmp_path))
    f64 = torch.float64
    factor_args = kronfluence.FactorArguments(
        strategy="ekfac", use_empirical_fisher=True, activation_covariance_dtype=f64, gradient_covariance_dtype=f64,
        eigendecomposition_dtype=f64, lambda_dtype=f64, per_sample_gradient_dtype=f64)
    analyzer.fit_all_factors("f", factor_set, per_device_batch_size=64, factor_args=factor_args)
    score_args = kronfluence.ScoreArguments(damping_factor=(fm.l2 + damping) / c, per_sample_gradient_dtype=f64,
                                            precondition_dtype=f64, score_dtype=f64)
    analyzer.compute_pairwise_scores("s", "f", ones(ds.val), ones(ds.train), per_device_query_batch_size=len(ds.val),
                                     per_device_train_batch_size=64, score_args=score_args)
    scores = analyzer.load_pairwise_scores("s")["all_modules"]
    return (scores.sum(0) / (len(ds.val) * c)).numpy()


@pytest.mark.parametrize("case", ["blobs_logreg", "moons_mlp"])
def test_agrees_with_kronfluence(case, request, tmp_path):
    ds, fm = request.getfixturevalue(case)
    ours = compute_scores(ds, fm, "ekfac", damping=0.01)
    assert rel_err(ours, kronfluence_ekfac(ds, fm, 0.01, tmp_path)) < 1e-4
