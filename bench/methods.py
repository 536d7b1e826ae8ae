"""Bench: every influence method on blobs (logistic regression), moons (MLP) and CIFAR-10N `worst` (SmallCNN).

In the spirit of the paper's Table 7 / Figure 4: wall seconds of one scoring run, time relative to IP, Spearman
correlation with exact influence where the explicit Hessian is feasible (all parameters of the logistic regression
and the MLP; the classifier head of the CNN), and AUROC of finding the flipped / human-mislabelled training samples
from the scores (lower score = more suspect). Models are trained with checkpoints for TracIn / TDA.

    OMP_NUM_THREADS=2 python bench/methods.py            # writes bench/results/methods.json, prints markdown
    python bench/methods.py --quick                      # a smoke run in seconds
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from influence_core.api import compute_scores  # noqa: E402
from influence_core.data import load_dataset  # noqa: E402
from influence_core.methods import METHODS  # noqa: E402
from influence_core.models import TrainConfig, train_model  # noqa: E402

ORDER = ["ip", "ip_ensemble", "exact", "tracin", "self_tracin", "gex", "lissa", "self_lissa", "ekfac", "datainf", "tda"]


@dataclass
class Case:
    """One data set + model; ``params`` is the parameter selection every method scores over."""

    label: str
    dataset: str
    arch: str
    data_kwargs: dict
    train: TrainConfig
    params: str = "all"
    exact_damping: float = 0.01  # the exact reference (same damping as LiSSA's default where the model is not convex)
    settings: dict = field(default_factory=dict)  # per-method overrides
    skip: tuple[str, ...] = ()


def cases(quick: bool) -> list[Case]:
    cifar = dict(label_set="worst", max_train=2000 if not quick else 300, max_test=500, val_fraction=0.15)
    cnn_train = TrainConfig(checkpoint_every=5, epochs=15 if not quick else 5)
    return [
        Case("blobs / logreg", "blobs", "logreg", {}, TrainConfig(checkpoint_every=1), exact_damping=0.0),
        Case("moons / MLP", "moons", "mlp", {}, TrainConfig(checkpoint_every=50)),
        # All 140k parameters: speed and AUROC (no exact reference); Self-LiSSA is too slow here (N×depth HVPs).
        Case("CIFAR-10N-w / CNN (all)", "cifar10n", "cnn", cifar, cnn_train, skip=("exact", "self_lissa"),
             settings={"lissa": {"depth": 300}}),
        # The classifier head (650 parameters): exact is feasible, so every method gets a Spearman figure.
        Case("CIFAR-10N-w / CNN (head)", "cifar10n", "cnn", cifar, cnn_train, params="head",
             settings={"self_lissa": {"depth": 100}}),
    ]


def run(quick: bool) -> tuple[list[dict], dict]:
    rows: list[dict] = []
    trained: dict = {}
    for case in cases(quick):
        key = (case.dataset, json.dumps(case.data_kwargs, sort_keys=True), case.arch, case.train.key())
        if key not in trained:
            ds = load_dataset(case.dataset, **case.data_kwargs)
            t0 = time.perf_counter()
            fm = train_model(ds, case.arch, case.train)
            trained[key] = (ds, fm, time.perf_counter() - t0)
            print(f"[{case.label}] trained in {trained[key][2]:.1f}s: {fm.metrics}, {len(fm.checkpoints)} checkpoints",
                  file=sys.stderr)
        ds, fm, _ = trained[key]
        noisy = ds.noise_mask.numpy().astype(bool)

        def score(method: str) -> tuple[np.ndarray, float]:
            kwargs = dict(case.settings.get(method, {}))
            if method == "exact":
                kwargs.setdefault("damping", case.exact_damping)
            if quick and method in ("lissa", "self_lissa"):
                kwargs.setdefault("depth", 30)
            t0 = time.perf_counter()
            scores = compute_scores(ds, fm, method, "utility", params=case.params, **kwargs)
            return scores, time.perf_counter() - t0

        score("ip")  # warm-up: torch.func's first call compiles its decompositions
        ip_seconds = min(score("ip")[1] for _ in range(3))
        exact = None if "exact" in case.skip else score("exact")[0]
        for method in ORDER:
            if method in case.skip:
                continue
            scores, seconds = score(method) if method != "ip" else (score("ip")[0], ip_seconds)
            rows.append({
                "case": case.label, "dataset": case.dataset, "model": case.arch, "params": case.params,
                "n_train": len(ds.train), "method": method, "label": METHODS[method].label or method,
                "kind": METHODS[method].kind, "seconds": seconds, "times_ip": seconds / ip_seconds,
                "spearman_exact": None if exact is None else float(spearmanr(scores, exact)[0]),
                "auroc_noisy": float(roc_auc_score(noisy, -scores)) if 0 < noisy.sum() < len(noisy) else None,
                "settings": case.settings.get(method, {}),
            })
            r = rows[-1]
            print(f"[{case.label}] {method:<12} {seconds:8.3f}s  ×IP {r['times_ip']:8.1f}  "
                  f"ρ {r['spearman_exact'] if r['spearman_exact'] is not None else 'n/a'}  AUROC {r['auroc_noisy']:.3f}",
                  file=sys.stderr)
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
           "processor": platform.processor() or platform.machine(), "quick": quick,
           "trained": {k[0] + "/" + k[2]: {"train_seconds": v[2], **v[1].metrics, "n_train": len(v[0].train),
                                            "noise_rate": float(v[0].noise_mask.float().mean())}
                       for k, v in trained.items()}}
    return rows, env


def markdown(rows: list[dict]) -> str:
    def fmt(x, spec: str) -> str:
        return "n/a" if x is None else format(x, spec)

    out = ["| data / model | method | type | seconds | × IP time | Spearman vs exact | AUROC (noisy) |",
           "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['case']} | {r['label']} | {r['kind']} | {r['seconds']:.3f} | {r['times_ip']:.1f} | "
                   f"{fmt(r['spearman_exact'], '.3f')} | {fmt(r['auroc_noisy'], '.3f')} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, for a smoke run")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "methods.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    rows, env = run(args.quick)
    env["total_seconds"] = time.perf_counter() - t0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"environment": env, "rows": rows}, indent=2))
    print(markdown(rows))
    print(f"\n{env['threads']} threads, torch {env['torch']}, total {env['total_seconds']:.0f}s; wrote {args.out}")


if __name__ == "__main__":
    main()
