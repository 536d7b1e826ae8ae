"""Several annotators' labels of one table (issue 20 §4): extra label columns of an upload read as an N×M matrix of
class indices (NaN where an annotator gave no label), in the classes of the training label column the user chose.

A column is named by the user from the file's own columns only; anything else is a one-line error that names the file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InfluenceError
from .originals import _class_name

MAX_ANNOTATORS = 50  # label columns read as annotators, at most


def shown_name(name: str, limit: int = 40) -> str:
    """A column name as a one-line message shows it: at most ``limit`` characters, control characters escaped."""
    short = name[:limit].encode("unicode_escape").decode("ascii") if not name[:limit].isprintable() else name[:limit]
    return short + ("…" if len(name) > limit else "")


def check_annotator_columns(frame: pd.DataFrame, columns, taken: dict[str, str | None], label: str) -> list[str]:
    """The annotator columns as a list of the file's column names, refused in one line when one is not a column of
    the file, is named twice, or is already the label or sensitive column (``taken``: role -> column)."""
    if columns is None:
        return []
    if isinstance(columns, str) or not isinstance(columns, (list, tuple)) or not all(isinstance(c, str) for c in columns):
        raise InfluenceError("annotator columns must be a list of column names")
    if len(columns) > MAX_ANNOTATORS:
        raise InfluenceError(f"{len(columns)} annotator columns; at most {MAX_ANNOTATORS} are read")
    names = [str(c) for c in frame.columns]
    seen: set[str] = set()
    for col in columns:
        if col not in names:
            listed = ", ".join(shown_name(n) for n in names[:30]) + (", …" if len(names) > 30 else "")
            raise InfluenceError(f"no annotator column '{shown_name(col, 60)}' in '{label}'; the columns are: {listed}")
        if col in seen:
            raise InfluenceError(f"the annotator column '{shown_name(col)}' is named twice")
        for role, used in taken.items():
            if used == col:
                raise InfluenceError(f"the column '{shown_name(col)}' is the {role} column; it cannot also be an annotator")
        seen.add(col)
    return list(columns)


def annotator_matrix(frame: pd.DataFrame, columns: list[str], classes: list[str]) -> np.ndarray:
    """Each row's label from each annotator column as a class index (float64, N×M; NaN for an empty cell), read by
    the rule the label column was read with (`originals._class_name`: 1, 1.0 and "1" are one class). A value that
    is not one of ``classes`` is refused in one line; so is a column with no label at all."""
    index = {name: k for k, name in enumerate(classes)}
    out = np.full((len(frame), len(columns)), np.nan)
    for j, col in enumerate(columns):
        values = frame[col]
        present = ~values.isna().to_numpy()
        if not present.any():
            raise InfluenceError(f"the annotator column '{shown_name(col)}' holds no labels")
        for i in np.flatnonzero(present):
            name = _class_name(values.iloc[i])
            if name not in index:
                shown = ", ".join(classes[:10]) + (", …" if len(classes) > 10 else "")
                raise InfluenceError(f"the annotator column '{shown_name(col)}' has '{shown_name(name)}' in row {int(i)}, which is not a "
                                     f"class of the label column ({shown})")
            out[i, j] = index[name]
    return out
