"""Bench: how long the labelling-tool exports (issue 20 §7) take and how large they are, on the CIFAR-10N offline
subset (3,600 training images, 400 validation, 1,000 test; 32×32 PNGs) and on Adult (tabular), on a CPU.

The export does not depend on the model, so predictions are made up (the given label with probability 0.9) and one
score run is the row number; 10% of the training rows are removed, 10% relabelled, and the rest left undecided.
Writes bench/results/exports.json and exports.md.

    OMP_NUM_THREADS=1 python bench/exports.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import RESULTS, machine, markdown_table, peak_memory, timed, write_results  # noqa: E402
from influence_core import load_dataset  # noqa: E402
from influence_core.export_formats import export_zip, formats_for, labelled_rows  # noqa: E402
from influence_core.review import Decision  # noqa: E402


def _inputs(ds):
    n, c = len(ds.train), ds.num_classes
    rng = np.random.default_rng(0)
    rows = rng.permutation(n)
    decisions = {int(r): Decision(int(r), "remove", None, "bench", 0.0) for r in rows[: n // 10]}
    decisions |= {int(r): Decision(int(r), "relabel", int((ds.train.y[r] + 1) % c), "bench", 0.0)
                  for r in rows[n // 10 : n // 5]}
    predictions = {}
    for split in ("train", "val", "test"):
        y = getattr(ds, split).y.numpy()
        proba = np.full((len(y), c), 0.1 / (c - 1))
        proba[np.arange(len(y)), y] = 0.9
        predictions[split] = (y, proba)
    return decisions, {"ip": np.arange(n, dtype=float)}, predictions


def main() -> None:
    results = []
    for name, kwargs in (("cifar10n", {"label_set": "worst"}), ("adult", {})):
        ds = load_dataset(name, seed=0, **kwargs)
        decisions, scores, predictions = _inputs(ds)
        for fmt in formats_for(ds.kind):
            for all_rows in (False, True):
                with peak_memory() as mem:
                    seconds, data = timed(lambda: export_zip(fmt, labelled_rows(ds, decisions, scores, predictions,
                                                                                  all_rows=all_rows), "bench"))
                results.append({"dataset": name, "format": fmt, "rows": "all" if all_rows else "cleaned",
                                "samples": len(ds.train) + len(ds.val) + len(ds.test) - (0 if all_rows else len(ds.train) // 10),
                                "seconds": seconds, "zip_mb": len(data) / 2**20, "peak_mb": mem["peak_mb"]})
                print(results[-1], flush=True)
    write_results("exports", {"machine": machine(), "results": results})
    table = markdown_table(results, [("dataset", "data set"), ("format", "format"), ("rows", "rows"),
                                     ("samples", "samples"), ("seconds", "seconds"), ("zip_mb", "zip MB"),
                                     ("peak_mb", "peak MB")])
    (RESULTS / "exports.md").write_text("# Labelling-tool exports (bench/exports.py, CPU)\n\n" + table + "\n")
    print(table)


if __name__ == "__main__":
    main()
