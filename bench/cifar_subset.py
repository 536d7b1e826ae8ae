"""Bench: finding the truly mislabelled CIFAR-10N images on the 4,000-image offline subset, on a CPU.

For each label set (worst ≈ 42% noise, aggregate ≈ 9% on this subset): train the small CNN on 3,600 images
(400 clean-labelled validation images carved off, the 1,000 real test images for accuracy), then score every
training image with IP and IP Ensemble (utility impact: validation loss). Lower score = more detrimental, so the
ranking by −score is compared with the noise mask (noisy label ≠ clean label): AUROC and precision among the
5% lowest scores. The per-sample training loss is a reference ranking. Two training regimes: a fixed number of
epochs (the CNN memorises the noisy labels) and early stopping on the clean validation loss (the best epoch is
kept). Prints a markdown table and writes bench/results/cifar_subset.json.

    OMP_NUM_THREADS=2 python bench/cifar_subset.py [--epochs 15] [--patience 2] [--label-sets worst aggregate]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from influence_core import compute_scores, load_dataset  # noqa: E402
from influence_core.grads import per_sample_loss  # noqa: E402
from influence_core.models import TrainConfig, train_model  # noqa: E402


def detection(noisy: np.ndarray, suspicion: np.ndarray, top: float = 0.05) -> dict:
    """AUROC of ``suspicion`` (higher = more suspect) for the noise mask, and precision among the top fraction."""
    k = max(1, int(round(top * len(noisy))))
    chosen = np.argsort(-suspicion, kind="stable")[:k]
    return {"auroc": float(roc_auc_score(noisy, suspicion)), "precision_top5": float(noisy[chosen].mean()), "k": k}


@torch.no_grad()
def training_losses(fitted, dataset) -> np.ndarray:
    module = fitted.module.eval()
    return np.concatenate([per_sample_loss(module(x), y).numpy() for x, y in dataset.train.batches(512)])


def run(label_set: str, epochs: int, patience: int, ensemble_size: int, seed: int) -> list[dict]:
    ds = load_dataset("cifar10n", label_set=label_set, seed=seed)
    noisy = ds.noise_mask.numpy()
    t0 = time.perf_counter()
    fitted = train_model(ds, "cnn", TrainConfig(epochs=epochs, patience=patience, seed=seed))
    train_s = time.perf_counter() - t0
    best = int(np.argmin([h["val_loss"] for h in fitted.history])) + 1 if patience else len(fitted.history)
    regime = f"early stop, epoch {best} of {len(fitted.history)}" if patience else f"{epochs} epochs"
    common = {"label_set": label_set, "n_train": len(ds.train), "noise_rate": float(noisy.mean()), "training": regime,
              "epochs_run": len(fitted.history), "patience": patience, "train_s": train_s,
              "test_accuracy": fitted.metrics["test_accuracy"],
              "train_accuracy": fitted.metrics["train_accuracy"]}
    rows = []
    for method, settings in (("ip", {}), ("ip_ensemble", {"ensemble_size": ensemble_size})):
        t0 = time.perf_counter()
        scores = compute_scores(ds, fitted, method, "utility", batch_size=256, **settings)
        rows.append({**common, "method": method, "settings": settings, "score_s": time.perf_counter() - t0,
                     **detection(noisy, -scores)})
    t0 = time.perf_counter()
    losses = training_losses(fitted, ds)
    rows.append({**common, "method": "train loss (reference)", "settings": {}, "score_s": time.perf_counter() - t0,
                 **detection(noisy, losses)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label-sets", nargs="+", default=["worst", "aggregate"])
    parser.add_argument("--epochs", type=int, default=15, help="training epochs (15 = the cnn default)")
    parser.add_argument("--patience", type=int, default=2, help="early-stopping regime: epochs without improvement")
    parser.add_argument("--ensemble-size", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "cifar_subset.json"))
    args = parser.parse_args()
    rows = [r for ls in args.label_sets for patience in (0, args.patience)
            for r in run(ls, args.epochs, patience, args.ensemble_size, args.seed)]
    print("| label set | noise | training | method | train s | score s | train acc | test acc | AUROC | precision@top5% |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label_set']} | {r['noise_rate']:.1%} | {r['training']} | {r['method']} | {r['train_s']:.1f} | "
              f"{r['score_s']:.1f} | {r['train_accuracy']:.3f} | {r['test_accuracy']:.3f} | {r['auroc']:.3f} | "
              f"{r['precision_top5']:.3f} (k={r['k']}) |")
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
           "processor": platform.processor(), "python": platform.python_version()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"env": env, "args": vars(args), "rows": rows}, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
