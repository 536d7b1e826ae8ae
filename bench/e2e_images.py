"""Upload to flagged list for an image zip through a frozen torchvision backbone (issue 18 §4, parts (a) and (b)).

(a) N images of 32×32 (10 classes, 10% of them filed under a wrong class), frozen resnet18 + logistic-regression
    head on the CPU; (b) the same zip at 224×224 on a GPU (the images resized on load), when one is present.
Wall time and CPU seconds (all threads) split into upload+decode (check, decode, stored as uint8 on disk), embed,
train (the head), score (IP) and the flagged list (lowest 5%); peak memory of the process (each size in its own
process; nothing cached by an earlier run is reused); the load average when it ends (the machine is shared). Random weights: the bench
measures the path, not ImageNet features (no download here). Results: bench/results/e2e_images.json and the images
section of bench/results/e2e.md.

    OMP_NUM_THREADS=1 python3 bench/e2e_images.py --n 10000 50000          # part (a), one thread
    OMP_NUM_THREADS=2 python3 bench/e2e_images.py --n 50000                # part (a), both cores
    python3 bench/e2e_images.py --n 50000 --size 224 --device cuda          # part (b), on a GPU
    OMP_NUM_THREADS=1 python3 bench/e2e_images.py --decode --n 20000        # decoding: serial vs threads vs processes
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLASSES = 10
NOISE = 0.10


def make_zip(path: Path, n: int, seed: int = 0) -> np.ndarray:
    """``n`` 32×32 PNGs in class folders (a class = a tint and a stripe direction, plus noise); returns a mask of
    the images filed under a wrong class (in the zip's sorted member order)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, size=n)
    filed = labels.copy()
    wrong = rng.random(n) < NOISE
    filed[wrong] = (labels[wrong] + rng.integers(1, CLASSES, size=int(wrong.sum()))) % CLASSES
    tints = rng.integers(40, 216, size=(CLASSES, 3))
    grid = np.add.outer(np.arange(32), np.arange(32))
    names = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for i in range(n):
            c = labels[i]
            stripes = ((grid if c % 2 else np.arange(32)[:, None].repeat(32, 1)) // (2 + c // 2)) % 2
            px = tints[c][None, None, :] + 30 * stripes[..., None] + rng.integers(-25, 26, size=(32, 32, 3))
            buf = io.BytesIO()
            Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)).save(buf, format="PNG", compress_level=1)
            name = f"c{filed[i]}/{i:06d}.png"
            names.append(name)
            z.writestr(name, buf.getvalue())
    order = np.argsort(names)  # the loader reads members sorted by path
    return wrong[order]


def run_one(n: int, size: int, device: str, folder: Path) -> dict:
    """One configuration, in this process: the phases' seconds, the peak memory, the detection of the misfiled."""
    import torch
    from sklearn.metrics import roc_auc_score

    from influence_core.api import compute_scores
    from influence_core.data.storage import arrays_in
    from influence_core.data.uploads import load_image_zip, save_upload
    from influence_core.models.backbones import BackboneSpec, embed_dataset
    from influence_core.models.train import train_model

    zip_path = folder / f"images-{n}.zip"
    mask_path = folder / f"images-{n}.npy"
    if not zip_path.exists():
        np.save(mask_path, make_zip(zip_path, n))
    wrong = np.load(mask_path)
    out = {"n": n, "size": size, "device": device, "threads": torch.get_num_threads(),
           "zip_mb": round(zip_path.stat().st_size / 2**20, 1)}
    times, cpu = {}, {}
    work = Path(tempfile.mkdtemp(prefix="run-", dir=folder))  # nothing cached from an earlier run is reused

    @contextlib.contextmanager
    def phase(name: str):
        t0, c0 = time.perf_counter(), time.process_time()
        yield
        times[name], cpu[name] = time.perf_counter() - t0, time.process_time() - c0

    with arrays_in(work / "arrays"):
        with phase("decode"):
            stored = save_upload(zip_path.read_bytes(), zip_path.name, "data", work / "ws", max_bytes=2**40)
            images = load_image_zip(str(stored.path), image_size=size, on_disk=True)
        with phase("embed"):
            embedded = embed_dataset(images, BackboneSpec("resnet18", "random"), store=work / "emb", device=device)
    with phase("train"):
        fitted = train_model(embedded, "logreg", device=device)
    with phase("score"):
        scores = compute_scores(embedded, fitted, "ip", device=device)
        flagged = np.argsort(scores, kind="stable")[: int(0.05 * len(scores))]
    shutil.rmtree(work, ignore_errors=True)
    train_wrong = wrong[embedded.source_index.numpy()]
    out.update({f"{k}_s": round(v, 1) for k, v in times.items()})
    out["total_s"] = round(sum(times.values()), 1)
    out.update({f"{k}_cpu_s": round(v, 1) for k, v in cpu.items()})  # CPU seconds, all threads: less load-dependent
    out["total_cpu_s"] = round(sum(cpu.values()), 1)
    out["load_average"] = round(os.getloadavg()[0], 1)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    out["test_accuracy"] = round(fitted.metrics["test_accuracy"], 3)
    out["auroc_ip"] = round(float(roc_auc_score(train_wrong, -scores)), 3)
    out["precision_at_5pct"] = round(float(train_wrong[flagged].mean()), 3)
    out["n_train"] = len(embedded.train)
    return out


def make_photo_zip(path: Path, n: int, seed: int = 0) -> None:
    """``n`` photo-like JPEGs of 400×300 (smooth gradients, a disc, noise; quality 90) in 10 class folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:300, 0:400]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for i in range(n):
            a, b, c = rng.uniform(-0.6, 0.6, size=3), rng.uniform(-0.6, 0.6, size=3), rng.uniform(40, 200, size=3)
            px = c + a * (xx[..., None] - 200) + b * (yy[..., None] - 150)
            cx, cy, r = rng.uniform(50, 350), rng.uniform(50, 250), rng.uniform(20, 90)
            px[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] += rng.uniform(-80, 80, size=3)
            px += rng.normal(0, 8, size=px.shape)
            buf = io.BytesIO()
            Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
            z.writestr(f"c{i % CLASSES}/{i:06d}.jpg", buf.getvalue())


DECODE_CONFIGS = [(1, "threads"), (2, "threads"), (2, "processes")]


def decode_bench(folder: Path, reps: int, workloads: list[tuple[str, int, int]]) -> list[dict]:
    """Decode time of `load_image_zip` (header scan + decode + uint8 write + channel statistics) with each server
    setting in `DECODE_CONFIGS`, interleaved ``reps`` times (the machine's load drifts), medians; the arrays are
    checked equal bit for bit across settings. A process pool's first use (starting the forkserver, which imports
    the package once) is timed apart."""
    from influence_core.data.storage import arrays_in
    from influence_core.data.uploads import load_image_zip

    rows = []
    for kind, n, size in workloads:
        path = folder / f"decode-{kind}-{n}.zip"
        if not path.exists():
            (make_zip if kind == "png32" else make_photo_zip)(path, n)
        times: dict = {c: [] for c in DECODE_CONFIGS}
        first_process_s, digest = None, None
        for rep in range(reps + 1):
            for workers, pool in DECODE_CONFIGS:
                config = folder / f"server-{workers}-{pool}.toml"
                config.write_text(f'[server]\ndecode_workers = {workers}\ndecode_pool = "{pool}"\n')
                os.environ["INFLUENCE_CONFIG"] = str(config)
                work = Path(tempfile.mkdtemp(prefix="decode-", dir=folder))
                t0 = time.perf_counter()
                with arrays_in(work):
                    ds = load_image_zip(str(path), image_size=size, on_disk=True)
                seconds = time.perf_counter() - t0
                found = ds.train.store.array.digest
                assert digest in (None, found), "parallel decoding changed the pixels"
                digest = found
                shutil.rmtree(work, ignore_errors=True)
                if rep == 0:  # warm-up: the OS file cache, and the process pool's forkserver
                    first_process_s = round(seconds, 1) if pool == "processes" else first_process_s
                    continue
                times[(workers, pool)].append(seconds)
        for (workers, pool), ts in times.items():
            rows.append({"images": kind, "n": n, "size": size, "workers": workers, "pool": pool,
                         "median_s": round(float(np.median(ts)), 2), "runs_s": [round(t, 2) for t in ts],
                         "first_process_pool_s": first_process_s if pool == "processes" else None,
                         "load_average": round(os.getloadavg()[0], 1)})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10_000])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--folder", default=None, help="where zips and arrays go (default: a temporary folder)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child process: one size
    parser.add_argument("--decode", action="store_true", help="only the decode benchmark: serial, 2 threads, "
                        "2 processes on 32×32 PNGs (--n) and 400×300 JPEGs to 224 (--photos)")
    parser.add_argument("--photos", type=int, default=2_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if args.decode:
        from bench._common import machine

        folder = Path(args.folder or tempfile.mkdtemp(prefix="decode-"))
        folder.mkdir(parents=True, exist_ok=True)
        rows = decode_bench(folder, args.reps, [("png32", args.n[0], 32), ("jpeg400x300", args.photos, 224)])
        (Path(__file__).resolve().parent / "results" / "e2e_decode.json").write_text(
            json.dumps({"machine": machine(), "cpus": os.cpu_count(), "runs": rows}, indent=2))
        return
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("no GPU here: part (b) needs CUDA", file=sys.stderr)
            sys.exit(2)
    folder = Path(args.folder or tempfile.mkdtemp(prefix="e2e-images-"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.one:
        print(json.dumps(run_one(args.n[0], args.size, args.device, folder)))
        return
    rows = []
    for n in args.n:  # each size in a fresh process: its peak memory is its own
        done = subprocess.run([sys.executable, __file__, "--one", "--n", str(n), "--size", str(args.size),
                               "--device", args.device, "--folder", str(folder)], capture_output=True, text=True)
        if done.returncode:
            sys.exit(done.stderr[-2000:])
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    from bench._common import machine

    results = Path(__file__).resolve().parent / "results" / "e2e_images.json"
    previous = json.loads(results.read_text()) if results.exists() else {"runs": []}
    def same(r: dict) -> tuple:
        return r["n"], r["size"], r["device"], r.get("threads")

    keep = [r for r in previous["runs"] if same(r) not in {same(x) for x in rows}]
    results.write_text(json.dumps({"machine": machine(), "runs": keep + rows}, indent=2))


if __name__ == "__main__":
    main()
