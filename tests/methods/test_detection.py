"""Paper Section 4 on the synthetic sets: IP finds the flipped labels and agrees with exact influence."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

import influence_core as ic
from influence_core.models import TrainConfig


def _runs(name: str, arch: str, damping: float):
    for seed in range(5):
        ds = ic.load_dataset(name, seed=seed)
        fitted = ic.train_model(ds, arch, TrainConfig(seed=seed))
        ip = ic.compute_scores(ds, fitted, "ip")
        exact = ic.compute_scores(ds, fitted, "exact", damping=damping)
        noisy = ds.noise_mask.numpy()
        # AUROC of −score: the flipped labels should have the lowest (most detrimental) scores.
        yield roc_auc_score(noisy, -ip), roc_auc_score(noisy, -exact), spearmanr(ip, exact)[0]


def test_blobs_logreg_ip_finds_flipped_labels_and_agrees_with_exact():
    auc_ip, auc_exact, rho = map(np.array, zip(*_runs("blobs", "logreg", 0.0)))
    print(f"blobs/logreg AUROC IP {np.round(auc_ip, 3)}, exact {np.round(auc_exact, 3)}, Spearman {np.round(rho, 3)}")
    assert np.median(auc_ip) >= 0.95
    assert np.median(rho) >= 0.9


def test_moons_mlp_ip_finds_flipped_labels():
    """IP only: the exact-influence comparison on moons (slow, not asserted) is bench/synthetic_detection.py."""
    aucs = []
    for seed in range(5):
        ds = ic.load_dataset("moons", seed=seed)
        ip = ic.compute_scores(ds, ic.train_model(ds, "mlp", TrainConfig(seed=seed)), "ip")
        aucs.append(roc_auc_score(ds.noise_mask.numpy(), -ip))
    assert np.median(aucs) >= 0.8
