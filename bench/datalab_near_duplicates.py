"""Bench: which descriptor lets Datalab's near-duplicate check find crops + colour jitter (issue 20 §1).

The planted CIFAR-10N subset of bench/datalab.py (100 exact duplicates, 100 near duplicates: a 26-30 px crop resized
back to 32 with brightness and contrast ×0.9-1.1 and pixel noise σ = 3/255, 100 images from another source), at
1,200 training images (``--max-train 1000``) and at 3,900 (the whole subset). No model: each descriptor goes to
Datalab's own near-duplicate check (``find_issues(features=...)``, or ``knn_graph=`` for the locally scaled graph)
at several of Datalab's thresholds (× the median nearest-neighbour distance). Recall: planted near (and exact)
duplicates flagged; precision: flagged images that are planted or the original of a planted duplicate; "others":
flagged images that are neither (real CIFAR images). Seconds: the descriptor and Datalab's check.
Writes bench/results/datalab_near_duplicates.json and prints the markdown table.

    OMP_NUM_THREADS=2 python bench/datalab_near_duplicates.py [--sizes 1000 0] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine, markdown_table, write_results  # noqa: E402
from bench.datalab import planted_dataset  # noqa: E402
import influence_core.data_issues as data_issues  # noqa: E402
from influence_core.data_issues import (_gradient_histograms, _thumbnails, locally_scaled_knn_graph,  # noqa: E402
                                        near_duplicate_descriptor, pixel_features)
from influence_core.export import images_uint8  # noqa: E402

THRESHOLDS = (0.13, 0.3, 0.45, 0.6, 0.8)


def fft_magnitude(ds) -> np.ndarray:
    """Log magnitude of the 2-D Fourier transform (Hann window) of each standardised image, frequencies ≤ 5:
    invariant to (circular) translation — a loser (no phase: different images look alike)."""
    x = torch.from_numpy(images_uint8(ds, np.arange(len(ds.train)))).permute(0, 3, 1, 2).double()
    x = (x - x.mean((1, 2, 3), keepdim=True)) / (x.std((1, 2, 3), keepdim=True) + 1e-6)
    h, w = x.shape[-2:]
    spectrum = torch.fft.fft2(x * torch.from_numpy(np.outer(np.hanning(h), np.hanning(w)))).abs()
    rows = torch.cat([torch.arange(0, 6), torch.arange(h - 5, h)])
    f = torch.log1p(spectrum[:, :, rows][:, :, :, :6]).flatten(1).numpy()
    return (f - f.mean(1, keepdims=True)) / (f.std(1, keepdims=True) + 1e-6)


def thumbnails(ds) -> np.ndarray:
    """The descriptor's first part alone: blurred, 8×8 per channel, standardised (no projection)."""
    x = torch.from_numpy(images_uint8(ds, np.arange(len(ds.train)))).permute(0, 3, 1, 2).double()
    return _thumbnails(x)


def gradient_histograms(ds) -> np.ndarray:
    """The descriptor's second part alone: HOG-like orientation histograms, 4×4 cells × 8 bins (no projection)."""
    x = torch.from_numpy(images_uint8(ds, np.arange(len(ds.train)))).permute(0, 3, 1, 2).double()
    return _gradient_histograms(x)


def projected_thumbnail(ds) -> np.ndarray:
    """The first round's library descriptor: the thumbnail alone, projected away from crops to 32 dims."""
    parts, dims = data_issues._descriptor_parts, data_issues.DESCRIPTOR_DIMS
    data_issues._descriptor_parts, data_issues.DESCRIPTOR_DIMS = _thumbnails, 32
    try:
        return near_duplicate_descriptor(ds)
    finally:
        data_issues._descriptor_parts, data_issues.DESCRIPTOR_DIMS = parts, dims


DESCRIPTORS = {  # name → (features, whether Datalab gets the locally scaled graph)
    "pixels 8×8 (today's --features pixels)": (pixel_features, False),
    "FFT magnitude, frequencies ≤ 5": (fft_magnitude, False),
    "blurred thumbnail 8×8": (thumbnails, False),
    "blurred thumbnail 8×8, locally scaled graph": (thumbnails, True),
    "gradient histograms 4×4×8": (gradient_histograms, False),
    "crop-projected thumbnail (32 dims)": (projected_thumbnail, False),
    "crop-projected thumbnail, locally scaled graph": (projected_thumbnail, True),
    "crop-projected thumbnail + gradient histograms (48 dims)": (near_duplicate_descriptor, False),
    "crop-projected thumbnail + gradient histograms, locally scaled graph (library)": (near_duplicate_descriptor, True),
}


def datalab_near_duplicates(features: np.ndarray, scaled: bool, threshold: float, k: int = 10) -> np.ndarray:
    """Rows Datalab's near-duplicate check flags on ``features`` (or on their locally scaled k-NN graph)."""
    from cleanlab import Datalab

    lab = Datalab(data={"label": np.zeros(len(features), int)}, label_name="label", verbosity=0)
    source = {"knn_graph": locally_scaled_knn_graph(features, k)} if scaled else {"features": features}
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab.find_issues(**source, issue_types={"near_duplicate": {"k": k, "threshold": threshold}})
    return np.flatnonzero(lab.get_issues()["is_near_duplicate_issue"].to_numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 0], help="--max-train of the subset (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows_out = []
    for size in args.sizes:
        ds, rows = planted_dataset(size or None, args.seed)
        allowed = np.concatenate([rows["exact"], rows["exact_src"], rows["near"], rows["near_src"]])
        for name, (describe, scaled) in DESCRIPTORS.items():
            t0 = time.perf_counter()
            features = describe(ds)
            t_describe = time.perf_counter() - t0
            for threshold in THRESHOLDS:
                t0 = time.perf_counter()
                flagged = datalab_near_duplicates(features, scaled, threshold)
                t_check = time.perf_counter() - t0
                rows_out.append({"n_train": len(ds.train), "descriptor": name, "threshold": threshold,
                                 "flagged": int(len(flagged)), "recall_near": float(np.isin(rows["near"], flagged).mean()),
                                 "recall_exact": float(np.isin(rows["exact"], flagged).mean()),
                                 "precision": float(np.isin(flagged, allowed).mean()) if len(flagged) else float("nan"),
                                 "others": int((~np.isin(flagged, allowed)).sum()),
                                 "seconds": round(t_describe + t_check, 2)})
                print(rows_out[-1], flush=True)
    path = write_results("datalab_near_duplicates", {"machine": machine(), "seed": args.seed, "results": rows_out})
    print(markdown_table(rows_out, [("n_train", "training images"), ("descriptor", "descriptor"),
                                    ("threshold", "threshold"), ("flagged", "flagged"),
                                    ("recall_near", "recall (near)"), ("recall_exact", "recall (exact)"),
                                    ("precision", "precision"), ("others", "real images flagged"),
                                    ("seconds", "seconds")]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
