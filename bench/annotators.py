"""Bench (issue 20 §4): on the CIFAR-10N subset, where the true labels are known, how well cleanlab's multiannotator
consensus of the three annotators (random1-3) recovers the truth, against CIFAR-N's own `aggregate` label, each
single annotator, a plain majority vote, and the model's prediction alone.

The model is the small CNN at the library defaults (or --epochs), trained on the `aggregate` labels through the
`Project` facade (cached in --cache); the consensus uses its in-sample probabilities and, with --folds K, its
out-of-fold ones (K fold models, as cleanlab intends). Also: each annotator's quality against its true accuracy.

    OMP_NUM_THREADS=2 python bench/annotators.py --folds 3     # -> bench/results/annotators.{md,json}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import RESULTS, machine  # noqa: E402
from influence_core.project import Project  # noqa: E402


def majority_vote(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The most frequent label of each row; a tie goes to the first annotator's label among the tied ones."""
    counts = np.stack([(labels == k).sum(1) for k in range(num_classes)], axis=1)
    best = counts.max(1, keepdims=True)
    first = labels[:, 0].astype(int)
    tied_first = counts[np.arange(len(labels)), first] == best[:, 0]
    return np.where(tied_first, first, counts.argmax(1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-train", type=int, default=None, help="first N images of the subset (default: all 4,000)")
    parser.add_argument("--epochs", type=int, default=None, help="CNN epochs (default: the library's)")
    parser.add_argument("--folds", type=int, default=0, help="also out of fold with K fold models (0 = in-sample only)")
    parser.add_argument("--cache", default=str(Path(__file__).resolve().parent / ".cache" / "annotators"))
    parser.add_argument("--out", default=str(RESULTS / "annotators"))
    args = parser.parse_args(argv)

    proj = Project.open("bench-annotators", args.cache)
    ds = proj.use_dataset("cifar10n", label_set="aggregate", max_train=args.max_train, seed=0)
    t0 = time.process_time()
    proj.train("cnn", {"epochs": args.epochs, "seed": 0})
    train_s = time.process_time() - t0
    truth = ds.clean_labels.numpy()
    labels = ds.annotators
    rows: list[tuple[str, np.ndarray]] = [("aggregate (CIFAR-N's own label)", ds.train.y.numpy())]
    rows += [(f"{name} alone", labels[:, j].astype(int)) for j, name in enumerate(ds.annotator_names)]
    rows.append(("majority vote of random1-3", majority_vote(labels, ds.num_classes)))
    preds = proj.predictions()[0]
    rows.append(("model prediction alone (in-sample)", preds))
    reports = {}
    seconds = {}
    for folds in sorted({0, args.folds}):
        t = time.process_time()
        reports[folds] = proj.annotator_report(folds)
        seconds[folds] = time.process_time() - t
        where = f"out of fold, {folds} folds" if folds else "in-sample"
        rows.append((f"consensus, cleanlab CROWDLAB ({where})", reports[folds]["consensus_label"]))
    n = len(truth)
    table = [{"labels": name, "accuracy": float((pred == truth).mean()), "wrong": int((pred != truth).sum())}
             for name, pred in rows]
    best = reports[max(reports)]
    quality = [{"annotator": name, "quality": float(best["annotator_quality"][j]),
                "agreement_with_consensus": float(best["agreement_with_consensus"][j]),
                "true_accuracy": float((labels[:, j] == truth).mean())} for j, name in enumerate(ds.annotator_names)]
    # the consensus quality as a ranking of wrong consensus labels (lower = more likely wrong)
    wrong = best["consensus_label"] != truth
    from sklearn.metrics import roc_auc_score

    auroc = float(roc_auc_score(wrong, -best["consensus_quality"])) if 0 < wrong.sum() < n else float("nan")
    result = {"n_train": n, "train_cpu_s": train_s, "report_cpu_s": seconds,
              "table": table, "annotators": quality, "consensus_quality_auroc": auroc, "folds": args.folds,
              "epochs": args.epochs, "machine": machine()}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    lines = [f"# Several annotators: consensus vs the truth (CIFAR-10N subset, {n:,} training images)", "",
             "`python bench/annotators.py" + (f" --folds {args.folds}" if args.folds else "") +
             (f" --epochs {args.epochs}" if args.epochs else "") + "`: small CNN trained on the `aggregate` labels; "
             "accuracy of each label source against CIFAR-10's true labels.", "",
             "| labels | accuracy | wrong |", "|---|---|---|"]
    lines += [f"| {r['labels']} | {r['accuracy']:.3f} | {r['wrong']:,} |" for r in table]
    lines += ["", "Each annotator's quality (cleanlab, " + (f"out of fold, {args.folds} folds" if args.folds else "in-sample")
              + ") against its true accuracy:", "", "| annotator | quality | agreement with consensus | true accuracy |",
              "|---|---|---|---|"]
    lines += [f"| {q['annotator']} | {q['quality']:.3f} | {q['agreement_with_consensus']:.3f} | {q['true_accuracy']:.3f} |"
              for q in quality]
    lines += ["", f"Consensus quality as a ranking of the wrong consensus labels: AUROC {auroc:.3f}. "
              f"CPU seconds: training {train_s:.0f}, reports " + ", ".join(f"{k} folds {v:.0f}" for k, v in seconds.items())
              + " (fold models included)."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
