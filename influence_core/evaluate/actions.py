"""What to do with the samples a method flags: trim (remove), relabel, or reweight (paper Sec. 6-7, Table 2).

Every action takes per-sample scores with the project's sign convention — **lower = more detrimental** — and
returns an `ActionResult`: the new `Dataset` (val/test untouched), optional sample weights for the trainer, and
a record of exactly which training rows were acted on and which changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.base import Dataset, Split
from ..errors import InfluenceError
from ..state import flagged_rows
from ..grads import predict_labels

ACTIONS = ("trim", "relabel", "reweight")


@dataclass(frozen=True)
class ActionSettings:
    """How an action is applied.

    ``fraction``: share of the training set acted on (the lowest-scored ones).
    ``temperature``: reweighting softness; weights = n·softmax(z/T), large T → uniform weights.
    ``standardize``: divide the scores by their standard deviation before the softmax, so one temperature
    means the same for every method (raw influence scores differ by orders of magnitude between methods).
    ``relabel_class``: multiclass relabelling target; None = the model's predicted class.
    ``upweight``: False = only down-weight — scores above the mean count as the mean, so no sample is weighted
    up (a heavy tail of very beneficial samples can otherwise take most of the weight and wreck the model).
    """

    fraction: float = 0.05
    temperature: float = 1.0
    standardize: bool = True
    relabel_class: int | None = None
    upweight: bool = True


@dataclass
class ActionResult:
    """The outcome of one action on the training split.

    ``selected``: positions (in the original training split) the action was applied to, most detrimental first.
    ``changed``: the subset whose row actually changed (removed, label changed, or weight ≠ 1).
    ``final_labels`` / ``weights``: per original training row; a trimmed row has weight 0.
    """

    action: str
    dataset: Dataset
    selected: np.ndarray
    changed: np.ndarray
    given_labels: np.ndarray
    final_labels: np.ndarray
    weights: np.ndarray
    sample_weight: np.ndarray | None = None  # what to pass to train_model (rows of ``dataset.train``)

    def summary(self) -> dict:
        return {"action": self.action, "selected": int(len(self.selected)), "changed": int(len(self.changed))}


def most_detrimental(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the ``fraction`` lowest scores (lower = more detrimental), most detrimental first.

    The count is round(fraction·n), at least 1; ties are broken by position (stable sort).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or len(scores) == 0:
        raise InfluenceError("scores must be a non-empty 1-D array, one per training sample")
    if not 0.0 < fraction < 1.0:
        raise InfluenceError(f"the fraction to act on must be between 0 and 1 (exclusive), got {fraction}")
    return flagged_rows(scores, fraction)


def _check_scores(dataset: Dataset, scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(dataset.train),):
        raise InfluenceError(f"got {scores.shape[0] if scores.ndim else 0} scores for {len(dataset.train)} training samples")
    if not np.isfinite(scores).all():
        raise InfluenceError("the scores contain NaN or infinity; recompute them before acting on them")
    return scores


def trim(dataset: Dataset, scores: np.ndarray, settings: ActionSettings = ActionSettings()) -> ActionResult:
    """Remove the most detrimental fraction of the training split."""
    scores = _check_scores(dataset, scores)
    selected = most_detrimental(scores, settings.fraction)
    keep = np.setdiff1d(np.arange(len(scores)), selected)  # sorted: the kept rows stay in their order
    train = dataset.train.subset(keep)
    mask = None if dataset.noise_mask is None else dataset.noise_mask[torch.as_tensor(keep)]
    source = dataset.source_index[torch.as_tensor(keep)] if dataset.source_index is not None else torch.as_tensor(keep)
    new = dataset.with_train(train, noise_mask=mask, source_index=source)
    if dataset.clean_labels is not None:
        new.clean_labels = dataset.clean_labels[torch.as_tensor(keep)]
    given = dataset.train.y.numpy().copy()
    weights = np.ones(len(scores))
    weights[selected] = 0.0
    return ActionResult("trim", new, selected, np.sort(selected), given, given.copy(), weights)


def relabel(dataset: Dataset, scores: np.ndarray, settings: ActionSettings = ActionSettings(),
            module: torch.nn.Module | None = None) -> ActionResult:
    """Change the labels of the most detrimental fraction.

    Binary: flip. Multiclass: ``settings.relabel_class`` if given, else the class ``module`` predicts (a flagged
    sample the model already predicts as labelled keeps its label and is not counted as changed).
    """
    scores = _check_scores(dataset, scores)
    selected = most_detrimental(scores, settings.fraction)
    given = dataset.train.y.numpy().copy()
    final = given.copy()
    if dataset.num_classes == 2:
        final[selected] = 1 - given[selected]
    elif settings.relabel_class is not None:
        if not 0 <= settings.relabel_class < dataset.num_classes:
            raise InfluenceError(f"relabel class {settings.relabel_class} is not a class of '{dataset.name}' (0..{dataset.num_classes - 1})")
        final[selected] = settings.relabel_class
    else:
        if module is None:
            raise InfluenceError("relabelling a multiclass data set needs a model (its predicted class) or a relabel class")
        final[selected] = predicted_classes(module, dataset.train.subset(selected))
    changed = np.sort(selected[final[selected] != given[selected]])
    train = dataset.train.with_labels(torch.from_numpy(final))  # features stay on disk when stored
    mask = dataset.noise_mask
    if dataset.clean_labels is not None:
        mask = torch.from_numpy(final != dataset.clean_labels.numpy())  # which labels are still wrong
    new = dataset.with_train(train, noise_mask=mask, source_index=dataset.source_index)
    new.clean_labels = dataset.clean_labels
    return ActionResult("relabel", new, selected, changed, given, final, np.ones(len(scores)))


@torch.no_grad()
def predicted_classes(module: torch.nn.Module, split: Split, batch_size: int = 512) -> np.ndarray:
    """The class ``module`` predicts for each row of ``split``."""
    module = module.cpu().eval()
    out = [predict_labels(module(x)) for x, _ in split.batches(batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def softmax_weights(scores: np.ndarray, temperature: float = 1.0, standardize: bool = True,
                    upweight: bool = True) -> np.ndarray:
    """The paper's reweighting: w_i = n·softmax(s/T)_i, so Σw = n and a lower (more detrimental) score gets a
    smaller weight. ``standardize`` centres s and divides it by its standard deviation first; T → ∞ gives
    w_i → 1. ``upweight=False`` caps s at its mean (at 0 after standardising): only down-weighting."""
    s = np.asarray(scores, dtype=np.float64)
    if temperature <= 0:
        raise InfluenceError(f"the reweighting temperature must be positive, got {temperature}")
    if standardize:
        sd = s.std()
        s = (s - s.mean()) / sd if sd > 0 else np.zeros_like(s)
    if not upweight:
        s = np.minimum(s, 0.0 if standardize else s.mean())
    z = s / temperature
    z = z - z.max()  # softmax is shift-invariant; this keeps exp() from overflowing
    e = np.exp(z)
    return len(s) * e / e.sum()


def reweight(dataset: Dataset, scores: np.ndarray, settings: ActionSettings = ActionSettings()) -> ActionResult:
    """Weight every training sample by n·softmax(score/T) (paper Table 2, after Thakkar et al. 2023).

    All weights change; ``selected`` lists the most detrimental fraction (the most down-weighted rows).
    """
    scores = _check_scores(dataset, scores)
    weights = softmax_weights(scores, settings.temperature, settings.standardize, settings.upweight)
    selected = most_detrimental(scores, settings.fraction)
    changed = np.flatnonzero(~np.isclose(weights, 1.0))
    given = dataset.train.y.numpy().copy()
    return ActionResult("reweight", dataset, selected, changed, given, given.copy(), weights, sample_weight=weights)


def apply_action(action: str, dataset: Dataset, scores: np.ndarray, settings: ActionSettings = ActionSettings(),
                 module: torch.nn.Module | None = None) -> ActionResult:
    """Dispatch by name: ``trim``, ``relabel`` or ``reweight`` (scores: lower = more detrimental)."""
    if action == "trim":
        return trim(dataset, scores, settings)
    if action == "relabel":
        return relabel(dataset, scores, settings, module)
    if action == "reweight":
        return reweight(dataset, scores, settings)
    raise InfluenceError(f"unknown action '{action}'; choose one of: {', '.join(ACTIONS)}")
