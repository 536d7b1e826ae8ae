"""Internal: the functions behind the public, notebook-sized API — import them from the package (``influence_core``),
which exports `compute_scores`, `score_table`, `scores_frame`, `describe_target` and `estimate_label_issues`:

    ds = ic.load_dataset("moons", seed=0)
    fm = ic.train_model(ds, "mlp")
    table = ic.score_table(ds, fm, method="ip_ensemble", impact="utility")

The rest (`fold_models_for`, `out_of_fold_probabilities`, `predicted_probabilities`, `span`) serves the store and the
distributed runner. Scores: lower = more detrimental (negative = removing the sample would lower the impact f).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data.base import Dataset
from .errors import InfluenceError
from .folds import FoldSettings, out_of_fold, train_fold_models
from .grads import Progress, select_params
from .impacts import Impact, make_impact
from .methods import ScoringContext, class_probabilities, get_method, training_logits
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
    folds: int | FoldSettings | None = None,
    fold_models: list[FittedModel] | None = None,
    details: dict | None = None,
    cache=None,
    **method_settings,
) -> np.ndarray:
    """Scores of every training sample by ``method`` against ``impact``; lower = more detrimental.

    ``folds=K``: out of fold — each sample scored by the one of K models (``fitted``'s architecture and training
    settings, trained on the other K−1 folds; pass ``fold_models`` to reuse them) that did not see it.
    ``details`` (a dict) receives what the run found that a user should see, e.g. exact influence's Hessian spectrum.
    ``cache``: the workspace's array cache, for what methods reuse across runs (the explicit Hessian).
    """
    scorer = get_method(method, **method_settings)
    imp = make_impact(impact, **(impact_settings or {}))

    def score(ds: Dataset, model: FittedModel, report: Progress | None) -> np.ndarray:
        ctx = ScoringContext(model, ds, imp, params=params, device=device, batch_size=batch_size, progress=report,
                             cache=cache)
        out = scorer.scores(ctx)
        if details is not None:
            details.update(scorer.details)
        return out

    if not folds:
        return score(dataset, fitted, progress)
    fold_settings = folds if isinstance(folds, FoldSettings) else FoldSettings(int(folds))
    scoring_from = 0.0
    if fold_models is None:
        fold_models = fold_models_for(dataset, fitted, fold_settings, progress=span(progress, 0.0, 0.8), device=device)
        scoring_from = 0.8
    return out_of_fold(dataset, fold_models, fold_settings, score, progress=span(progress, scoring_from, 1.0))


def fold_models_for(dataset: Dataset, fitted: FittedModel, settings: FoldSettings, *, trainer=None, train_many=None,
                    progress: Progress | None = None, device: str | None = None) -> list[FittedModel]:
    """The K fold models for out-of-fold scoring: ``fitted``'s architecture and training settings, refit per fold
    (``trainer`` / ``train_many``: see `folds.train_fold_models`)."""
    if not fitted.history:
        raise InfluenceError("out-of-fold scoring refits the model on each fold; an uploaded model has no training "
                             "recipe — train the model here, or score in-sample (folds = 0)")
    return train_fold_models(dataset, fitted.arch, fitted.config, settings, trainer=trainer, train_many=train_many,
                             progress=progress, device=device)


def out_of_fold_probabilities(dataset: Dataset, fold_models: list[FittedModel], settings: FoldSettings,
                              batch_size: int = 512) -> np.ndarray:
    """N×C predicted class probabilities, each from the fold model that did not train on the sample."""
    return out_of_fold(dataset, fold_models, settings, lambda ds, model, report: predicted_probabilities(ds, model, batch_size))


def predicted_probabilities(dataset: Dataset, fitted: FittedModel, batch_size: int = 512) -> np.ndarray:
    """N×C class probabilities of ``fitted`` on the training split."""
    ctx = ScoringContext(fitted, dataset, make_impact("utility"), batch_size=batch_size, device="cpu")
    return class_probabilities(training_logits(ctx)).numpy()


def span(progress: Progress | None, lo: float, hi: float) -> Progress | None:
    """``progress`` mapped onto [lo, hi] of the whole task."""
    if progress is None:
        return None
    return lambda fraction, message: progress(lo + (hi - lo) * fraction, message)


def scores_frame(dataset: Dataset, scores: np.ndarray, column: str = "score") -> pd.DataFrame:
    """A table of scores with index (position in the original data), label (its code) and class (its name), rank
    (1 = most detrimental) and, when known, the truth (is_noisy, clean_label and clean_class)."""
    from .data.originals import source_rows

    index = source_rows(dataset, "train")
    names = np.asarray(dataset.classes, dtype=object)
    y = dataset.train.y.numpy()
    frame = pd.DataFrame({"index": index, "label": y, "class": names[y], column: scores})
    frame["rank"] = frame[column].rank(method="first").astype(int)
    if dataset.noise_mask is not None:
        frame["is_noisy"] = dataset.noise_mask.numpy().astype(bool)
    if dataset.clean_labels is not None:
        frame["clean_label"] = dataset.clean_labels.numpy()
        frame["clean_class"] = names[frame["clean_label"].to_numpy()]
    return frame


def score_table(dataset: Dataset, fitted: FittedModel, method: str = "ip", impact: str | Impact = "utility", **kwargs) -> pd.DataFrame:
    """`compute_scores` as a DataFrame: index, label, score, rank and, when known, is_noisy and clean_label."""
    return scores_frame(dataset, compute_scores(dataset, fitted, method, impact, **kwargs))


def estimate_label_issues(dataset: Dataset, fitted: FittedModel, fold_models: list[FittedModel] | None = None,
                          folds: int | FoldSettings | None = None) -> dict:
    """cleanlab's own estimate of how many training labels are wrong (``filter.find_label_issues``), on out-of-fold
    probabilities when fold models are given (as cleanlab intends), else on the model's in-sample probabilities."""
    from .methods.confident_learning import find_label_issues

    if fold_models:
        settings = folds if isinstance(folds, FoldSettings) else FoldSettings(int(folds or len(fold_models)))
        probs = out_of_fold_probabilities(dataset, fold_models, settings)
    else:
        probs = predicted_probabilities(dataset, fitted)
    mask = find_label_issues(probs, dataset.train.y.numpy())
    return {"count": int(mask.sum()), "share": float(mask.mean()), "out_of_fold": bool(fold_models), "mask": mask}


def describe_target(dataset: Dataset, fitted: FittedModel, impact: str | Impact = "utility",
                    impact_settings: dict | None = None) -> dict:
    """Which validation samples the impact target uses at ``fitted``: counts, the share left out, and the ones left
    out as least plausible: ``left_out``, their positions in the validation split, and ``left_out_index``, their rows
    in the original data (the ids people see). A joint ranking adds ``parts``: the same for each of its impacts."""
    from .data.originals import source_rows

    imp = make_impact(impact, **(impact_settings or {}))
    parts = getattr(imp, "parts", ())
    if parts:  # a joint ranking: each part's own target; the counts said first are the part that leaves out most
        described = [describe_target(dataset, fitted, part) for part in parts]
        return {**max(described, key=lambda d: len(d["left_out"])), "impact": imp.name, "parts": described}
    module = fitted.module.eval()
    rows = imp.target_rows(module, select_params(module), dataset)
    left_out = np.setdiff1d(np.arange(len(dataset.val)), rows)
    return {"impact": imp.name, "n_val": len(dataset.val), "n_used": int(len(rows)), "val_trim": imp.val_trim_for(dataset),
            "trusted_val": bool(dataset.meta.get("trusted_val")), "left_out": left_out.tolist(),
            "left_out_index": source_rows(dataset, "val")[left_out].tolist()}
