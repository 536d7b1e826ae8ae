"""Bulk fixes: one rule applied to many training samples at once, first shown as a preview, then recorded as ONE batch
of the decision log (so one undo takes all of it back).

- ``relabel_confident``: relabel every flagged sample whose suggested label (the model's most probable class, out of
  fold when the ranking is) differs from its given label and has probability ≥ a threshold.
- ``keep_one_per_duplicate_group``: remove all but one sample of each duplicate group (keep the one with the best
  score — highest = least detrimental — or the first row).

Samples a reviewer has decided already are left alone (a person's decision beats a rule). Pure functions of arrays:
the project (`Project.bulk_relabel_preview`, ...) supplies the flagged rows, probabilities and duplicate groups.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from .errors import InfluenceError

SAMPLE = 8  # rows a preview shows (the whole fix may cover the whole split)
EVENT_PREFIX = "bulk:"  # a bulk fix's event id in the decision log: "bulk:<kind>:<unique>"
KEEP_CHOICES = ("best", "first")


@dataclass(frozen=True)
class BulkPreview:
    """What a bulk fix would do, before it is applied: the training rows, their action (one per fix), each row's
    new class (relabel only), a short description and a few rows to show (``sample``: dicts with ``row`` and what
    explains the choice)."""

    kind: str
    description: str
    rows: tuple[int, ...]
    action: str
    new_labels: tuple[int, ...] | None
    sample: tuple[dict, ...]
    scope: str = ""  # the data it was computed on (the decision log's scope); "" = not said

    @property
    def count(self) -> int:
        return len(self.rows)

    def check_current(self, scope: str, decided: Iterable[int]) -> None:
        """Refuse, in one line, a preview made stale: computed on other data (the data set switched since), or with
        samples a person decided since (a person's decision beats a rule; a second Apply is refused the same way)."""
        if self.scope and self.scope != scope:
            raise InfluenceError("this bulk fix was previewed on other data (the data set changed since): preview it "
                                 "again")
        since = set(self.rows) & {int(r) for r in decided}
        if since:
            raise InfluenceError(f"{len(since)} of this bulk fix's samples were decided since the preview: preview it "
                                 "again")

    def event(self) -> str:
        """A fresh event id for recording this fix (it marks the batch as a bulk fix of this kind)."""
        return f"{EVENT_PREFIX}{self.kind}:{uuid.uuid4().hex[:12]}"


def kind_of_event(event: str | None) -> str | None:
    """The bulk fix kind an event id names, or None for an ordinary decision."""
    if not event or not event.startswith(EVENT_PREFIX):
        return None
    return event[len(EVENT_PREFIX):].split(":", 1)[0]


def _check_threshold(threshold: float) -> float:
    try:
        value = float("nan") if isinstance(threshold, bool) else float(threshold)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise InfluenceError(f"the probability threshold must be between 0 and 1, got {str(threshold)[:20]}")
    return value


def _rows_of(values, n: int | None) -> list[int]:
    """``values`` as training rows (whole numbers in 0..n-1; below 0 never: a negative row would wrap to the last
    ones), else a one-line error."""
    rows = []
    for value in values if isinstance(values, (list, tuple, set, frozenset, np.ndarray, range)) else [values]:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise InfluenceError(f"a bulk fix names training rows by whole numbers, not '{str(value)[:20]}'")
        if value < 0 or (n is not None and value >= n):
            raise InfluenceError(f"a bulk fix names row {int(value)}, not in the training split"
                                 + (f" (0..{n - 1})" if n is not None else ""))
        rows.append(int(value))
    return rows


def relabel_preview(flagged: Sequence[int], probs: np.ndarray, given: np.ndarray, threshold: float,
                    decided: Iterable[int] = (), sample_size: int = SAMPLE, out_of_fold: bool = False,
                    scope: str = "") -> BulkPreview:
    """Relabel each ``flagged`` row (in their order: most detrimental first) not yet ``decided`` whose most probable
    class under ``probs`` (N×C) is not its ``given`` label and has probability ≥ ``threshold``."""
    threshold = _check_threshold(threshold)
    probs, given = np.asarray(probs, dtype=np.float64), np.asarray(given)
    skip = {int(r) for r in decided}
    suggested = probs.argmax(axis=1)
    rows, labels = [], []
    for r in _rows_of(list(flagged), len(probs)):
        k = int(suggested[r])
        if r not in skip and k != int(given[r]) and probs[r, k] >= threshold:
            rows.append(r)
            labels.append(k)
    sample = tuple({"row": r, "given": int(given[r]), "suggested": k, "probability": float(probs[r, k])}
                   for r, k in zip(rows[:sample_size], labels[:sample_size]))
    where = "out-of-fold" if out_of_fold else "in-sample"
    return BulkPreview("relabel_confident", f"relabel {len(rows)} flagged sample(s) to the model's suggested class "
                       f"({where} probability ≥ {threshold:.2f})", tuple(rows), "relabel", tuple(labels), sample, scope)


def dedupe_preview(groups: Iterable[Sequence[int]], scores: np.ndarray | None = None, keep: str = "best",
                   decided: Mapping[int, object] | Iterable[int] = (), sample_size: int = SAMPLE,
                   scope: str = "") -> BulkPreview:
    """Remove all but one sample of each duplicate group: keep the one with the highest score (``keep="best"``:
    lower = more detrimental, ties to the first row) or the first row (``"first"``, the smallest row number).
    A group whose rows a reviewer already decided keeps those decisions; only undecided rows are removed."""
    if keep not in KEEP_CHOICES:
        raise InfluenceError(f"keep must be one of: {', '.join(KEEP_CHOICES)}")
    if keep == "best" and scores is None:
        raise InfluenceError("keeping the best of each group needs a ranking's scores: compute one first")
    if scores is not None:  # a row a ranking did not score (NaN) is never the one kept
        scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    skip = {int(r) for r in decided}
    rows, sample = [], []
    for group in groups:
        members = sorted(set(_rows_of(group, None if scores is None else len(scores))))
        if len(members) < 2:
            continue
        kept = max(members, key=lambda r: (float(scores[r]), -r)) if keep == "best" else members[0]
        removed = [r for r in members if r != kept and r not in skip]
        rows.extend(removed)
        if removed and len(sample) < sample_size:
            sample.append({"row": kept, "removed": removed, "group_size": len(members)})
    rows = sorted(set(rows))
    how = "the best-scored" if keep == "best" else "the first"
    return BulkPreview("keep_one_per_duplicate_group", f"remove {len(rows)} duplicate sample(s), keeping {how} of each "
                       "group", tuple(rows), "remove", None, tuple(sample), scope)


def check_fix(preview: BulkPreview, n_rows: int, num_classes: int) -> list[int]:
    """The rows of ``preview`` as ints, once checked against a training split of ``n_rows`` and ``num_classes``
    classes (the data may have changed since the preview); an empty fix or one outside them: one line."""
    rows = [int(r) for r in preview.rows]
    if not rows:
        raise InfluenceError("this bulk fix changes no sample")
    if not all(0 <= r < n_rows for r in rows):
        raise InfluenceError("this bulk fix names rows outside the training split: preview it again")
    if preview.new_labels is not None and not all(0 <= k < num_classes for k in preview.new_labels):
        raise InfluenceError(f"this bulk fix relabels outside the classes 0..{num_classes - 1}")
    return rows
