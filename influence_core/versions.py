"""Named, immutable versions of the cleaned data set: what an export produced — which training rows were removed and
which relabelled, by whom, from which rankings, after which earlier version — kept in the project's ``versions/``
folder as one JSON file each, written atomically and never overwritten.

A version stores the decisions, not the data: with the data set it names (its fingerprint is checked) they rebuild
the cleaned table, image zip or training split exactly (`version_decisions` feeds the same export functions as the
live decisions; ``labels_sha256`` proves the rebuilt labels are the saved ones). `diff_versions` says what changed
between two versions: rows removed, restored and relabelled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import torch

from .atomic import exclusive
from .data.base import Dataset
from .errors import InfluenceError, escaped, writing
from .export import final_labels
from .review import Decision

FOLDER = "versions"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Names Windows keeps for devices (also with an extension): a project folder copied there could not hold the file.
_DEVICE = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\..*)?", re.IGNORECASE)
MAX_VERSIONS = 1000  # per project: a browser (a script clicking Save) cannot fill the server's disk with them
STALE_TMP_S = 600  # a temporary version file this old is a leftover of a save that was killed (a save takes ms)


def valid_version_name(name) -> str:
    """``name`` when it can name a version (letters, digits, '-', '_', '.'; at most 64; no Windows device name such
    as CON, no trailing '.'), else a one-line error."""
    name = str(name or "").strip()
    if (not _NAME.fullmatch(name) or name in (".", "..") or name.endswith((".json", "."))
            or _DEVICE.fullmatch(name)):
        raise InfluenceError(f"'{escaped(name[:80])}' cannot name a version: use up to 64 letters, digits, '-', '_' or '.', "
                             "starting with a letter or digit (not a device name such as CON, not ending in '.')")
    return name


@dataclass(frozen=True)
class VersionRow:
    """One training row a version changes: removed, or relabelled from ``given`` to ``label``; by ``decided_by``."""

    row: int
    original: int
    action: str  # "remove" or "relabel"
    given: int
    label: int | None
    decided_by: str


@dataclass(frozen=True)
class DataVersion:
    """A saved cleaned data set: its changed rows and where they came from. ``rankings``: the score runs computed
    when it was saved (``primary`` ordered Review); ``parent``: the version saved before it on the same data."""

    name: str
    created_at: str
    created_by: str
    parent: str | None
    dataset: str
    fingerprint: str
    n_train: int
    rankings: tuple[str, ...]
    primary: str | None
    rows: tuple[VersionRow, ...]
    labels_sha256: str
    note: str = ""

    @property
    def removed(self) -> list[int]:
        return [r.row for r in self.rows if r.action == "remove"]

    @property
    def relabelled(self) -> dict[int, int]:
        return {r.row: int(r.label) for r in self.rows if r.action == "relabel"}

    @property
    def n_train_after(self) -> int:
        return self.n_train - len(self.removed)

    def summary(self) -> dict:
        """One row of the versions table."""
        reviewers = sorted({r.decided_by for r in self.rows})
        return {"name": self.name, "created_at": self.created_at[:19] + "Z", "created_by": self.created_by,
                "parent": self.parent or "", "removed": len(self.removed), "relabelled": len(self.relabelled),
                "n_train_after": self.n_train_after, "decided_by": ", ".join(reviewers),
                "rankings": ", ".join(self.rankings)}

    def to_json(self) -> dict:
        data = asdict(self)
        data["rows"] = [asdict(r) for r in self.rows]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "DataVersion":
        """The version a file holds; a ValueError for a file edited into something else (wrong types, actions)."""
        rows = tuple(VersionRow(**r) for r in data["rows"])
        whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
        for r in rows:
            if not (whole(r.row) and whole(r.original) and whole(r.given) and r.action in ("remove", "relabel")
                    and (whole(r.label) if r.action == "relabel" else r.label is None)):
                raise ValueError(f"changed row {str(r.row)[:20]} is not a removal or a relabel of a row")
        version = cls(**{**data, "rows": rows, "rankings": tuple(data.get("rankings", ()))})
        if not (whole(version.n_train) and all(0 <= r.row < version.n_train for r in rows)):
            raise ValueError("its changed rows are not rows of its training split")
        return version


def labels_digest(labels: np.ndarray, kept: np.ndarray) -> str:
    """sha256 of the final labels and the kept mask: equal digests = the same cleaned training split."""
    h = hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(kept, dtype=bool).tobytes())
    return h.hexdigest()


def make_version(name: str, dataset: Dataset, decisions: Mapping[int, Decision], source: np.ndarray, user: str,
                 rankings: tuple[str, ...] = (), primary: str | None = None, parent: str | None = None,
                 note: str = "") -> DataVersion:
    """The version ``name`` of the current decisions on ``dataset`` (``source``: each training row's original
    index). Keep decisions change nothing and are not stored."""
    name = valid_version_name(name)
    given = dataset.train.y.numpy()
    labels, kept = final_labels(dataset, decisions)
    rows = tuple(VersionRow(int(r), int(source[r]), d.action, int(given[r]),
                            None if d.action == "remove" else int(d.new_label), d.decided_by)
                 for r, d in sorted(decisions.items()) if d.action in ("remove", "relabel"))
    now = time.time()  # to the microsecond: versions saved within one second still sort in order
    created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    return DataVersion(name, created, user, parent, dataset.name,
                       dataset.fingerprint(), len(dataset.train), tuple(rankings), primary, rows,
                       labels_digest(labels, kept), str(note)[:500])


def _path(folder: Path, name: str) -> Path:
    return Path(folder) / FOLDER / f"{valid_version_name(name)}.json"


@writing("save the version")
def save_version(folder: str | os.PathLike, version: DataVersion) -> Path:
    """Write ``version`` into ``<folder>/versions/<name>.json``, whole or not at all, and never over an existing
    version nor beside one whose name differs only in case; the file is read-only. A finished temporary file is hard
    linked to the name (the link fails when the name is taken); where the file system has no hard links, it is
    renamed to the name under a lock, after checking the name is free."""
    target = _path(Path(folder), version.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target.parent)
    _check_name_free(target)
    if sum(1 for _ in target.parent.glob("*.json")) >= MAX_VERSIONS:
        raise InfluenceError(f"this project holds {MAX_VERSIONS} versions, the most it keeps; versions are never "
                             "deleted here: ask the server's administrator")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(version.to_json(), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o444)
        try:
            os.link(tmp, target)
        except FileExistsError:
            _taken(version.name)
        except OSError:  # no hard links here (FAT, some network and FUSE file systems): rename, under a lock
            with exclusive(target.parent / ".lock", _LOCK):
                _check_name_free(target)
                os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _taken(name: str):
    raise InfluenceError(f"a version named '{name}' exists already; versions are never overwritten: choose another "
                         "name") from None


def _check_name_free(target: Path) -> None:
    """Refuse a name taken, also in another case (a case-insensitive file system, or a copy there, would hold one)."""
    wanted = target.name.casefold()
    for path in target.parent.glob("*.json"):
        if path.name.casefold() == wanted:
            _taken(path.stem)


def _remove_stale_temporaries(folder: Path) -> None:
    """Remove what a save killed midway (kill -9, a crash) left: temporary files older than `STALE_TMP_S`."""
    now = time.time()
    for path in folder.glob(".*.json.*.tmp"):
        try:
            if now - path.stat().st_mtime > STALE_TMP_S:
                path.unlink()
        except OSError:  # another save removed it first, or it is not ours to remove
            continue


_LOCK = threading.Lock()  # with an flock on versions/.lock: the rename fallback's one writer at a time


def load_version(folder: str | os.PathLike, name: str) -> DataVersion:
    """The version ``name`` of a project folder; a one-line error when there is none or it is unreadable."""
    path = _path(Path(folder), name)
    try:
        version = DataVersion.from_json(json.loads(path.read_text(encoding="utf-8")))
        if version.name != path.stem:  # a file copied or renamed by hand: its name would open another version
            raise ValueError(f"the file holds the version '{str(version.name)[:64]}'")
        return version
    except FileNotFoundError:
        raise InfluenceError(f"no version named '{name}'") from None
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise InfluenceError(f"the version '{name}' cannot be read: {str(err).splitlines()[0][:120]}") from None


def list_versions(folder: str | os.PathLike, fingerprint: str | None = None) -> list[DataVersion]:
    """The project's readable versions, oldest first (of the data with ``fingerprint`` when given)."""
    out = []
    for path in sorted((Path(folder) / FOLDER).glob("*.json")):
        try:
            out.append(load_version(folder, path.stem))
        except InfluenceError:
            continue
    return sorted((v for v in out if fingerprint is None or v.fingerprint == fingerprint),
                  key=lambda v: (v.created_at, v.name))


def version_decisions(version: DataVersion) -> dict[int, Decision]:
    """The version's changes as decisions (what `export.cleaned_table` / `imagefolder_zip` take)."""
    return {r.row: Decision(r.row, r.action, r.label, r.decided_by, 0.0, r.original) for r in version.rows}


def check_same_data(version: DataVersion, dataset: Dataset) -> None:
    if version.fingerprint != dataset.fingerprint():
        raise InfluenceError(f"the version '{version.name}' was saved on other data ({version.dataset}); choose that "
                             "data set first")


def cleaned_dataset(dataset: Dataset, version: DataVersion) -> Dataset:
    """The training split ``version`` describes (removed rows left out, relabels applied; validation and test as
    they are), checked against the saved digest: what Evaluate retrains on."""
    check_same_data(version, dataset)
    labels, kept = final_labels(dataset, version_decisions(version))
    if labels_digest(labels, kept) != version.labels_sha256:
        raise InfluenceError(f"the version '{version.name}' does not rebuild to the labels it saved")
    rows = torch.from_numpy(np.flatnonzero(kept))
    train = dataset.train.with_labels(torch.from_numpy(labels)).subset(rows)
    mask = dataset.noise_mask[rows] if dataset.noise_mask is not None else None
    if dataset.clean_labels is not None:  # which labels are still wrong after the version's relabels
        mask = torch.from_numpy(labels[rows.numpy()] != dataset.clean_labels.numpy()[rows.numpy()])
    source = dataset.source_index[rows] if dataset.source_index is not None else rows
    out = dataset.with_train(train, noise_mask=mask, source_index=source, train_index=rows)
    if dataset.clean_labels is not None:
        out.clean_labels = dataset.clean_labels[rows]
    return out


@dataclass(frozen=True)
class VersionDiff:
    """What changed from version ``a`` to ``b``: rows newly removed, rows restored (removed in ``a``, kept in ``b``)
    and rows kept in both whose final label changed (row → (label in a, label in b))."""

    a: str
    b: str
    removed: tuple[int, ...]
    restored: tuple[int, ...]
    relabelled: tuple[tuple[int, int, int], ...]

    def table(self, originals: np.ndarray | Mapping[int, int] | None = None) -> pd.DataFrame:
        """One row per change: change, row, original index (``originals[row]``; the row when not given) and, for a
        relabel, the label before and after."""
        records = ([{"change": "removed", "row": r} for r in self.removed] +
                   [{"change": "restored", "row": r} for r in self.restored] +
                   [{"change": "relabelled", "row": r, "label_before": x, "label_after": y}
                    for r, x, y in self.relabelled])
        frame = pd.DataFrame(records, columns=["change", "row", "label_before", "label_after"])
        frame.insert(2, "original_index", [int(originals[int(r)]) if originals is not None else int(r)
                                           for r in frame["row"]])
        return frame


def diff_versions(a: DataVersion | None, b: DataVersion) -> VersionDiff:
    """Rows removed, restored and relabelled from ``a`` (None: the data as loaded) to ``b``; both of the same data."""
    before = {r.row: r for r in a.rows} if a is not None else {}
    after = {r.row: r for r in b.rows}
    if a is not None and a.fingerprint != b.fingerprint:
        raise InfluenceError(f"the versions '{a.name}' and '{b.name}' are of different data")

    def removed(rows: dict, r: int) -> bool:
        return r in rows and rows[r].action == "remove"

    def label(rows: dict, r: int, given: int) -> int:
        return int(rows[r].label) if r in rows and rows[r].action == "relabel" else given

    changed = sorted(set(before) | set(after))
    given = {r: (after.get(r) or before.get(r)).given for r in changed}
    return VersionDiff(
        a.name if a is not None else "", b.name,
        tuple(r for r in changed if removed(after, r) and not removed(before, r)),
        tuple(r for r in changed if removed(before, r) and not removed(after, r)),
        tuple((r, label(before, r, given[r]), label(after, r, given[r])) for r in changed
              if not removed(before, r) and not removed(after, r)
              and label(before, r, given[r]) != label(after, r, given[r])))
