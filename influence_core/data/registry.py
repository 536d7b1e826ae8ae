"""Registry of data sets: a name maps to a loader returning a `Dataset`. Adding a data set = one decorated function."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import InfluenceError
from .base import Dataset


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    loader: Callable[..., Dataset]

    def parameters(self) -> dict[str, object]:
        """The loader's keyword arguments with their defaults (for listings and the app's forms)."""
        sig = inspect.signature(self.loader)
        return {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}


DATASETS: dict[str, DatasetSpec] = {}
# Loaders for paths the user gives (CSV, image zip): suffix -> loader(path, **kwargs).
PATH_LOADERS: dict[str, Callable[..., Dataset]] = {}


def register_dataset(name: str, description: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        DATASETS[name] = DatasetSpec(name, description, fn)
        return fn

    return deco


def register_path_loader(*suffixes: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        for s in suffixes:
            PATH_LOADERS[s.lower()] = fn
        return fn

    return deco


def load_dataset(name: str, **kwargs) -> Dataset:
    """Load a registered data set by name, or a user file by path (CSV, image zip).

    Keyword arguments the loader does not take are dropped, so one settings dict can serve every loader.
    """
    if name in DATASETS:
        loader = DATASETS[name].loader
    else:
        suffix = "".join(Path(name).suffixes[-1:]).lower()
        if suffix in PATH_LOADERS and (Path(name).exists() or "/" in name or "\\" in name):
            if not Path(name).exists():
                raise InfluenceError(f"no such file: {name}")
            loader = PATH_LOADERS[suffix]
            return loader(name, **_accepted(loader, kwargs))
        known = ", ".join(sorted(DATASETS))
        raise InfluenceError(f"unknown data set '{name}'; choose one of: {known}, or give a path to a .csv or .zip file")
    return loader(**_accepted(loader, kwargs))


def _accepted(fn: Callable, kwargs: dict) -> dict:
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return {k: v for k, v in kwargs.items() if v is not None}
    return {k: v for k, v in kwargs.items() if k in params and v is not None}
