"""Bench: planted data issues in the CIFAR-10N subset, found by cleanlab's Datalab (issue 20 §1).

Into the training split of the 4,000-image offline CIFAR-10 subset (aggregate labels; optionally its first
``--max-train`` images) we plant:

* 100 exact duplicates: copies of random training images, same label;
* 100 near duplicates: a random crop (26-30 px a side, resized back to 32) of a random training image with brightness
  and contrast jitter (×0.9-1.1) and a little pixel noise (σ = 3/255), same label;
* 100 images from another source: 50 of uniform pixel noise and 50 smooth random colour fields (noise blurred by a
  Gaussian, σ = 3 px), random labels.

Then the small CNN is trained on the planted split at the library defaults (early stopping on the clean validation
loss) and `find_data_issues` runs Datalab on its penultimate features and probabilities, with cleanvision's image
checks. For each planted kind: recall (planted samples flagged) and precision (flagged samples that were planted, or
the originals of planted duplicates) of the issue type meant to catch it, plus the AUROC of its ranking; the wall time
of each stage; and cleanvision through Datalab's ``image_key`` path against ``Imagelab`` called directly.
Writes bench/results/datalab.json and prints the markdown table of bench/results/datalab.md.

    OMP_NUM_THREADS=2 python bench/datalab.py [--max-train 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine, markdown_table, write_results  # noqa: E402
from influence_core import load_dataset  # noqa: E402
from influence_core.data.base import Split  # noqa: E402
from influence_core.data_issues import DataIssueSettings, find_data_issues, image_records  # noqa: E402
from influence_core.export import images_uint8  # noqa: E402
from influence_core.engine import Engine  # noqa: E402
from influence_core.models import TrainConfig  # noqa: E402
from influence_core.workspace import Workspace  # noqa: E402

PLANTED = 100


def near_copy(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop (26-30 px) resized back, brightness and contrast jitter, a little pixel noise."""
    side = int(rng.integers(26, 31))
    top, left = rng.integers(0, 33 - side, 2)
    crop = Image.fromarray(img[top:top + side, left:left + side]).resize((32, 32), Image.BILINEAR)
    x = np.asarray(crop, np.float64)
    x = (x - x.mean()) * rng.uniform(0.9, 1.1) + x.mean() * rng.uniform(0.9, 1.1) + rng.normal(0, 3, x.shape)
    return np.clip(x, 0, 255).round().astype(np.uint8)


def other_source(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` images not from CIFAR: half uniform noise, half smooth random colour fields."""
    from scipy.ndimage import gaussian_filter

    noise = rng.integers(0, 256, (n // 2, 32, 32, 3)).astype(np.uint8)
    fields = np.stack([gaussian_filter(rng.uniform(0, 255, (32, 32, 3)), sigma=(3, 3, 0)) for _ in range(n - n // 2)])
    lo, hi = fields.min(axis=(1, 2, 3), keepdims=True), fields.max(axis=(1, 2, 3), keepdims=True)
    return np.concatenate([noise, ((fields - lo) / (hi - lo) * 255).round().astype(np.uint8)])


def planted_dataset(max_train: int | None, seed: int):
    """The CIFAR-10N subset with the planted images appended to its training split, and which rows are which."""
    ds = load_dataset("cifar10n", label_set="aggregate", seed=seed, max_train=max_train)
    rng = np.random.default_rng(seed)
    images = images_uint8(ds, np.arange(len(ds.train)))
    labels = ds.train.y.numpy()
    n = len(images)
    exact_src = rng.choice(n, PLANTED, replace=False)
    near_src = rng.choice(np.setdiff1d(np.arange(n), exact_src), PLANTED, replace=False)
    near = np.stack([near_copy(images[i], rng) for i in near_src])
    other = other_source(PLANTED, rng)
    all_images = np.concatenate([images, images[exact_src], near, other])
    all_labels = np.concatenate([labels, labels[exact_src], labels[near_src],
                                 rng.integers(0, ds.num_classes, PLANTED)])
    mean = np.asarray(ds.meta["pixel_mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(ds.meta["pixel_std"], np.float32).reshape(1, 3, 1, 1)
    x = (all_images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0 - mean) / std
    rows = {"exact": np.arange(n, n + PLANTED), "near": np.arange(n + PLANTED, n + 2 * PLANTED),
            "other": np.arange(n + 2 * PLANTED, n + 3 * PLANTED), "exact_src": exact_src, "near_src": near_src}
    noise = torch.cat([ds.noise_mask, torch.zeros(3 * PLANTED, dtype=torch.bool)])
    source = torch.cat([ds.source_index, torch.arange(100_000, 100_000 + 3 * PLANTED)])
    planted = replace(ds, name="cifar10n+planted", train=Split(torch.from_numpy(x), torch.from_numpy(all_labels)),
                      noise_mask=noise, clean_labels=None, source_index=source)
    return planted, rows


def score(found, issue: str, positives: np.ndarray, allowed: np.ndarray, n: int, sources=()) -> dict:
    """Recall of ``issue``'s flags on ``positives``, precision against ``allowed`` (positives and what may
    legitimately be flagged with them), and the AUROC of its ranking for ``positives`` and their ``sources`` (the
    originals of planted duplicates are duplicates too)."""
    flagged = found.flagged(issue)
    truth = np.zeros(n, bool)
    truth[positives] = True
    truth[np.asarray(sources, dtype=np.int64)] = True
    ranking = found.rankings()[issue]
    return {"issue": issue, "n_planted": int(len(positives)), "flagged": int(len(flagged)),
            "recall": float(np.isin(positives, flagged).mean()),
            "precision": float(np.isin(flagged, allowed).mean()) if len(flagged) else float("nan"),
            "auroc": float(roc_auc_score(truth, -ranking))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-train", type=int, default=1000,
                        help="the first N images of the subset (0: all 4,000); 1,000 keeps the run near 5 minutes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=10, help="Datalab's neighbours")
    parser.add_argument("--workspace", default=None, help="where the trained CNN is cached (default: $INFLUENCE_WORKSPACE "
                                                         "or ./workspace)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    t0 = time.perf_counter()
    ds, rows = planted_dataset(args.max_train or None, args.seed)
    t_data = time.perf_counter() - t0
    t0 = time.perf_counter()
    fitted = Engine(Workspace(args.workspace)).model(ds, "cnn", TrainConfig(seed=args.seed))  # cached: reruns skip it
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    heard = []  # the job's progress: (fraction, message, seconds since the start), one step per Datalab check
    found = find_data_issues(ds, fitted, settings=DataIssueSettings(k=args.k), progress=lambda f, m: heard.append(
        (round(f, 3), m, round(time.perf_counter() - t0, 2))))
    t_find = time.perf_counter() - t0
    t0 = time.perf_counter()
    find_data_issues(ds, fitted, settings=DataIssueSettings(k=args.k, image_checks=()))
    t_features_only = time.perf_counter() - t0

    n = len(ds.train)
    dup_pairs = np.concatenate([rows["exact"], rows["exact_src"], rows["near"], rows["near_src"]])
    results = [
        {"planted": "100 exact duplicates", **score(found, "exact_duplicate", rows["exact"],
                                                     np.concatenate([rows["exact"], rows["exact_src"]]), n,
                                                     rows["exact_src"])},
        {"planted": "100 exact duplicates", **score(found, "near_duplicate", rows["exact"], dup_pairs, n,
                                                     rows["exact_src"])},
        {"planted": "100 near duplicates (crop + jitter)", **score(found, "near_duplicate", rows["near"], dup_pairs, n,
                                                                    rows["near_src"])},
        {"planted": "100 other-source images", **score(found, "outlier", rows["other"], rows["other"], n)},
        {"planted": "100 other-source images", **score(found, "low_information", rows["other"], rows["other"], n)},
        {"planted": "100 other-source images", **score(found, "blurry", rows["other"], rows["other"], n)},
    ]
    # Datalab's settings that decide what is caught: the near-duplicate threshold (× the median neighbour distance)
    # and the neighbours an outlier is judged by (the 100 other-source images are a cluster of their own)
    sweep = []
    for features in ("model", "pixels"):
        for threshold in (0.13, 0.5, 1.0, 2.0):
            part = find_data_issues(ds, fitted, settings=DataIssueSettings(
                checks=("near_duplicate",), image_checks=(), k=args.k, near_duplicate_threshold=threshold,
                features=features, near_duplicates="features"))
            for kind in ("exact", "near"):
                sweep.append({"setting": f"{features} features, near_duplicate threshold {threshold}",
                              "planted": f"{kind} duplicates",
                              **score(part, "near_duplicate", rows[kind], dup_pairs, n, rows[f"{kind}_src"])})
        for k in (10, 50):
            part = find_data_issues(ds, fitted, settings=DataIssueSettings(checks=("outlier",), image_checks=(), k=k,
                                                                           features=features))
            sweep.append({"setting": f"{features} features, outlier k = {k}", "planted": "other-source images",
                          **score(part, "outlier", rows["other"], rows["other"], n)})

    for threshold in (0.3, 0.6, 0.8):  # the image descriptor (the default for images since issue 20's second round)
        part = find_data_issues(ds, fitted, settings=DataIssueSettings(
            checks=("near_duplicate",), image_checks=(), k=args.k, near_duplicate_threshold=threshold))
        for kind in ("exact", "near"):
            sweep.append({"setting": f"image descriptor, near_duplicate threshold {threshold}",
                          "planted": f"{kind} duplicates",
                          **score(part, "near_duplicate", rows[kind], dup_pairs, n, rows[f"{kind}_src"])})

    group_of = {r: i for i, g in enumerate(found.duplicate_sets) for r in g}
    pairs_grouped = {kind: float(np.mean([r in group_of and group_of[r] == group_of.get(s, -1)
                                          for r, s in zip(rows[kind], rows[f"{kind}_src"])]))
                     for kind in ("exact", "near")}

    # cleanvision through Datalab's image_key path (above) against Imagelab called directly on the same images
    from cleanvision import Imagelab

    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        t0 = time.perf_counter()
        lab = Imagelab(hf_dataset=image_records(ds), image_key="image")
        lab.find_issues(issue_types={c: {} for c in ("dark", "light", "blurry", "low_information",
                                                       "odd_aspect_ratio", "odd_size", "grayscale")})
        t_imagelab = time.perf_counter() - t0

    payload = {"machine": machine(), "n_train": n, "max_train": args.max_train, "seed": args.seed, "k": args.k,
               "val_accuracy": fitted.metrics.get("val_accuracy"),
               "seconds": {"plant": t_data, "train_cnn": t_train, "datalab_with_cleanvision": t_find,
                           "datalab_features_only": t_features_only, "imagelab_direct": t_imagelab},
               "results": results, "sweep": sweep, "progress": heard, "pairs_in_one_duplicate_group": pairs_grouped,
               "summary": found.summary().to_dict(orient="records")}
    path = write_results("datalab", payload)
    print(markdown_table(results, [("planted", "planted"), ("issue", "issue type"), ("flagged", "flagged"),
                                   ("recall", "recall"), ("precision", "precision"), ("auroc", "AUROC of its ranking")]))
    print()
    print(markdown_table(sweep, [("setting", "setting"), ("planted", "planted"), ("flagged", "flagged"),
                                 ("recall", "recall"), ("precision", "precision"), ("auroc", "AUROC")]))
    print()
    print("progress: " + "; ".join(f"{f:.2f} {m} ({t:.1f} s)" for f, m, t in heard))
    print(f"pairs (copy, original) in one duplicate group: exact {pairs_grouped['exact']:.2f}, "
          f"near {pairs_grouped['near']:.2f}")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in payload["seconds"].items()))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
