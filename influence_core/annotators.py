"""Several annotators (issue 20 §4): a consensus label per sample, its quality, and each annotator's quality, by
cleanlab's ``multiannotator`` module (CROWDLAB, Goh et al. 2022) on the model's predicted probabilities — called,
not re-implemented.

The report is a dict of plain arrays (stored as one ``.npz`` by the facade). ``consensus_quality`` is also a ranking
like every score here: lower = the consensus label is less likely right (a sample no annotator labelled ranks last).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InfluenceError
from .methods.confident_learning import _normalised

CONSENSUS_METHODS = ("best_quality", "majority_vote")
QUALITY_METHODS = ("crowdlab", "agreement")
CONSENSUS_RANKING = "annotators: consensus quality"  # the consensus as a ranking among the score runs (Project.rankings)


@dataclass(frozen=True)
class AnnotatorSettings:
    """cleanlab's ``get_label_quality_multiannotator`` options: how the consensus is chosen and how quality is scored."""

    consensus_method: str = "best_quality"
    quality_method: str = "crowdlab"

    def __post_init__(self) -> None:
        if self.consensus_method not in CONSENSUS_METHODS:
            raise InfluenceError(f"consensus_method must be one of {', '.join(CONSENSUS_METHODS)}, not '{self.consensus_method}'")
        if self.quality_method not in QUALITY_METHODS:
            raise InfluenceError(f"quality_method must be one of {', '.join(QUALITY_METHODS)}, not '{self.quality_method}'")


def check_annotator_labels(annotators: np.ndarray, num_classes: int, n: int | None = None) -> np.ndarray:
    """``annotators`` as float64 N×M class indices with NaN for a missing label; a one-line refusal otherwise."""
    labels = np.asarray(annotators, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[1] == 0:
        raise InfluenceError("annotator labels must be a table of N samples × M annotators")
    if n is not None and labels.shape[0] != n:
        raise InfluenceError(f"annotator labels have {labels.shape[0]} rows but the training split has {n}")
    given = labels[~np.isnan(labels)]
    if given.size and (np.any(given != np.round(given)) or given.min() < 0 or given.max() >= num_classes):
        raise InfluenceError(f"annotator labels must be class indices 0..{num_classes - 1} (or missing)")
    return labels


def annotator_report(annotators: np.ndarray, probs: np.ndarray, names: list[str] | None = None,
                     settings: AnnotatorSettings = AnnotatorSettings()) -> dict[str, np.ndarray]:
    """cleanlab's multi-annotator analysis of ``annotators`` (N×M, NaN = not labelled) given the model's class
    probabilities ``probs`` (N×K; out of fold where possible, as cleanlab intends).

    Per sample: ``consensus_label`` (-1 where no annotator labelled it), ``consensus_quality`` (NaN there),
    ``annotator_agreement``, ``num_annotations`` and ``label_quality`` (N×M, each annotator's label's quality).
    Per annotator, in ``names`` order: ``annotator_quality``, ``agreement_with_consensus``, ``num_labeled`` and
    ``worst_class`` (the class it gets wrong most; -1 for an annotator with no label in the analysed rows).
    """
    from cleanlab.multiannotator import get_label_quality_multiannotator

    probs = np.asarray(probs, dtype=np.float64)
    labels = check_annotator_labels(annotators, probs.shape[1], len(probs))
    n, m = labels.shape
    names = [str(x) for x in (names or [f"annotator {j + 1}" for j in range(m)])]
    if len(names) != m:
        raise InfluenceError(f"{len(names)} annotator names for {m} annotators")
    rows = np.flatnonzero((~np.isnan(labels)).any(axis=1))  # cleanlab wants every example labelled at least once
    cols = np.flatnonzero((~np.isnan(labels[rows])).any(axis=0))  # ... and every annotator to have labelled one
    if len(rows) == 0:
        raise InfluenceError("no sample has an annotator's label")
    try:
        found = get_label_quality_multiannotator(labels[np.ix_(rows, cols)], _normalised(probs[rows]),
                                                 consensus_method=settings.consensus_method,
                                                 quality_method=settings.quality_method, verbose=False)
    except (ValueError, AssertionError) as err:
        raise InfluenceError(f"cleanlab could not compare the annotators: {str(err).splitlines()[0]}") from None
    per_sample, detailed, stats = found["label_quality"], found["detailed_label_quality"], found["annotator_stats"]
    out = {"names": np.asarray(names, dtype=str),
           "consensus_label": np.full(n, -1, dtype=np.int64), "consensus_quality": np.full(n, np.nan),
           "annotator_agreement": np.full(n, np.nan), "num_annotations": np.zeros(n, dtype=np.int64),
           "label_quality": np.full((n, m), np.nan), "annotator_quality": np.full(m, np.nan),
           "agreement_with_consensus": np.full(m, np.nan), "num_labeled": np.zeros(m, dtype=np.int64),
           "worst_class": np.full(m, -1, dtype=np.int64)}
    out["consensus_label"][rows] = per_sample["consensus_label"].to_numpy()
    out["consensus_quality"][rows] = per_sample["consensus_quality_score"].to_numpy()
    out["annotator_agreement"][rows] = per_sample["annotator_agreement"].to_numpy()
    out["num_annotations"][rows] = per_sample["num_annotations"].to_numpy()
    out["label_quality"][np.ix_(rows, cols)] = detailed.to_numpy(dtype=np.float64)
    stats = stats.loc[range(len(cols))]  # cleanlab sorts them by quality; back to column order
    out["annotator_quality"][cols] = stats["annotator_quality"].to_numpy()
    out["agreement_with_consensus"][cols] = stats["agreement_with_consensus"].to_numpy()
    out["num_labeled"][cols] = stats["num_examples_labeled"].to_numpy()
    out["worst_class"][cols] = stats["worst_class"].to_numpy()
    return out


def consensus_ranking(report: dict[str, np.ndarray]) -> np.ndarray:
    """The report as a ranking like every score (lower = the consensus label more likely wrong): the consensus
    quality, 1.0 (the best) for a sample no annotator labelled."""
    return np.nan_to_num(np.asarray(report["consensus_quality"], dtype=np.float64), nan=1.0)


def annotator_table(report: dict[str, np.ndarray], classes: list[str]) -> pd.DataFrame:
    """One row per annotator, the lowest quality first: what a page shows."""
    worst = [classes[int(k)] if 0 <= int(k) < len(classes) else "" for k in report["worst_class"]]
    table = pd.DataFrame({"annotator": [str(x) for x in report["names"]],
                          "quality": report["annotator_quality"],
                          "agreement with consensus": report["agreement_with_consensus"],
                          "samples labelled": report["num_labeled"], "worst class": worst})
    return table.sort_values("quality", kind="stable", na_position="last").reset_index(drop=True)


def describe_labels(labels: np.ndarray, names: list[str], classes: list[str]) -> list[str]:
    """Each row's annotators' labels in words, e.g. "random1: cat · random2: dog · random3: cat" (an annotator who
    gave no label is left out)."""
    labels = np.asarray(labels, dtype=np.float64).reshape(len(labels), len(names)) if len(labels) else np.empty((0, len(names)))
    return [" · ".join(f"{name}: {classes[int(v)]}" for name, v in zip(names, row) if not np.isnan(v)) for row in labels]
