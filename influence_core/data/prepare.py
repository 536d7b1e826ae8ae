"""Preparation steps the real data sets share: seeded split carving, image normalisation with training
statistics, and the way back from normalised tensors to displayable uint8 pixels."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from ..errors import InfluenceError
from .base import Dataset, Split


def carve_indices(n: int, fraction: float, seed: int, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(kept, carved) row indices, each sorted: ``fraction`` of ``n`` rows carved off with a fixed seed.

    Stratified by ``labels`` when every class has at least two rows, so small classes survive in both parts.
    """
    if not 0.0 < fraction < 1.0:
        raise InfluenceError(f"a split fraction must be between 0 and 1 (exclusive), got {fraction}")
    n_carved = int(round(n * fraction))
    if n_carved < 1 or n - n_carved < 1:
        raise InfluenceError(f"cannot carve {fraction:.0%} of {n} rows into two non-empty parts; use more data")
    stratify = None
    if labels is not None:
        _, counts = np.unique(labels, return_counts=True)
        if counts.min() >= 2 and n_carved >= len(counts) and n - n_carved >= len(counts):
            stratify = labels
    kept, carved = train_test_split(np.arange(n), test_size=n_carved, random_state=seed, stratify=stratify)
    return np.sort(kept), np.sort(carved)


def normalise_images(train_u8: np.ndarray, *others: np.ndarray) -> tuple[list[torch.Tensor], list[float], list[float]]:
    """N×H×W×C uint8 arrays -> N×C×H×W float32 tensors standardised per channel with the TRAIN split's statistics.

    Returns the tensors (train first) and the per-channel mean / std on the [0, 1] scale (kept in ``meta`` so
    `raw_images` can undo the transform exactly).
    """
    scaled = train_u8.astype(np.float64) / 255.0
    mean = scaled.mean(axis=(0, 1, 2))
    std = scaled.std(axis=(0, 1, 2)) + 1e-8
    out = []
    for arr in (train_u8, *others):
        x = (arr.astype(np.float32) / 255.0 - mean.astype(np.float32)) / std.astype(np.float32)
        out.append(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    return out, mean.tolist(), std.tolist()


def raw_images(dataset: Dataset, split: str = "train", index: np.ndarray | list[int] | None = None) -> np.ndarray:
    """The uint8 N×H×W×C pixels of rows ``index`` of an image split (for display), undoing the normalisation."""
    if dataset.kind != "image" or "pixel_mean" not in dataset.meta:
        raise InfluenceError(f"'{dataset.name}' holds no images to show")
    if split not in ("train", "val", "test"):
        raise InfluenceError(f"split must be train, val or test, not '{split}'")
    part = getattr(dataset, split)
    part = getattr(part, "pixels", None) or part  # a backbone's embeddings keep their images
    x = part.rows(slice(None) if index is None else np.asarray(index, dtype=np.int64))  # only those rows from disk
    mean = torch.tensor(dataset.meta["pixel_mean"], dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(dataset.meta["pixel_std"], dtype=torch.float64).view(1, -1, 1, 1)
    pixels = ((x.double() * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).numpy()


def with_label_noise(dataset: Dataset, fraction: float, seed: int = 0, include_val: bool = True) -> Dataset:
    """A copy of ``dataset`` with ``fraction`` of its training labels (and, with ``include_val``, of its validation
    labels, as when validation is carved from the same noisy file) moved to another class uniformly at random.

    The training noise mask and clean labels are kept for scoring detectors; test labels stay clean.
    """
    if not 0.0 <= fraction < 1.0:
        raise InfluenceError(f"the label-noise fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed + 20_000)
    c = dataset.num_classes

    def flip(y: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        y = y.numpy().copy()
        chosen = rng.choice(len(y), size=int(round(fraction * len(y))), replace=False)
        y[chosen] = (y[chosen] + rng.integers(1, c, size=len(chosen))) % c  # any class but the true one
        mask = np.zeros(len(y), dtype=bool)
        mask[chosen] = True
        return torch.from_numpy(y), mask

    clean = dataset.train.y.clone() if dataset.clean_labels is None else dataset.clean_labels.clone()
    y_tr, _ = flip(dataset.train.y)
    train = dataset.train.with_labels(y_tr)
    out = dataset.with_train(train, noise_mask=y_tr != clean, source_index=dataset.source_index)
    out.clean_labels = clean
    out.meta.update(label_noise=fraction, label_noise_seed=seed)
    if include_val:
        y_va, _ = flip(dataset.val.y)
        out.val = dataset.val.with_labels(y_va)
        out.meta["trusted_val"] = False
    return out
