"""The public, notebook-sized API: load data, train (or pass) a model, get a table of per-sample scores.

    ds = load_dataset("moons", seed=0)
    fm = train_model(ds, "mlp")
    table = score_table(ds, fm, method="ip_ensemble", impact="utility")

Scores: lower = more detrimental (negative = removing the sample would lower the impact f).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data.base import Dataset
from .grads import Progress
from .impacts import Impact, make_impact
from .methods import ScoringContext, get_method
from .models.train import FittedModel


def compute_scores(
    dataset: Dataset,
    fitted: FittedModel,
    method: str = "ip",
    impact: str | Impact = "utility",
    *,
    params: str = "all",
    device: str | None = None,
    batch_size: int = 256,
    progress: Progress | None = None,
    impact_settings: dict | None = None,
    **method_settings,
) -> np.ndarray:
    """Scores of every training sample by ``method`` against ``impact``; lower = more detrimental."""
    ctx = ScoringContext(fitted, dataset, make_impact(impact, **(impact_settings or {})), params=params,
                         device=device, batch_size=batch_size, progress=progress)
    return get_method(method, **method_settings).scores(ctx)


def scores_frame(dataset: Dataset, scores: np.ndarray, column: str = "score") -> pd.DataFrame:
    """A table of scores with index (position in the original data), label, rank (1 = most detrimental), truth."""
    n = len(dataset.train)
    index = dataset.source_index.numpy() if dataset.source_index is not None else np.arange(n)
    frame = pd.DataFrame({"index": index, "label": dataset.train.y.numpy(), column: scores})
    frame["rank"] = frame[column].rank(method="first").astype(int)
    if dataset.noise_mask is not None:
        frame["is_noisy"] = dataset.noise_mask.numpy().astype(bool)
    if dataset.clean_labels is not None:
        frame["clean_label"] = dataset.clean_labels.numpy()
    return frame


def score_table(dataset: Dataset, fitted: FittedModel, method: str = "ip", impact: str | Impact = "utility", **kwargs) -> pd.DataFrame:
    """`compute_scores` as a DataFrame: index, label, score, rank and, when known, is_noisy and clean_label."""
    return scores_frame(dataset, compute_scores(dataset, fitted, method, impact, **kwargs))
