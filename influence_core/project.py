"""The facade every front end uses (like kronfluence's ``Analyzer``): a named project in a workspace holds the
chosen data set, model, score runs, decisions, jobs and exports, and exposes the pipeline as methods.

    project = Project.open("cifar-audit")                  # <workspace>/projects/cifar-audit/
    project.use_dataset("moons", seed=0)
    project.train("mlp")                                   # cached: the same data and settings train once
    scores = project.score(ScoreRun("ip_combined"))        # lower = more detrimental
    project.record([3, 17], "remove", session="me")        # SQLite, this project's decisions only
    project.undo(session="me")                             # takes back this session's last batch only

The CLI, every page of the app and the experiment runner go through this class; adding an impact setting or a
loader argument touches the settings types here and in ``state.py``, not the front ends. The project folder holds
``state.json`` (what is chosen), ``decisions.sqlite``, ``jobs/`` (background jobs' records), ``uploads/`` and
``exports/``; slow results (models, fold models, scores, views) live in the workspace's content-addressed cache,
shared by the projects of one workspace (a key holds the data's fingerprint, so no project sees another's data).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .access import MEMBERS_FILE, ROLES, Access, Members, read_members, set_member, write_members
from .atomic import write_text_atomic
from .data.base import Dataset
from .data.registry import DATASETS, PATH_LOADERS, is_size, load_dataset
from .engine import Engine
from .errors import InfluenceError, writing
from .grads import Progress
from .impacts import IMPACTS, JOINT_RANKINGS, describe_impact, resolve_val_trim
from .keys import model_key, score_key, view_key
from .memo import MEMORY
from .jobs import MOVED_FILE, Job, JobHandle, forget_job, get_job, moved_folder, start_job
from .methods import METHODS
from .models.registry import MODELS, default_architecture
from .models.train import FittedModel, TrainConfig, TrainProgress, memorisation_warning, train_settings
from .review import ACTIONS as DECISION_ACTIONS, DecisionLog, reviewer_agreement
from .state import ScoreRun, Selection, decision_scope, flagged_rows, workspace_root
from .workspace import Workspace, format_bytes

# What front ends need besides the class: settings types and the catalogues of data sets, models, methods, impacts and
# actions (so a page imports this module only).
from .evaluate.actions import ACTIONS as CLEANING_ACTIONS  # noqa: E402
from .evaluate.retrain import AttackSettings  # noqa: E402
from .evaluate.runner import ExperimentResult, ExperimentSettings, cleaned_split_table, format_table  # noqa: E402
from .evaluate.baselines import ARMS as BASELINE_ARMS  # noqa: E402,F401  (issue 17: Evaluate's baseline arms)
from .views import ReviewView  # noqa: E402,F401  (issue 20: Review's filters, a page builds them)

__all__ = ["Project", "ScoreRun", "Selection", "TrainConfig", "ExperimentSettings", "ExperimentResult", "AttackSettings",
           "DATASETS", "PATH_LOADERS", "METHODS", "IMPACTS", "MODELS", "DECISION_ACTIONS", "CLEANING_ACTIONS", "Job",
           "JobHandle", "InfluenceError", "memorisation_warning", "resolve_val_trim", "workspace_root", "project_names",
           "DEFAULT_PROJECT", "valid_project_name", "format_table", "cleaned_split_table", "format_bytes", "is_size",
           "Access", "ROLES", "Members",
           "default_architecture", "JOINT_RANKINGS", "describe_impact"]

DEFAULT_PROJECT = "default"
STATE_FILE = "state.json"
STATE_BACKUP = "state.json.bak"  # the last good state, written with every change
NOTICE_FILE = "notice.txt"  # a one-line notice for the sidebar (Project.notice)
_LOG = logging.getLogger(__name__)
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
    names = sorted(p.name for p in folder.glob("*") if p.is_dir() and _NAME.fullmatch(p.name)
                   and not (p / MOVED_FILE).exists()) if folder.exists() else []  # a renamed one's old name: not listed
    return sorted(names, key=lambda n: n != DEFAULT_PROJECT)

CONSENSUS_RANKING = "annotators: consensus quality"  # the annotators' consensus as a ranking (issue 20 §4)

class Project:
    """One named project: its state on disk, the shared cache, its decision log and background jobs."""

    def __init__(self, name: str = DEFAULT_PROJECT, root: str | os.PathLike | None = None, *,
                 access: Access | None = None, create: bool = True) -> None:
        """The project ``name`` of the workspace ``root`` as ``access`` (default: the machine's user, who owns every
        project) sees it; a missing folder is made (owned by that user) only with ``create``. Refuses, in one line,
        a user who may not open it."""
        self.name = valid_project_name(name)
        self.root = Path(root).expanduser().resolve() if root is not None else workspace_root()
        asked = self.root / "projects" / self.name
        self._folder = moved_folder(asked)  # a renamed project: its old name forwards to the new one
        self.renamed_from = self.name if self._folder != asked else None
        self.name = self._folder.name
        self.access = access or Access.local()
        if not self._folder.is_dir():
            if not create:
                raise InfluenceError(f"no project named '{self.name}'")
            try:
                self._folder.mkdir(parents=True, exist_ok=True)
                if not (self._folder / MEMBERS_FILE).exists():
                    write_members(self._folder, Members(self.access.user, {}))
            except OSError as err:
                raise InfluenceError(f"cannot create the project folder {self._folder}: {err.strerror}") from None
        self.require("open")
        self.cache = Workspace(self.root)
        self.engine = Engine(self.cache)

    @property
    def folder(self) -> Path:
        """The project's folder — where it is now: an object opened before a rename follows it (on every access), so
        what a session or a job writes lands in the renamed project."""
        moved = moved_folder(self._folder)
        if moved != self._folder:
            self._folder, self.name = moved, moved.name
        return self._folder

    @classmethod
    def open(cls, name: str = DEFAULT_PROJECT, root: str | os.PathLike | None = None, *,
             user: str | None = None) -> "Project":
        """The project ``name`` (made when missing) for the machine's user — ``user`` (the CLI's ``--user``) or the
        OS login name, recorded as ``decided_by`` and as the owner of a project made here."""
        return cls(name, root, access=Access.local(user))

    @classmethod
    def open_existing(cls, name: str, access: Access, root: str | os.PathLike | None = None) -> "Project":
        """The existing project ``name`` as ``access`` may see it (the app's path: a URL never makes a folder)."""
        return cls(name, root, access=access, create=False)

    @classmethod
    def create(cls, name: str, access: Access, root: str | os.PathLike | None = None) -> "Project":
        """Make the project ``name``, owned by ``access.user`` (an explicit action); refuses a name taken or a user
        the server does not let create projects."""
        access.check_create()
        name = valid_project_name(name)
        if cls.exists(name, root):
            raise InfluenceError(f"a project named '{name}' exists already")
        return cls(name, root, access=access, create=True)

    @staticmethod
    def exists(name: str, root: str | os.PathLike | None = None) -> bool:
        """Whether the workspace ``root`` holds a project ``name`` (a valid name only)."""
        return (Path(root or workspace_root()) / "projects" / valid_project_name(name)).is_dir()

    @property
    def user(self) -> str:
        """Who works in this project now: recorded as ``decided_by``."""
        return self.access.user

    @property
    def role(self) -> str | None:
        """This user's role here: "owner", "reviewer" or "viewer"."""
        return self.access.role(self.folder)

    def require(self, right: str) -> None:
        """Refuse, in one line, what this project's user may not do here: "open", "decide" or "manage"."""
        self.access.check(self.folder, right)

    def delete(self) -> None:
        """Delete this project's folder (its state, decisions, jobs, uploads and exports; the workspace's shared
        cache stays); the owner only, and not while one of its jobs runs."""
        self.require("manage")
        if any(job.running for job in self.jobs()):
            raise InfluenceError("a job of this project is running; delete it when the job has finished")
        shutil.rmtree(self.folder)

    def members(self) -> Members:
        """The owner and the members' roles (``members.json``)."""
        return read_members(self.folder)

    def set_member(self, user: str, role: str | None) -> Members:
        """Give ``user`` the role "viewer" or "reviewer" (None: remove them); the owner only."""
        self.require("manage")
        return set_member(self.folder, user, role)

    def __repr__(self) -> str:
        return f"Project({self.name!r}, root={str(self.root)!r})"

    def rename(self, new_name: str) -> "Project":
        """The same project under ``new_name`` (its folder moved); its old folder keeps only a forwarding record
        (``renamed.json``), so a session or a job still on the old name follows. Refuses a name already taken and a
        project whose job runs (on any server of this workspace), and anyone but its owner."""
        self.require("manage")
        new_name = valid_project_name(new_name)
        source, target = self.folder, self.root / "projects" / new_name
        if new_name == self.name:
            return self
        if target.exists() and moved_folder(target) == target:
            raise InfluenceError(f"a project named '{new_name}' exists already")
        if any(job.running for job in self.jobs()):
            raise InfluenceError("a job of this project is running; rename it when the job has finished")
        forward = Path(tempfile.mkdtemp(dir=source.parent, prefix=f".renamed-{self.name}."))
        (forward / MOVED_FILE).write_text(json.dumps({"to": new_name, "at": time.time()}))
        try:
            if target.exists():  # only a forwarding record: the name is free again
                shutil.rmtree(target)
            os.rename(source, target)
        except OSError as err:
            shutil.rmtree(forward, ignore_errors=True)
            raise InfluenceError(f"cannot rename the project: {err.strerror}") from None
        try:
            os.rename(forward, source)
        except OSError:  # a session wrote into the old place in the instant between: it forwards as it is
            shutil.rmtree(forward, ignore_errors=True)
            (source / MOVED_FILE).write_text(json.dumps({"to": new_name, "at": time.time()}))
        self._folder, self.name = target, new_name
        return Project(new_name, self.root)

    # ------------------------------------------------------------------------------------------- state
    @property
    def state_path(self) -> Path:
        return self.folder / STATE_FILE

    def state(self) -> Selection:
        """What is chosen in this project, read from disk on every call (the disk holds the truth). An unreadable
        ``state.json`` is never silently reset: it is kept aside and the last good copy used (`notice` says so)."""
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return Selection()
        except OSError as err:
            raise InfluenceError(f"cannot read {self.state_path}: {err.strerror}") from None
        state = _parse_state(raw)
        return state if state is not None else self._restore_state()

    @writing("save the project's state")  # a full or read-only disk: one line, the old state kept
    def save_state(self, state: Selection) -> None:
        """Write atomically (a reader never sees half a file; two writers never interleave), then the same as the
        last good copy (``state.json.bak``) that `state` falls back on."""
        text = json.dumps(state.to_json(), indent=2, default=str)
        write_text_atomic(self.state_path, text)
        write_text_atomic(self.state_path.with_name(STATE_BACKUP), text)

    def _restore_state(self) -> Selection:
        """``state.json`` is unreadable: keep it aside as ``state.json.corrupt-<time>``, put the last good copy back
        (or the defaults when there is none) and leave a one-line notice for the sidebar."""
        with _STATE_LOCK:
            aside = self.folder / f"{STATE_FILE}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            try:
                os.rename(self.state_path, aside)
            except FileNotFoundError:  # another session moved it first: read what it restored
                return self.state()
            again = _parse_state(aside.read_bytes())
            if again is not None:  # rewritten good between our read and the move: put it back
                os.replace(aside, self.state_path)
                return again
            try:
                good = _parse_state(self.state_path.with_name(STATE_BACKUP).read_bytes())
            except OSError:
                good = None
            if good is not None:
                self.save_state(good)
                message = (f"{STATE_FILE} was unreadable; restored the last good state from {STATE_BACKUP} (the "
                           f"unreadable file is kept as {aside.name})")
            else:
                message = (f"{STATE_FILE} was unreadable and no good copy exists; the project starts from the defaults "
                           f"(the unreadable file is kept as {aside.name})")
            _LOG.warning("project %s: %s", self.name, message)
            write_text_atomic(self.folder / NOTICE_FILE, message)
            return good if good is not None else Selection()

    def notice(self) -> str | None:
        """A one-line notice the sidebar shows until dismissed (e.g. that an unreadable state.json was restored)."""
        self.state()  # reading the state is what finds an unreadable file
        try:
            return " ".join((self.folder / NOTICE_FILE).read_text().split()) or None
        except OSError:
            return None

    def dismiss_notice(self) -> None:
        (self.folder / NOTICE_FILE).unlink(missing_ok=True)

    def _update_state(self, change: Callable[[Selection], None], *, only_if: Callable[[Selection], bool] | None = None) -> bool:
        """Read, change and write the state as one step, also against other processes (servers, the CLI) sharing
        the workspace: no change overwrites another's."""
        with _STATE_LOCK, _file_lock(self.folder / ".state.lock"):
            state = self.state()
            if only_if is not None and not only_if(state):
                return False
            change(state)
            self.save_state(state)
            return True

    # -------------------------------------------------------------------------------------------- data
    def use_dataset(self, name: str, *, from_browser: bool = False, **kwargs) -> Dataset:
        """Make ``name`` (a registered data set, or a stored upload's path) with loader arguments the current data set;
        loads it first, so a data set that cannot be loaded never becomes current. A new data set clears the model.

        ``from_browser``: the arguments come from a page and are checked first (`check_browser_dataset`): no server
        paths or downloads, sizes within the server's cap, files only from this project's uploads."""
        if from_browser:
            self.check_browser_dataset(name, kwargs)
        dataset = self._load(name, kwargs)
        self._update_state(lambda s: s.set_dataset(name, kwargs))
        return dataset

    def check_browser_dataset(self, name: str, kwargs: dict) -> None:
        """A one-line refusal unless a browser may load ``name`` with ``kwargs``: a registered data set without its
        server-side parameters, or a file uploaded to this project; sizes within ``max_generated_samples``. The
        message for a path never depends on whether that path exists on the server."""
        if name in DATASETS:
            spec = DATASETS[name]
            self._check_loader_arguments(name, spec.loader, kwargs, spec.server_side)
            return
        uploads = os.path.join(str(self.folder), "uploads", "data", "")
        suffix = Path(str(name)).suffix.lower()
        if not os.path.abspath(str(name)).startswith(uploads) or suffix not in PATH_LOADERS:
            raise InfluenceError(f"'{str(name)[:40]}' is not a data set here: choose one of "
                                 f"{', '.join(sorted(DATASETS))}, or upload a file")
        self._check_loader_arguments(f"the {suffix} upload", PATH_LOADERS[suffix], kwargs)

    def _check_loader_arguments(self, what: str, loader: Callable, kwargs: dict,
                                marked: frozenset = frozenset()) -> None:
        from .data.registry import check_browser_arguments

        check_browser_arguments(what, loader, kwargs, self.server_config().max_generated_samples, marked)

    def dataset(self) -> Dataset:
        return self._current()[1]

    def _load(self, name: str, kwargs: dict) -> Dataset:
        """The data set, from the process's memo (at most the server's ``max_loaded_datasets``) or loaded, with any
        array it stores kept in this project's ``arrays/`` within the disk quotas."""
        return MEMORY.get("datasets", self._memo_key(name, kwargs),
                          lambda: self._within_quota(lambda: load_dataset(name, **kwargs)),
                          size=self.server_config().max_loaded_datasets)

    def _memo_key(self, name: str, kwargs: dict) -> str:
        return f"{self.folder}:{name}{json.dumps(kwargs, sort_keys=True, default=str)}"

    def server_config(self):
        """The administrator's settings for this project's workspace (`server_config.server_config`): what a page
        may offer (e.g. ``max_generated_samples`` for its size inputs)."""
        from .server_config import server_config

        return server_config(self.root)

    def _within_quota(self, make: Callable[[], Any]) -> Any:
        """``make()`` with the arrays it stores under this project's ``arrays/``, each new file checked against the
        user's and the workspace's quota first (a refusal leaves none of them)."""
        from .data.storage import arrays_in
        from .workspace import check_quota

        def check(nbytes: int) -> None:
            check_quota(self.root, self.name, nbytes, self.server_config())

        with arrays_in(self.folder / "arrays", check):
            return make()

    def save_upload(self, data: bytes, filename: str, kind: str = "data", load: Callable[[Path], Any] | None = None):
        """Check and store an uploaded file in this project (`uploads.save_upload`: refused uploads leave nothing),
        within the server's caps: ``project_upload_bytes`` for this project's uploads, the user's and the
        workspace's quota for the file and any array its loader stores."""
        from .data.uploads import save_upload, stored_path
        from .workspace import check_quota

        config = self.server_config()
        if not stored_path(data, filename, kind, self.folder).is_file():  # stored before: it takes no more space
            check_quota(self.root, self.name, len(data), config)
        return self._within_quota(lambda: save_upload(data, filename, kind, self.folder, load=load,
                                                      max_bytes=config.project_upload_bytes))

    def upload_dataset(self, data: bytes, filename: str, **kwargs) -> Dataset:
        """An uploaded CSV or image zip, checked, stored in the project and made the current data set."""
        path, dataset = self.stage_dataset_upload(data, filename, **kwargs)
        self._update_state(lambda s: s.set_dataset(path, kwargs))
        return dataset

    def stage_dataset_upload(self, data: bytes, filename: str, *, from_browser: bool = False, **kwargs
                             ) -> tuple[str, Dataset]:
        """An uploaded CSV or image zip, checked, loaded with ``kwargs`` and stored in the project (a refused one leaves
        nothing), but not yet current: its stored path (for `use_dataset`) and the data set, so a page can show what
        was read before the user takes it. ``from_browser``: ``kwargs`` are checked as `use_dataset` checks them."""
        if from_browser:
            from .data.uploads import upload_name

            suffix = Path(upload_name(filename)).suffix.lower()
            if suffix in PATH_LOADERS:  # another type is refused by save_upload, by name
                self._check_loader_arguments(f"the {suffix} upload", PATH_LOADERS[suffix], kwargs)
        stored = self.save_upload(data, filename, "data", load=lambda p: load_dataset(str(p), **kwargs))
        path = str(stored.path)
        MEMORY.get("datasets", self._memo_key(path, kwargs), lambda: stored.value, size=self.server_config().max_loaded_datasets)
        return path, stored.value

    # ----------------------------------------------------------------------------------------- storage
    def references(self) -> tuple[set[str], set[Path]]:
        """What this project's state refers to in the workspace: the fingerprints of its data set and of the fold
        parts its out-of-fold runs train on, and the stored array files its data set reads (nothing when the data
        set no longer loads: then nothing of it can be used)."""
        from .folds import FoldSettings, fold_training_parts

        try:
            dataset = self.dataset()
        except InfluenceError:
            return set(), set()
        prints = {dataset.fingerprint()}
        for folds in sorted({run.folds for run in self.state().runs if run.folds}):
            prints |= {part.fingerprint() for part in fold_training_parts(dataset, FoldSettings(folds))}
        splits = [(s, getattr(s, "pixels", None)) for s in (dataset.train, dataset.val, dataset.test)]
        arrays = {s.store.array.path for pair in splits for s in pair if s is not None and s.on_disk}  # images kept by embeddings
        return prints, arrays

    @staticmethod
    def storage_usage(root: str | os.PathLike | None = None) -> dict:
        """The workspace's bytes: ``{"projects": {name: bytes}, "project_owners": {name: owner}, "kinds": {cache
        kind: bytes}, "owners": {owner: bytes}, "total": bytes}`` (`workspace.disk_usage`, `usage_by_owner`)."""
        from .workspace import disk_usage, project_owner, usage_by_owner

        root = Path(root).expanduser().resolve() if root is not None else workspace_root()
        usage = disk_usage(root)
        return {**usage, "project_owners": {name: project_owner(root, name) for name in usage["projects"]},
                "owners": usage_by_owner(root)}

    @staticmethod
    def collect_garbage(root: str | os.PathLike | None = None, dry_run: bool = False) -> list[tuple[str, int]]:
        """Delete the workspace's cache entries no project's state refers to (`workspace.collect_garbage`): models
        and scores of data no project uses, stored arrays no project's data set reads, shards of finished runs.
        Returns (path, bytes) of each entry freed (or, with ``dry_run``, that would be)."""
        from .workspace import collect_garbage

        root = Path(root).expanduser().resolve() if root is not None else workspace_root()
        prints: set[str] = set()
        arrays: set[Path] = set()
        for name in project_names(root):
            used_prints, used_arrays = Project(name, root).references()
            prints |= used_prints
            arrays |= used_arrays
        freed = collect_garbage(root, prints, arrays, dry_run=dry_run)
        if freed and not dry_run:
            MEMORY.clear("datasets")  # a data set staged but not taken may read an array that is gone now
        return freed

    # ------------------------------------------------------------------------------------------- model
    def model(self, dataset: Dataset | None = None) -> FittedModel | None:
        """The current model (trained here and cached, or uploaded), or None when there is none yet."""
        state = self.state()
        if not state.has_model:
            return None
        return self._model(state, dataset if dataset is not None else self._current(state)[1])

    def _model(self, state: Selection, dataset: Dataset) -> FittedModel | None:
        """The model ``state`` names, for ``dataset`` (from the memory layer, else the store; never trained here)."""
        if not state.has_model:
            return None
        if state.weights:
            from .models.loading import load_fitted

            return MEMORY.get("models", f"weights:{state.weights}:{state.arch}:{dataset.fingerprint()}",
                              lambda: load_fitted(state.weights, state.arch, dataset))
        config = state.train_config()
        key = model_key(dataset, state.arch, config)
        def load() -> FittedModel:
            dropped = len(self.cache.notices)
            fitted = self.cache.load_model(key, dataset)
            if fitted is None and len(self.cache.notices) > dropped:  # it was there, but bad: removed
                raise InfluenceError(f"the current model ({state.arch}) was damaged in the workspace cache and "
                                     f"removed: {self.cache.notices[-1]}; train it again on the Model page")
            if fitted is None:  # never a silent retraining while a page loads
                raise InfluenceError(f"the current model ({state.arch}) is no longer in the workspace cache; train it "
                                     "again on the Model page")
            return fitted

        return MEMORY.get("models", f"model:{key}", load)

    def train(self, arch: str, config: TrainConfig | dict | None = None, *, progress: TrainProgress | None = None,
              should_stop: Callable[[], bool] | None = None, device: str | None = None) -> FittedModel:
        """Train ``arch`` on the current data set (or find it in the cache) and make it the current model — unless the
        run was stopped, or the user chose another data set meanwhile. The score runs stay when the model is the one
        already current (the same settings found in the cache)."""
        state, dataset = self._current()
        settings = train_settings(config)
        fitted = self.engine.model(dataset, arch, TrainConfig(**settings), progress=progress,
                                   should_stop=should_stop, device=device)
        if fitted.history and fitted.history[-1].get("cancelled"):
            return fitted
        MEMORY.get("models", f"model:{model_key(dataset, arch, TrainConfig(**settings))}", lambda: fitted)

        self._update_state(lambda s: s.use_model(arch, fitted.fingerprint(), train=settings),
                           only_if=lambda s: s.dataset_key == state.dataset_key)
        return fitted

    def upload_weights(self, data: bytes, filename: str, arch: str) -> FittedModel:
        """Uploaded weights (checked: no pickled code, no code in .pt2 programs), stored and made the current model."""
        from .models.loading import load_fitted

        dataset = self.dataset()
        path, fitted = self.save_upload(data, filename, "weights", load=lambda p: load_fitted(str(p), arch, dataset))

        self._update_state(lambda s: s.use_model(arch, fitted.fingerprint(), weights=str(path)))
        return fitted

    def use_weights(self, path: str | os.PathLike, arch: str) -> FittedModel:
        """Weights from a local file (the CLI's ``--weights``; checked like an upload, not copied) as the current model."""
        from .models.loading import load_fitted

        dataset = self.dataset()
        fitted = load_fitted(str(path), arch, dataset)

        self._update_state(lambda s: s.use_model(arch, fitted.fingerprint(), weights=str(Path(path).resolve())))
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
        resolved = TrainConfig(**train_settings(config)).resolved(arch)
        key = f"{dataset.fingerprint()}:{arch}:{resolved.optimizer}:{resolved.batch_size}:{bool(resolved.augment)}"
        times = MEMORY.get("estimates", key, lambda: measure_steps(dataset, arch, resolved))
        return estimate_training(dataset, resolved, times)

    def fold_models(self, folds: int, progress: Progress | None = None, device: str | None = None) -> list[FittedModel]:
        _, dataset, fitted = self._current_model()
        return self.engine.fold_models(dataset, fitted, folds, progress=progress, device=device)

    def require_model(self, dataset: Dataset | None = None) -> FittedModel:
        state = self.state()
        return self._require_model(state, dataset if dataset is not None else self._current(state)[1])

    def _require_model(self, state: Selection, dataset: Dataset) -> FittedModel:
        fitted = self._model(state, dataset)
        if fitted is None:
            raise InfluenceError("no model yet: train or upload a model first")
        return fitted

    def _current(self, state: Selection | None = None) -> tuple[Selection, Dataset]:
        """The state (read from disk once per call of a public method) and its data set."""
        state = state if state is not None else self.state()
        return state, self._load(state.dataset, state.dataset_kwargs)

    def _current_model(self, state: Selection | None = None) -> tuple[Selection, Dataset, FittedModel]:
        """The state (read once), its data set and its model; a one-line error when there is no model yet."""
        state, dataset = self._current(state)
        return state, dataset, self._require_model(state, dataset)

    # ------------------------------------------------------------------------------------------ scores
    def score(self, run: ScoreRun, progress: Progress | None = None, *, details: dict | None = None,
              device: str | None = None, batch_size: int = 256, add: bool = True, cluster: Any = None,
              scheduler: str | None = None) -> np.ndarray:
        """Scores of every training sample by ``run`` (lower = more detrimental), from the cache or computed; ``add``
        keeps the run among the project's score columns (unless the model changed meanwhile). ``cluster`` ("local:N"
        or a `ClusterSpec`) / ``scheduler`` (or ``$INFLUENCE_DASK_SCHEDULER``): methods that can be sharded run on
        Dask, with progress per shard. For the library and the CLI (the machine's user); a page passes a cluster's
        name to `score_in_background`."""
        state, dataset, fitted = self._current_model()
        scores = self.engine.scores(dataset, fitted, progress=progress, details=details, device=device,
                                         batch_size=batch_size, cluster=cluster, scheduler=scheduler,
                                         **run.score_kwargs())
        if add:
            self._update_state(lambda s: s.add_run(run), only_if=lambda s: s.model_hash == state.model_hash)
        return scores

    def _run_result(self, dataset: Dataset, fitted: FittedModel, run: ScoreRun) -> tuple[np.ndarray, dict]:
        kwargs = run.score_kwargs()
        key = score_key(dataset, fitted, kwargs["method"], kwargs["impact"], kwargs["params"],
                                   kwargs["settings"], kwargs["impact_settings"], kwargs["folds"])

        def load() -> tuple[np.ndarray, dict]:
            details: dict = {}
            return self.engine.scores(dataset, fitted, details=details, **kwargs), details

        return MEMORY.get("results", f"{self.root}:{key}", load)

    def scores(self) -> dict[str, np.ndarray]:
        """Every computed run's scores (lower = more detrimental), by column label."""
        state = self.state()
        if not state.runs:
            return {}
        _, dataset, fitted = self._current_model(state)
        return {run.label: self._run_result(dataset, fitted, run)[0] for run in state.runs}

    def notes(self) -> dict[str, str]:
        """What computed runs found that the user must know (e.g. exact influence on a Hessian that is not positive
        definite), by column label; stored with the scores."""
        state = self.state()
        if not state.runs:
            return {}
        _, dataset, fitted = self._current_model(state)
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
        _, dataset = self._current(state)
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
            issues = self.extra_rankings() if label is not None else {}  # an issue type as a ranking (issue 20)
            return flagged_rows(issues[label], state.flag_share) if label in issues else np.zeros(0, dtype=np.int64)
        return flagged_rows(self.scores()[run.label], state.flag_share)

    def describe_target(self, impact: str = "utility", impact_settings: dict | None = None) -> dict:
        """Which validation samples the impact target uses (`api.describe_target`), memoised per data and model."""
        from .api import describe_target

        _, dataset, fitted = self._current_model()
        key = f"target:{dataset.fingerprint()}:{fitted.fingerprint()}:{impact}:{json.dumps(impact_settings, sort_keys=True)}"
        return dict(MEMORY.get("results", key, lambda: describe_target(dataset, fitted, impact, impact_settings)))

    def label_issues(self, folds: int = 0) -> dict:
        """cleanlab's estimate of how many labels are wrong (out of fold with ``folds`` ≥ 2, as cleanlab intends),
        memoised per data and model."""
        from .api import estimate_label_issues

        _, dataset, fitted = self._current_model()

        def estimate() -> dict:
            fold_models = self.engine.fold_models(dataset, fitted, folds) if folds else None
            return estimate_label_issues(dataset, fitted, fold_models=fold_models, folds=folds or None)

        return dict(MEMORY.get("results", f"label-issues:{dataset.fingerprint()}:{fitted.fingerprint()}:{folds}", estimate))

    def method_costs(self, params: str = "all", folds: int = 0, settings: dict[str, dict] | None = None) -> dict[str, float]:
        """Rough seconds each method (with ``settings[name]``) would take on the current data set and model: one
        forward + backward timed on this model (memoised), scaled by each method's cost class
        (`analysis.estimate_seconds`). For labels next to method names, not promises: a factor of two either way."""
        from .analysis import cost_units, estimate_seconds

        _, dataset, fitted = self._current_model()
        units = MEMORY.get("results", f"cost:{fitted.fingerprint()}:{dataset.fingerprint()}:{params}",
                           lambda: cost_units(dataset, fitted, params))
        checkpoints = len(fitted.checkpoints or [])
        return {name: estimate_seconds(name, units, (settings or {}).get(name), folds, checkpoints) for name in METHODS}

    def angle_view_seconds(self, params: str = "all") -> float:
        """Rough seconds `angle_view` would take on the current model (`analysis.angle_view_seconds`), said before
        it starts; the model's timing is memoised with `method_costs`'."""
        from .analysis import angle_view_seconds, cost_units

        _, dataset, fitted = self._current_model()
        units = MEMORY.get("results", f"cost:{fitted.fingerprint()}:{dataset.fingerprint()}:{params}",
                           lambda: cost_units(dataset, fitted, params))
        return angle_view_seconds(units)

    # ------------------------------------------------------------------------------------------- views
    def angle_view(self, impact: str = "utility", params: str = "all", progress: Progress | None = None) -> dict:
        """Paper Fig. 1's geometry of the current model (cached): IP, influence and plane coordinates per sample."""
        from .analysis import angle_geometry

        _, dataset, fitted = self._current_model()

        def compute() -> dict:
            g = angle_geometry(dataset, fitted, impact, params, progress=progress, cache=self.cache.get_or_compute_arrays)
            return {"ip": g.ip, "influence": g.influence, "coords": g.coords, "u_xy": g.u_xy, "w_xy": g.w_xy,
                    "hessian": np.array(g.hessian)}

        return self.cache.get_or_compute_arrays("views", view_key("angles", dataset, fitted, impact=impact, params=params),
                                                compute)

    def feature_map(self, progress: Progress | None = None, seed: int = 0) -> dict:
        """A 2-D map of the model's penultimate features of the training split (cached): t-SNE up to
        `analysis.TSNE_MAX_POINTS` samples, UMAP above (``method`` in the result says which)."""
        from .analysis import embed_2d, embedding_method, penultimate_features

        _, dataset, fitted = self._current_model()

        def compute() -> dict:
            report = progress or (lambda f, m: None)
            report(0.02, "penultimate features")
            feats = penultimate_features(fitted, dataset.train)
            xy = embed_2d(feats, seed=seed, progress=lambda f, m: report(0.1 + 0.9 * f, m))
            return {"xy": xy, "method": np.array(embedding_method(len(feats)) if feats.shape[1] > 2 else "features")}

        return self.cache.get_or_compute_arrays("views", view_key("umap", dataset, fitted, seed=seed), compute)

    def has_view(self, name: str, **settings) -> bool:
        """Whether a view ("angles" with impact / params, "umap") is cached, so a page can draw it without a job."""
        _, dataset, fitted = self._current_model()
        return self.cache.has_entry("views", view_key(name, dataset, fitted, **settings), ".npz")

    def decision_surface(self, steps: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(xs, ys, P(class 1) on a steps × steps grid) around the training points of a two-feature data set: the
        current model's decision surface (Explore's decision boundary; a one-line error for other data)."""
        from .analysis import decision_grid

        _, dataset, fitted = self._current_model()
        return decision_grid(fitted, dataset.train.x.numpy(), steps)

    # ---------------------------------------------------------------------------------------- samples
    def predictions(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """(predicted class, class probabilities N×C) of the current model on a split (memoised per model)."""
        from .analysis import predict

        _, dataset, fitted = self._current_model()
        return MEMORY.get("results", f"predict:{fitted.fingerprint()}:{dataset.fingerprint()}:{split}",
                          lambda: predict(fitted, getattr(dataset, split)))

    def similar_samples(self, row: int, params: str = "all") -> np.ndarray:
        """grad ℓ_jᵀ grad ℓ_row for every training sample j: who supports (> 0) or opposes (< 0) sample ``row``."""
        from .analysis import gradient_similarity

        _, dataset, fitted = self._current_model()
        return gradient_similarity(dataset, fitted, int(row), params)

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
        """Record one batch of decisions on training rows of the current data set, by ``user`` (default: this
        project's user); returns its batch number. Refuses a user without the right to decide."""
        self.require("decide")
        rows = [int(r) for r in rows]
        source = self.source_index()
        outside = [r for r in rows if not 0 <= r < len(source)]
        if outside:
            raise InfluenceError(f"training row {outside[0]} is not in the training split (0..{len(source) - 1})")
        if action == "relabel" and new_label is not None:  # a class the data set lacks would only fail at Export
            dataset = self.dataset()
            try:
                value = float(new_label)
            except (TypeError, ValueError):
                value = -1.0
            if isinstance(new_label, bool) or not value.is_integer() or not 0 <= value < dataset.num_classes:
                raise InfluenceError(f"cannot relabel to {new_label}: the classes of '{dataset.name}' are "
                                     f"0..{dataset.num_classes - 1}")
        originals = [int(source[r]) for r in rows]
        with writing("record the decisions"):
            return self.decisions.record(self.decision_scope(), rows, action, new_label, user=user or self.user,
                                         session=session, event=event, originals=originals)

    def undo(self, session: str | None = None, *, event: str | None = None) -> int:
        """Take back the last batch of ``session`` (of anyone when None); returns how many decisions it held. An undo
        already applied under ``event`` (a replayed click) takes back nothing more."""
        self.require("decide")
        return self.decisions.undo(self.decision_scope(), session=session, event=event)

    def current_decisions(self) -> dict:
        return self.decisions.current(self.decision_scope())

    def reviewers(self) -> dict:
        """Per reviewer (``decided_by``), how many samples they keep, remove and relabel (their own latest decisions),
        and, for each pair who decided the same samples, their agreement and Cohen's κ (`review.reviewer_agreement`)."""
        by_reviewer = self.decisions.by_reviewer(self.decision_scope())
        counts = {who: {a: sum(c.split(":")[0] == a for c in cats.values()) for a in DECISION_ACTIONS}
                  for who, cats in sorted(by_reviewer.items())}
        return {"counts": counts, "agreement": reviewer_agreement(by_reviewer)}

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
        """Train as the "train" job: an epoch log for the live curve, Stop at the next epoch. Progress is reported as
        data (``detail``: stage "epoch", epoch, loss, val_accuracy); a front end words it."""
        def run(handle: JobHandle) -> dict:
            def progress(rec: dict) -> None:
                handle.report(rec["fraction"], f"epoch {rec['epoch']}", record=rec,
                              detail={"stage": "epoch", **{k: rec.get(k) for k in ("epoch", "loss", "val_accuracy")}})

            fitted = self.train(arch, config, progress=progress, should_stop=handle.should_stop)
            if handle.should_stop():
                return {"cancelled": True, "epochs": len(fitted.history)}
            return {"cancelled": False, "val_accuracy": fitted.metrics.get("val_accuracy")}

        return self.start_job("train", f"Training {arch}", run)

    def dask_clusters(self) -> list[str]:
        """The names of the Dask clusters a browser user may score on, "this process" first: ``local:N`` and those
        the server's administrator named (`server_config`); the names only, never an address."""
        from .distributed import cluster_choices

        return list(cluster_choices(self.server_config()))

    @staticmethod
    def shardable_methods() -> list[str]:
        from .distributed import shardable_methods

        return shardable_methods()

    def score_in_background(self, runs: list[ScoreRun], cluster: str | None = None) -> Job:
        """Compute ``runs`` one after another as the "score" job; each finished run is kept even when stopped.
        ``cluster``: one of `dask_clusters` by name (None: this process); anything else, an address above all, is
        refused with one line before any connection (a Dask cluster receives the data and model, and its results
        are unpickled here). While one is running (started in another tab, say) a second is refused in one line,
        never silently dropped."""
        from .distributed import resolve_cluster

        spec = resolve_cluster(cluster, self.server_config())
        running = self.job("score")
        if running is not None and running.running:
            raise InfluenceError(f"{running.title} is already running in this project (scores are already being "
                                 "computed): wait for it or stop it, then compute again")

        def run(handle: JobHandle) -> dict:
            for i, r in enumerate(runs):
                def progress(fraction: float, message: str, i=i, r=r) -> None:
                    handle.check()  # Stop takes effect inside a method, at its next progress report
                    handle.report((i + fraction) / len(runs), message, detail={
                        "stage": "run", "run": dict(vars(r)), "label": r.label, "index": i, "count": len(runs)})

                self.score(r, progress, cluster=spec)
            self.set_primary(None)  # Review orders by the default choice again, among the new runs too
            return {"runs": [r.label for r in runs]}

        return self.start_job("score", "Scoring " + ", ".join(r.label for r in runs), run)

    def view_in_background(self, name: str, **settings) -> Job:
        """Compute a view ("angles" or "umap") as a job of that name; the page draws it from the cache when done."""
        def run(handle: JobHandle) -> dict:
            def progress(fraction: float, message: str) -> None:
                handle.check()
                handle.report(fraction, message, detail={"stage": "view", "view": name})

            if name == "angles":
                self.angle_view(settings.get("impact", "utility"), settings.get("params", "all"), progress=progress)
            else:
                self.feature_map(progress=progress)
            return {"view": name}

        title = "Gradient angles" if name == "angles" else "UMAP feature map"
        return self.start_job(f"view:{name}", title, run)

    # -------------------------------------------------------------------------------------- experiment
    def experiment(self, settings, progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                   device: str | None = None, *, out: str | os.PathLike | None = None, current_model: bool = True,
                   journal: str | os.PathLike | None = None):
        """Trim / relabel / reweight by each method, retrain, compare (`evaluate.runner.run_experiment`) on the current
        data set — with the current model as the base (``current_model``), else the one ``settings`` describe. Scores
        come from the same cache as the Scores page's; finished runs from the project's journal (or ``journal``), so a
        rerun resumes. The result's JSON goes to ``out`` (default: the project's ``experiments/latest.json``)."""
        from .evaluate.runner import run_experiment

        state, dataset = self._current()
        base = self._require_model(state, dataset) if current_model else None
        folder = self.folder / "experiments"
        return run_experiment(settings, out or folder / "latest.json", dataset=dataset, base=base, progress=progress,
                              should_stop=should_stop, device=device, journal=journal or folder / "journal.jsonl",
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

        _, dataset, base = self._current_model()
        s = result.settings
        if run_key(s, dataset, base) != result.key:
            raise InfluenceError("this result was computed on another data set or model than the current one")
        if method not in s.methods:
            raise InfluenceError(f"'{method}' is not a method of this result; choose one of: {', '.join(s.methods)}")
        args = {"method": method, "impact": s.impact, "params": s.params, "settings": s.method_settings.get(method, {}),
                "impact_settings": s.resolved_impact_settings()}
        if not self.engine.has_scores(dataset, base, **args):
            raise InfluenceError(f"the scores of '{method}' are not in the cache (any more): run the experiment again")
        scores = self.engine.scores(dataset, base, **args)
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
        """What produced the export: data set, model, score runs, decision counts, versions, and who decided
        (``decided_by``: each reviewer's counts)."""
        from .version import __version__
        from .export import manifest

        state, dataset, fitted = self._current_model()
        return manifest(dataset, state.model_hash or fitted.fingerprint(),
                        [r.__dict__ | {"label": r.label} for r in state.runs], self.current_decisions(), __version__,
                        extra={"decided_by": self.reviewers()["counts"]})

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
        from .data.cifar import label_file_of, load_label_file
        from .export import cifar_label_file

        state, dataset = self._current()
        key = dataset.meta.get("label_key")
        path = label_file_of(dataset.name, state.dataset_kwargs.get("labels_path"))
        if key is None or path is None:
            return None
        return cifar_label_file(load_label_file(path), dataset, self.current_decisions(), key), path.name, key

    def write_export(self, files: dict[str, bytes]) -> Path:
        """Write ``files`` (name → bytes) into a new time-stamped folder under the project's ``exports/``."""
        import time

        from .export import write_export

        self.require("decide")  # a viewer only looks (audit: they could write files into the project)
        return write_export(self.folder / "exports" / f"{self.export_stem()}-{time.strftime('%Y%m%d-%H%M%S')}", files)

    @staticmethod
    def table_bytes(frame, fmt: str) -> bytes:
        """A table as CSV (formula cells neutralised) or Parquet (raw values) bytes."""
        from .export import table_bytes

        return table_bytes(frame, fmt)

    # --- CLI (issue 19): what a front end checks before any training, and the scores as a table
    @staticmethod
    def check_method(method: str, settings: dict | None = None) -> dict:
        """What ``method`` is (`InfluenceMethod.describe`: parameters, needs_checkpoints, uses_impact, ...) once its
        name and ``settings`` are checked: an unknown name or key, a wrong type, a value out of range is one line."""
        from .methods import get_method

        return type(get_method(method, **(settings or {}))).describe()

    @staticmethod
    def impact_settings(impact: str, applicable: dict, explicit: dict) -> dict:
        """``impact``'s settings: those of ``applicable`` it takes (values meant for any impact, e.g. the CLI's named
        flags; the rest ignored), then ``explicit``, checked (a key it does not take, a wrong type: one line)."""
        from .impacts import impact_settings_for, make_impact

        settings = {**impact_settings_for(impact, **applicable), **explicit}
        make_impact(impact, **settings)
        return settings

    @staticmethod
    def sharded(method: str, cluster: str | None = None, scheduler: str | None = None) -> bool:
        """Whether `score` shards ``method`` on Dask with this ``cluster`` / ``scheduler``; a malformed one is refused
        in one line, before any connection."""
        from .distributed import parse_cluster
        from .engine import sharded

        parse_cluster(cluster, scheduler)
        return sharded(method, cluster, scheduler)

    def score_table(self, scores: np.ndarray, column: str = "score"):
        """``scores`` of the current data set's training samples as a table: index (row in the original data), label,
        score (lower = more detrimental), rank (1 = most detrimental) and, when known, is_noisy and clean_label."""
        from .api import scores_frame

        return scores_frame(self.dataset(), scores, column)

    # --- front end (issue 19): what the Review page asks of the decision log, without reaching into it
    def can_undo(self, session: str) -> bool:
        """Whether reviewer ``session`` has a decision left to take back on the current data set."""
        return self.decisions.can_undo(self.decision_scope(), session=session)

    def decision_counts(self) -> dict[str, int]:
        """How many samples of the current data set are kept, removed and relabelled now."""
        return self.decisions.counts(self.decision_scope())

    # --- Hugging Face models (issue 18)
    def hf_models(self) -> dict[str, str]:
        """The Hugging Face models a browser may choose: the administrator's names (``[server.hf_models]``) → their
        ``hf:`` architecture names."""
        return {name: f"hf:{source}" for name, source in self.server_config().hf_models.items()}

    def use_hf_model(self, model: str, max_tokens: int = 128, *, lora_rank: int = 0, from_browser: bool = False) -> str:
        """Load the current text upload again as token ids of ``model``'s tokenizer (what ``hf:`` models read; the
        other columns are left out) and return the architecture to train. ``model``: any ``hf:`` name (library,
        CLI), or from a browser only a name of `hf_models` — never a folder or a hub id. ``lora_rank`` > 0: the
        architecture fine-tunes LoRA adapters of that rank (alpha = 2·rank) instead of every parameter."""
        from .models.hf import HFSettings, TokenSettings, arch_name, parse_arch

        offered = self.hf_models()
        if from_browser and model not in offered:
            raise InfluenceError(f"'{str(model)[:40]}' is not a model offered here; choose one of: {', '.join(offered) or 'none configured'}")
        arch = offered[model] if from_browser else model if str(model).startswith("hf:") else f"hf:{model}"
        for key, value in (("max_tokens", max_tokens), ("lora_rank", lora_rank)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InfluenceError(f"{key} must be a whole number, not {str(value)[:20]!r}")
        settings = TokenSettings(parse_arch(arch)[0], max_tokens)
        if lora_rank:
            arch = arch_name(settings.model, HFSettings(lora_rank=lora_rank, lora_alpha=2.0 * lora_rank))
        state = self.state()
        if self.dataset().kind != "text" or str(state.dataset) in DATASETS:
            raise InfluenceError("Hugging Face models read text: upload a CSV with a text column first")
        self.use_dataset(state.dataset, **{**state.dataset_kwargs, "tokenizer_folder": settings.model,  # text only
                                           "max_tokens": settings.max_tokens, "feature_columns": []})
        return arch

    # --- images through pretrained backbones (issue 18 §3)
    def backbone_choices(self) -> dict[str, list[str]]:
        """Each backbone with the weights names a browser may choose for it (random, torchvision's, the server's)."""
        from .models.backbones import BACKBONES, weights_names

        return {name: weights_names(name) for name in BACKBONES}

    def use_backbone(self, backbone: str | None, weights: str = "random", *, from_browser: bool = False) -> Dataset:
        """Frozen backbone + head: the current image zip, its features now ``backbone``'s embeddings with ``weights``
        (computed once and stored; `models.backbones.embed_dataset`); None = the images again. Clears the model."""
        state = self.state()
        kwargs = {k: v for k, v in state.dataset_kwargs.items() if not k.startswith("backbone")}
        if backbone:
            kwargs.update(backbone=backbone, backbone_weights=weights)
        return self.use_dataset(state.dataset, from_browser=from_browser, **kwargs)

    # --- fairness (issue 17): which group × label cells a ranking's flagged samples come from
    def flagged_cells(self, label: str | None = None):
        """(table, sentence) of `evaluate.baselines.flagged_cells` for the flagged samples of run ``label`` (default:
        the primary run); None when the data set has no sensitive attribute or nothing is scored."""
        from .evaluate.baselines import flagged_cells

        _, dataset = self._current()
        rows = self.flagged(label)
        if dataset.train.sensitive is None or (label is None and self.primary_run() is None):
            return None
        return flagged_cells(dataset.train.y.numpy(), dataset.train.sensitive.numpy(), rows, dataset.classes,
                             dataset.sensitive_name or "group")

    # --- text data (issue 18): TF-IDF settings a page offers, and the impacts a model can be scored for
    @staticmethod
    def tfidf_limits() -> dict[str, tuple[int, int]]:
        """Each TF-IDF setting's (default, cap) (`data.text.tfidf_limits`): a page's inputs stay within the caps."""
        from .data.text import tfidf_limits

        return tfidf_limits()

    @staticmethod
    def impacts_offered(dataset: Dataset, fitted: FittedModel) -> list[str]:
        """The impacts and joint rankings ``fitted`` on ``dataset`` can be scored for: counterfactual ones only where
        validation rows have twins, robustness not for a model reading token ids (no input gradient to attack along)."""
        discrete = bool(getattr(fitted.module, "discrete_inputs", False))
        return [n for n in (*IMPACTS, *JOINT_RANKINGS)
                if not ("counterfactual" in n and dataset.val.twin is None) and not ("robustness" in n and discrete)]

    @staticmethod
    def check_impact_for_model(impact: str, arch: str) -> None:
        """A one-line refusal, before any training, of an impact architecture ``arch`` cannot be scored for: the
        robustness impact on an ``hf:`` model (it reads token ids: no gradient step exists on them)."""
        from .impacts import TOKEN_IDS_REFUSAL

        if "robustness" in impact.split("+") and arch.startswith("hf:"):
            raise InfluenceError(TOKEN_IDS_REFUSAL)

    # --- labelling-tool exports (issue 20)
    def export_formats(self) -> dict[str, tuple[str, str]]:
        """The labelling- and training-tool formats this project's data set can be exported to: name → (title, what
        it holds and how to load it) (`export_formats.formats_for`)."""
        from .export_formats import formats_for

        return {n: (f.title, f.description) for n, f in formats_for(self.dataset().kind).items()}

    def export_as(self, fmt: str, all_rows: bool = False) -> bytes:
        """A zip of the data set in format ``fmt`` (`export_formats`): the cleaned training split (or, with
        ``all_rows``, every training row with its review tag), then validation and test, each sample with its
        original index, given, final and suggested label and every run's score (lower = more detrimental)."""
        from .export_formats import check_format, export_zip, labelled_rows

        state, dataset, fitted = self._current_model()
        check_format(fmt, dataset.kind)  # before any prediction is computed
        rows = labelled_rows(dataset, self.current_decisions(), self.scores(),
                             {s: self.predictions(s) for s in ("train", "val", "test")}, all_rows=all_rows,
                             model_version=(state.model_hash or fitted.fingerprint())[:12])
        return export_zip(fmt, rows, f"{self.export_stem()}-{fmt}", self.manifest() | {"export_format": fmt})

    # --- bulk fixes and versions (issue 20)
    def suggested_probabilities(self, label: str | None = None) -> tuple[np.ndarray, bool]:
        """(N×C class probabilities behind the suggested labels, out of fold?): out of fold — each sample by the fold
        model that did not train on it — when ranking ``label`` (default: the primary run) is, else in-sample."""
        run = self.primary_run() if label is None else next((r for r in self.state().runs if r.label == label), None)
        folds = int(run.folds or 0) if run is not None else 0
        return self.train_probabilities(folds), bool(folds)

    def bulk_relabel_preview(self, threshold: float, label: str | None = None, rows=None):
        """What "relabel every flagged sample whose suggested label has probability ≥ ``threshold``" would do
        (`bulk.relabel_preview`; flagged by ranking ``label``, default Review's — or only ``rows``, e.g. those a
        Review view lists; decided samples left alone)."""
        from .bulk import relabel_preview

        label = label or self.primary_ranking()
        probs, oof = self.suggested_probabilities(label)
        candidates = self.flagged(label) if rows is None else [int(r) for r in rows if 0 <= int(r) < len(probs)]
        return relabel_preview(candidates, probs, self.dataset().train.y.numpy(), threshold,
                               decided=self.current_decisions(), out_of_fold=oof, scope=self.decision_scope())

    def duplicate_sets(self) -> list[list[int]]:
        """Groups of training rows that are duplicates (Datalab's, `data_issues`); empty until it has run."""
        issues = self.data_issues() if hasattr(self, "data_issues") else None
        return [[int(r) for r in group] for group in issues.duplicate_sets] if issues is not None else []

    def bulk_dedupe_preview(self, keep: str = "best", groups: list[list[int]] | None = None, label: str | None = None):
        """What "keep one of each duplicate group" would do (`bulk.dedupe_preview`): ``groups`` (default:
        `duplicate_sets`), keeping the best-scored by ranking ``label`` (default: Review's) or the first."""
        from .bulk import dedupe_preview

        label = label or self.primary_ranking()
        scores = self.rankings().get(label) if keep == "best" and label else None
        return dedupe_preview(self.duplicate_sets() if groups is None else groups, scores, keep,
                              decided=self.current_decisions(), scope=self.decision_scope())

    def apply_bulk_fix(self, preview, *, session: str | None = None) -> int:
        """Record a bulk fix's preview as ONE batch by this project's user (so one undo takes it all back); returns the
        batch number. Refuses an empty fix and rows or classes outside the current data set."""
        self.require("decide")
        dataset, source = self.dataset(), self.source_index()
        rows = [int(r) for r in preview.rows]
        if not rows:
            raise InfluenceError("this bulk fix changes no sample")
        preview.check_current(self.decision_scope(), self.current_decisions())  # stale: other data, newer decisions
        if not all(0 <= r < len(source) for r in rows):
            raise InfluenceError("this bulk fix names rows outside the training split: preview it again")
        if preview.new_labels is not None and not all(0 <= k < dataset.num_classes for k in preview.new_labels):
            raise InfluenceError(f"this bulk fix relabels outside the classes 0..{dataset.num_classes - 1}")
        with writing("record the bulk fix"):
            return self.decisions.record(self.decision_scope(), rows, preview.action, user=self.user, session=session,
                                         event=preview.event(), originals=[int(source[r]) for r in rows],
                                         new_labels=preview.new_labels)

    def last_bulk_fix(self) -> dict | None:
        """This user's latest bulk fix not undone — ``{"batch", "count", "kind"}`` — found in the decision log, so
        a refresh or another tab finds it too; None when there is none."""
        from .bulk import EVENT_PREFIX, kind_of_event

        found = self.decisions.latest_batch(self.decision_scope(), EVENT_PREFIX, user=self.user)
        return None if found is None else {"batch": found[0], "count": found[1], "kind": kind_of_event(found[2])}

    def undo_bulk_fix(self, batch: int | None = None) -> int:
        """Take back a whole bulk fix in one step (default: `last_bulk_fix`); returns how many decisions it held."""
        self.require("decide")
        last = self.last_bulk_fix()  # only your own latest bulk fix: never an ordinary batch nor another's (audit)
        if last is None or (batch is not None and str(batch) != str(last["batch"])):
            return 0
        return self.decisions.undo(self.decision_scope(), batch=last["batch"])

    def save_version(self, name: str, note: str = ""):
        """Save the current decisions as the named, immutable version ``name`` of the cleaned data set
        (`versions.make_version`: its parent is the latest version of this data); a name taken is refused."""
        from .versions import make_version, save_version

        self.require("decide")
        state, dataset = self._current()
        earlier = self.versions()
        primary = self.primary_run()
        version = make_version(name, dataset, self.current_decisions(), self.source_index(), self.user,
                               tuple(r.label for r in state.runs), primary.label if primary else None,
                               earlier[-1].name if earlier else None, note)
        save_version(self.folder, version)
        return version

    def versions(self) -> list:
        """The saved versions of the current data set, oldest first (`versions.DataVersion`)."""
        from .versions import list_versions

        return list_versions(self.folder, self.dataset().fingerprint())

    def version(self, name: str):
        from .versions import load_version

        return load_version(self.folder, name)

    def version_diff(self, a: str | None, b: str):
        """Rows removed, restored and relabelled from version ``a`` (None: the data as loaded) to ``b``."""
        from .versions import diff_versions

        return diff_versions(self.version(a) if a else None, self.version(b))

    def version_cleaned_table(self, name: str, with_splits: bool = True):
        """Version ``name``'s cleaned table, rebuilt exactly (`export.cleaned_table` on its decisions)."""
        from .export import cleaned_table
        from .versions import check_same_data, version_decisions

        version, dataset = self.version(name), self.dataset()
        check_same_data(version, dataset)
        return cleaned_table(dataset, version_decisions(version), with_splits=with_splits)

    def version_image_zip(self, name: str) -> bytes:
        """Version ``name``'s cleaned images in ImageFolder layout (`export.imagefolder_zip` on its decisions)."""
        from .export import imagefolder_zip
        from .versions import check_same_data, version_decisions

        version, dataset = self.version(name), self.dataset()
        check_same_data(version, dataset)
        return imagefolder_zip(dataset, version_decisions(version))

    def compare_versions(self, a: str, b: str, seeds: int = 1, progress: Progress | None = None,
                         should_stop: Callable[[], bool] | None = None) -> list[dict]:
        """Retrain the current model's architecture with its training settings on versions ``a`` and ``b`` with
        seeds 0..seeds−1 and measure test accuracy and loss (`evaluate.versions.compare_versions`)."""
        from .evaluate.versions import compare_versions

        if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 10:
            raise InfluenceError("choose between 1 and 10 retraining seeds")
        _, dataset, fitted = self._current_model()
        if not fitted.history:
            raise InfluenceError("retraining needs the model's training settings; an uploaded model has none — "
                                 "train the model here first")
        return compare_versions(dataset, [self.version(a), self.version(b)], fitted.arch, fitted.config,
                                list(range(seeds)), progress=progress, should_stop=should_stop)

    def compare_versions_in_background(self, a: str, b: str, seeds: int = 1) -> Job:
        """`compare_versions` as the project's "versions" job; its result holds one record per training."""
        self.require("decide")  # a viewer only looks (audit: they could start retraining jobs)
        self.version(a), self.version(b)  # an unknown name: one line now, not a failed job

        def run(handle: JobHandle) -> dict:
            from .evaluate.versions import version_table

            records = self.compare_versions(a, b, seeds, progress=lambda f, m: handle.report(f, m),
                                            should_stop=handle.should_stop)
            return {"versions": [a, b], "records": records, "table": version_table(records).to_dict("records")}

        return self.start_job("versions", f"Retraining on {a} and {b}", run)
    # --- data issues (issue 20): cleanlab's Datalab (and cleanvision on images) on the model's features
    def find_data_issues(self, folds: int = 0, progress: Progress | None = None, settings=None) -> "DataIssues":
        """Datalab's findings on the current data and model (`data_issues.find_data_issues`; out of fold with
        ``folds`` ≥ 2; ``settings``: `DataIssueSettings` or a dict of its fields), stored and memoised; what
        `data_issues` and `issue_rankings` return from now on."""
        from dataclasses import asdict

        from .data_issues import LAST_RUN_FILE, make_settings

        settings = make_settings(settings)
        found = self._data_issues(self._current_model(), int(folds), settings, progress)
        with writing("the data issues' settings"):
            write_text_atomic(self.folder / LAST_RUN_FILE, json.dumps({"folds": int(folds), "settings": asdict(settings)}))
        return found

    def _data_issues(self, current: tuple, folds: int, settings, progress: Progress | None = None, *,
                     stored_only: bool = False):
        from .data_issues import has_stored_data_issues, stored_data_issues

        _, dataset, fitted = current
        if stored_only and not has_stored_data_issues(self.cache, dataset, fitted, folds=folds, settings=settings):
            return None
        return stored_data_issues(self.cache, dataset, fitted, folds=folds, settings=settings, progress=progress,
                                  memo_scope=str(self.root),
                                  fold_models=lambda report: self.engine.fold_models(dataset, fitted, folds, report))

    def data_issues(self) -> "DataIssues | None":
        """The stored findings for the current data and model (with the folds and settings of the last run), None if
        not run."""
        from .data_issues import last_run

        state = self.state()
        if not state.has_model:
            return None
        return self._data_issues(self._current_model(state), *last_run(self.folder), stored_only=True)

    def data_issues_in_background(self, folds: int = 0, settings=None) -> Job:
        """`find_data_issues` as the "data_issues" job, with progress (fold models first when ``folds`` ≥ 2)."""
        from .data_issues import make_settings

        settings = make_settings(settings)  # a bad setting: one line now, not in the job

        def run(handle: JobHandle) -> dict:
            def progress(fraction: float, message: str) -> None:
                handle.check()
                handle.report(fraction, message)

            found = self.find_data_issues(folds, progress, settings)
            return {"flagged": found.summary().set_index("issue")["count"].to_dict(),
                    "folds": int(folds)}

        return self.start_job("data_issues", "Finding data issues with Datalab" + (f" ({folds} folds)" if folds else ""), run)

    def issue_rankings(self) -> dict[str, np.ndarray]:
        """Each issue type Datalab checked as a ranking, "issue: near duplicate" → one score per training row (lower
        = more likely an issue); {} until `find_data_issues` has run on the current data and model."""
        from .data_issues import issue_label

        found = self.data_issues()
        return {} if found is None else {issue_label(k): v for k, v in found.rankings().items()}

    @staticmethod
    def data_issue_settings(settings=None):
        """``settings`` (a dict of `DataIssueSettings` fields) checked and made settings; a bad one: one line."""
        from .data_issues import make_settings

        return make_settings(settings)

    def rankings(self) -> dict[str, np.ndarray]:
        """Every ranking a page may order or colour by: the computed runs' scores, then each data issue type's
        (`issue_rankings`); lower = more detrimental / more likely an issue."""
        return {**self.scores(), **self.extra_rankings()}

    def extra_rankings(self) -> dict[str, np.ndarray]:
        """The rankings that are not score runs: each data issue type (`issue_rankings`) and, where the data set has
        several annotators, the quality of their consensus label ("annotators: consensus quality", in-sample)."""
        out = dict(self.issue_rankings())
        if self.annotator_names() and self.model() is not None:
            out[CONSENSUS_RANKING] = self.annotator_ranking(0)
        return out

    def primary_ranking(self) -> str | None:
        """The label Review orders by: an issue ranking chosen there (`set_primary`), else `primary_run`'s."""
        chosen = self.state().primary
        if chosen and chosen in self.extra_rankings():
            return chosen
        run = self.primary_run()
        return None if run is None else run.label

    def duplicate_group_influence(self):
        """(run label, table) of `data_issues.group_influence`: each duplicate group's summed score of the first
        computed run whose scores add up over a group (IP, exact, ...); None without duplicates or such a run."""
        from .data_issues import ADDITIVE_METHODS, group_influence

        found = self.data_issues()
        run = next((r for r in self.state().runs if r.method in ADDITIVE_METHODS), None)
        if found is None or run is None or not found.duplicate_sets:
            return None
        return run.label, group_influence(found.duplicate_sets, self.scores()[run.label], self.source_index(), run.impact)

    # --- annotators (issue 20)
    def annotator_names(self) -> list[str]:
        """The current data set's annotators (CIFAR-10N: random1-3; an upload: its annotator columns); [] if none."""
        return list(self.dataset().annotator_names or [])

    def annotator_labels(self, rows) -> list[str]:
        """What each annotator said for training rows ``rows``, one line per row ("random1: cat · random2: dog");
        "" for every row of a data set without annotators."""
        from .annotators import describe_labels

        dataset, rows = self.dataset(), np.asarray(rows, dtype=np.int64).reshape(-1)
        if dataset.annotators is None:
            return [""] * len(rows)
        return describe_labels(dataset.annotators[rows], list(dataset.annotator_names), dataset.classes)

    def annotator_report(self, folds: int = 0, progress: Progress | None = None) -> dict[str, np.ndarray]:
        """cleanlab's multi-annotator report (`annotators.annotator_report`) on the current model's probabilities,
        out of fold with ``folds`` ≥ 2 (fold models trained once and cached); stored in the workspace, memoised."""
        from .annotators import AnnotatorSettings, annotator_report
        from .keys import annotator_key, hash_key

        _, dataset, fitted = self._current_model()
        if dataset.annotators is None:
            raise InfluenceError("this data set has no annotators' labels (CIFAR-10N has three; an upload names its "
                                 "annotator columns)")

        def compute() -> dict[str, np.ndarray]:
            probs = self.train_probabilities(folds, progress)  # in-sample: the Review cards' probabilities
            return annotator_report(dataset.annotators, probs, dataset.annotator_names)

        key = annotator_key(dataset, fitted, folds, AnnotatorSettings())
        return dict(MEMORY.get("results", f"annotators:{hash_key(key)}",
                               lambda: self.cache.get_or_compute_arrays("annotators", key, compute)))

    def annotator_table(self, folds: int = 0):
        """Each annotator's quality, agreement with the consensus, samples labelled and worst class (a table, the
        lowest quality first)."""
        from .annotators import annotator_table

        return annotator_table(self.annotator_report(folds), self.dataset().classes)

    def annotator_ranking(self, folds: int = 0) -> np.ndarray:
        """The consensus label's quality per training sample as a ranking (lower = more likely wrong)."""
        from .annotators import consensus_ranking

        return consensus_ranking(self.annotator_report(folds))

    # --- review views (issue 20): Review's filters, saved views and the class-pair map (influence_core/views.py)
    def view_choices(self):
        """What a URL's or a saved review view may name here: classes, rankings, issue types, sample ids."""
        from .views import ViewChoices

        dataset = self.dataset()
        table = self._issue_table()
        issues = tuple(sorted(str(i) for i in table["issue"].unique())) if table is not None else ()
        return ViewChoices(tuple(str(c) for c in dataset.classes), tuple(self.rankings()), len(dataset.train),
                           issues, self.source_index())

    def view_from_query(self, params) -> tuple[Any, list[str]]:
        """(the review view URL parameters describe, one note per parameter ignored) — `views.from_query`."""
        from .views import from_query

        return from_query(params, self.view_choices())

    def view_query(self, view, choices=None) -> dict[str, str]:
        """``view`` as URL parameters (`views.to_query`; ``choices``: `view_choices`, when the caller has them)."""
        from .views import to_query

        return to_query(view, choices or self.view_choices())

    def review_rows(self, view) -> np.ndarray:
        """The training rows the review ``view`` lists, most detrimental first by its ranking (`views.apply`)."""
        from .views import ViewData, apply

        state, dataset = self._current()
        primary = self.primary_ranking() or ""
        run = next((r for r in state.runs if r.label == (view.order or primary)), None)
        folds = run.folds if run is not None else 0  # cleanlab's suspected set out of fold where the ranking is
        data = ViewData(self.rankings(), primary, dataset.train.y.numpy(),
                        self.predictions()[0], self.current_decisions(), state.flag_share,
                        self._issue_table() if view.issue else None, lambda: self.label_issues(folds)["mask"],
                        self.nearest_samples)
        return apply(view, data)

    def nearest_samples(self, row: int, k: int = 12) -> np.ndarray:
        """Training row ``row`` and its ``k`` nearest neighbours in the model's embedding (penultimate features,
        cosine; memoised per model)."""
        from .analysis import penultimate_features
        from .views import nearest_rows

        _, dataset, fitted = self._current_model()
        feats = MEMORY.get("results", f"features:{fitted.fingerprint()}:{dataset.fingerprint()}",
                           lambda: penultimate_features(fitted, dataset.train))
        return nearest_rows(feats, int(row), int(k))

    def saved_views(self) -> dict[str, dict[str, str]]:
        """This project's saved review views: name → URL parameters (read back through `view_from_query`)."""
        from .views import SavedViews

        return SavedViews(self.folder).all()

    def save_view(self, name: str, view) -> str:
        """Save ``view`` as ``name`` in this project (replacing one of that name); returns the stored name."""
        from .views import SavedViews

        self.require("decide")
        return SavedViews(self.folder).save(name, self.view_query(view))

    def delete_view(self, name: str) -> bool:
        from .views import SavedViews

        self.require("decide")
        return SavedViews(self.folder).delete(name)

    def train_probabilities(self, folds: int = 0, progress: Progress | None = None) -> np.ndarray:
        """N×C class probabilities of the training split: out of fold with ``folds`` ≥ 2 (the fold models trained
        once and cached), else the model's own; memoised per data and model."""
        if not folds:
            return self.predictions()[1]
        from .api import out_of_fold_probabilities
        from .folds import FoldSettings

        _, dataset, fitted = self._current_model()
        return MEMORY.get("results", f"oof-probs:{dataset.fingerprint()}:{fitted.fingerprint()}:{folds}",
                          lambda: out_of_fold_probabilities(
                              dataset, self.engine.fold_models(dataset, fitted, folds, progress=progress), FoldSettings(folds)))

    def class_pairs(self, kind: str = "flagged", label: str | None = None, folds: int = 0):
        """The class-pair map (`class_pairs.ClassPairs`): flagged samples of run ``label`` per (given, predicted)
        class, or cleanlab's confident joint (out of fold with ``folds`` ≥ 2)."""
        from .class_pairs import ClassPairs, confident_joint, flagged_pairs

        dataset = self.dataset()
        classes, y = tuple(str(c) for c in dataset.classes), dataset.train.y.numpy()
        if kind == "flagged":
            return ClassPairs(flagged_pairs(y, self.predictions()[0], self.flagged(label), len(classes)), kind, classes)
        if kind != "confident_joint":
            raise InfluenceError(f"a class-pair map counts 'flagged' samples or the 'confident_joint', not '{kind[:20]}'")
        return ClassPairs(confident_joint(y, self.train_probabilities(folds)), kind, classes, folds >= 2)

    def _issue_table(self):
        """Datalab's issue table (columns sample, index, issue, score, is_issue), None before it ran."""
        found = self.data_issues()
        return found.table if found is not None else None

    # --- images: pretrained networks (issue 18)
    def backbone_finetune_arch(self, backbone: str, weights: str = "random") -> str:
        """The architecture that fine-tunes ``backbone``'s last block from ``weights`` (a name of `backbone_choices`,
        never a path) on the current images: pass it to `train` / `train_in_background`."""
        from .models.backbones import BackboneSpec, arch_name

        choices = self.backbone_choices()
        if backbone not in choices or weights not in choices[backbone]:
            raise InfluenceError(f"'{str(backbone)[:40]}' with weights '{str(weights)[:40]}' is not offered here; "
                                 f"choose a backbone and weights the Model page lists")
        return arch_name(BackboneSpec(backbone, weights))

    def hf_image_models(self) -> dict[str, str]:
        """The administrator's Hugging Face models (`hf_models`) that are image classifiers: name → ``hf:`` name."""
        from .models.hf_image import is_image_classifier

        def image(arch: str) -> bool:
            try:
                return is_image_classifier(arch[len("hf:"):])
            except InfluenceError:  # a hub id not downloaded yet on an offline server: not offered
                return False

        return {name: arch for name, arch in self.hf_models().items() if image(arch)}


_STATE_LOCK = threading.RLock()


@contextmanager
def _file_lock(path: Path):
    """An exclusive lock on ``path`` between processes (flock; where there is none, only this process's lock)."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _parse_state(raw: bytes) -> Selection | None:
    """The state in ``raw`` (a state.json's bytes), or None when it is not a readable state."""
    try:
        data = json.loads(raw.decode("utf-8"))
        return Selection.from_json(data) if isinstance(data, dict) else None
    except (ValueError, TypeError, AttributeError):
        return None
