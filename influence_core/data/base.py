"""The `Dataset` value every later stage takes: train / validation / test splits plus what is known about them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from ..errors import InfluenceError


@dataclass
class Split:
    """One split: features ``x`` (float32, N×...), integer labels ``y`` (int64, N) and an optional
    binary sensitive attribute ``sensitive`` (int64 in {0, 1}, N)."""

    x: torch.Tensor
    y: torch.Tensor
    sensitive: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.x = torch.as_tensor(self.x, dtype=torch.float32)
        self.y = torch.as_tensor(self.y, dtype=torch.int64)
        if self.x.shape[0] != self.y.shape[0]:
            raise InfluenceError(f"features have {self.x.shape[0]} rows but labels have {self.y.shape[0]}")
        if self.sensitive is not None:
            self.sensitive = torch.as_tensor(self.sensitive, dtype=torch.int64)
            if self.sensitive.shape[0] != self.y.shape[0]:
                raise InfluenceError("the sensitive attribute has a different length than the labels")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: torch.Tensor | np.ndarray) -> "Split":
        """The rows at ``index`` (a copy)."""
        index = torch.as_tensor(np.asarray(index), dtype=torch.int64)
        sens = None if self.sensitive is None else self.sensitive[index]
        return Split(self.x[index], self.y[index], sens)

    def batches(self, batch_size: int, device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x, y) batches moved to ``device``; memory stays O(batch_size) on the device."""
        for start in range(0, len(self), batch_size):
            yield self.x[start : start + batch_size].to(device), self.y[start : start + batch_size].to(device)


@dataclass
class Dataset:
    """Train / validation / test splits of a classification task.

    ``noise_mask`` (bool, over train) marks training labels known to be wrong (flipped on purpose, or
    differing from a clean label set); ``clean_labels`` holds the true labels when known. ``source_index``
    maps each training row to its position in the original data (for CIFAR-N joins and exports).
    """

    name: str
    train: Split
    val: Split
    test: Split
    classes: list[str]
    kind: str = "tabular"  # "tabular" (x is N×D) or "image" (x is N×C×H×W)
    noise_mask: torch.Tensor | None = None
    clean_labels: torch.Tensor | None = None
    feature_names: list[str] | None = None
    source_index: torch.Tensor | None = None
    sensitive_name: str | None = None
    meta: dict = field(default_factory=dict)
    _fingerprint: tuple | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def has_sensitive(self) -> bool:
        return self.val.sensitive is not None and self.train.sensitive is not None

    def fingerprint(self) -> str:
        """A short content hash of all splits (for cache keys): equal data gives an equal fingerprint.

        Hashed straight from the tensors' memory (no copy) and remembered while the splits are the same tensor
        objects, so the many callers of one data set pay for it once. (Tensors changed in place are not noticed:
        build a new split instead, as `with_train` does.)"""
        tensors = [t for s in (self.train, self.val, self.test) for t in (s.x, s.y, s.sensitive) if t is not None]
        key = (self.name, tuple((id(t), t.data_ptr(), tuple(t.shape)) for t in tensors))
        if self._fingerprint is not None and self._fingerprint[0] == key:
            return self._fingerprint[1]
        h = hashlib.sha256(self.name.encode())
        for t in tensors:
            h.update(np.ascontiguousarray(t.numpy()).data)
        self._fingerprint = (key, h.hexdigest()[:16])
        return self._fingerprint[1]

    def with_train(self, train: Split, noise_mask: torch.Tensor | None = None, source_index: torch.Tensor | None = None) -> "Dataset":
        """A copy with another training split (after trimming or relabelling); val and test are shared."""
        return Dataset(
            name=self.name, train=train, val=self.val, test=self.test, classes=self.classes, kind=self.kind,
            noise_mask=noise_mask, clean_labels=None, feature_names=self.feature_names,
            source_index=source_index, sensitive_name=self.sensitive_name, meta=dict(self.meta),
        )

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
        return out
