"""Compare two saved versions of the cleaned data set: retrain the project's model (same architecture and training
settings) from scratch on each version's training split with the same seeds, and measure test accuracy and loss."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import pandas as pd

from ..data.base import Dataset
from ..grads import Progress
from ..models.train import TrainConfig, evaluate_split, train_model
from ..versions import DataVersion, cleaned_dataset


def retrain_on_version(dataset: Dataset, version: DataVersion, arch: str, config: TrainConfig, seed: int,
                       device: str | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
    """Train ``arch`` with ``config`` and training seed ``seed`` on ``version``'s training split; its test
    accuracy and mean test loss."""
    cleaned = cleaned_dataset(dataset, version)
    fitted = train_model(cleaned, arch, replace(config, seed=seed, checkpoint_every=0), device=device,
                         should_stop=should_stop)
    test = evaluate_split(fitted.module, dataset.test)
    return {"version": version.name, "seed": int(seed), "n_train": len(cleaned.train),
            "accuracy": float(test["accuracy"]), "loss": float(test["loss"])}


def compare_versions(dataset: Dataset, versions: Sequence[DataVersion], arch: str, config: TrainConfig,
                     seeds: Sequence[int] = (0,), progress: Progress | None = None,
                     should_stop: Callable[[], bool] | None = None, device: str | None = None) -> list[dict]:
    """`retrain_on_version` for every version × seed (the same seeds for each version, so the versions differ only
    in their data); one record per training, in that order. Stops early (what is finished) when ``should_stop``."""
    report = progress or (lambda f, m: None)
    stop = should_stop or (lambda: False)
    total, out = len(versions) * len(seeds), []
    for i, version in enumerate(versions):
        for j, seed in enumerate(seeds):
            if stop():
                return out
            report((i * len(seeds) + j) / total, f"retraining on {version.name}, seed {seed}")
            out.append(retrain_on_version(dataset, version, arch, config, seed, device, stop))
    report(1.0, "done")
    return out


def version_table(records: list[dict]) -> pd.DataFrame:
    """Per version: training samples, mean and standard deviation over seeds of test accuracy and loss."""
    frame = pd.DataFrame(records, columns=["version", "seed", "n_train", "accuracy", "loss"])
    grouped = frame.groupby("version", sort=False)
    table = grouped.agg(n_train=("n_train", "first"), seeds=("seed", "count"), accuracy=("accuracy", "mean"),
                        accuracy_std=("accuracy", "std"), loss=("loss", "mean"), loss_std=("loss", "std"))
    return table.fillna({"accuracy_std": 0.0, "loss_std": 0.0}).reset_index()
