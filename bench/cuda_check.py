"""Bench: the CUDA path of training and scoring, checked against the CPU path on the same weights.

For moons (MLP) and the CIFAR-10N subset (small CNN, a few epochs): train on the GPU, then score the same weights
on the GPU and on the CPU with IP, IP Ensemble, class-target IP, IP + loss, loss and TracIn; report the largest
relative difference and the seconds of each. Without a GPU it says so and exits 0. Writes
bench/results/cuda_check.{md,json}.

    python bench/cuda_check.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import RESULTS, machine  # noqa: E402
from influence_core.api import compute_scores  # noqa: E402
from influence_core.data import load_dataset  # noqa: E402
from influence_core.models import TrainConfig, train_model  # noqa: E402

METHODS = ["ip", "ip_ensemble", "ip_classwise", "ip_combined", "loss", "tracin"]


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to check")
        return
    cases = [("moons", {}, "mlp", {}), ("cifar10n", {"label_set": "worst"}, "cnn", {"epochs": args.epochs})]
    rows = []
    for name, kwargs, arch, cfg in cases:
        ds = load_dataset(name, seed=0, **kwargs)
        train_s, fitted = timed(lambda: train_model(ds, arch, TrainConfig(checkpoint_every=1, **cfg), device="cuda"))
        cpu_train_s, _ = timed(lambda: train_model(ds, arch, TrainConfig(checkpoint_every=1, **cfg), device="cpu"))
        rows.append({"case": f"{name}/{arch}", "method": "(training)", "cuda_s": train_s, "cpu_s": cpu_train_s,
                     "max_rel_diff": float("nan"), "epochs": len(fitted.history)})
        for method in METHODS:
            gpu_s, on_gpu = timed(lambda: compute_scores(ds, fitted, method, device="cuda"))
            cpu_s, on_cpu = timed(lambda: compute_scores(ds, fitted, method, device="cpu"))
            if method == "ip_combined":  # ranks: compare the orderings' agreement instead of values
                diff = float(np.mean(np.argsort(on_gpu) != np.argsort(on_cpu)))
            else:
                diff = float(np.abs(on_gpu - on_cpu).max() / max(np.abs(on_cpu).max(), 1e-30))
            rows.append({"case": f"{name}/{arch}", "method": method, "cuda_s": gpu_s, "cpu_s": cpu_s, "max_rel_diff": diff})
            print(rows[-1], flush=True)
    env = machine()
    lines = [f"# CUDA check\n\n{env['device']}, torch {env['torch']}, CPU threads {env['threads']}. Same weights scored on "
             "both devices (ip_combined: share of rank positions that differ).\n",
             "| case | method | CUDA s | CPU s | max rel. diff |", "|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['method']} | {r['cuda_s']:.2f} | {r['cpu_s']:.2f} | {r['max_rel_diff']:.2g} |" for r in rows]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cuda_check.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "cuda_check.json").write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
