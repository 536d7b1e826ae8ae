"""Bench: bulk fixes and versions at the scale of a whole training split (issue 20 §5-6).

A bulk fix over every sample is one batch in the decision log; one undo takes it back. A version stores only the
changed rows. Timed on a synthetic split of N rows (no model: probabilities drawn at random), for N = 10k and 50k:
preview (the rule over N rows), apply (one SQLite batch), undo, save a version, read it back, diff two versions.

    OMP_NUM_THREADS=1 python bench/bulk_versions.py     # -> bench/results/bulk_versions.md
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from influence_core.bulk import relabel_preview  # noqa: E402
from influence_core.data.base import Dataset, Split  # noqa: E402
from influence_core.review import DecisionLog  # noqa: E402
from influence_core.versions import diff_versions, load_version, make_version, save_version  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run(n: int, classes: int = 10, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    probs = rng.dirichlet(np.full(classes, 0.3), n)
    split = Split(torch.zeros(n, 2), torch.from_numpy(y))
    small = Split(torch.zeros(10, 2), torch.zeros(10, dtype=torch.int64))
    dataset = Dataset("bench", split, small, small, [str(k) for k in range(classes)])
    source = np.arange(n)
    with tempfile.TemporaryDirectory() as folder:
        log, scope = DecisionLog(Path(folder) / "decisions.sqlite"), "bench"
        preview, t_preview = _timed(lambda: relabel_preview(np.arange(n), probs, y, 0.5))
        _, t_apply = _timed(lambda: log.record(scope, preview.rows, "relabel", new_labels=preview.new_labels,
                                               session="s", event=preview.event(), originals=preview.rows))
        decisions = log.current(scope)
        v1, t_save = _timed(lambda: save_version(folder, make_version("v1", dataset, decisions, source, "bench")))
        _, t_undo = _timed(lambda: log.undo(scope, session="s"))
        log.record(scope, np.arange(0, n, 3), "remove", session="s")
        save_version(folder, make_version("v2", dataset, log.current(scope), source, "bench", parent="v1"))
        (a, b), t_load = _timed(lambda: (load_version(folder, "v1"), load_version(folder, "v2")))
        diff, t_diff = _timed(lambda: diff_versions(a, b))
        size = (Path(folder) / "versions" / "v1.json").stat().st_size
    return {"rows": n, "fixed": preview.count, "preview_s": t_preview, "apply_s": t_apply, "undo_s": t_undo,
            "save_s": t_save, "load_two_s": t_load, "diff_s": t_diff, "version_mb": size / 2**20,
            "diff": (len(diff.removed), len(diff.restored), len(diff.relabelled))}


def main() -> None:
    rows = [run(n) for n in (10_000, 50_000)]
    lines = ["# Bulk fixes and versions (bench/bulk_versions.py)", "",
             "Relabel fix at probability ≥ 0.5 over every sample (10 classes, random Dirichlet probabilities), one "
             "SQLite batch; version v1 = that fix, v2 = undone + every third row removed. One process, CPU, "
             "OMP_NUM_THREADS=1, on a shared 2-core machine.", "",
             "| rows | fixed | preview s | apply (1 batch) s | undo s | save version s | version file MB | "
             "load two s | diff s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['rows']:,} | {r['fixed']:,} | {r['preview_s']:.3f} | {r['apply_s']:.3f} | "
                     f"{r['undo_s']:.3f} | {r['save_s']:.3f} | {r['version_mb']:.2f} | {r['load_two_s']:.3f} | "
                     f"{r['diff_s']:.3f} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bulk_versions.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
