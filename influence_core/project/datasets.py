"""The project's data: choosing and uploading data sets (a browser's arguments checked), the samples as their
source holds them, and what the project's state keeps alive in the workspace (storage, garbage collection)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data.base import Dataset
from ..data.registry import DATASETS, PATH_LOADERS, load_dataset, unused_arguments
from ..data.uploads import IMAGES_FROM_SCRATCH
from ..errors import InfluenceError
from ..memo import MEMORY
from ..state import workspace_root
from ..project_files import project_names


class DatasetsMixin:
    """The project's data set: chosen, uploaded, shown as its source holds it, and kept in storage. A part of `Project`."""

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

    @staticmethod
    def unused_dataset_arguments(name: str, kwargs: dict) -> list[str]:
        """The loader arguments ``name``'s loader does not take (dropped when it loads): a front end says so."""
        return unused_arguments(name, kwargs)

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
        from ..data.registry import check_browser_arguments

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

    def _within_quota(self, make: Callable[[], Any]) -> Any:
        """``make()`` with the arrays it stores under this project's ``arrays/``, each new file checked against the
        user's and the workspace's quota first (a refusal leaves none of them)."""
        from ..data.storage import arrays_in
        from ..workspace import check_quota

        def check(nbytes: int) -> None:
            check_quota(self.root, self.name, nbytes, self.server_config())

        with arrays_in(self.folder / "arrays", check):
            return make()

    def save_upload(self, data: bytes, filename: str, kind: str = "data", load: Callable[[Path], Any] | None = None):
        """Check and store an uploaded file in this project (`uploads.save_upload`: refused uploads leave nothing),
        within the server's caps: ``project_upload_bytes`` for this project's uploads, the user's and the
        workspace's quota for the file and any array its loader stores."""
        from ..data.uploads import save_upload, stored_path
        from ..workspace import check_quota

        self.require("decide")  # a viewer only looks: no file of theirs lands in the project (or its owner's quota)
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
            from ..data.uploads import upload_name

            suffix = Path(upload_name(filename)).suffix.lower()
            if suffix in PATH_LOADERS:  # another type is refused by save_upload, by name
                self._check_loader_arguments(f"the {suffix} upload", PATH_LOADERS[suffix], kwargs)
        stored = self.save_upload(data, filename, "data", load=lambda p: load_dataset(str(p), **kwargs))
        path = str(stored.path)
        MEMORY.get("datasets", self._memo_key(path, kwargs), lambda: stored.value, size=self.server_config().max_loaded_datasets)
        return path, stored.value

    def references(self) -> tuple[set[str], set[Path]]:
        """What this project's state refers to in the workspace: the fingerprints of its data set and of the fold
        parts its out-of-fold runs train on, and the stored array files its data set reads (nothing when the data
        set no longer loads: then nothing of it can be used)."""
        from ..folds import FoldSettings, fold_training_parts

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
        from ..workspace import disk_usage, project_owner, usage_by_owner

        root = Path(root).expanduser().resolve() if root is not None else workspace_root()
        usage = disk_usage(root)
        return {**usage, "project_owners": {name: project_owner(root, name) for name in usage["projects"]},
                "owners": usage_by_owner(root)}

    @classmethod
    def collect_garbage(cls, root: str | os.PathLike | None = None, dry_run: bool = False) -> list[tuple[str, int]]:
        """Delete the workspace's cache entries no project's state refers to (`workspace.collect_garbage`): models
        and scores of data no project uses, stored arrays no project's data set reads, shards of finished runs.
        Returns (path, bytes) of each entry freed (or, with ``dry_run``, that would be)."""
        from ..workspace import collect_garbage

        root = Path(root).expanduser().resolve() if root is not None else workspace_root()
        prints: set[str] = set()
        arrays: set[Path] = set()
        for name in project_names(root):
            used_prints, used_arrays = cls(name, root).references()
            prints |= used_prints
            arrays |= used_arrays
        freed = collect_garbage(root, prints, arrays, dry_run=dry_run)
        if freed and not dry_run:
            MEMORY.clear("datasets")  # a data set staged but not taken may read an array that is gone now
        return freed

    def source_index(self) -> np.ndarray:
        """Each training row's index in the original data: the sample id shown everywhere (Review, Explore, exports)."""
        from ..export import source_index

        return source_index(self.dataset())

    def sample_values(self, rows):
        """Training rows ``rows`` as their source holds them, indexed by original index: a table's own cells (not the
        standardised values the model sees), an uploaded image's file name (`data.originals.original_rows`)."""
        from ..data.originals import original_rows

        return original_rows(self.dataset(), rows)

    def images(self, rows, split: str = "train") -> np.ndarray:
        """Images at ``rows`` as N×H×W×C uint8 for display (normalisation undone)."""
        from ..export import images_uint8

        dataset = self.dataset()
        if split != "train":
            from ..data.prepare import raw_images

            return raw_images(dataset, split, rows)
        return images_uint8(dataset, rows)

    def use_backbone(self, backbone: str | None, weights: str = "random", *, image_size: int | None = None,
                     from_browser: bool = False) -> Dataset:
        """Frozen backbone + head: the current image zip, its features now ``backbone``'s embeddings with ``weights``
        (computed once and stored; `models.backbones.embed_dataset`); None = the images again. Clears the model.
        The zip is read again at ``image_size``: by default the network's own input size (`backbone_image_size`),
        and without a backbone 32, the size the small CNN trains at from scratch."""
        state = self.state()
        kwargs = {k: v for k, v in state.dataset_kwargs.items() if not k.startswith("backbone")}
        if backbone:
            kwargs.update(backbone=backbone, backbone_weights=weights)
        kwargs["image_size"] = int(image_size or (self.backbone_image_size(backbone, weights) if backbone
                                                  else IMAGES_FROM_SCRATCH))
        return self.use_dataset(state.dataset, from_browser=from_browser, **kwargs)

    def backbone_image_size(self, backbone: str, weights: str = "random") -> int:
        """The side a backbone reads images at: its own input size (224 for ImageNet weights), at most the server's
        ``max_image_size``."""
        from ..models.backbones import input_size

        return min(input_size(backbone, weights), self.server_config().max_image_size)

    @staticmethod
    def tfidf_limits() -> dict[str, tuple[int, int]]:
        """Each TF-IDF setting's (default, cap) (`data.text.tfidf_limits`): a page's inputs stay within the caps."""
        from ..data.text import tfidf_limits

        return tfidf_limits()
