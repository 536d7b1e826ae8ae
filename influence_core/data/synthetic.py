"""Synthetic 2-D sets of the paper's Section 3 / Figure 2, with the flipped-label truth and a sensitive attribute."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import make_blobs, make_moons

from ..errors import InfluenceError
from .base import Dataset, Split
from .registry import register_dataset

# Fixed, well separated centres (as in the paper's Figure 2): the seed changes the sample, not the geometry.
BLOB_CENTRES = np.array([[-2.0, -2.0], [2.0, 2.0]])


def _sensitive_from_feature(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A binary attribute correlated with feature 0, so the two groups differ in base rate (paper App. C.1)."""
    p = 1.0 / (1.0 + np.exp(-1.5 * x[:, 0]))
    return (rng.random(len(x)) < p).astype(np.int64)


def _flip(y: np.ndarray, per_class: dict[int, int] | int, rng: np.random.Generator) -> np.ndarray:
    """Indices of flipped labels: ``per_class`` flips in each class, or an int for a total over all."""
    if isinstance(per_class, int):
        return np.sort(rng.choice(len(y), size=per_class, replace=False))
    chosen = [rng.choice(np.flatnonzero(y == c), size=k, replace=False) for c, k in per_class.items()]
    return np.sort(np.concatenate(chosen))


def check_sizes(name: str, n_train: int, n_val: int, n_test: int, flips: int) -> None:
    """One-line errors for split sizes a synthetic set cannot have (instead of numpy's own errors)."""
    for what, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if int(n) < 10:
            raise InfluenceError(f"{name}: {what} must be at least 10, got {n}")
    if not 0 <= int(flips) <= int(n_train) // 4:
        raise InfluenceError(f"{name}: the flipped labels must be between 0 and a quarter of n_train ({int(n_train) // 4}), "
                             f"got {flips}")


def _build(name: str, x: np.ndarray, y: np.ndarray, n_train: int, n_val: int, flips, seed: int) -> Dataset:
    rng = np.random.default_rng(seed + 10_000)
    s = _sensitive_from_feature(x, rng)
    x_tr, x_va, x_te = x[:n_train], x[n_train : n_train + n_val], x[n_train + n_val :]
    # Standardise with training statistics: IP ≈ influence needs comparable feature scales (near-identity Hessian).
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-12
    x_tr, x_va, x_te = ((a - mu) / sd for a in (x_tr, x_va, x_te))
    y_tr = y[:n_train].copy()
    flipped = _flip(y_tr, flips, rng)
    clean = y_tr.copy()
    y_tr[flipped] = 1 - y_tr[flipped]
    mask = np.zeros(n_train, dtype=bool)
    mask[flipped] = True
    sl = slice(n_train, n_train + n_val)
    return Dataset(
        name=name,
        train=Split(torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(s[:n_train])),
        val=Split(torch.from_numpy(x_va), torch.from_numpy(y[sl]), torch.from_numpy(s[sl])),
        test=Split(torch.from_numpy(x_te), torch.from_numpy(y[n_train + n_val :]), torch.from_numpy(s[n_train + n_val :])),
        classes=["class 0", "class 1"], kind="tabular", noise_mask=torch.from_numpy(mask),
        clean_labels=torch.from_numpy(clean), feature_names=["x1", "x2"],
        source_index=torch.arange(n_train), sensitive_name="group", meta={"seed": seed, "flipped": int(mask.sum()), "trusted_val": True},
    )


@register_dataset("blobs", "Two Gaussian blobs (150 train / 100 val / 100 test), 10 training labels flipped.")
def load_blobs(seed: int = 0, n_train: int = 150, n_val: int = 100, n_test: int = 100, n_flipped: int = 10) -> Dataset:
    check_sizes("blobs", n_train, n_val, n_test, n_flipped)
    n = n_train + n_val + n_test
    x, y = make_blobs(n_samples=n, centers=BLOB_CENTRES, cluster_std=1.0, random_state=seed)
    return _build("blobs", x, y, n_train, n_val, n_flipped, seed)


@register_dataset("moons", "Two interleaved moons (250 train / 100 val / 100 test), 10 labels flipped per class.")
def load_moons(seed: int = 0, n_train: int = 250, n_val: int = 100, n_test: int = 100, flipped_per_class: int = 10) -> Dataset:
    check_sizes("moons", n_train, n_val, n_test, 2 * flipped_per_class)
    n = n_train + n_val + n_test
    x, y = make_moons(n_samples=n, noise=0.2, random_state=seed)
    perm = np.random.default_rng(seed).permutation(n)  # make_moons orders by class; shuffle before splitting
    x, y = x[perm], y[perm]
    return _build("moons", x, y, n_train, n_val, {0: flipped_per_class, 1: flipped_per_class}, seed)
