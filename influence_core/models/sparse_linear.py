"""A linear model on sparse inputs (text-linear on TF-IDF rows, `data/sparse.py`): logits X Wᵀ + b as one sparse
product, so full-batch L-BFGS touches only the nonzeros (≈ 25 a row) instead of N × D dense floats per evaluation.

Only the trainer uses it: its objective is the dense one to float32 rounding (the same `per_sample_loss` on the same
logits), and scoring reads dense rows a batch at a time as for any model.
"""

from __future__ import annotations

import torch
from torch import nn

from .architectures import LogisticRegression


def reads_sparse(module: nn.Module) -> bool:
    """Whether ``module`` is linear in its (flat) inputs, so its logits can be taken from a sparse matrix."""
    return isinstance(module, LogisticRegression)


def sparse_logits(module: LogisticRegression, x: torch.Tensor) -> torch.Tensor:
    """``module(x.to_dense())`` for a sparse N×D ``x``, without the dense matrix: X Wᵀ + b (differentiable in W, b)."""
    layer = module.linear
    return torch.sparse.mm(x, layer.weight.T) + layer.bias
