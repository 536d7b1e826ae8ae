"""The facade every front end uses (like kronfluence's ``Analyzer``): a named project in a workspace holds the
chosen data set, model, score runs, decisions, jobs and exports, and exposes the pipeline as methods.

    project = Project.open("cifar-audit")                  # <workspace>/projects/cifar-audit/
    project.use_dataset("moons", seed=0)
    project.train("mlp")                                   # cached: the same data and settings train once
    scores = project.score(ScoreRun("ip_combined"))        # lower = more detrimental
    project.record([3, 17], "remove", session="me")        # SQLite, this project's decisions only
    project.undo(session="me")                             # takes back this session's last batch only

The CLI, every page of the app and the experiment runner go through this class; adding an impact setting or a
loader argument touches the settings types here and in ``session.py``, not the front ends. The project folder holds
``state.json`` (what is chosen), ``decisions.sqlite``, ``jobs/`` (background jobs' records), ``uploads/`` and
``exports/``; slow results (models, fold models, scores, views) live in the workspace's content-addressed cache,
shared by the projects of one workspace (a key holds the data's fingerprint, so no project sees another's data).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections import OrderedDict
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .data.base import Dataset
from .data.registry import DATASETS, PATH_LOADERS, load_dataset
from .errors import InfluenceError
from .grads import Progress
from .impacts import IMPACTS, make_impact, resolve_val_trim
from .jobs import Job, JobHandle, forget_job, get_job, start_job
from .methods import METHODS
from .models.registry import MODELS, default_architecture
from .models.train import FittedModel, TrainConfig, TrainProgress, memorisation_warning
from .review import ACTIONS as DECISION_ACTIONS, DecisionLog
from .session import ScoreRun, Selection, decision_scope, flagged_rows, workspace_root
from .workspace import Workspace

# What front ends need besides the class: settings types and the catalogues of data sets, models, methods, impacts and
# actions (so a page imports this module only).
from .evaluate.actions import ACTIONS as CLEANING_ACTIONS  # noqa: E402
from .evaluate.retrain import AttackSettings  # noqa: E402
from .evaluate.runner import ExperimentResult, ExperimentSettings, cleaned_split_table, format_table  # noqa: E402

__all__ = ["Project", "ScoreRun", "Selection", "TrainConfig", "ExperimentSettings", "ExperimentResult", "AttackSettings",
           "DATASETS", "PATH_LOADERS", "METHODS", "IMPACTS", "MODELS", "DECISION_ACTIONS", "CLEANING_ACTIONS", "Job",
           "JobHandle", "InfluenceError", "memorisation_warning", "resolve_val_trim", "workspace_root", "project_names",
           "DEFAULT_PROJECT", "valid_project_name", "format_table", "cleaned_split_table", "default_architecture"]

DEFAULT_PROJECT = "default"
STATE_FILE = "state.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def valid_project_name(name: str) -> str:
    """``name`` when it can name a project folder (letters, digits, '-', '_', '.'; at most 64), else a one-line error."""
    name = str(name or "").strip()
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise InfluenceError(f"'{name[:80]}' cannot name a project: use up to 64 letters, digits, '-', '_' or '.', "
                             "starting with a letter or digit")
    return name


def project_names(root: str | os.PathLike | None = None) -> list[str]:
    """The projects of a workspace, by name (the default one first)."""
    folder = Path(root or workspace_root()) / "projects"
    names = sorted(p.name for p in folder.glob("*") if p.is_dir() and _NAME.fullmatch(p.name)) if folder.exists() else []
    return sorted(names, key=lambda n: n != DEFAULT_PROJECT)


# Loaded data sets and models, shared by every project and session of this process (keyed by content, so sharing is
# safe); a small LRU so a server with many users keeps a bounded number in memory.
class _Memo:
    def __init__(self, size: int) -> None:
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key: str, make: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = make()
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_DATASETS = _Memo(6)
_MODELS = _Memo(8)
_SCORES = _Memo(64)
_ESTIMATES = _Memo(32)  # measured training-step times (Project.training_estimate)


class Project:
    """One named project: its state on disk, the shared cache, its decision log and background jobs."""

    def __init__(self, name: str = DEFAULT_PROJECT, root: str | os.PathLike | None = None) -> None:
        self.name = valid_project_name(name)
        self.root = Path(root).expanduser().resolve() if root is not None else workspace_root()
        self.folder = self.root / "projects" / self.name
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InfluenceError(f"cannot create the project folder {self.folder}: {err.strerror}") from None
        self.cache = Workspace(self.root)

    @classmethod
    def open(cls, name: str = DEFAULT_PROJECT, root: str | os.PathLike | None = None) -> "Project":
        return cls(name, root)

    def __repr__(self) -> str:
        return f"Project({self.name!r}, root={str(self.root)!r})"

    def rename(self, new_name: str) -> "Project":
        """The same project under ``new_name`` (its folder moved); refuses a name already taken."""
        new_name = valid_project_name(new_name)
        target = self.root / "projects" / new_name
        if new_name == self.name:
            return self
        if target.exists():
            raise InfluenceError(f"a project named '{new_name}' exists already")
        if any(job.running for job in self.jobs()):
            raise InfluenceError("a job of this project is running; rename it when the job has finished")
        os.rename(self.folder, target)
        return Project(new_name, self.root)

    # ------------------------------------------------------------------------------------------- state
    @property
    def state_path(self) -> Path:
        return self.folder / STATE_FILE

    def state(self) -> Selection:
        """What is chosen in this project, read from disk on every call (the disk holds the truth)."""
        try:
            return Selection.from_json(json.loads(self.state_path.read_text()))
        except (OSError, ValueError, TypeError):
            return Selection()

    def save_state(self, state: Selection) -> None:
        """Write atomically (a reader never sees half a file; two writers never interleave)."""
        tmp = self.state_path.with_name(f".{STATE_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(state.to_json(), indent=2, default=str))
        os.replace(tmp, self.state_path)

    def _update_state(self, change: Callable[[Selection], None], *, only_if: Callable[[Selection], bool] | None = None) -> bool:
        with _STATE_LOCK:
            state = self.state()
            if only_if is not None and not only_if(state):
                return False
            change(state)
            self.save_state(state)
            return True

    # -------------------------------------------------------------------------------------------- data
    def use_dataset(self, name: str, **kwargs) -> Dataset:
        """Make ``name`` (a registered data set, or a stored upload's path) with loader arguments the current data set;
        loads it first, so a data set that cannot be loaded never becomes current. A new data set clears the model."""
        dataset = self._load(name, kwargs)
        self._update_state(lambda s: s.set_dataset(name, kwargs))
        return dataset

    def dataset(self) -> Dataset:
        state = self.state()
        return self._load(state.dataset, state.dataset_kwargs)

    @staticmethod
    def _load(name: str, kwargs: dict) -> Dataset:
        return _DATASETS.get(name + json.dumps(kwargs, sort_keys=True, default=str), lambda: load_dataset(name, **kwargs))

    def save_upload(self, data: bytes, filename: str, kind: str = "data", load: Callable[[Path], Any] | None = None):
        """Check and store an uploaded file in this project (`uploads.save_upload`: refused uploads leave nothing)."""
        from .data.uploads import save_upload

        return save_upload(data, filename, kind, self.folder, load=load)

    def upload_dataset(self, data: bytes, filename: str, **kwargs) -> Dataset:
        """An uploaded CSV or image zip, checked, stored in the project and made the current data set."""
        path, dataset = self.stage_dataset_upload(data, filename, **kwargs)
        self._update_state(lambda s: s.set_dataset(path, kwargs))
        return dataset

    def stage_dataset_upload(self, data: bytes, filename: str, **kwargs) -> tuple[str, Dataset]:
        """An uploaded CSV or image zip, checked, loaded with ``kwargs`` and stored in the project (a refused one leaves
        nothing), but not yet current: its stored path (for `use_dataset`) and the data set, so a page can show what
        was read before the user takes it."""
        stored = self.save_upload(data, filename, "data", load=lambda p: load_dataset(str(p), **kwargs))
        path = str(stored.path)
        _DATASETS.get(path + json.dumps(kwargs, sort_keys=True, default=str), lambda: stored.value)
        return path, stored.value

    # ------------------------------------------------------------------------------------------- model
    def model(self, dataset: Dataset | None = None) -> FittedModel | None:
        """The current model (trained here and cached, or uploaded), or None when there is none yet."""
        state = self.state()
        if not state.has_model:
            return None
        dataset = dataset if dataset is not None else self.dataset()
        if state.weights:
            from .models.loading import load_fitted

            return _MODELS.get(f"weights:{state.weights}:{state.arch}:{dataset.fingerprint()}",
                               lambda: load_fitted(state.weights, state.arch, dataset))
        config = state.train_config()
        key = self.cache.model_key(dataset, state.arch, config)
        def load() -> FittedModel:
            fitted = self.cache.load_model(key, dataset)
            if fitted is None:  # never a silent retraining while a page loads
                raise InfluenceError(f"the current model ({state.arch}) is no longer in the workspace cache; train it "
                                     "again on the Model page")
            return fitted

        return _MODELS.get(f"model:{key}", load)

    def train(self, arch: str, config: TrainConfig | dict | None = None, *, progress: TrainProgress | None = None,
              should_stop: Callable[[], bool] | None = None, device: str | None = None) -> FittedModel:
        """Train ``arch`` on the current data set (or find it in the cache) and make it the current model — unless the
        run was stopped, or the user chose another data set meanwhile."""
        dataset, state = self.dataset(), self.state()
        settings = _train_settings(config)
        fitted = self.cache.get_or_train(dataset, arch, TrainConfig(**settings), progress=progress,
                                         should_stop=should_stop, device=device)
        if fitted.history and fitted.history[-1].get("cancelled"):
            return fitted
        _MODELS.get(f"model:{self.cache.model_key(dataset, arch, TrainConfig(**settings))}", lambda: fitted)

        def use(s: Selection) -> None:
            s.clear_model()
            s.arch, s.train, s.model_hash = arch, settings, fitted.fingerprint()

        self._update_state(use, only_if=lambda s: s.dataset_key == state.dataset_key)
        return fitted

    def upload_weights(self, data: bytes, filename: str, arch: str) -> FittedModel:
        """Uploaded weights (checked: no pickled code, no code in .pt2 programs), stored and made the current model."""
        from .models.loading import load_fitted

        dataset = self.dataset()
        path, fitted = self.save_upload(data, filename, "weights", load=lambda p: load_fitted(str(p), arch, dataset))

        def use(s: Selection) -> None:
            s.clear_model()
            s.arch, s.weights, s.model_hash = arch, str(path), fitted.fingerprint()

        self._update_state(use)
        return fitted

    def use_weights(self, path: str | os.PathLike, arch: str) -> FittedModel:
        """Weights from a local file (the CLI's ``--weights``; checked like an upload, not copied) as the current model."""
        from .models.loading import load_fitted

        dataset = self.dataset()
        fitted = load_fitted(str(path), arch, dataset)

        def use(s: Selection) -> None:
            s.clear_model()
            s.arch, s.weights, s.model_hash = arch, str(Path(path).resolve()), fitted.fingerprint()

        self._update_state(use)
        return fitted

    def uploaded_weights_path(self, data: bytes, filename: str) -> Path:
        from .data.uploads import stored_path

        return stored_path(data, filename, "weights", self.folder)

    def training_estimate(self, arch: str, config: TrainConfig | dict | None = None) -> dict:
        """How long `train` would take, before it starts: ``{"seconds", "text", "how", "at_most"}``
        (`models.estimate.estimate_training`) from real training steps of ``arch`` timed on the current data (measured
        once per data, architecture and batch size, in about half a second, or one step of a very slow model) times
        batches × epochs."""
        from .models.estimate import estimate_training, measure_steps

        dataset = self.dataset()
        resolved = TrainConfig(**_train_settings(config)).resolved(arch)
        key = f"{dataset.fingerprint()}:{arch}:{resolved.optimizer}:{resolved.batch_size}:{bool(resolved.augment)}"
        times = _ESTIMATES.get(key, lambda: measure_steps(dataset, arch, resolved))
        return estimate_training(dataset, resolved, times)

    def fold_models(self, folds: int, progress: Progress | None = None, device: str | None = None) -> list[FittedModel]:
        dataset = self.dataset()
        return self.cache.fold_models(dataset, self.require_model(dataset), folds, progress=progress, device=device)

    def require_model(self, dataset: Dataset | None = None) -> FittedModel:
        fitted = self.model(dataset)
        if fitted is None:
            raise InfluenceError("no model yet: train or upload a model first")
        return fitted

    # ------------------------------------------------------------------------------------------ scores
    def score(self, run: ScoreRun, progress: Progress | None = None, *, details: dict | None = None,
              device: str | None = None, batch_size: int = 256, add: bool = True, cluster: str | None = None,
              scheduler: str | None = None) -> np.ndarray:
        """Scores of every training sample by ``run`` (lower = more detrimental), from the cache or computed; ``add``
        keeps the run among the project's score columns (unless the model changed meanwhile). ``cluster`` / ``scheduler``
        (or ``$INFLUENCE_DASK_SCHEDULER``): methods that can be sharded run on Dask, with progress per shard."""
        dataset, state = self.dataset(), self.state()
        fitted = self.require_model(dataset)
        scores = self.cache.get_or_score(dataset, fitted, progress=progress, details=details, device=device,
                                         batch_size=batch_size, cluster=cluster, scheduler=scheduler,
                                         **run.score_kwargs())
        if add:
            self._update_state(lambda s: s.add_run(run), only_if=lambda s: s.model_hash == state.model_hash)
        return scores

    def _run_result(self, dataset: Dataset, fitted: FittedModel, run: ScoreRun) -> tuple[np.ndarray, dict]:
        kwargs = run.score_kwargs()
        key = self.cache.score_key(dataset, fitted, kwargs["method"], kwargs["impact"], kwargs["params"],
                                   kwargs["settings"], kwargs["impact_settings"], kwargs["folds"])

        def load() -> tuple[np.ndarray, dict]:
            details: dict = {}
            return self.cache.get_or_score(dataset, fitted, details=details, **kwargs), details

        return _SCORES.get(f"{self.root}:{key}", load)

    def scores(self) -> dict[str, np.ndarray]:
        """Every computed run's scores (lower = more detrimental), by column label."""
        state = self.state()
        if not state.runs:
            return {}
        dataset = self.dataset()
        fitted = self.require_model(dataset)
        return {run.label: self._run_result(dataset, fitted, run)[0] for run in state.runs}

    def notes(self) -> dict[str, str]:
        """What computed runs found that the user must know (e.g. exact influence on a Hessian that is not positive
        definite), by column label; stored with the scores."""
        state = self.state()
        if not state.runs:
            return {}
        dataset = self.dataset()
        fitted = self.require_model(dataset)
        out = {}
        for run in state.runs:
            note = self._run_result(dataset, fitted, run)[1].get("note")
            if note:
                out[run.label] = note
        return out

    def set_primary(self, label: str | None) -> None:
        """Order Review by the run ``label`` (None: the default choice again, see `primary_run`)."""
        self._update_state(lambda s: setattr(s, "primary", label))

    def primary_run(self) -> ScoreRun | None:
        """The ranking Review orders by and flags with: the one chosen there (`set_primary`); else, where the wrong
        labels are known, the computed ranking that finds them best (the Scores page's leaderboard, by AUROC); else
        the ranking the benchmark supports (README "Which ranking to trust": the loss, in-sample first); else the
        newest run. Computing runs hands the choice back to this default, so a new run can reach Review."""
        state = self.state()
        chosen = next((r for r in state.runs if r.label == state.primary), None)
        if chosen is not None or not state.runs:
            return chosen
        dataset = self.dataset()
        if dataset.noise_mask is not None and dataset.noise_mask.any():
            from .figures import detection_auroc

            noisy, scores = dataset.noise_mask.numpy().astype(bool), self.scores()
            return max(state.runs, key=lambda r: detection_auroc(scores[r.label], noisy))  # the first of equals
        losses = sorted((r for r in state.runs if r.method == "loss"), key=lambda r: r.folds)
        return losses[0] if losses else state.runs[-1]

    def set_flag_share(self, share: float) -> None:
        self._update_state(lambda s: setattr(s, "flag_share", float(share)))

    def flagged(self, label: str | None = None) -> np.ndarray:
        """Rows of the flagged samples: the ``flag_share`` lowest scores of ``label`` (default: the primary run)."""
        state = self.state()
        run = self.primary_run() if label is None else next((r for r in state.runs if r.label == label), None)
        if run is None:
            return np.zeros(0, dtype=np.int64)
        return flagged_rows(self.scores()[run.label], state.flag_share)

    def describe_target(self, impact: str = "utility", impact_settings: dict | None = None) -> dict:
        from .api import describe_target

        dataset = self.dataset()
        return describe_target(dataset, self.require_model(dataset), impact, impact_settings)

    def label_issues(self, folds: int = 0) -> dict:
        """cleanlab's estimate of how many labels are wrong (out of fold with ``folds`` ≥ 2, as cleanlab intends)."""
        from .api import estimate_label_issues

        dataset = self.dataset()
        fitted = self.require_model(dataset)
        fold_models = self.cache.fold_models(dataset, fitted, folds) if folds else None
        return estimate_label_issues(dataset, fitted, fold_models=fold_models, folds=folds or None)

    def method_costs(self, params: str = "all", folds: int = 0, settings: dict[str, dict] | None = None) -> dict[str, float]:
        """Rough seconds each method (with ``settings[name]``) would take on the current data set and model: one
        forward + backward timed on this model (memoised), scaled by each method's cost class
        (`analysis.estimate_seconds`). For labels next to method names, not promises: a factor of two either way."""
        from .analysis import cost_units, estimate_seconds

        dataset = self.dataset()
        fitted = self.require_model(dataset)
        units = _SCORES.get(f"cost:{fitted.fingerprint()}:{dataset.fingerprint()}:{params}",
                            lambda: cost_units(dataset, fitted, params))
        checkpoints = len(fitted.checkpoints or [])
        return {name: estimate_seconds(name, units, (settings or {}).get(name), folds, checkpoints) for name in METHODS}

    # ------------------------------------------------------------------------------------------- views
    def angle_view(self, impact: str = "utility", params: str = "all", progress: Progress | None = None) -> dict:
        """Paper Fig. 1's geometry of the current model (cached): IP, influence and plane coordinates per sample."""
        from .analysis import angle_geometry

        dataset = self.dataset()
        fitted = self.require_model(dataset)

        def compute() -> dict:
            g = angle_geometry(dataset, fitted, impact, params, progress=progress, cache=self.cache.get_or_compute_arrays)
            return {"ip": g.ip, "influence": g.influence, "coords": g.coords, "u_xy": g.u_xy, "w_xy": g.w_xy,
                    "hessian": np.array(g.hessian)}

        return self.cache.get_or_compute_arrays("views", _view_key("angles", dataset, fitted, impact=impact, params=params),
                                                compute)

    def feature_map(self, progress: Progress | None = None, seed: int = 0) -> dict:
        """A 2-D map of the model's penultimate features of the training split (cached): t-SNE up to
        `analysis.TSNE_MAX_POINTS` samples, UMAP above (``method`` in the result says which)."""
        from .analysis import embed_2d, embedding_method, penultimate_features

        dataset = self.dataset()
        fitted = self.require_model(dataset)

        def compute() -> dict:
            report = progress or (lambda f, m: None)
            report(0.02, "penultimate features")
            feats = penultimate_features(fitted, dataset.train)
            xy = embed_2d(feats, seed=seed, progress=lambda f, m: report(0.1 + 0.9 * f, m))
            return {"xy": xy, "method": np.array(embedding_method(len(feats)) if feats.shape[1] > 2 else "features")}

        return self.cache.get_or_compute_arrays("views", _view_key("umap", dataset, fitted, seed=seed), compute)

    def has_view(self, name: str, **settings) -> bool:
        """Whether a view ("angles" with impact / params, "umap") is cached, so a page can draw it without a job."""
        dataset = self.dataset()
        return self.cache.has_entry("views", _view_key(name, dataset, self.require_model(dataset), **settings), ".npz")

    def decision_surface(self, steps: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(xs, ys, P(class 1) on a steps × steps grid) around the training points of a two-feature data set: the
        current model's decision surface (Explore's decision boundary; a one-line error for other data)."""
        from .analysis import decision_grid

        dataset = self.dataset()
        return decision_grid(self.require_model(dataset), dataset.train.x.numpy(), steps)

    # ---------------------------------------------------------------------------------------- samples
    def predictions(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """(predicted class, class probabilities N×C) of the current model on a split (memoised per model)."""
        from .analysis import predict

        dataset = self.dataset()
        fitted = self.require_model(dataset)
        return _SCORES.get(f"predict:{fitted.fingerprint()}:{dataset.fingerprint()}:{split}",
                           lambda: predict(fitted, getattr(dataset, split)))

    def similar_samples(self, row: int, params: str = "all") -> np.ndarray:
        """grad ℓ_jᵀ grad ℓ_row for every training sample j: who supports (> 0) or opposes (< 0) sample ``row``."""
        from .analysis import gradient_similarity

        dataset = self.dataset()
        return gradient_similarity(dataset, self.require_model(dataset), int(row), params)

    def source_index(self) -> np.ndarray:
        """Each training row's index in the original data: the sample id shown everywhere (Review, Explore, exports)."""
        from .export import source_index

        return source_index(self.dataset())

    def sample_values(self, rows):
        """Training rows ``rows`` as their source holds them, indexed by original index: a table's own cells (not the
        standardised values the model sees), an uploaded image's file name (`data.originals.original_rows`)."""
        from .data.originals import original_rows

        return original_rows(self.dataset(), rows)

    def images(self, rows, split: str = "train") -> np.ndarray:
        """Images at ``rows`` as N×H×W×C uint8 for display (normalisation undone)."""
        from .export import images_uint8

        dataset = self.dataset()
        if split != "train":
            from .data.prepare import raw_images

            return raw_images(dataset, split, rows)
        return images_uint8(dataset, rows)

    # --------------------------------------------------------------------------------------- decisions
    @property
    def decisions(self) -> DecisionLog:
        return DecisionLog(self.folder / "decisions.sqlite")

    def decision_scope(self, dataset: Dataset | None = None) -> str:
        return decision_scope(dataset if dataset is not None else self.dataset())

    def record(self, rows, action: str, new_label: int | None = None, *, session: str | None = None,
               event: str | None = None, user: str | None = None) -> int:
        """Record one batch of decisions on training rows of the current data set; returns its batch number."""
        rows = [int(r) for r in rows]
        source = self.source_index()
        outside = [r for r in rows if not 0 <= r < len(source)]
        if outside:
            raise InfluenceError(f"training row {outside[0]} is not in the training split (0..{len(source) - 1})")
        originals = [int(source[r]) for r in rows]
        return self.decisions.record(self.decision_scope(), rows, action, new_label, user=user, session=session,
                                     event=event, originals=originals)

    def undo(self, session: str | None = None) -> int:
        """Take back the last batch of ``session`` (of anyone when None); returns how many decisions it held."""
        return self.decisions.undo(self.decision_scope(), session=session)

    def current_decisions(self) -> dict:
        return self.decisions.current(self.decision_scope())

    # -------------------------------------------------------------------------------------------- jobs
    @property
    def jobs_folder(self) -> Path:
        return self.folder / "jobs"

    def start_job(self, kind: str, title: str, fn: Callable[[JobHandle], Any]) -> Job:
        """Run ``fn(handle)`` in the background as this project's ``kind`` job (one at a time per kind); its progress
        and JSON result are kept in the project, so a refresh or a restart shows them."""
        return start_job(kind, title, fn, store=self.jobs_folder)

    def job(self, kind: str) -> Job | None:
        """This project's ``kind`` job: running, finished (with its result), or "interrupted" by a restart."""
        return get_job(kind, store=self.jobs_folder)

    def forget_job(self, kind: str) -> None:
        forget_job(kind, store=self.jobs_folder)

    def jobs(self) -> list[Job]:
        out = []
        for path in sorted(self.jobs_folder.glob("*.json")):
            try:
                key = json.loads(path.read_text()).get("key")
            except (OSError, ValueError):
                continue
            job = self.job(key) if key else None
            if job is not None:
                out.append(job)
        return out

    def train_in_background(self, arch: str, config: dict) -> Job:
        """Train as the "train" job: an epoch log for the live curve, Stop at the next epoch."""
        def run(handle: JobHandle) -> dict:
            def progress(rec: dict) -> None:
                handle.report(rec["fraction"], f"epoch {rec['epoch']} · loss {rec['loss']:.4f} · validation accuracy "
                                               f"{rec['val_accuracy']:.1%}", record=rec)

            fitted = self.train(arch, config, progress=progress, should_stop=handle.should_stop)
            if handle.should_stop():
                return {"cancelled": True, "epochs": len(fitted.history)}
            return {"cancelled": False, "val_accuracy": fitted.metrics.get("val_accuracy")}

        return self.start_job("train", f"Training {arch}", run)

    @staticmethod
    def dask_scheduler(address: str | None = None) -> str | None:
        """The Dask scheduler scoring uses: ``address`` checked (a one-line error when malformed), else
        ``$INFLUENCE_DASK_SCHEDULER``, else None (this process)."""
        from .distributed import ENV_SCHEDULER, parse_cluster

        address = (address or "").strip() or os.environ.get(ENV_SCHEDULER) or None
        return parse_cluster(scheduler=address).address if address else None

    @staticmethod
    def shardable_methods() -> list[str]:
        from .distributed import shardable_methods

        return shardable_methods()

    def score_in_background(self, runs: list[ScoreRun], scheduler: str | None = None) -> Job:
        """Compute ``runs`` one after another as the "score" job; each finished run is kept even when stopped. While
        one is running (started in another tab, say) a second is refused in one line, never silently dropped."""
        running = self.job("score")
        if running is not None and running.running:
            raise InfluenceError(f"{running.title} is already running in this project (scores are already being "
                                 "computed): wait for it or stop it, then compute again")

        def run(handle: JobHandle) -> dict:
            for i, r in enumerate(runs):
                def progress(fraction: float, message: str, i=i, r=r) -> None:
                    handle.check()  # Stop takes effect inside a method, at its next progress report
                    handle.report((i + fraction) / len(runs), f"{r.label}: {message}")

                self.score(r, progress, scheduler=scheduler or None)
            self.set_primary(None)  # Review orders by the default choice again, among the new runs too
            return {"runs": [r.label for r in runs]}

        return self.start_job("score", "Scoring " + ", ".join(r.label for r in runs), run)

    def view_in_background(self, name: str, **settings) -> Job:
        """Compute a view ("angles" or "umap") as a job of that name; the page draws it from the cache when done."""
        def run(handle: JobHandle) -> dict:
            def progress(fraction: float, message: str) -> None:
                handle.check()
                handle.report(fraction, message)

            if name == "angles":
                self.angle_view(settings.get("impact", "utility"), settings.get("params", "all"), progress=progress)
            else:
                self.feature_map(progress=progress)
            return {"view": name}

        title = "Gradient angles" if name == "angles" else "UMAP feature map"
        return self.start_job(f"view:{name}", title, run)

    # -------------------------------------------------------------------------------------- experiment
    def experiment(self, settings, progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                   device: str | None = None, *, out: str | os.PathLike | None = None, current_model: bool = True):
        """Trim / relabel / reweight by each method, retrain, compare (`evaluate.runner.run_experiment`) on the current
        data set — with the current model as the base (``current_model``), else the one ``settings`` describe. Scores
        come from the same cache as the Scores page's; finished runs from the project's journal, so a rerun resumes.
        The result's JSON goes to ``out`` (default: the project's ``experiments/latest.json``)."""
        from .evaluate.runner import run_experiment

        dataset = self.dataset()
        base = self.require_model(dataset) if current_model else None
        folder = self.folder / "experiments"
        return run_experiment(settings, out or folder / "latest.json", dataset=dataset, base=base, progress=progress,
                              should_stop=should_stop, device=device, journal=folder / "journal.jsonl",
                              workspace=self.cache)

    def experiment_in_background(self, settings) -> Job:
        """The experiment as the "experiment" job; its result (settings, table rows, runs) is kept as JSON. The job's
        log starts with ``{"settings": ...}``, so a page can say what is running, or refill its form to resume an
        interrupted run."""
        def run(handle: JobHandle) -> dict:
            handle.report(0.0, "starting", record={"settings": settings.as_dict()})
            result = self.experiment(settings, progress=lambda f, m: handle.report(f, m), should_stop=handle.should_stop)
            return result.to_json()

        return self.start_job("experiment", "Experiment", run)

    def cleaned_split(self, result, method: str):
        """The training split ``method``'s action produced in ``result`` (`cleaned_split_table`: index, given and final
        label, action, weight, score — lower = more detrimental), also for a result read back from JSON: the action is
        applied again to the method's cached scores. A one-line error when ``result`` is of another data set or model."""
        from dataclasses import replace

        from .evaluate.actions import apply_action
        from .evaluate.runner import run_key

        dataset = self.dataset()
        base = self.require_model(dataset)
        s = result.settings
        if run_key(s, dataset, base) != result.key:
            raise InfluenceError("this result was computed on another data set or model than the current one")
        if method not in s.methods:
            raise InfluenceError(f"'{method}' is not a method of this result; choose one of: {', '.join(s.methods)}")
        args = {"method": method, "impact": s.impact, "params": s.params, "settings": s.method_settings.get(method, {}),
                "impact_settings": s.resolved_impact_settings()}
        if not self.cache.has_entry("scores", self.cache.score_key(dataset, base, **args), ".npy"):
            raise InfluenceError(f"the scores of '{method}' are not in the cache (any more): run the experiment again")
        scores = self.cache.get_or_score(dataset, base, **args)
        action = apply_action(s.action, dataset, scores, s.action_settings(), base.module)
        return cleaned_split_table(replace(result, dataset=dataset, base=base, scores={method: scores},
                                           actions={method: action}), method)


    # ------------------------------------------------------------------------------------------ export
    def export_stem(self) -> str:
        """A file-name stem for this project's exports, from the data set's name."""
        from .export import export_stem

        return export_stem(self.dataset().name)

    def corrections(self):
        """One row per decided sample: original index, training row, given and final label, action, every computed
        run's score (lower = more detrimental), who and when (`export.corrections_table`)."""
        from .export import corrections_table

        dataset = self.dataset()
        return corrections_table(dataset, self.current_decisions(), self.scores())

    def manifest(self) -> dict:
        """What produced the export: data set, model, score runs, decision counts, versions."""
        from . import __version__
        from .export import manifest

        dataset, state = self.dataset(), self.state()
        fitted = self.require_model(dataset)
        return manifest(dataset, state.model_hash or fitted.fingerprint(),
                        [r.__dict__ | {"label": r.label} for r in state.runs], self.current_decisions(), __version__)

    def cleaned_table(self, with_splits: bool = False):
        """Every kept training row with its original values (as in the source file) and final label, and with
        ``with_splits`` the validation and test rows and a split column (`export.cleaned_table`); a one-line error
        when the source cannot be read back."""
        from .export import cleaned_table

        return cleaned_table(self.dataset(), self.current_decisions(), with_splits=with_splits)

    def label_column(self) -> str:
        """The source's label column (where the cleaned table writes the final labels)."""
        from .data.originals import label_column

        return label_column(self.dataset())

    def image_zip(self) -> bytes:
        """The cleaned images in ImageFolder layout: train/ with decisions applied, val/ and test/, metadata.csv."""
        from .export import imagefolder_zip

        return imagefolder_zip(self.dataset(), self.current_decisions())

    def cifar_labels(self) -> tuple[bytes, str, str] | None:
        """(npz bytes, source file name, label key) of a CIFAR-N label file with ``cleaned_label`` added; None for
        other data sets or when the label file is not here."""
        from .data.cifar import load_label_file
        from .data.paths import shared_data_dir
        from .export import cifar_label_file

        dataset, state = self.dataset(), self.state()
        key = dataset.meta.get("label_key")
        if key is None or not dataset.name.startswith(("cifar10n", "cifar100n")):
            return None
        name = "cifar100n_labels.npz" if dataset.name.startswith("cifar100n") else "cifar10n_labels.npz"
        path = Path(state.dataset_kwargs.get("labels_path") or shared_data_dir() / "cifar_n" / name)
        if not path.exists():
            return None
        return cifar_label_file(load_label_file(path), dataset, self.current_decisions(), key), path.name, key

    def write_export(self, files: dict[str, bytes]) -> Path:
        """Write ``files`` (name → bytes) into a new time-stamped folder under the project's ``exports/``."""
        import time

        from .export import write_export

        return write_export(self.folder / "exports" / f"{self.export_stem()}-{time.strftime('%Y%m%d-%H%M%S')}", files)

    @staticmethod
    def table_bytes(frame, fmt: str) -> bytes:
        """A table as CSV (formula cells neutralised) or Parquet (raw values) bytes."""
        from .export import table_bytes

        return table_bytes(frame, fmt)


_STATE_LOCK = threading.Lock()
_VIEW_DEFAULTS = {"angles": {"impact": "utility", "params": "all"}, "umap": {"seed": 0}}


def _view_key(name: str, dataset: Dataset, fitted: FittedModel, **settings) -> dict:
    """The cache key of a view: every setting that changes it, defaults filled in."""
    if name not in _VIEW_DEFAULTS:
        raise InfluenceError(f"unknown view '{name}'; choose one of: {', '.join(_VIEW_DEFAULTS)}")
    return {"view": name, "dataset": dataset.fingerprint(), "model": fitted.fingerprint(),
            **{**_VIEW_DEFAULTS[name], **settings}}


def _train_settings(config: TrainConfig | dict | None) -> dict:
    """Training settings as the dict stored in the state (known fields only)."""
    if config is None:
        return {}
    if isinstance(config, TrainConfig):
        return asdict(config)
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise InfluenceError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return dict(config)
