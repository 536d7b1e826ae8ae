"""Confident learning (Northcutt et al., JAIR 2021) by cleanlab, on the model's predicted probabilities.

cleanlab is the maintained implementation; we call it, we do not re-implement it. Its label-quality score is
higher for a more plausible label, so it already follows our orientation (lower = more suspect). Use it out of fold
(``folds``): on in-sample probabilities of a model that memorised its labels, every label looks plausible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InfluenceError
from .base import PredictionMethod, class_probabilities

QUALITY_SCORES = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


@dataclass(frozen=True)
class ConfidentLearningSettings:
    score: str = "self_confidence"  # cleanlab.rank.get_label_quality_scores(method=...)


class ConfidentLearning(PredictionMethod):
    """cleanlab's label-quality score (``rank.get_label_quality_scores``); lower = more likely a wrong label."""

    name = "confident_learning"
    label = "Confident learning (cleanlab)"
    Settings = ConfidentLearningSettings
    shardable = False  # cleanlab's per-class thresholds come from every sample's probabilities at once

    def from_logits(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(label_quality(class_probabilities(logits).numpy(), labels.numpy(), self.settings.score))


def label_quality(probs: np.ndarray, labels: np.ndarray, score: str = "self_confidence") -> np.ndarray:
    """cleanlab's per-sample label-quality score (higher = more plausible label)."""
    from cleanlab.rank import get_label_quality_scores

    if score not in QUALITY_SCORES:
        raise InfluenceError(f"confident_learning: score must be one of {', '.join(QUALITY_SCORES)}, got '{score}'")
    return np.asarray(get_label_quality_scores(np.asarray(labels), _normalised(probs), method=score), dtype=np.float64)


def find_label_issues(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """cleanlab's own verdict, a boolean mask of the labels it thinks are wrong (``filter.find_label_issues``);
    its sum is cleanlab's estimate of how many labels are wrong. Meant for out-of-fold probabilities."""
    from cleanlab.filter import find_label_issues as cleanlab_find

    labels = np.asarray(labels)
    if probs.shape[1] < 2 or len(np.unique(labels)) < 2:
        raise InfluenceError("confident learning needs at least two classes among the given labels")
    try:
        return np.asarray(cleanlab_find(labels, _normalised(probs), n_jobs=1), dtype=bool)
    except (ValueError, AssertionError) as err:
        raise InfluenceError(f"cleanlab could not estimate the label issues: {str(err).splitlines()[0]}") from None


def _normalised(probs: np.ndarray) -> np.ndarray:
    probs = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    return probs / probs.sum(1, keepdims=True)
