"""The one place that decides how a result is obtained: found in the store or computed (and stored), in this
process or sharded on Dask, in-sample or out of fold (the K fold models trained once, each cached like any model).

    engine = Engine(Workspace())                          # Engine(None): compute, store nothing
    fitted = engine.model(ds, "cnn", TrainConfig(epochs=5))
    scores = engine.scores(ds, fitted, "ip", "utility", folds=5)   # lower = more detrimental

Layers: front ends → `project.Project` → this engine → methods / models / data → maths; the store
(`workspace.Workspace`) below it only stores and finds by key (`keys`).
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING, Callable

import numpy as np

from .api import compute_scores, fold_models_for, span
from .data.base import Dataset
from .cluster import ENV_SCHEDULER
from .folds import FoldSettings
from .grads import Progress
from .impacts import Impact
from .keys import model_key, score_key
from .methods import get_method
from .models.train import FittedModel, TrainConfig, TrainProgress, train_model
from .workspace import Workspace, save_npy, score_problem

if TYPE_CHECKING:
    from .cluster import ClusterSpec


def sharded(method: str, cluster: str | ClusterSpec | None = None, scheduler: str | None = None) -> bool:
    """Whether ``method`` runs sharded on Dask: a cluster or scheduler is asked for (or $INFLUENCE_DASK_SCHEDULER is
    set; a `ClusterSpec` says for itself) and the method can be sharded; others run in this process as always."""
    if cluster is not None and not isinstance(cluster, str):  # a ClusterSpec
        if cluster.kind == "process":
            return False
    elif not (scheduler or (cluster and cluster.strip().lower() not in ("none", "process", "off"))
              or os.environ.get(ENV_SCHEDULER)):
        return False
    return bool(getattr(get_method(method), "shardable", False))


class Engine:
    """Models, fold models and scores of a data set: from ``store`` when it holds them, else computed and stored
    there (``store`` None: always computed, nothing kept — the notebook's and ``--no-cache``'s path)."""

    def __init__(self, store: Workspace | None) -> None:
        self.store = store

    # ------------------------------------------------------------------------------------------ models
    def model(self, dataset: Dataset, arch: str, config: TrainConfig | None = None,
              progress: TrainProgress | None = None, should_stop: Callable[[], bool] | None = None,
              device: str | None = None) -> FittedModel:
        """The stored model for (data, architecture, settings), else trained and stored; a run cancelled through
        ``should_stop`` is returned but not stored."""
        config = (config or TrainConfig()).resolved(arch)
        key = model_key(dataset, arch, config)
        cached = self.store.load_model(key, dataset) if self.store is not None else None
        if cached is not None:
            return cached
        fitted = train_model(dataset, arch, config, device=device, progress=progress, should_stop=should_stop)
        if self.store is not None and not (fitted.history and fitted.history[-1].get("cancelled")):
            self.store.save_model(key, fitted)
        return fitted

    def fold_models(self, dataset: Dataset, fitted: FittedModel, folds: int, progress: Progress | None = None,
                    device: str | None = None, client=None) -> list[FittedModel]:
        """The K fold models of ``fitted``'s architecture and settings, each stored like any model: trained once,
        and an interrupted run resumes at the first fold not yet stored. ``client``: an open Dask client; the folds
        not yet stored are trained on its workers at once, one task each."""
        def trainer(ds, arch, config, report):
            return self.model(ds, arch, config, progress=report, device=device)

        def train_many(parts, arch, config, report):
            from .distributed import train_models_on_dask

            config = config.resolved(arch)
            keys = [model_key(part, arch, config) for part in parts]
            models = [self.store.load_model(key, part) if self.store is not None else None
                      for key, part in zip(keys, parts)]
            missing = [i for i, m in enumerate(models) if m is None]

            def done(j: int, model: FittedModel) -> None:
                models[missing[j]] = model
                if self.store is not None:
                    self.store.save_model(keys[missing[j]], model)

            if missing:
                train_models_on_dask(client, [(parts[i], arch, config) for i in missing], done=done, progress=report)
            return models

        return fold_models_for(dataset, fitted, FoldSettings(folds), trainer=trainer,
                               train_many=train_many if client is not None else None, progress=progress, device=device)

    # ------------------------------------------------------------------------------------------ scores
    def has_scores(self, dataset: Dataset, fitted: FittedModel, method: str, impact: str | Impact = "utility",
                   params: str = "all", settings: dict | None = None, impact_settings: dict | None = None,
                   folds: int = 0) -> bool:
        """Whether the store holds these scores (nothing is computed)."""
        key = score_key(dataset, fitted, method, impact, params, settings, impact_settings, folds)
        return self.store is not None and self.store.has_entry("scores", key, ".npy")

    def scores(self, dataset: Dataset, fitted: FittedModel, method: str = "ip", impact: str | Impact = "utility",
               params: str = "all", settings: dict | None = None, progress: Progress | None = None, *,
               impact_settings: dict | None = None, device: str | None = None, batch_size: int = 256,
               folds: int = 0, details: dict | None = None, cluster: str | ClusterSpec | None = None,
               scheduler: str | None = None) -> np.ndarray:
        """Scores of every training sample (lower = more detrimental), from the store or computed and stored;
        ``folds=K`` scores out of fold with K stored fold models. ``details`` receives the run's notes (see
        `compute_scores`), stored with the scores. ``cluster`` ("local:N", or a resolved `ClusterSpec`) /
        ``scheduler`` ("tcp://HOST:PORT"), or ``$INFLUENCE_DASK_SCHEDULER``: sharded on Dask
        (`distributed.score_sharded`), shards kept under ``shards/<key>/`` so an interrupted run resumes; the same
        scores (to 1e-6), hence the same entry."""
        key = score_key(dataset, fitted, method, impact, params, settings, impact_settings, folds)
        found: dict = {}
        computed = False
        arrays = self.store.get_or_compute_arrays if self.store is not None else None

        def compute() -> np.ndarray:
            nonlocal computed, progress
            computed = True
            on_dask = sharded(method, cluster, scheduler)
            if on_dask:
                from .cluster import ClusterSpec, dask_client, parse_cluster
                from .distributed import score_sharded

                spec = cluster if isinstance(cluster, ClusterSpec) else parse_cluster(cluster, scheduler)
            with dask_client(spec, progress) if on_dask else contextlib.nullcontext() as client:  # folds and shards
                fold_models = None
                if folds:
                    fold_models = self.fold_models(dataset, fitted, folds, progress=span(progress, 0.0, 0.8),
                                                   device=device, client=client)
                    progress = span(progress, 0.8, 1.0)
                if on_dask:
                    with self._shards_folder(key) as out_dir:
                        return score_sharded(dataset, fitted, method, impact, out_dir=out_dir, settings=settings,
                                             impact_settings=impact_settings, params=params, folds=folds,
                                             fold_models=fold_models, cluster=spec, client=client,
                                             batch_size=batch_size, progress=progress, device=device, details=found,
                                             cache=arrays)
                return compute_scores(dataset, fitted, method, impact, params=params, device=device,
                                      batch_size=batch_size, progress=progress, impact_settings=impact_settings,
                                      folds=folds or None, fold_models=fold_models, details=found, cache=arrays,
                                      **(settings or {}))

        if self.store is None:
            scores = compute()
        else:
            t0 = time.perf_counter()

            def meta(scores: np.ndarray) -> dict:
                return {"key": key, "method": method, "impact": impact if isinstance(impact, str) else impact.name,
                        "params": params, "settings": settings or {}, "impact_settings": impact_settings or {},
                        "folds": folds, "details": found, "dataset_fingerprint": dataset.fingerprint(),
                        "model_fingerprint": fitted.fingerprint(), "seconds": time.perf_counter() - t0,
                        "created": time.time()}

            scores = self.store.get_or_compute("scores", key, compute, suffix=".npy", save=save_npy,
                                               load=lambda p: np.load(p, allow_pickle=False), meta=meta,
                                               check=lambda a: score_problem(a, len(dataset.train)))
        if not computed:
            if progress is not None:
                progress(1.0, "loaded from the workspace cache")
            found = self.store.entry_meta("scores", key).get("details", {})
        if details is not None:
            details.update(found)
        return scores

    @contextlib.contextmanager
    def _shards_folder(self, key: str):
        """Where a sharded run keeps its shards: ``shards/<key>/`` of the store (a rerun resumes), else a temporary
        folder."""
        if self.store is not None:
            yield self.store.root / "shards" / key
            return
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            yield folder

    def stored_model(self, key: str, dataset: Dataset, arch: str) -> FittedModel:
        """The model stored under ``key`` (a `keys.model_key`), never trained here (a page only reads it): missing or
        damaged (then removed from the store), a one-line error that says to train it again."""
        from .errors import InfluenceError

        store = self.store
        if store is None:
            raise InfluenceError("no model is stored without a workspace: train it")
        dropped = len(store.notices)
        fitted = store.load_model(key, dataset)
        if fitted is None and len(store.notices) > dropped:  # it was there, but bad: removed
            raise InfluenceError(f"the current model ({arch}) was damaged in the workspace cache and "
                                 f"removed: {store.notices[-1]}; train it again on the Model page")
        if fitted is None:  # never a silent retraining while a page loads
            raise InfluenceError(f"the current model ({arch}) is no longer in the workspace cache; train it "
                                 "again on the Model page")
        return fitted
