"""Bench: does the class-pair map point at the true confusions? CIFAR-10N `worst` (the offline 4,000-image subset,
human noisy labels, the clean labels known), on a CPU.

Train the small CNN (early stopping on the clean validation loss), then build the map three ways — cleanlab's
confident joint on in-sample probabilities, on out-of-fold probabilities (K fold models), and the count of flagged
samples (the 20% lowest scores of the in-sample loss ranking, i.e. highest loss) per (given, predicted) pair — and
compare each with the truth: T[given, true] over the samples whose given label is wrong. Reported: how many of the
truth's top-5 / top-10 off-diagonal cells (ordered pairs) and unordered pairs (cat ↔ dog once) each map's top cells
find, the Spearman correlation over the 90 off-diagonal cells, and each map's top five pairs by name. Writes
bench/results/class_pairs.json and prints a markdown table.

    OMP_NUM_THREADS=1 python bench/class_pairs.py [--folds 3] [--epochs 15] [--patience 2] [--flag-share 0.2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine, markdown_table, write_results  # noqa: E402
from influence_core import load_dataset  # noqa: E402
from influence_core.analysis import predict  # noqa: E402
from influence_core.api import fold_models_for, out_of_fold_probabilities  # noqa: E402
from influence_core.class_pairs import confident_joint, flagged_pairs, top_pairs  # noqa: E402
from influence_core.folds import FoldSettings  # noqa: E402
from influence_core.models import TrainConfig, train_model  # noqa: E402
from influence_core.state import flagged_rows  # noqa: E402


def unordered(cells) -> set[frozenset]:
    return {frozenset((i, j)) for i, j, _ in cells}


def compare(name: str, matrix: np.ndarray, truth: np.ndarray, classes, seconds: float) -> dict:
    off = ~np.eye(len(classes), dtype=bool)
    row = {"map": name, "seconds": round(seconds, 1)}
    for k in (5, 10):
        ours, true = top_pairs(matrix, k), top_pairs(truth, k)
        row[f"top{k}_ordered"] = len({(i, j) for i, j, _ in ours} & {(i, j) for i, j, _ in true})
        row[f"top{k}_unordered"] = len(unordered(ours) & unordered(true))
        row[f"top{k}_unordered_of"] = len(unordered(true))
    row["spearman_offdiag"] = float(spearmanr(matrix[off], truth[off]).statistic)
    row["top5_pairs"] = ", ".join(f"{classes[i]}→{classes[j]} {c}" for i, j, c in top_pairs(matrix, 5))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--flag-share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ds = load_dataset("cifar10n", label_set="worst", seed=args.seed)
    classes = [str(c) for c in ds.classes]
    given, true = ds.train.y.numpy(), ds.clean_labels.numpy()
    C = len(classes)
    truth = np.zeros((C, C), dtype=np.int64)
    np.add.at(truth, (given, true), 1)
    np.fill_diagonal(truth, 0)  # only the wrong labels: given → true
    t0 = time.perf_counter()
    config = TrainConfig(epochs=args.epochs, patience=args.patience, seed=args.seed)
    fitted = train_model(ds, "cnn", config)
    train_s = time.perf_counter() - t0
    preds, probs = predict(fitted, ds.train)
    rows = [compare("truth (given → true, wrong labels only)", truth, truth, classes, 0.0)]
    t0 = time.perf_counter()
    rows.append(compare("confident joint, in-sample", confident_joint(given, probs), truth, classes,
                        time.perf_counter() - t0))
    t0 = time.perf_counter()
    per_sample_loss = -np.log(np.clip(probs[np.arange(len(given)), given], 1e-12, 1.0))
    flagged = flagged_rows(-per_sample_loss, args.flag_share)  # lower = more detrimental: the highest losses
    rows.append(compare(f"flagged {args.flag_share:.0%} by loss, in-sample", flagged_pairs(given, preds, flagged, C),
                        truth, classes, time.perf_counter() - t0))
    t0 = time.perf_counter()
    settings = FoldSettings(args.folds, args.seed)
    oof = out_of_fold_probabilities(ds, fold_models_for(ds, fitted, settings), settings)
    rows.append(compare(f"confident joint, out of fold ({args.folds} folds)", confident_joint(given, oof), truth,
                        classes, time.perf_counter() - t0))
    rows.append(compare(f"flagged {args.flag_share:.0%} by loss, out of fold",
                        flagged_pairs(given, oof.argmax(1),
                                      flagged_rows(np.log(np.clip(oof[np.arange(len(given)), given], 1e-12, 1)),
                                                   args.flag_share), C), truth, classes, 0.0))
    columns = [("map", "map"), ("top5_ordered", "top-5 cells found"), ("top5_unordered", "top-5 pairs found"),
               ("top10_ordered", "top-10 cells found"), ("top10_unordered", "top-10 pairs found"),
               ("spearman_offdiag", "Spearman (90 cells)"), ("seconds", "s"), ("top5_pairs", "top five cells")]
    table = markdown_table(rows, columns)
    info = {"n_train": len(given), "noise_rate": float((given != true).mean()), "train_s": round(train_s, 1),
            "epochs_run": len(fitted.history), "test_accuracy": fitted.metrics.get("test_accuracy")}
    print(info)
    print(table)
    path = write_results("class_pairs", {"env": machine(), "args": vars(args), "info": info, "rows": rows,
                                         "table": table})
    (path.with_suffix(".md")).write_text(f"{info}\n\n{table}\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
