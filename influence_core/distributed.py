"""Sharded, resumable scoring on a Dask cluster: scatter the model and the target direction once, score one shard of
the training set per task, write each shard to Parquet, and on a rerun skip the shards already written.

    scores = score_sharded(ds, fitted, "ip", out_dir=Path("workspace/shards/<key>"), cluster="local:2")

Why it works: once a method's per-sample part is separated from what it computes once for every sample (the impact
gradient, IP Ensemble's masked models, TracIn's checkpoints, the solved (H + λI)⁻¹∇f of a Hessian method — see
`InfluenceMethod.prepare` / `score_rows`), scoring is embarrassingly parallel and linear in N. Dask
(`dask.distributed`) runs the tasks: a `LocalCluster` of N worker processes (``cluster="local:N"``), dask-cuda's
`LocalCUDACluster` (``"local-cuda"``: one worker per GPU), or any running scheduler (``scheduler="tcp://HOST:PORT"``,
or ``$INFLUENCE_DASK_SCHEDULER``). Without any, the shards run one after another in this process — still resumable.
The app offers only the clusters the server's administrator named (`cluster.cluster_choices`, `resolve_cluster`): a
browser sends a name, never an address, because a cluster receives the data and model and the server unpickles its
results.

Each shard is ``out_dir/shard-00007.parquet`` (``fold-02-shard-00007.parquet`` out of fold): columns ``row`` (the
position in the training split) and ``score`` (lower = more detrimental), with their sha256 in the file's metadata,
written to a temporary name and renamed; a shard that fails on read is removed with one logged line and scored again.
The worker writes it when it sees ``out_dir`` (a shared folder); otherwise the client does when the result arrives.
``out_dir/manifest.json`` names the run, so shards of another run are never mixed in. Workers of a remote cluster
need the project installed and, for data on disk, the same folders at the same paths.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import resource
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .cluster import ClusterSpec, _one_line, dask_client, parse_cluster
from .data.base import Dataset
from .errors import InfluenceError
from .folds import FoldSettings, held_out_parts
from .grads import Progress
from .impacts import Impact, make_impact
from .methods import METHODS, InfluenceMethod, ScoringContext, get_method
from .models.train import FittedModel, TrainConfig, train_model

SHARD_CHECKSUM = b"influence_core.sha256"  # a shard's Parquet metadata key for its `shard_checksum`
_LOG = logging.getLogger(__name__)
MIN_SHARD, MAX_SHARD, TARGET_SHARDS = 1024, 16384, 64


def shardable_methods() -> list[str]:
    """The registered methods sharded scoring can run (those with a per-sample part)."""
    return sorted(name for name, cls in METHODS.items() if cls.shardable)


# -------------------------------------------------------------------------------------------- the shards
@dataclass(frozen=True)
class Shard:
    """Rows start..stop of one part (the whole training set, or the held-out rows of fold ``fold``)."""

    part: int
    index: int
    start: int
    stop: int
    rows: np.ndarray  # positions in the whole training split
    name: str


def default_shard_size(n: int, batch_size: int) -> int:
    """About 64 shards, each 1,024..16,384 rows and a whole number of batches: enough tasks to keep every worker
    busy to the end, few enough that each is long next to Dask's per-task overhead. Depends on N only, so a rerun
    on another cluster finds the same shards."""
    return round_shard_size(min(MAX_SHARD, max(MIN_SHARD, math.ceil(n / TARGET_SHARDS))), batch_size)


def round_shard_size(size: int, batch_size: int) -> int:
    """``size`` rounded up to whole batches: a shard's batches are then the single-process run's batches."""
    if size < 1:
        raise InfluenceError(f"shard size must be at least 1, got {size}")
    return max(batch_size, math.ceil(size / batch_size) * batch_size)


def _shards(parts: list[np.ndarray], shard_size: int, folds: int) -> list[Shard]:
    out = []
    for p, rows in enumerate(parts):
        for i, lo in enumerate(range(0, len(rows), shard_size)):
            hi = min(lo + shard_size, len(rows))
            name = f"fold-{p:02d}-shard-{i:05d}.parquet" if folds else f"shard-{i:05d}.parquet"
            out.append(Shard(p, i, lo, hi, rows[lo:hi], name))
    return out


def shard_checksum(rows: np.ndarray, scores: np.ndarray) -> str:
    """sha256 of a shard's rows (int64) and scores (float64), little-endian: written into the shard's Parquet
    metadata and compared on read, so a changed value is caught even where the file still parses."""
    digest = hashlib.sha256(np.ascontiguousarray(rows, dtype="<i8").tobytes())
    digest.update(np.ascontiguousarray(scores, dtype="<f8").tobytes())
    return f"sha256:{digest.hexdigest()}"


def write_shard(path: Path, rows: np.ndarray, scores: np.ndarray) -> None:
    """One shard as Parquet (``row``, ``score``, and their `shard_checksum` in the file's metadata), written to a
    temporary name and renamed: never half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, scores = np.asarray(rows, dtype=np.int64), np.asarray(scores, dtype=np.float64)
    table = pa.table({"row": pa.array(rows), "score": pa.array(scores)}).replace_schema_metadata(
        {SHARD_CHECKSUM: shard_checksum(rows, scores).encode()})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_shard(path: Path, rows: np.ndarray) -> np.ndarray | None:
    """The scores of a finished shard, or None when it is missing or bad: a bad one (unreadable, for other rows, not
    finite, or failing its checksum; older shards have none) is removed with one logged line, to be computed again."""
    if not path.exists():
        return None
    try:
        table = pq.read_table(path, columns=["row", "score"])
        found_rows = table.column("row").to_numpy()
        scores = table.column("score").to_numpy().astype(np.float64)
    except (OSError, pa.ArrowException, KeyError) as err:
        problem = f"unreadable ({type(err).__name__})"
    else:
        expected = (table.schema.metadata or {}).get(SHARD_CHECKSUM)
        if not np.array_equal(found_rows, rows):
            problem = "it holds other rows"
        elif not np.isfinite(scores).all():
            problem = "it holds non-finite scores"
        elif expected is not None and expected.decode(errors="replace") != shard_checksum(found_rows, scores):
            problem = "its checksum does not match (changed or truncated)"
        else:
            return scores
    path.unlink(missing_ok=True)
    _LOG.warning("shard %s/%s was bad (%s); removed it (computed again)", path.parent.name, path.name, problem)
    return None


def shard_status(out_dir: str | os.PathLike) -> dict:
    """How far a sharded run in ``out_dir`` is (for a progress display while it runs, or after it was stopped):
    total shards, the names of those written, and the run's description from its manifest."""
    out_dir = Path(out_dir)
    manifest = _read_manifest(out_dir) or {}
    done = sorted(p.name for p in out_dir.glob("*shard-*.parquet")) if out_dir.exists() else []
    return {"total": manifest.get("shards"), "done": done, "manifest": manifest}


# ---------------------------------------------------------------------------------------- the worker side
class ShardJob:
    """What every task of one part needs, scattered once to each worker: the method with its prepared result (the
    target direction, …), the model (without its checkpoints: a plan carries the ones it needs), the part's training
    rows (a file path and row index for data on disk) and where to write."""

    def __init__(self, method: InfluenceMethod, prepared: Any, fitted: FittedModel, dataset: Dataset, impact: Impact,
                 params: str, batch_size: int, device: str | None, out_dir: str) -> None:
        self.method, self.prepared, self.fitted, self.dataset = method, prepared, fitted, dataset
        self.impact, self.params, self.batch_size, self.device, self.out_dir = impact, params, batch_size, device, out_dir
        self._contexts: dict[int, ScoringContext] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_contexts"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def context(self) -> ScoringContext:
        """The scoring context of this worker thread, built on first use and kept, so its model copies serve every
        shard (one per thread: `functional_call` swaps a module's parameters, which two threads must not share)."""
        with self._lock:
            ctx = self._contexts.get(threading.get_ident())
            if ctx is None:
                ctx = ScoringContext(self.fitted, self.dataset, self.impact, params=self.params, device=self.device,
                                     batch_size=self.batch_size)
                self._contexts[threading.get_ident()] = ctx
            return ctx


_MALLOC_RESTORED = False


def restore_malloc_thresholds() -> None:
    """Undo, in this worker process, what Dask's ``MALLOC_TRIM_THRESHOLD_=65536`` (its default for worker processes)
    does to torch: setting it also turns off glibc's adaptive mmap threshold, so every large tensor is mapped fresh
    from the kernel and zeroed, and IP ran at half speed per CPU-second (bench/scale.py: 1,480 vs 3,130 samples per
    CPU-second). Sets the thresholds glibc's adaptation would reach (32 MB mmap, 64 MB trim); elsewhere a no-op."""
    global _MALLOC_RESTORED
    if _MALLOC_RESTORED or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return
    _MALLOC_RESTORED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 * 2**20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to undo
        pass


def run_shard(job: ShardJob, start: int, stop: int, rows: np.ndarray, name: str) -> dict:
    """Score rows start..stop of the job's part and write the shard (when ``out_dir`` is reachable from here).
    Returns the scores and this process's peak resident memory, for the client. Torch keeps the worker's thread
    setting (Dask starts workers with OMP_NUM_THREADS=1: one core per task thread)."""
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = "this process"
    restore_malloc_thresholds()
    t0 = time.perf_counter()
    ctx = job.context()
    scores = job.method.score_rows(ctx, job.prepared, start, stop)
    scores = np.asarray(scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
    if scores.shape != (stop - start,):
        raise InfluenceError(f"method '{job.method.name}' returned {scores.shape} scores for {stop - start} rows")
    if not np.isfinite(scores).all():
        raise InfluenceError(f"method '{job.method.name}' produced non-finite scores; try more damping or a smaller step")
    written = False
    try:
        write_shard(Path(job.out_dir) / name, rows, scores)
        written = True
    except OSError:
        pass  # the folder is not shared with this worker: the client writes the shard
    return {"scores": scores, "written": written, "worker": worker, "seconds": time.perf_counter() - t0,
            "peak_rss": peak_rss()}


def peak_rss() -> int:
    """This process's peak resident memory in bytes: VmHWM on Linux (resettable through /proc/self/clear_refs,
    which a benchmark does between runs), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def train_on_worker(dataset: Dataset, arch: str, config: TrainConfig) -> FittedModel:
    """Train one model (a fold model) in this worker; returned on the CPU, for the client to cache."""
    restore_malloc_thresholds()
    fitted = train_model(dataset, arch, config)
    fitted.module.cpu()
    return fitted


# ---------------------------------------------------------------------------------------- the client side


def train_models_on_dask(client, runs: list[tuple[Dataset, str, TrainConfig]],
                         done: Callable[[int, FittedModel], None] | None = None,
                         progress: Progress | None = None) -> list[FittedModel]:
    """Train each (data, architecture, settings) of ``runs`` as one Dask task, all at once; ``done(i, model)`` hears
    of each as it finishes (the caller caches it, so a rerun after a failure trains only the rest)."""
    run_id = uuid.uuid4().hex[:8]
    futures = {client.submit(train_on_worker, data, arch, config, key=f"influence-train-{run_id}-{i}",
                             pure=False): i for i, (data, arch, config) in enumerate(runs)}
    models: list[FittedModel | None] = [None] * len(runs)

    def tell() -> None:
        if progress is not None:
            count = sum(m is not None for m in models)
            progress(count / len(runs), f"{count} of {len(runs)} models trained on the cluster")

    finished = _as_completed(client, futures, lambda i: f"training model {i + 1} of {len(runs)}", "train the rest",
                             waiting=tell)
    for i, model in finished:
        models[i] = model
        if done is not None:
            done(i, model)
        tell()
    return models  # type: ignore[return-value]


def _as_completed(client, futures: dict, what: Callable[[Any], str], rerun: str,
                  waiting: Callable[[], None] | None = None) -> Iterator[tuple[Any, Any]]:
    """(item, result) of each of ``futures`` (future → item) as it finishes. A worker's failure becomes one line for
    the user (``what(item)`` names the task, ``rerun`` what a rerun does); an error, or an interruption of the
    client, cancels what is still queued. ``waiting()`` is called twice a second while nothing finishes (a job's
    Stop raises from there, so a hung worker cannot keep a run alive)."""
    from distributed import wait

    pending = set(futures)
    try:
        while pending:
            try:
                finished, pending = wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:
                if waiting is not None:
                    waiting()
                continue
            for future in finished:
                yield futures[future], _result(future, what(futures[future]), rerun)
    finally:
        client.cancel(list(futures), force=True)


def _result(future, what: str, rerun: str) -> Any:
    """A finished future's result; a worker's failure as one line for the user."""
    try:
        return future.result()
    except InfluenceError:
        raise
    except Exception as err:  # noqa: BLE001 - a worker's failure becomes one line for the user
        raise InfluenceError(f"{what} failed on a Dask worker: {_one_line(err)}; rerun to {rerun}") from None


def score_sharded(
    dataset: Dataset,
    fitted: FittedModel,
    method: str,
    impact: str | Impact = "utility",
    *,
    out_dir: str | os.PathLike,
    settings: dict | None = None,
    impact_settings: dict | None = None,
    params: str = "all",
    folds: int = 0,
    fold_models: list[FittedModel] | None = None,
    cluster: str | ClusterSpec | None = None,
    scheduler: str | None = None,
    client: Any = None,
    shard_size: int | None = None,
    batch_size: int = 256,
    progress: Progress | None = None,
    device: str | None = None,
    details: dict | None = None,
    cache: Callable[[str, dict, Callable[[], dict]], dict] | None = None,
) -> np.ndarray:
    """Scores of every training sample by ``method`` against ``impact`` (lower = more detrimental), computed shard
    by shard on Dask and kept in ``out_dir``; equal to `compute_scores` with the same arguments (to float rounding).

    ``cluster``: "local:N" (a LocalCluster of N single-thread workers, started and closed here), "local-cuda[:N]",
    "none" (this process) or a `ClusterSpec`; ``scheduler``: "tcp://HOST:PORT" of a running cluster; neither:
    ``$INFLUENCE_DASK_SCHEDULER`` if set, else this process. ``client``: an open `distributed.Client` to use
    instead (not closed here). A rerun with the same ``out_dir`` scores only the shards not yet written.
    ``folds=K``: out of fold, one task per (fold, shard); ``fold_models``, when not given, are trained one task each
    on the cluster's workers (in this process when there is none; `engine.Engine.scores` caches them).
    ``progress(fraction, message)`` hears of every shard; ``details`` receives the method's notes and the run's
    counts (shards, skipped, computed, peak memory per worker in bytes, seconds). ``cache``: the workspace's array
    cache for what the client computes once (e.g. the explicit Hessian), as for `ScoringContext`.
    """
    t0 = time.perf_counter()
    settings = dict(settings or {})
    scorer = get_method(method, **settings)
    if not scorer.shardable:
        raise InfluenceError(f"method '{method}' scores all training samples at once and cannot be sharded; "
                             f"sharded scoring runs: {', '.join(shardable_methods())}")
    imp = make_impact(impact, **(impact_settings or {}))
    spec = cluster if isinstance(cluster, ClusterSpec) else (None if client is not None else parse_cluster(cluster, scheduler))
    if client is None and folds and fold_models is None and spec.kind != "process":
        with dask_client(spec, progress) as opened:  # the fold models are trained on the cluster the shards then run on
            return score_sharded(dataset, fitted, method, impact, out_dir=out_dir, settings=settings,
                                 impact_settings=impact_settings, params=params, folds=folds, cluster=spec,
                                 client=opened, shard_size=shard_size, batch_size=batch_size, progress=progress,
                                 device=device, details=details, cache=cache)
    out_dir = Path(out_dir)
    n = len(dataset.train)
    if n == 0:
        raise InfluenceError("the training split is empty")

    # The parts: the whole training set, or each fold's held-out rows scored by the model that did not see them.
    if folds:
        fold_settings = FoldSettings(int(folds))
        if fold_models is None:
            from .api import fold_models_for, span

            def on_the_workers(fold_parts, arch, config, report):
                return train_models_on_dask(client, [(part, arch, config) for part in fold_parts], progress=report)

            fold_models = fold_models_for(dataset, fitted, fold_settings, progress=span(progress, 0.0, 0.5),
                                          device=device, train_many=on_the_workers if client is not None else None)
            progress = span(progress, 0.5, 1.0)
        parts = held_out_parts(dataset, fold_models, fold_settings)
    else:
        parts = [(dataset, fitted, np.arange(n))]

    # The manifest ties out_dir to one run; its shard size wins on a rerun so the same shards are found.
    manifest = _manifest(dataset, fitted, fold_models if folds else None, scorer, imp, params, folds, n)
    previous = _read_manifest(out_dir)
    if previous is not None:
        differs = [k for k in manifest if previous.get(k) != manifest[k]]
        if differs:
            raise InfluenceError(f"{out_dir} holds shards of another run ({', '.join(differs)} differ); "
                                 "give an empty folder or the one of this run")
        if shard_size is not None and round_shard_size(shard_size, batch_size) != previous["shard_size"]:
            raise InfluenceError(f"{out_dir} holds shards of {previous['shard_size']} rows; rerun with that shard size "
                                 "or give an empty folder")
        size = int(previous["shard_size"])
    else:
        size = round_shard_size(shard_size, batch_size) if shard_size else default_shard_size(n, batch_size)
    shards = _shards([rows for _, _, rows in parts], size, folds)
    manifest.update(shard_size=size, shards=len(shards), batch_size=batch_size,
                    details=(previous or {}).get("details", {}))
    out_dir.mkdir(parents=True, exist_ok=True)

    out = np.full(n, np.nan)
    todo = []
    for s in shards:
        found = read_shard(out_dir / s.name, s.rows)
        if found is None:
            todo.append(s)
        else:
            out[s.rows] = found
    skipped = len(shards) - len(todo)
    run = {"shards": len(shards), "skipped": skipped, "computed": 0, "shard_size": size, "peak_rss": {},
           "where": "none needed" if not todo else (spec.describe() if spec is not None else "the given Dask client")}

    last = [0.0, "starting"]  # what progress heard last: told again while the workers are busy

    def report(fraction: float, message: str) -> None:
        last[:] = [fraction, message]
        if progress is not None:
            progress(float(min(max(fraction, 0.0), 1.0)), message)

    if todo:
        # Once per part: the method's shared computation (impact gradient, solved direction, …), on this process.
        jobs: dict[int, ShardJob] = {}
        needed = sorted({s.part for s in todo})
        for j, p in enumerate(needed):
            part_ds, model, _ = parts[p]
            label = f"fold {p + 1}/{len(parts)}: " if folds else ""

            def prep_report(fraction: float, message: str, j=j, label=label) -> None:
                report(0.2 * (j + min(fraction, 1.0)) / len(needed), f"{label}preparing: {message}")

            ctx = ScoringContext(model, part_ds, imp, params=params, device=device, batch_size=batch_size,
                                 progress=prep_report, cache=cache)
            scorer.check(ctx)
            prepared = scorer.prepare(ctx)
            jobs[p] = ShardJob(scorer, _to_cpu(prepared), _bare(model), _worker_dataset(part_ds), imp, params, batch_size,
                               device, str(out_dir.resolve()))
        manifest["details"] = _jsonable(scorer.details)
        _write_manifest(out_dir, manifest)
        report(0.2, f"{skipped}/{len(shards)} shards from an earlier run; scoring {len(todo)} on {run['where']}")

        def done(s: Shard, result: dict) -> None:
            if not result["written"] or not (out_dir / s.name).exists():
                write_shard(out_dir / s.name, s.rows, result["scores"])
            out[s.rows] = result["scores"]
            run["computed"] += 1
            worker = result["worker"]
            run["peak_rss"][worker] = max(run["peak_rss"].get(worker, 0), int(result["peak_rss"]))
            finished = skipped + run["computed"]
            where = f"fold {s.part + 1}/{len(parts)}, " if folds else ""
            report(0.2 + 0.8 * run["computed"] / len(todo),
                   f"shard {s.index + 1} ({where}rows {s.start}–{s.stop}) written: {finished}/{len(shards)} shards")

        if client is not None:
            _run_on_dask(client, jobs, todo, done, waiting=lambda: report(*last))
        else:
            with dask_client(spec, progress) as opened:
                if opened is None:
                    for s in todo:
                        done(s, run_shard(jobs[s.part], s.start, s.stop, s.rows, s.name))
                else:
                    _run_on_dask(opened, jobs, todo, done, waiting=lambda: report(*last))
    else:
        _write_manifest(out_dir, manifest)
        report(1.0, f"all {len(shards)} shards from an earlier run")

    if not np.isfinite(out).all():
        raise InfluenceError(f"sharded scoring left {int((~np.isfinite(out)).sum())} samples without a score")
    scorer.details = manifest.get("details", {}) or scorer.details
    if details is not None:
        details.update(scorer.details)
        details["sharding"] = dict(run, seconds=time.perf_counter() - t0)
    report(1.0, "done")
    return out


def _run_on_dask(client, jobs: dict[int, ShardJob], todo: list[Shard], done: Callable[[Shard, dict], None],
                 waiting: Callable[[], None] | None = None) -> None:
    """Scatter each part's job to every worker once, submit one task per shard, and hand results over as they come;
    an error (or an interruption of the client) cancels what is still queued — the shards written stay.
    ``waiting()``: called while no shard finishes (see `_as_completed`)."""
    try:
        scattered = {p: client.scatter(job, broadcast=True, hash=False) for p, job in jobs.items()}
    except Exception as err:  # noqa: BLE001 - e.g. a worker killed meanwhile: one line for the user
        raise InfluenceError(f"sending the model and data to the Dask workers failed: {_one_line(err)}; "
                             "rerun to score the remaining shards") from None
    run_id = uuid.uuid4().hex[:8]
    futures = {client.submit(run_shard, scattered[s.part], s.start, s.stop, s.rows, s.name,
                             key=f"influence-shard-{run_id}-{s.name}", pure=False): s for s in todo}
    try:
        for shard, result in _as_completed(client, futures, lambda s: f"shard {s.name}", "score the remaining shards",
                                           waiting=waiting):
            done(shard, result)
    finally:
        client.cancel(list(scattered.values()), force=True)


def _bare(model: FittedModel) -> FittedModel:
    """The model without its training record and checkpoints (a plan carries the checkpoints it scores with)."""
    return replace(model, history=[], checkpoints=[])


def _worker_dataset(dataset: Dataset) -> Dataset:
    """The data set as the workers need it: the training rows only (a path and row index when stored on disk)."""
    return replace(dataset, val=dataset.val.subset(np.arange(0)), test=dataset.test.subset(np.arange(0)),
                   noise_mask=None, clean_labels=None)


def _to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor moved to the CPU (what is scattered must not depend on the client's GPU)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return replace(obj, **{f.name: _to_cpu(getattr(obj, f.name)) for f in fields(obj) if f.init})
    return obj


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def _manifest(dataset: Dataset, fitted: FittedModel, fold_models: list[FittedModel] | None, scorer: InfluenceMethod,
              imp: Impact, params: str, folds: int, n: int) -> dict:
    imp_settings = {f.name: getattr(imp, f.name) for f in fields(imp)} if is_dataclass(imp) else {}
    models = [m.fingerprint() for m in fold_models] if fold_models else [fitted.fingerprint()]
    if scorer.needs_checkpoints:  # TracIn-like scores depend on the training trajectory, not only on θ
        models += [m.checkpoints_fingerprint() for m in (fold_models or [fitted])]
    return _jsonable({"method": scorer.name, "settings": asdict(scorer.settings) if is_dataclass(scorer.settings) else {},
                      "impact": imp.name if scorer.uses_impact else None, "impact_settings": imp_settings if scorer.uses_impact else {},
                      "params": params, "folds": int(folds or 0), "n_train": n, "dataset": dataset.fingerprint(),
                      "models": models})


def _read_manifest(out_dir: Path) -> dict | None:
    try:
        return json.loads((Path(out_dir) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".manifest.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(dict(manifest, written=time.time()), f, indent=1)
        os.replace(tmp, out_dir / "manifest.json")
    finally:
        Path(tmp).unlink(missing_ok=True)
