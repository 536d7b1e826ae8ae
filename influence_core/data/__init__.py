"""Data sets: one registry, each loader returns a `Dataset` (train / val / test, classes, known noise, sensitive)."""

from .base import Dataset, Split
from .registry import DATASETS, PATH_LOADERS, load_dataset, register_dataset, register_path_loader
from . import synthetic  # noqa: F401  (registers blobs, moons)

__all__ = ["Dataset", "Split", "DATASETS", "PATH_LOADERS", "load_dataset", "register_dataset", "register_path_loader"]
