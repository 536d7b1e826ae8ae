"""Bench: the detection leaderboard — how well each ranking finds the training labels known to be wrong.

Cells: the 4,000-image CIFAR-10N subset with `aggregate`, `random1` and `worst` labels (small CNN at the library
defaults: early stopping, augmentation); Adult and Bank with 10% of training AND validation labels moved at random
(validation carved from the same noisy file, as an uploaded CSV is; logistic regression); moons (MLP) and blobs
(logistic regression) with their flipped labels. Every registry method that finishes in reasonable time runs
in-sample, and the cheap ones also out of fold (5 fold models, trained once per cell and shared by every method).

Per cell and ranking: AUROC, average precision, precision among the lowest-scored 5% and 10%, and CPU seconds
(process time; out-of-fold rows include training the 5 fold models once, split evenly over the methods that share
them — the 'train s' column gives the total). Median over seeds. Lower score = more suspect everywhere.

    OMP_NUM_THREADS=2 python bench/detect.py                    # everything, 3 seeds -> bench/results/detect.{md,json}
    python bench/detect.py --cells moons blobs --seeds 0        # a quick look
    python bench/detect.py --retrain                            # + trim 5% and retrain (paper Table 1 at CPU scale)

Models and fold models are cached in --cache (a workspace), scores in a JSON-lines journal beside it, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import RESULTS, machine  # noqa: E402
from influence_core.api import compute_scores  # noqa: E402
from influence_core.data import load_dataset  # noqa: E402
from influence_core.data.prepare import with_label_noise  # noqa: E402
from influence_core.errors import InfluenceError  # noqa: E402
from influence_core.figures import detection_report  # noqa: E402
from influence_core.models import TrainConfig  # noqa: E402
from influence_core.engine import Engine  # noqa: E402
from influence_core.workspace import Workspace  # noqa: E402

FOLDS = 5
# (label, registry method, method settings, impact settings): the rankings of the leaderboard.
IN_SAMPLE = [
    ("loss", "loss", {}, {}), ("margin", "margin", {}, {}), ("confident_learning", "confident_learning", {}, {}),
    ("ip (full target)", "ip", {}, {"val_trim": 0.0}), ("ip", "ip", {}, {"val_trim": 0.1}),
    ("ip_ensemble", "ip_ensemble", {}, {"val_trim": 0.1}), ("ip_classwise", "ip_classwise", {}, {"val_trim": 0.1}),
    ("ip_combined", "ip_combined", {}, {"val_trim": 0.1}),
    ("tracin", "tracin", {}, {"val_trim": 0.1}), ("self_tracin", "self_tracin", {}, {}),
    ("gex", "gex", {}, {"val_trim": 0.1}), ("datainf", "datainf", {}, {"val_trim": 0.1}),
    ("ekfac", "ekfac", {}, {"val_trim": 0.1}), ("exact", "exact", {}, {"val_trim": 0.1}),
]
OUT_OF_FOLD = ["loss", "confident_learning", "ip", "ip_ensemble", "ip_combined"]


@dataclass
class Cell:
    name: str
    arch: str
    loader: dict
    noise: float = 0.0  # label noise added to train + validation (Adult, Bank)
    skip: tuple[str, ...] = ()  # methods too slow or not applicable here
    params: str = "all"
    config: dict = field(default_factory=dict)


HEAVY = ("exact", "ekfac", "datainf", "gex")
CELLS = {
    "cifar10n-aggregate": Cell("cifar10n-aggregate", "cnn", {"name": "cifar10n", "label_set": "aggregate"}, skip=HEAVY,
                               config={"checkpoint_every": 3}),
    "cifar10n-random1": Cell("cifar10n-random1", "cnn", {"name": "cifar10n", "label_set": "random1"}, skip=HEAVY,
                             config={"checkpoint_every": 3}),
    "cifar10n-worst": Cell("cifar10n-worst", "cnn", {"name": "cifar10n", "label_set": "worst"}, skip=HEAVY,
                           config={"checkpoint_every": 3}),
    "adult-flip10": Cell("adult-flip10", "logreg", {"name": "adult"}, noise=0.1, config={"checkpoint_every": 1}),
    "bank-flip10": Cell("bank-flip10", "logreg", {"name": "bank"}, noise=0.1, config={"checkpoint_every": 1}),
    "moons": Cell("moons", "mlp", {"name": "moons"}, config={"checkpoint_every": 50}),
    "blobs": Cell("blobs", "logreg", {"name": "blobs"}, config={"checkpoint_every": 1}),
}


def load_cell(cell: Cell, seed: int):
    kwargs = {k: v for k, v in cell.loader.items() if k != "name"}
    ds = load_dataset(cell.loader["name"], seed=seed, **kwargs)
    return with_label_noise(ds, cell.noise, seed=seed) if cell.noise else ds


class Journal:
    """Finished rows, one JSON object a line, keyed by (cell, seed, ranking, mode): a rerun skips them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = {}
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.rows[self.key(row)] = row

    @staticmethod
    def key(row: dict) -> tuple:
        return row["cell"], row["seed"], row["ranking"], row["mode"]

    def add(self, row: dict) -> None:
        self.rows[self.key(row)] = row
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def cpu_seconds(fn):
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def run_cell(cell: Cell, seed: int, ws: Workspace, journal: Journal, scores_dir: Path, folds: bool) -> None:
    ds = load_cell(cell, seed)
    noisy = ds.noise_mask.numpy()
    config = TrainConfig(seed=seed, **cell.config)
    train_s, fitted = cpu_seconds(lambda: Engine(ws).model(ds, cell.arch, config))
    common = {"cell": cell.name, "seed": seed, "n_train": len(ds.train), "noise_rate": float(noisy.mean()),
              "train_accuracy": fitted.metrics.get("train_accuracy"), "val_accuracy": fitted.metrics.get("val_accuracy"),
              "test_accuracy": fitted.metrics.get("test_accuracy"), "best_epoch": fitted.metrics.get("best_epoch")}
    print(f"[{cell.name} seed {seed}] model: train acc {common['train_accuracy']:.3f}, val acc {common['val_accuracy']:.3f}", flush=True)

    def record(label: str, mode: str, method: str, settings: dict, impact_settings: dict, compute, extra_s: float = 0.0):
        if (cell.name, seed, label, mode) in journal.rows:
            return
        try:
            seconds, scores = cpu_seconds(compute)
        except InfluenceError as err:
            print(f"  {label} ({mode}): n/a — {err}", flush=True)
            return
        report = detection_report({label: scores}, noisy).iloc[0].to_dict()
        row = {**common, "ranking": label, "mode": mode, "method": method, "settings": settings,
               "impact_settings": impact_settings, "cpu_s": seconds + extra_s, "train_s": train_s, **report}
        np.save(scores_dir / f"{cell.name}-{seed}-{mode}-{label.replace(' ', '_')}.npy", scores)
        journal.add(row)
        print(f"  {label:<22} {mode:<10} AUROC {row['AUROC']:.3f}  P@5% {row['precision@5%']:.3f}  {row['cpu_s']:.1f} s", flush=True)

    for label, method, settings, imp in IN_SAMPLE:
        if method in cell.skip or (method in ("tracin", "self_tracin") and not fitted.checkpoints):
            continue
        record(label, "in-sample", method, settings, imp,
               lambda: compute_scores(ds, fitted, method, "utility", params=cell.params, impact_settings=imp, **settings))
    if not folds:
        return
    if all((cell.name, seed, m, "oof") in journal.rows for m in OUT_OF_FOLD):
        return
    fold_s, fold_models = cpu_seconds(lambda: Engine(ws).fold_models(ds, fitted, FOLDS))
    for label, method, settings, imp in IN_SAMPLE:
        if label not in OUT_OF_FOLD:
            continue
        record(label, "oof", method, settings, imp,
               lambda: compute_scores(ds, fitted, method, "utility", params=cell.params, impact_settings=imp,
                                      folds=FOLDS, fold_models=fold_models, **settings),
               extra_s=fold_s / len(OUT_OF_FOLD))


def summarise(journal: Journal, cells: list[str]) -> tuple[list[dict], str]:
    """Median over seeds per (cell, ranking, mode), and the markdown tables (one per cell, best AUROC first)."""
    groups: dict[tuple, list[dict]] = {}
    for row in journal.rows.values():
        if row["cell"] in cells:
            groups.setdefault((row["cell"], row["ranking"], row["mode"]), []).append(row)
    summary = []
    for (cell, ranking, mode), rows in groups.items():
        med = {k: float(np.median([r[k] for r in rows])) for k in ("AUROC", "average precision", "precision@5%",
                                                                  "precision@10%", "cpu_s", "train_s")}
        summary.append({"cell": cell, "ranking": ranking, "mode": mode, "seeds": sorted(r["seed"] for r in rows),
                        "noise_rate": rows[0]["noise_rate"], "n_train": rows[0]["n_train"], **med})
    lines = []
    for cell in cells:
        rows = sorted((s for s in summary if s["cell"] == cell), key=lambda s: -s["AUROC"])
        if not rows:
            continue
        lines += [f"### {cell} (n = {rows[0]['n_train']:,}, {rows[0]['noise_rate']:.1%} wrong labels, "
                  f"seeds {','.join(map(str, rows[0]['seeds']))})", "",
                  "| ranking | mode | AUROC | AP | P@5% | P@10% | CPU s |", "|---|---|---|---|---|---|---|"]
        for s in rows:
            lines.append(f"| {s['ranking']} | {s['mode']} | {s['AUROC']:.3f} | {s['average precision']:.3f} | "
                         f"{s['precision@5%']:.3f} | {s['precision@10%']:.3f} | {s['cpu_s']:.1f} |")
        lines.append("")
    return summary, "\n".join(lines)


def retrain(cells: list[str], seeds: int, scores_dir: Path, name: str, share: float = 0.05) -> str:
    """Paper Table 1 at CPU scale: trim the lowest-scored ``share`` by each ranking (seed-0 scores), retrain the
    default CNN with ``seeds`` seeds, test accuracy mean ± std; ``full`` = no trim, ``random`` = a random 5%."""
    from influence_core.models import train_model

    rankings = [("full", None), ("random", None), ("ip", "oof"), ("ip_ensemble", "in-sample"), ("loss", "in-sample"),
                ("confident_learning", "oof"), ("ip_combined", "in-sample")]
    lines = ["| label set | trimmed by | test accuracy (mean ± std) |", "|---|---|---|"]
    out = []
    for cell_name in cells:
        cell = CELLS[cell_name]
        ds = load_cell(cell, 0)
        n = len(ds.train)
        k = int(round(share * n))
        for ranking, mode in rankings:
            if ranking == "full":
                keep = np.arange(n)
            elif ranking == "random":
                keep = np.sort(np.random.default_rng(0).permutation(n)[k:])
            else:
                path = scores_dir / f"{cell.name}-0-{mode}-{ranking}.npy"
                if not path.exists():
                    continue
                keep = np.sort(np.argsort(np.load(path), kind="stable")[k:])
            trimmed = ds.with_train(ds.train.subset(keep))
            accs = [train_model(trimmed, cell.arch, TrainConfig(seed=s)).metrics["test_accuracy"] for s in range(seeds)]
            label = ranking if ranking in ("full", "random") else f"{ranking} ({mode})"
            out.append({"cell": cell_name, "trimmed_by": label, "accuracies": accs})
            lines.append(f"| {cell_name} | {label} | {100 * np.mean(accs):.2f} ± {100 * np.std(accs):.2f} |")
            print(lines[-1], flush=True)
    (RESULTS / f"{name}_retrain.json").write_text(json.dumps(out, indent=1))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--no-folds", action="store_true", help="in-sample rankings only")
    parser.add_argument("--retrain", action="store_true", help="then trim 5%% and retrain on the CIFAR cells (3 seeds)")
    parser.add_argument("--cache", default=str(Path(__file__).resolve().parent / ".cache" / "detect"))
    parser.add_argument("--name", default="detect", help="result file name under bench/results")
    args = parser.parse_args()
    ws = Workspace(args.cache)
    scores_dir = Path(args.cache) / "scores-npy"
    scores_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(Path(args.cache) / "journal.jsonl")
    for cell in args.cells:
        for seed in args.seeds:
            run_cell(CELLS[cell], seed, ws, journal, scores_dir, folds=not args.no_folds)
    summary, tables = summarise(journal, args.cells)
    env = machine()
    header = (f"# Detection leaderboard\n\n`python bench/detect.py` on {env['device']}, {env['threads']} threads, torch "
              f"{env['torch']}. Median over seeds; lower score = more suspect. CPU s = process time of the ranking "
              f"(out of fold: plus a 1/{len(OUT_OF_FOLD)} share of training the {FOLDS} fold models).\n\n")
    text = header + tables
    if args.retrain:
        cifar = [c for c in args.cells if c.startswith("cifar10n-") and c != "cifar10n-random1"]
        text += "\n## Trim 5% and retrain (test accuracy, 3 seeds)\n\n" + retrain(cifar, 3, scores_dir, args.name) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text(text)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"env": env, "summary": summary,
                                                           "rows": list(journal.rows.values())}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
