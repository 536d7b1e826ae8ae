"""Captum's TracInCP configured to compute exactly our TracIn / Self-TracIn quantities (the peer for the tests).

Captum sums lr_t · grad ℓ_testᵀ grad ℓ_train over checkpoints for every (test, train) pair with per-example
losses; summed over the validation set (`aggregate=True`) and divided by its size this is our TracIn score for the
utility impact f = mean validation loss. Its self-influence Σ_t lr_t ‖grad ℓ_i‖² is minus ours.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

captum_influence = pytest.importorskip("captum.influence")


class PerExampleLoss(nn.Module):
    """BCE-with-logits for one logit / cross-entropy for C logits, per example (reduction 'none')."""

    reduction = "none"

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] == 1:
            return F.binary_cross_entropy_with_logits(logits[:, 0], y.to(logits.dtype), reduction="none")
        return F.cross_entropy(logits, y, reduction="none")


def captum_tracin(dataset, fitted, checkpoints) -> "captum_influence.TracInCP":
    """A TracInCP over ``dataset.train`` whose checkpoints are (state, lr) pairs held in memory (keys '0', '1', ...)."""
    by_key = {str(i): c for i, c in enumerate(checkpoints)}

    def load(model: nn.Module, key: str) -> float:
        model.load_state_dict(by_key[key].state)
        return float(by_key[key].lr)

    model = copy.deepcopy(fitted.module).double().eval()
    train = TensorDataset(dataset.train.x.double(), dataset.train.y)
    return captum_influence.TracInCP(model, train, list(by_key), checkpoints_load_func=load, loss_fn=PerExampleLoss(),
                                     batch_size=64, sample_wise_grads_per_batch=False)


def captum_tracin_scores(dataset, fitted, checkpoints) -> torch.Tensor:
    tracin = captum_tracin(dataset, fitted, checkpoints)
    total = tracin.influence((dataset.val.x.double(), dataset.val.y), aggregate=True)
    return total.reshape(-1) / len(dataset.val)


def captum_self_influence(dataset, fitted, checkpoints) -> torch.Tensor:
    return captum_tracin(dataset, fitted, checkpoints).self_influence()
