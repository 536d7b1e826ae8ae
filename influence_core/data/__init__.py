"""Data sets: one registry, each loader returns a `Dataset` (train / val / test, classes, known noise, sensitive)."""

from .base import Dataset, Split
from .registry import DATASETS, PATH_LOADERS, load_dataset, register_dataset, register_path_loader
from . import synthetic  # noqa: F401  (registers blobs, moons)
from . import cifar, tabular, uploads  # noqa: F401  (register cifar10n, cifar100n, adult, bank, .csv, .zip)
from . import text  # noqa: F401  (registers the "tfidf" featurizer)
from . import synthetic_text  # noqa: F401  (registers text-shortcut)
from .prepare import raw_images

__all__ = ["Dataset", "Split", "DATASETS", "PATH_LOADERS", "load_dataset", "register_dataset", "register_path_loader",
           "raw_images"]
