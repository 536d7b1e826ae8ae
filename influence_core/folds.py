"""Out-of-fold (cross-fitted) scoring: K models, each trained on K−1 folds of the training set; every training
sample is scored by the one model that did not see it, against that model's own impact target.

A model that memorised a wrong label has a small loss and a small gradient on it, so in-sample scores of
memorised samples fade; a held-out model has no such blind spot. The same K models give out-of-fold predicted
probabilities for confident learning (one set of K trainings serves every method).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from sklearn.model_selection import KFold, StratifiedKFold

from .data.base import Dataset
from .errors import InfluenceError
from .grads import Progress
from .models.train import FittedModel, TrainConfig, TrainProgress, train_model

# (fold dataset, architecture, settings, progress) -> fitted model: `train_model`, or a cache such as
# `Engine.model`, which makes fold training resumable (a finished fold is never trained again).
Trainer = Callable[[Dataset, str, TrainConfig, TrainProgress | None], FittedModel]
# (all K fold datasets, architecture, settings, progress) -> the K models, trained at once (e.g. one Dask task each).
ManyTrainer = Callable[[list[Dataset], str, TrainConfig, Progress | None], list[FittedModel]]


@dataclass(frozen=True)
class FoldSettings:
    """How the training set is cut: ``folds`` parts (≥ 2), stratified by label, shuffled with ``seed``."""

    folds: int = 5
    seed: int = 0


def fold_assignment(labels: np.ndarray, settings: FoldSettings) -> np.ndarray:
    """The fold (0..K−1) of every training sample; stratified by label when every class has K samples."""
    k, n = settings.folds, len(labels)
    if k < 2 or k > n:
        raise InfluenceError(f"out-of-fold scoring needs 2 ≤ folds ≤ {n} (training samples), got {k}")
    _, counts = np.unique(labels, return_counts=True)
    splitter = (StratifiedKFold if counts.min() >= k else KFold)(n_splits=k, shuffle=True, random_state=settings.seed)
    out = np.empty(n, dtype=np.int64)
    for fold, (_, held) in enumerate(splitter.split(np.zeros(n), labels)):
        out[held] = fold
    return out


def fold_split(dataset: Dataset, assignment: np.ndarray, fold: int) -> tuple[Dataset, Dataset, np.ndarray]:
    """(training part, held-out part, held-out rows) of fold ``fold``; validation and test are shared."""
    held = np.flatnonzero(assignment == fold)
    kept = np.flatnonzero(assignment != fold)

    def part(rows: np.ndarray) -> Dataset:
        index = torch.from_numpy(rows)
        return dataset.with_train(dataset.train.subset(rows),
                                  noise_mask=None if dataset.noise_mask is None else dataset.noise_mask[index],
                                  source_index=None if dataset.source_index is None else dataset.source_index[index])

    return part(kept), part(held), held


def fold_training_parts(dataset: Dataset, settings: FoldSettings) -> list[Dataset]:
    """The K training parts: part k holds every fold but k."""
    assignment = fold_assignment(dataset.train.y.numpy(), settings)
    return [fold_split(dataset, assignment, fold)[0] for fold in range(settings.folds)]


def train_fold_models(dataset: Dataset, arch: str, config: TrainConfig | None = None, settings: FoldSettings = FoldSettings(),
                      *, trainer: Trainer | None = None, train_many: ManyTrainer | None = None,
                      progress: Progress | None = None, device: str | None = None) -> list[FittedModel]:
    """The K fold models, fold k trained on every fold but k with ``config`` (progress over folds and epochs), one
    after another with ``trainer``, or all at once by ``train_many``."""
    parts = fold_training_parts(dataset, settings)
    config = config or TrainConfig()
    if train_many is not None:
        return train_many(parts, arch, config, progress)
    if trainer is None:
        def trainer(ds, a, c, p):
            return train_model(ds, a, c, device=device, progress=p)
    models = []
    for fold, part in enumerate(parts):
        def report(rec: dict, fold=fold) -> None:
            if progress is not None:
                progress((fold + rec.get("fraction", 1.0)) / settings.folds,
                         f"fold {fold + 1}/{settings.folds}: epoch {rec.get('epoch', '?')}")

        if progress is not None:
            progress(fold / settings.folds, f"fold {fold + 1}/{settings.folds}: training")
        models.append(trainer(part, arch, config, report))
    return models


def held_out_parts(dataset: Dataset, fold_models: list[FittedModel], settings: FoldSettings
                   ) -> list[tuple[Dataset, FittedModel, np.ndarray]]:
    """(held-out part k, the model that did not see it, its training rows) for every fold k: the one pairing of
    samples with fold models, used in-process (`out_of_fold`) and on Dask (`distributed.score_sharded`)."""
    if len(fold_models) != settings.folds:
        raise InfluenceError(f"expected {settings.folds} fold models, got {len(fold_models)}")
    assignment = fold_assignment(dataset.train.y.numpy(), settings)
    return [(held, model, rows) for (_, held, rows), model in
            zip((fold_split(dataset, assignment, k) for k in range(settings.folds)), fold_models)]


def out_of_fold(dataset: Dataset, fold_models: list[FittedModel], settings: FoldSettings,
                score_fold: Callable[[Dataset, FittedModel, Progress | None], np.ndarray],
                progress: Progress | None = None) -> np.ndarray:
    """Every training sample's value from ``score_fold(held-out part, model that did not see it, progress)``,
    put back in training order. Each sample is scored exactly once."""
    out: np.ndarray | None = None
    for fold, (held, model, rows) in enumerate(held_out_parts(dataset, fold_models, settings)):
        def report(fraction: float, message: str, fold=fold) -> None:
            if progress is not None:
                progress((fold + fraction) / settings.folds, f"fold {fold + 1}/{settings.folds}: {message}")

        values = np.asarray(score_fold(held, model, report))
        if out is None:
            out = np.full((len(dataset.train),) + values.shape[1:], np.nan)
        out[rows] = values
    return out
