"""A project's folder and who may use it (open, create, rename, delete, members), its state file, and the
current data set and model every other area reads (`_current`, `_current_model`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable, Self

from ..access import Access, Members, read_members, set_member
from ..atomic import write_text_atomic
from ..data.base import Dataset
from ..engine import Engine
from ..errors import InfluenceError, writing
from ..jobs import moved_folder
from ..models.train import FittedModel
from ..state import Selection, workspace_root
from ..workspace import Workspace
from ..project_files import (DEFAULT_PROJECT, NOTICE_FILE, STATE_BACKUP, STATE_FILE, STATE_LOCK, file_lock,
                             make_project_folder, move_project_folder, parse_state, restore_state, valid_project_name)


class ProjectBase:
    """A project's folder, who may use it, its state file, and the current data set and model. A part of `Project`."""

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
            make_project_folder(self._folder, self.access.user)
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
             user: str | None = None) -> Self:
        """The project ``name`` (made when missing) for the machine's user — ``user`` (the CLI's ``--user``) or the
        OS login name, recorded as ``decided_by`` and as the owner of a project made here."""
        return cls(name, root, access=Access.local(user))

    @classmethod
    def open_existing(cls, name: str, access: Access, root: str | os.PathLike | None = None) -> Self:
        """The existing project ``name`` as ``access`` may see it (the app's path: a URL never makes a folder)."""
        return cls(name, root, access=access, create=False)

    @classmethod
    def create(cls, name: str, access: Access, root: str | os.PathLike | None = None) -> Self:
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

    def rename(self, new_name: str) -> Self:
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
        move_project_folder(source, target, self.name, new_name)
        self._folder, self.name = target, new_name
        return type(self)(new_name, self.root)

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
        state = parse_state(raw)
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
        restored = restore_state(self.folder, self.name, self.save_state)
        return restored if restored is not None else self.state()  # another session moved it first: read its result

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
        the workspace: no change overwrites another's. A viewer changes nothing (the audit: data set, model, Review's
        ranking and share were theirs to change)."""
        self.require("decide")
        with STATE_LOCK, file_lock(self.folder / ".state.lock"):
            state = self.state()
            if only_if is not None and not only_if(state):
                return False
            change(state)
            self.save_state(state)
            return True

    def server_config(self):
        """The administrator's settings for this project's workspace (`server_config.server_config`): what a page
        may offer (e.g. ``max_generated_samples`` for its size inputs)."""
        from ..server_config import server_config

        return server_config(self.root)

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
