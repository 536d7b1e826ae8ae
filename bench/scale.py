"""Scoring at scale: synthetic 32×32×3 uint8 images on disk, the small CNN, IP in one process vs sharded on a Dask
LocalCluster — seconds, samples per second and peak memory per worker, and a killed worker's run resumed.

    python bench/scale.py [--sizes 10000 50000 200000] [--params head] [--method ip] [--cuda]

Configurations (each a fresh cluster of spawned worker processes, run over N in ascending order):
  process×2   the plain single-process path (`compute_scores`, no shards) in one worker process of 2 threads
  local:1×1   `score_sharded` on a LocalCluster of 1 worker × 1 thread
  local:2×1   `score_sharded` on a LocalCluster of 2 workers × 1 thread each
Up to --single-up-to each configuration runs --repeats times and the fastest run is kept (the machine is shared);
seconds exclude starting the cluster and a warm-up JVP on each worker (reported apart as "cluster start"); they
include scattering the model and computing the target on the client. Peak memory per worker is the worker process's peak resident set during that run (its peak is reset
through /proc/self/clear_refs before each run, then read as VmHWM by each shard; torch and the library are
~0.9 GB of it before any scoring) and its rise above the worker's resident set just before the run. Then a 50k run on local:2 whose worker
is SIGKILLed mid-run (no retries), and the rerun that scores only the missing shards. ``--cuda`` runs the same on
dask-cuda's LocalCUDACluster (one worker per GPU). Writes bench/results/scale.{json,md}.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from influence_core.api import compute_scores  # noqa: E402
from influence_core.data.base import Dataset, Split  # noqa: E402
from influence_core.data.storage import StoredFeatures, channel_statistics, write_array  # noqa: E402
from influence_core.distributed import peak_rss, score_sharded  # noqa: E402
from influence_core.errors import InfluenceError  # noqa: E402
from influence_core.models import TrainConfig, train_model  # noqa: E402

from _common import RESULTS, machine, markdown_table, write_results  # noqa: E402

CLASSES = 10


# ------------------------------------------------------------------------------------------------- data
def synthetic_images(folder: Path, n: int, seed: int = 0, chunk: int = 10_000) -> tuple[Path, np.ndarray]:
    """n uint8 32×32×3 images written to disk a chunk at a time (class = a colour tint + noise); memory: one chunk."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    tints = np.random.default_rng(12345).integers(40, 216, (CLASSES, 3))  # the same classes in every split

    def chunks():
        for lo in range(0, n, chunk):
            y = labels[lo : lo + chunk]
            noise = rng.normal(0, 40, (len(y), 32, 32, 3))
            yield np.clip(tints[y][:, None, None, :] + noise, 0, 255).astype(np.uint8)

    path = folder / f"synthetic-{n}.npy"
    write_array(path, chunks(), (n, 32, 32, 3), "uint8")
    return path, labels


def dataset(array_path: Path, labels: np.ndarray, n: int, norm: dict, val: Split) -> Dataset:
    from influence_core.data.storage import DiskArray

    features = StoredFeatures(DiskArray(array_path), np.arange(n), **norm)
    return Dataset(f"synthetic-{n}", Split(features, torch.from_numpy(labels[:n])), val, val,
                   [str(c) for c in range(CLASSES)], kind="image")


# ---------------------------------------------------------------------------------------- worker helpers
def single_process_job(ds: Dataset, fitted, method: str, params: str, threads: int) -> dict:
    """The unsharded library path inside one (fresh) worker process: seconds, scores and peak memory."""
    torch.set_num_threads(threads)
    idle = reset_peak()
    t0, c0 = time.perf_counter(), cpu_seconds()
    scores = compute_scores(ds, fitted, method, params=params)
    return {"seconds": time.perf_counter() - t0, "scores": scores, "idle_rss": idle, "peak_rss": peak_rss(),
            "cpu_s": cpu_seconds() - c0}


def warm_up(dask_worker=None) -> int:
    """Import the library on a worker and run one JVP batch (torch.func prepares forward-mode AD on first use, ~1 s),
    outside the timed runs; return the worker's resident memory then."""
    import psutil

    from influence_core.distributed import restore_malloc_thresholds
    from influence_core.grads import directional_derivatives, select_params
    from influence_core.models.registry import build_model

    restore_malloc_thresholds()  # as every shard does; here also for process×2, which runs no shard
    module = build_model("cnn", (3, 32, 32), CLASSES).eval()
    params = select_params(module)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, CLASSES, (8,))
    directional_derivatives(module, params, {k: torch.ones_like(v) for k, v in params.items()}, x, y)
    return psutil.Process().memory_info().rss


def cpu_seconds(dask_worker=None) -> float:
    """CPU time (user + system) this process has used so far."""
    t = os.times()
    return t.user + t.system


def reset_peak(dask_worker=None) -> int:
    """Reset this process's peak resident set (Linux: /proc/self/clear_refs 5), so the peak the shards report
    (VmHWM) is the next run's, not an earlier run's or the warm-up's; return the resident set now."""
    import psutil

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return psutil.Process().memory_info().rss


def start_cluster(workers: int, threads: int, cuda: bool = False, **scheduler_kwargs):
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    if cuda:
        from dask_cuda import LocalCUDACluster

        cluster = LocalCUDACluster(threads_per_worker=threads, dashboard_address=None, silence_logs=logging.ERROR)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR, scheduler_kwargs=scheduler_kwargs or None)
    client = Client(cluster)
    client.wait_for_workers(len(cluster.workers))
    idle = client.run(warm_up)
    return cluster, client, idle, time.perf_counter() - t0


def load() -> float:
    return round(os.getloadavg()[0], 2)


# ------------------------------------------------------------------------------------------------ runs
def run_single(client, ds, fitted, args) -> dict:
    load0 = load()
    data, model = client.scatter([ds, fitted], hash=False)
    client.run(reset_peak)
    result = client.submit(single_process_job, data, model, args.method, args.params, 2, pure=False).result()
    return {"config": "process×2", "workers": 1, "threads": 2, "seconds": result["seconds"],
            "cores_used": result["cpu_s"] / result["seconds"],
            "peak_mb": result["peak_rss"] / 2**20, "rise_mb": (result["peak_rss"] - result["idle_rss"]) / 2**20,
            "scores": result["scores"], "load": [load0, load()]}


def run_sharded(client, ds, fitted, args, out: Path, name: str, cuda: bool = False) -> dict:
    details = {}
    load0 = load()
    idle = client.run(reset_peak)
    cpu0 = sum(client.run(cpu_seconds).values()) + cpu_seconds()  # the workers', and this client's (with the scheduler)
    t0 = time.perf_counter()
    scores = score_sharded(ds, fitted, args.method, params=args.params, out_dir=out, client=client,
                           batch_size=args.batch_size, details=details, device="cuda" if cuda else None)
    seconds = time.perf_counter() - t0
    cores = (sum(client.run(cpu_seconds).values()) + cpu_seconds() - cpu0) / seconds
    peaks = details["sharding"]["peak_rss"]
    rises = [peaks[w] - idle.get(w, peaks[w]) for w in peaks]
    return {"config": name, "workers": len(idle), "threads": 1, "seconds": seconds, "cores_used": cores,
            "peak_mb": max(peaks.values()) / 2**20, "rise_mb": max(rises) / 2**20, "scores": scores,
            "shards": details["sharding"]["shards"], "shard_size": details["sharding"]["shard_size"], "load": [load0, load()]}


def run_killed(ds, fitted, args, out: Path, reference: np.ndarray | None) -> dict:
    """local:2 with no retries: SIGKILL the worker running a shard once ~40% of the shards are written; the run
    stops; count the shards on disk; rerun (retries back on) and check it scores exactly the others."""
    cluster, client, _, _ = start_cluster(2, 1, allowed_failures=0)
    pids = client.run(os.getpid)
    state = {"killed": None, "seconds": None}
    t0 = time.perf_counter()

    def kill_when_40_percent(fraction, message):
        if state["killed"] or "written" not in message:
            return
        done, total = (int(v) for v in message.split(": ")[-1].split(" ")[0].split("/"))
        if done >= 0.4 * total:
            busy = [a for a, keys in client.processing().items() if keys]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                state["killed"] = busy[0]

    try:
        try:
            score_sharded(ds, fitted, args.method, params=args.params, out_dir=out, client=client,
                          batch_size=args.batch_size, progress=kill_when_40_percent)
            error = None
        except InfluenceError as err:
            error = str(err)
        first_run = time.perf_counter() - t0
        deadline = time.time() + 120
        quiet = 0
        while quiet < 3 and time.time() < deadline:  # the surviving worker's shard in flight still lands
            busy = client.run(lambda dask_worker: len(dask_worker.state.executing), on_error="ignore")
            quiet = quiet + 1 if not any(busy.values()) else 0
            time.sleep(0.3)
        on_disk = len(list(out.glob("shard-*.parquet")))
        cluster.scheduler.allowed_failures = 3
        details = {}
        t1 = time.perf_counter()
        scores = score_sharded(ds, fitted, args.method, params=args.params, out_dir=out, client=client,
                               batch_size=args.batch_size, details=details)
        rerun = time.perf_counter() - t1
    finally:
        client.close()
        cluster.close()
    run = details["sharding"]
    return {"n": len(ds.train), "killed_worker": state["killed"], "first_run_error": error, "first_run_s": first_run,
            "shards": run["shards"], "on_disk_after_kill": on_disk, "rerun_skipped": run["skipped"],
            "rerun_computed": run["computed"], "rerun_s": rerun,
            "only_missing": run["skipped"] == on_disk and run["computed"] == run["shards"] - on_disk,
            "max_rel_diff": None if reference is None else rel_diff(scores, reference)}


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


# ----------------------------------------------------------------------------------------------- report
def report(payload: dict) -> str:
    rows = payload["runs"]
    cols = [("n", "N"), ("config", "configuration"), ("seconds", "seconds"), ("samples_per_s", "samples/s"),
            ("peak_mb", "peak MB per worker"), ("rise_mb", "rise above idle worker, MB"), ("startup_s", "cluster start, s"),
            ("cores_used", "CPU cores our processes got (workers + client)"),
            ("samples_per_cpu_s", "samples per CPU-second"), ("max_rel_diff", "max rel. diff vs process×2"),
            ("diff_vs_local1", "vs local:1×1"),
            ("load", "load avg (start, end)")]
    lines = [f"# Scoring at scale ({payload['method']}, parameters: {payload['params']}; {payload['date']})", "",
             f"Machine: {payload['machine']}; {payload['cpus']} CPU cores (the load averages in the table show what "
             f"else ran: a load above 1 before a 1-worker run, or above 2 before a 2-worker run, means other work "
             f"shared the cores). Synthetic 32×32×3 uint8 images on disk, SmallCNN, batch {payload['batch_size']}. "
             f"Whole bench: {payload['total_s']:.0f} s.", "", markdown_table(rows, cols), ""]
    lines += ["## Targets", ""]
    for t in payload["targets"]:
        lines.append(f"- **{'met' if t['met'] else 'missed'}** — {t['what']}: {t['measured']}")
    k = payload.get("killed")
    if k:
        lines += ["", "## A killed worker", "",
                  f"{k['n']:,} samples on local:2 without retries: a worker was SIGKILLed while it scored a shard once "
                  f"40% of the shards were written; the run stopped ({(k['first_run_error'] or 'no error')[:120]}…) with "
                  f"{k['on_disk_after_kill']} of {k['shards']} shards on disk. The rerun skipped {k['rerun_skipped']} and "
                  f"scored {k['rerun_computed']} in {k['rerun_s']:.1f} s (only the missing ones: {k['only_missing']}); "
                  f"max relative difference from the single-process scores: {k['max_rel_diff']}. (With Dask's default "
                  "three allowed failures the shard would simply be rerun on the other worker.)"]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in payload["notes"]]
    if payload.get("previous"):
        lines += ["", "## Earlier runs of this bench", ""]
        for old in reversed(payload["previous"]):
            loads = [x for pair in old["load"] if pair for x in pair]
            span = f"load {min(loads):.1f}–{max(loads):.1f}" if loads else "load not recorded"
            lines.append(f"- {old['date']} ({span}): " + "; ".join(
                f"{'met' if t['met'] else 'missed'}: {t['what']} — {t['measured']}" for t in old["targets"]))
    return "\n".join(lines) + "\n"


def earlier_runs(name: str, keep: int = 4) -> list[dict]:
    """The targets of the last runs kept in results/<name>.json: on a shared machine one run is not the whole story."""
    try:
        import json

        old = json.loads((RESULTS / f"{name}.json").read_text())
    except (OSError, ValueError):
        return []
    summary = {"date": old.get("date", "?"), "params": old.get("params"), "targets": old.get("targets", []),
               "load": [r.get("load") for r in old.get("runs", [])], "total_s": old.get("total_s")}
    return (old.get("previous") or [])[-(keep - 1):] + [summary]


def targets(runs: list[dict], sizes: list[int]) -> list[dict]:
    out = []
    two = {r["n"]: r for r in runs if r["config"] == "local:2×1"}
    one = {r["n"]: r for r in runs if r["config"] == "local:1×1"}
    lo, hi = min(sizes), max(sizes)
    if lo in two and hi in two and lo != hi:
        a, b = two[lo]["peak_mb"], two[hi]["peak_mb"]
        out.append({"what": f"peak memory per worker at {hi:,} within 20% of {lo:,} (local:2)", "met": b <= 1.2 * a,
                    "measured": f"{b:.0f} MB vs {a:.0f} MB ({b / a - 1:+.1%}); rise above the idle worker "
                                f"{two[hi]['rise_mb']:.0f} MB vs {two[lo]['rise_mb']:.0f} MB"})
    for n in sorted(set(two) & set(one)):
        ratio = two[n]["samples_per_s"] / one[n]["samples_per_s"]
        out.append({"what": f"2 workers ≥ 1.7× the throughput of 1 worker × 1 thread at {n:,}", "met": ratio >= 1.7,
                    "measured": f"{ratio:.2f}× ({two[n]['samples_per_s']:.0f} vs {one[n]['samples_per_s']:.0f} samples/s)"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    ap.add_argument("--method", default="ip")
    ap.add_argument("--params", default="head", help="parameter group (head: the classifier layer; all: every layer)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--single-up-to", type=int, default=50_000, help="run process×2 and local:1 up to this N only")
    ap.add_argument("--repeats", type=int, default=2, help="runs per configuration up to --single-up-to (best kept)")
    ap.add_argument("--kill-n", type=int, default=50_000, help="N of the killed-worker run (0 = skip)")
    ap.add_argument("--cuda", action="store_true", help="also run on dask-cuda's LocalCUDACluster")
    ap.add_argument("--name", default="scale")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_all = time.perf_counter()
    notes = []
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        tmp = Path(tmp)
        n_max = max(max(args.sizes), args.kill_n)
        t0 = time.perf_counter()
        path, labels = synthetic_images(tmp, n_max)
        notes.append(f"Writing {n_max:,} images to disk ({n_max * 3072 / 2**20:.0f} MB uint8) took "
                     f"{time.perf_counter() - t0:.1f} s, one 10,000-image chunk in memory at a time.")
        from influence_core.data.storage import DiskArray

        mean, std = channel_statistics(DiskArray(path), np.arange(min(n_max, 20_000)))
        norm = dict(layout="nhwc", mean=tuple(mean), std=tuple(std))
        val_path, val_labels = synthetic_images(tmp / "val", 1200, seed=1)
        val_all = StoredFeatures(DiskArray(val_path), None, **norm).read()
        val = Split(val_all[:1000], torch.from_numpy(val_labels[:1000]))
        train_small = dataset(path, labels, 2000, norm, val)
        fitted = train_model(Dataset("fit", Split(train_small.train.x, train_small.train.y), val, val,
                                     train_small.classes, kind="image"), "cnn", TrainConfig(epochs=2, patience=0, seed=0))
        notes.append(f"Model: SmallCNN trained 2 epochs on 2,000 of the images (validation accuracy "
                     f"{fitted.metrics['val_accuracy']:.2f}); the target is the mean loss over 1,000 validation images.")
        runs, reference, one_worker = [], {}, {}
        configs = [("process×2", 1, 2), ("local:1×1", 1, 1), ("local:2×1", 2, 1)] + ([("local-cuda", 0, 1)] if args.cuda else [])
        for name, workers, threads in configs:
            sizes = [n for n in sorted(args.sizes) if name in ("local:2×1", "local-cuda") or n <= args.single_up_to]
            if not sizes:
                continue
            cluster, client, idle, startup = start_cluster(workers, threads, cuda=name == "local-cuda")
            try:
                for n in sizes:  # ascending: every N a fresh run (peak memory reset before each)
                    ds = dataset(path, labels, n, norm, val)
                    tries = []
                    for attempt in range(args.repeats if n <= args.single_up_to else 1):
                        print(f"N={n:,} {name} (run {attempt + 1}) ...", flush=True)
                        if name == "process×2":
                            r = run_single(client, ds, fitted, args)
                        else:
                            r = run_sharded(client, ds, fitted, args, tmp / f"shards-{n}-{name}-{attempt}", name,
                                            cuda=name == "local-cuda")
                        print(f"  {r['seconds']:.1f} s, {n / r['seconds']:.0f}/s, peak {r['peak_mb']:.0f} MB, "
                              f"{r['cores_used']:.2f} cores", flush=True)
                        tries.append(r)
                    r = min(tries, key=lambda t: t["seconds"])  # the least disturbed run on a shared machine
                    r.update(n=n, samples_per_s=n / r["seconds"], startup_s=startup if n == sizes[0] else "",
                             samples_per_cpu_s=n / (r["cores_used"] * r["seconds"]), runs=len(tries),
                             all_seconds=[round(t["seconds"], 2) for t in tries],
                             peak_mb=max(t["peak_mb"] for t in tries), rise_mb=max(t["rise_mb"] for t in tries))
                    scores = r.pop("scores")
                    for t in tries:
                        t.pop("scores", None)
                    if name == "process×2":
                        reference[n] = scores
                    elif name == "local:1×1":
                        one_worker[n] = scores
                    r["max_rel_diff"] = rel_diff(scores, reference[n]) if n in reference else "—"
                    r["diff_vs_local1"] = rel_diff(scores, one_worker[n]) if n in one_worker else "—"
                    runs.append(r)
            finally:
                client.close()
                cluster.close()
        runs.sort(key=lambda r: (r["n"], [c[0] for c in configs].index(r["config"])))
        killed = None
        if args.kill_n:
            ds = dataset(path, labels, args.kill_n, norm, val)
            print(f"N={args.kill_n:,}: killed worker ...", flush=True)
            killed = run_killed(ds, fitted, args, tmp / "killed", reference.get(args.kill_n))
            print(f"  {killed}", flush=True)
    two = {r["n"]: r for r in runs if r["config"] == "local:2×1"}
    one = {r["n"]: r for r in runs if r["config"] == "local:1×1"}
    for n in sorted(set(two) & set(one)):
        projected = 2 * two[n]["samples_per_cpu_s"] / one[n]["samples_per_cpu_s"]
        notes.append(f"At {n:,}, per CPU-second 2 workers score {two[n]['samples_per_cpu_s']:.0f} samples and 1 worker "
                     f"{one[n]['samples_per_cpu_s']:.0f}: with two cores free for them, 2 workers would run "
                     f"≈{projected:.2f}× as fast as 1 (a projection from the CPU time, not a measurement); measured, "
                     f"they got {two[n]['cores_used']:.2f} of the 2 cores.")
    notes.append("Sharded scores equal the 1-worker sharded ones bit for bit or to float32 rounding (column 'vs "
                 "local:1×1'); against process×2 the differences come from 1 vs 2 torch threads summing float32 "
                 "convolutions in another order (the tests compare at equal thread counts, to 1e-6).")
    if not args.cuda:
        notes.append("No GPU on this machine: the LocalCUDACluster run was not made and tests/test_distributed.py's "
                     "CUDA test is skipped (`python bench/scale.py --cuda` on a machine with dask-cuda and GPUs).")
    payload = {"machine": machine(), "cpus": os.cpu_count(), "method": args.method, "params": args.params,
               "batch_size": args.batch_size, "sizes": args.sizes, "runs": runs, "killed": killed,
               "targets": targets(runs, args.sizes), "notes": notes, "total_s": time.perf_counter() - t_all,
               "date": time.strftime("%Y-%m-%d %H:%M"), "previous": earlier_runs(args.name)}
    write_results(args.name, payload)
    (RESULTS / f"{args.name}.md").write_text(report(payload))
    print(report(payload))


if __name__ == "__main__":
    main()
