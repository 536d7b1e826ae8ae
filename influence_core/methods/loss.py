"""Loss: the per-sample training loss, negated — the ranking a user would otherwise sort by (lower = more suspect)."""

from __future__ import annotations

import torch

from .base import PredictionMethod, negative_losses


class TrainingLoss(PredictionMethod):
    """−ℓ(z_i; θ): a wrong label the model does not believe has a high loss. Best out of fold (``folds``)."""

    name = "loss"
    label = "Loss"

    def from_logits(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return negative_losses(logits, labels)
