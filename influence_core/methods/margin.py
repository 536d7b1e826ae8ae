"""Margin: p(given label) − max p(other class), the normalised-margin label-quality score (lower = more suspect)."""

from __future__ import annotations

import torch

from .base import PredictionMethod, class_probabilities


class Margin(PredictionMethod):
    """p_y − max_{c≠y} p_c ∈ [−1, 1]: negative when the model prefers another class to the given label."""

    name = "margin"
    label = "Margin"

    def from_logits(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        probs = class_probabilities(logits)
        given = probs.gather(1, labels[:, None])[:, 0]
        others = probs.scatter(1, labels[:, None], float("-inf")).max(1).values
        return given - others
