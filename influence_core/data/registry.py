"""Registry of data sets: a name maps to a loader returning a `Dataset`. Adding a data set = one decorated function."""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import InfluenceError
from .base import Dataset


# Loader parameters a browser never sets: files and folders on the server, downloads and where data is kept. They are
# the server's settings (the CLI, the library, the administrator's configuration); a browser uploads files instead.
# A parameter is server-side when its loader says so (``register_dataset(..., server_side=...)``) or its name does.
SERVER_SIDE_NAME = re.compile(r"(^|_)(path|paths|dir|folder|file|files|url|root|images|download|on_disk)($|_)")
# Numeric size parameters (samples generated or kept): capped for browser calls by `max_generated_samples`.
SIZE_NAME = re.compile(r"^(n|max)_[a-z_]+$")


def loader_parameters(loader: Callable[..., Dataset]) -> dict[str, object]:
    """A loader's keyword arguments with their defaults (the path argument of a file loader has none)."""
    sig = inspect.signature(loader)
    return {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}


def is_server_side(parameter: str, marked: frozenset[str] = frozenset()) -> bool:
    """Whether a loader parameter is the server's to set (a path, a download...), never a browser's."""
    return parameter in marked or bool(SERVER_SIDE_NAME.search(parameter))


def is_size(parameter: str, default: object) -> bool:
    """Whether a loader parameter is a number of samples (n_train, max_rows, ...): capped for browser calls."""
    whole = isinstance(default, int) and not isinstance(default, bool)
    return bool(SIZE_NAME.match(parameter)) and (default is None or whole)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    loader: Callable[..., Dataset]
    server_side: frozenset[str] = frozenset()  # marked server-side by the loader (besides the naming rule)

    def parameters(self) -> dict[str, object]:
        """The loader's keyword arguments with their defaults (for listings and the CLI)."""
        return loader_parameters(self.loader)

    def browser_parameters(self) -> dict[str, object]:
        """The parameters a browser may set (the Data page's form): every one that is not server-side."""
        return {k: v for k, v in self.parameters().items() if not is_server_side(k, self.server_side)}


DATASETS: dict[str, DatasetSpec] = {}
# Loaders for paths the user gives (CSV, image zip): suffix -> loader(path, **kwargs).
PATH_LOADERS: dict[str, Callable[..., Dataset]] = {}


def register_dataset(name: str, description: str, server_side: tuple[str, ...] = ()
                     ) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Register a loader under ``name``; ``server_side``: parameters a browser may not set beyond the naming rule."""
    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        DATASETS[name] = DatasetSpec(name, description, fn, frozenset(server_side))
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
    loader, by_path = _loader_of(name)
    return loader(*([name] if by_path else []), **_accepted(loader, kwargs))


def _loader_of(name: str) -> tuple[Callable[..., Dataset], bool]:
    """(the loader of ``name``, whether it takes the path as its first argument): a registered data set, else a
    file by its suffix; one line for a missing file or an unknown name."""
    if name in DATASETS:
        return DATASETS[name].loader, False
    suffix = "".join(Path(name).suffixes[-1:]).lower()
    if suffix in PATH_LOADERS and (Path(name).exists() or "/" in name or "\\" in name):
        if not Path(name).exists():
            raise InfluenceError(f"no such file: {name}")
        return PATH_LOADERS[suffix], True
    known = ", ".join(sorted(DATASETS))
    raise InfluenceError(f"unknown data set '{name}'; choose one of: {known}, or give a path to a .csv, .parquet or "
                         ".zip file")


def unused_arguments(name: str, kwargs: dict) -> list[str]:
    """The keys of ``kwargs`` (those set) that the loader of ``name`` does not take: `load_dataset` drops them, and a
    front end says so (an image size given for a CSV)."""
    params = inspect.signature(_loader_of(name)[0]).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    return sorted(k for k, v in kwargs.items() if v is not None and k not in params)


def _accepted(fn: Callable, kwargs: dict) -> dict:
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return {k: v for k, v in kwargs.items() if v is not None}
    return {k: v for k, v in kwargs.items() if k in params and v is not None}


MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's seeds


def _check_type(what: str, key: str, value, default, annotation: str = "") -> None:
    """A one-line refusal of a browser's ``value`` unlike the loader's ``default`` (or, for a None default, the first
    type its ``annotation`` names): true or false for a flag, a whole number (a seed from 0 to `MAX_SEED`) for a whole
    number, a finite number for a number, a text for a text, a list of texts for a list of texts."""
    kind = type(default).__name__ if default is not None else str(annotation).split("|")[0].strip()
    shown = repr(value) if isinstance(value, str) else str(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise InfluenceError(f"{what}: '{key}' must be true or false, not {shown[:40]}")
    elif kind == "int":
        top = MAX_SEED if key == "seed" else None
        if isinstance(value, bool) or not isinstance(value, int) or (top is not None and not 0 <= value <= top):
            raise InfluenceError(f"{what}: '{key}' must be a whole number"
                                 + (f" from 0 to {top:,}" if top is not None else "") + f", not {shown[:40]}")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InfluenceError(f"{what}: '{key}' must be a number, not {shown[:40]}")
    elif kind == "str" and not isinstance(value, str):
        raise InfluenceError(f"{what}: '{key}' must be a text, not {shown[:40]}")
    elif kind == "list[str]" and (not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value)):
        raise InfluenceError(f"{what}: '{key}' must be a list of column names, not {shown[:40]}")


def check_browser_arguments(what: str, loader: Callable[..., Dataset], kwargs: dict, max_samples: int,
                            marked: frozenset[str] = frozenset()) -> dict:
    """``kwargs`` for ``loader`` when a browser may ask for them, else a one-line refusal: no server-side parameter
    (paths, downloads; the message never depends on the value, so it tells nothing about the server's files), no
    parameter the loader does not take, sizes whole numbers within ``max_samples`` (each, and the generated ones
    together)."""
    params = loader_parameters(loader)
    annotations = {k: p.annotation for k, p in inspect.signature(loader).parameters.items()}
    for key in sorted(kwargs):
        if is_server_side(key, marked):
            raise InfluenceError(f"{what}: '{key}' is a server-side setting (the CLI or the server's configuration "
                                 "sets it); in the app, upload a file instead")
        if key not in params:
            raise InfluenceError(f"{what} takes no setting '{key[:40]}'; it takes: {', '.join(sorted(params))}")
    generated = 0
    for key, value in kwargs.items():
        if value is None:
            continue
        if not is_size(key, params[key]):
            _check_type(what, key, value, params[key], annotations.get(key, ""))
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise InfluenceError(f"{what}: '{key}' must be a whole number, not {str(value)[:40]!r}")
        if not 0 <= value <= max_samples:
            raise InfluenceError(f"{what}: '{key}' = {value:,} is over this server's cap of {max_samples:,} samples")
        generated += value if key in ("n_train", "n_val", "n_test") else 0
    if generated > max_samples:
        raise InfluenceError(f"{what}: {generated:,} samples in all is over this server's cap of {max_samples:,}")
    return kwargs
