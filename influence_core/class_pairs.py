"""The class-pair map: a C×C matrix of given class (rows) → suggested class (columns), so the confusions that
dominate a data set (on CIFAR-10N: cat ↔ dog, automobile ↔ truck) are the first thing a person sees.

Two counts: cleanlab's confident joint (``cleanlab.count.compute_confident_joint``, Northcutt et al. 2021 eq. 1: the
samples whose predicted probability of class j reaches class j's average self-confidence, by given label i; meant
for out-of-fold probabilities), and the number of flagged samples (the lowest scores of a ranking) per (given,
predicted) pair. Each off-diagonal cell is a Review view: given = i, suggested = j.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InfluenceError

KINDS = ("flagged", "confident_joint")


@dataclass(frozen=True)
class ClassPairs:
    """``matrix[i, j]``: samples given class i whose suggested class is j (``kind``: see `KINDS`); ``out_of_fold``:
    the probabilities came from fold models that did not train on the sample."""

    matrix: np.ndarray
    kind: str
    classes: tuple[str, ...]
    out_of_fold: bool = False

    def top(self, k: int = 5) -> list[tuple[int, int, int]]:
        """The ``k`` biggest off-diagonal cells (given, suggested, count), biggest first, empty cells left out."""
        return top_pairs(self.matrix, k)


def confident_joint(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """cleanlab's confident joint C[given, suggested] (counts, not calibrated), called directly."""
    from cleanlab.count import compute_confident_joint

    labels = np.asarray(labels)
    probs = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    if probs.ndim != 2 or probs.shape[0] != len(labels) or probs.shape[1] < 2:
        raise InfluenceError("the class-pair map needs N×C probabilities for N labels and at least two classes")
    try:
        return np.asarray(compute_confident_joint(labels, probs / probs.sum(1, keepdims=True)), dtype=np.int64)
    except (ValueError, AssertionError) as err:
        raise InfluenceError(f"cleanlab could not count the confident joint: {str(err).splitlines()[0]}") from None


def flagged_pairs(labels: np.ndarray, predicted: np.ndarray, rows: np.ndarray, num_classes: int) -> np.ndarray:
    """How many of the training rows ``rows`` (the flagged ones) fall in each (given, predicted) cell."""
    rows = np.asarray(rows, dtype=np.int64)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels)[rows], np.asarray(predicted)[rows]), 1)
    return matrix


def top_pairs(matrix: np.ndarray, k: int = 5) -> list[tuple[int, int, int]]:
    """The ``k`` biggest off-diagonal cells of ``matrix`` as (row, column, count), biggest first (ties: row, column),
    zero cells left out."""
    m = np.asarray(matrix)
    cells = [(-int(m[i, j]), i, j) for i in range(m.shape[0]) for j in range(m.shape[1]) if i != j and m[i, j] > 0]
    return [(i, j, -c) for c, i, j in sorted(cells)[: max(0, int(k))]]
