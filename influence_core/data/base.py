"""The `Dataset` value every later stage takes: train / validation / test splits plus what is known about them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.utils.data

from ..errors import InfluenceError
from .sparse import SparseFeatures
from .storage import StoredFeatures


class Split:
    """One split: features ``x`` (float32, N×...), integer labels ``y`` (int64, N) and an optional binary sensitive
    attribute ``sensitive`` (int64 in {0, 1}, N).

    ``x`` is a tensor in memory, or `StoredFeatures` (a file on disk: uint8 images standardised per batch, float32
    features), or `SparseFeatures` (CSR rows in memory: TF-IDF text): then `rows` / `batches` / `loader` read only
    the rows asked for, and ``.x`` (for small data and code that wants every row at once) materialises the whole split
    on first use.

    ``twin`` (text data, validation and test): a `Split` of each row's counterfactual twin x̃ (a demographic
    perturbation of its text, same labels), for the counterfactual fairness impact; None when there is none."""

    def __init__(self, x: torch.Tensor | np.ndarray | StoredFeatures | SparseFeatures, y: torch.Tensor | np.ndarray,
                 sensitive: torch.Tensor | np.ndarray | None = None, twin: "Split | None" = None) -> None:
        if isinstance(x, (StoredFeatures, SparseFeatures)):
            self.store: StoredFeatures | SparseFeatures | None = x
            self._x: torch.Tensor | None = None
        else:
            self.store, self._x = None, torch.as_tensor(x, dtype=torch.float32)
        self.y = torch.as_tensor(y, dtype=torch.int64)
        n_x = len(self.store) if self.store is not None else self._x.shape[0]
        if n_x != self.y.shape[0]:
            raise InfluenceError(f"features have {n_x} rows but labels have {self.y.shape[0]}")
        self.sensitive = None if sensitive is None else torch.as_tensor(sensitive, dtype=torch.int64)
        if self.sensitive is not None and self.sensitive.shape[0] != self.y.shape[0]:
            raise InfluenceError("the sensitive attribute has a different length than the labels")
        if twin is not None and len(twin) != len(self.y):
            raise InfluenceError(f"the counterfactual twins have {len(twin)} rows but the split has {len(self.y)}")
        self.twin = twin

    @property
    def x(self) -> torch.Tensor:
        """Every row's features as one tensor (read from disk once, then kept, for a stored split)."""
        if self._x is None:
            self._x = self.store.read()
        return self._x

    @x.setter
    def x(self, value: torch.Tensor) -> None:
        self._x, self.store = torch.as_tensor(value), None

    @property
    def on_disk(self) -> bool:
        """True when the features are read from disk batch by batch."""
        return isinstance(self.store, StoredFeatures)

    @property
    def sparse(self) -> SparseFeatures | None:
        """The CSR features (text), read dense batch by batch; None for dense features."""
        return self.store if isinstance(self.store, SparseFeatures) else None

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """The shape of one sample's features (without reading any)."""
        return tuple(self.store.shape[1:]) if self.store is not None else tuple(self._x.shape[1:])

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __repr__(self) -> str:
        where = f"on disk ({self.store.array.path.name})" if self.on_disk else "sparse" if self.sparse is not None else "in memory"
        return f"Split({len(self)} rows, features {self.feature_shape}, {where})"

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.store is not None:
            state["_x"] = None  # a stored split travels (to a Dask worker) as its file's path, never as its rows
        return state

    def rows(self, index: slice | torch.Tensor | np.ndarray | list[int]) -> torch.Tensor:
        """The features of the rows at ``index`` (a slice or positions), float32; a stored split reads only those."""
        if self.store is None or self._x is not None:
            if not isinstance(index, (slice, torch.Tensor)):
                index = torch.as_tensor(np.asarray(index), dtype=torch.int64)
            return self.x[index]
        return self.store.read(index)

    def subset(self, index: torch.Tensor | np.ndarray) -> "Split":
        """The rows at ``index``: a copy in memory, a view (nothing read) of a stored split."""
        index = torch.as_tensor(np.asarray(index), dtype=torch.int64)
        sens = None if self.sensitive is None else self.sensitive[index]
        x = self.store.subset(index.numpy()) if self.store is not None else self.x[index]
        return Split(x, self.y[index], sens, None if self.twin is None else self.twin.subset(index))

    def with_labels(self, y: torch.Tensor | np.ndarray) -> "Split":
        """The same features (still on disk when stored) with other labels."""
        twin = None if self.twin is None else self.twin.with_labels(y)
        return Split(self.store if self.store is not None else self.x, y, self.sensitive, twin)

    def batches(self, batch_size: int, device: torch.device | str = "cpu", start: int = 0,
                stop: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x, y) batches of rows start..stop moved to ``device``; memory stays O(batch_size)."""
        stop = len(self) if stop is None else min(stop, len(self))
        for lo in range(start, stop, batch_size):
            hi = min(lo + batch_size, stop)
            yield self.rows(slice(lo, hi)).to(device), self.y[lo:hi].to(device)

    def loader(self, order: torch.Tensor, batch_size: int, *, num_workers: int = 0, pin_memory: bool = False
               ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(positions, x, y) batches of the rows in ``order``, ``batch_size`` at a time, on the CPU. With
        ``num_workers`` a torch `DataLoader` reads the next batches in worker processes (and pins them for a fast
        copy to a GPU with ``pin_memory``) while the current one trains."""
        chunks = [order[lo : lo + batch_size] for lo in range(0, len(order), batch_size)]
        if num_workers <= 0 and not pin_memory:
            for idx in chunks:
                yield idx, self.rows(idx), self.y[idx]
            return
        from torch.utils.data import DataLoader

        yield from DataLoader(_BatchReader(self, chunks), batch_size=None, shuffle=False, num_workers=num_workers,
                              pin_memory=pin_memory, persistent_workers=False)

    def hash_into(self, h: "hashlib._Hash") -> None:
        """Feed this split's content to ``h``: the tensors' bytes, or for stored features their file's digest."""
        if self.store is not None:
            h.update(self.store.token())
        else:
            h.update(np.ascontiguousarray(self._x.numpy()).data)
        for t in (self.y, self.sensitive):
            if t is not None:
                h.update(np.ascontiguousarray(t.numpy()).data)
        if self.twin is not None:
            h.update(b"twin")
            self.twin.hash_into(h)

    def identity(self) -> tuple:
        """What changes when this split is replaced (the fingerprint's cache key; contents are not read)."""
        xs = (id(self.store),) if self.store is not None else (id(self._x), self._x.data_ptr(), tuple(self._x.shape))
        twin = () if self.twin is None else (self.twin.identity(),)
        return xs + tuple((id(t), t.data_ptr(), tuple(t.shape)) for t in (self.y, self.sensitive) if t is not None) + twin


class _BatchReader(torch.utils.data.Dataset):
    """One item = one batch of rows (so a DataLoader worker reads whole batches from disk)."""

    def __init__(self, split: Split, chunks: list[torch.Tensor]) -> None:
        self.split, self.chunks = split, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = self.chunks[i]
        return idx, self.split.rows(idx), self.split.y[idx]


@dataclass
class Dataset:
    """Train / validation / test splits of a classification task.

    ``noise_mask`` (bool, over train) marks training labels known to be wrong (flipped on purpose, or
    differing from a clean label set); ``clean_labels`` holds the true labels when known. ``source_index``
    maps each training row to its position in the original data (for CIFAR-N joins and exports). ``texts``
    (text data): each split's raw texts, row-aligned with its features ({"train": [...], "val": [...], "test": [...]}).
    ``annotators`` (issue 20): several people's labels of each training row, float64 N×M (class indices, NaN where
    an annotator gave none), named by ``annotator_names``; the training label ``train.y`` is the one the user chose.
    """

    name: str
    train: Split
    val: Split
    test: Split
    classes: list[str]
    kind: str = "tabular"  # "tabular" (x is N×D), "image" (x is N×C×H×W) or "text" (x is N×D text features)
    noise_mask: torch.Tensor | None = None
    clean_labels: torch.Tensor | None = None
    feature_names: list[str] | None = None
    source_index: torch.Tensor | None = None
    sensitive_name: str | None = None
    meta: dict = field(default_factory=dict)
    texts: dict[str, list[str]] | None = None
    annotators: np.ndarray | None = None
    annotator_names: list[str] | None = None
    _fingerprint: tuple | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.train.feature_shape

    @property
    def has_sensitive(self) -> bool:
        return self.val.sensitive is not None and self.train.sensitive is not None

    def fingerprint(self) -> str:
        """A short content hash of all splits (for cache keys): equal data gives an equal fingerprint.

        Hashed straight from the tensors' memory (no copy) — for features on disk, from their file's digest stored
        at write time, so nothing is read — and remembered while the splits are the same objects, so the many callers
        of one data set pay for it once. (Tensors changed in place are not noticed: build a new split instead, as
        `with_train` does.)"""
        splits = (self.train, self.val, self.test)
        key = (self.name, tuple(s.identity() for s in splits), id(self.annotators), tuple(self.annotator_names or ()))
        if self._fingerprint is not None and self._fingerprint[0] == key:
            return self._fingerprint[1]
        h = hashlib.sha256(self.name.encode())
        for s in splits:
            s.hash_into(h)
        if self.annotators is not None:  # several annotators' labels (issue 20): part of what the data is
            h.update(b"annotators" + "\x1f".join(self.annotator_names or ()).encode())
            h.update(np.ascontiguousarray(self.annotators, dtype=np.float64).data)
        self._fingerprint = (key, h.hexdigest()[:16])
        return self._fingerprint[1]

    def with_train(self, train: Split, noise_mask: torch.Tensor | None = None, source_index: torch.Tensor | None = None,
                   train_index: np.ndarray | torch.Tensor | None = None) -> "Dataset":
        """A copy with another training split (after trimming or relabelling); val and test are shared.

        Training texts follow the new rows: ``train_index`` (positions in the current training split) when given,
        else matched through ``source_index``; a text set whose new rows cannot be matched keeps no texts."""
        annotators = self._annotators_for(source_index, train_index)
        return Dataset(
            name=self.name, train=train, val=self.val, test=self.test, classes=self.classes, kind=self.kind,
            noise_mask=noise_mask, clean_labels=None, feature_names=self.feature_names,
            source_index=source_index, sensitive_name=self.sensitive_name, meta=dict(self.meta),
            texts=self._texts_for(len(train), source_index, train_index),
            annotators=annotators, annotator_names=None if annotators is None else self.annotator_names,
        )

    def _annotators_for(self, source_index: torch.Tensor | None, train_index) -> np.ndarray | None:
        """The annotators' labels of new training rows (see `with_train`): by ``train_index``, else matched through
        ``source_index``; None when the rows cannot be matched."""
        if self.annotators is None:
            return None
        if train_index is not None:
            return self.annotators[np.asarray(train_index, dtype=np.int64)]
        if source_index is None or self.source_index is None:
            return None
        position = {int(s): i for i, s in enumerate(self.source_index.tolist())}
        wanted = source_index.tolist()
        if not all(int(s) in position for s in wanted):
            return None
        return self.annotators[np.asarray([position[int(s)] for s in wanted], dtype=np.int64)]

    def _texts_for(self, n: int, source_index: torch.Tensor | None, train_index) -> dict[str, list[str]] | None:
        """`texts` with the training texts of new training rows (see `with_train`)."""
        if self.texts is None:
            return None
        old = self.texts["train"]
        if train_index is None and source_index is not None and self.source_index is not None:
            position = {int(s): i for i, s in enumerate(self.source_index.tolist())}
            if all(int(s) in position for s in source_index.tolist()):
                train_index = [position[int(s)] for s in source_index.tolist()]
        if train_index is None:
            if n != len(old):
                return None
            train_index = range(n)
        return dict(self.texts, train=[old[int(i)] for i in np.asarray(train_index).tolist()])

    def summary(self) -> dict:
        """Counts a user wants to see first: sizes, class balance, known noise rate."""
        out = {
            "name": self.name, "kind": self.kind, "n_train": len(self.train), "n_val": len(self.val),
            "n_test": len(self.test), "num_classes": self.num_classes, "input_shape": list(self.input_shape),
            "class_counts": {self.classes[c]: int((self.train.y == c).sum()) for c in range(self.num_classes)},
        }
        if self.noise_mask is not None:
            out["noise_rate"] = float(self.noise_mask.float().mean())
        if self.sensitive_name:
            out["sensitive"] = self.sensitive_name
        if self.annotators is not None:
            out["annotators"] = list(self.annotator_names or [])
        return out
