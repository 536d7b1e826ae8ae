"""The label and sensitive columns of a user's table, encoded: class indices and names from any label column, a 0/1
sensitive attribute from a binary or numeric one. Shared by table uploads (`uploads`) and text data (`text`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InfluenceError
from .originals import INTEGRAL_TEXT
from .tabular import shown_rows

MAX_CLASSES = 100


def _rows(mask: np.ndarray, limit: int = 5) -> str:
    return shown_rows(np.flatnonzero(mask), limit)


def encode_labels(values: pd.Series, column: str, max_classes: int = MAX_CLASSES,
                  notes: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Class indices 0..K-1 and class names from a label column: strings, integers or integral floats.

    Text labels that spell one integer ("1", "1.0") are one class; ``notes`` gets a line for each such merge.
    Refuses missing labels, non-integral numbers, a single class and more than ``max_classes`` classes.
    """
    missing = values.isna().to_numpy()
    if missing.any():
        raise InfluenceError(f"the label column '{column}' is missing in {int(missing.sum())} rows ({_rows(missing)}); fill or drop them")
    if pd.api.types.is_bool_dtype(values):
        values = values.astype(np.int64)
    elif pd.api.types.is_float_dtype(values):
        arr = values.to_numpy()
        frac = ~np.isfinite(arr) | (arr != np.round(arr))
        if frac.any():
            raise InfluenceError(f"the label column '{column}' holds non-integer numbers (e.g. {arr[frac][0]:g} in row "
                                 f"{int(np.flatnonzero(frac)[0])}); labels must be class names or integers")
        values = values.astype(np.int64)
    elif not pd.api.types.is_integer_dtype(values):
        text = values.astype(str).str.strip()
        values = text.str.replace(INTEGRAL_TEXT, r"\1", regex=True)  # the rule of `originals._class_name`
        if notes is not None:
            for name, spellings in text.groupby(values.to_numpy()).unique().items():
                if len(spellings) > 1:
                    notes.append(f"labels {' and '.join(sorted(spellings, key=len))} read as one class")
    uniques = np.unique(values.to_numpy())  # sorted: numeric order for integers, lexicographic for names
    if len(uniques) < 2:
        raise InfluenceError(f"the label column '{column}' has only one class ('{uniques[0]}'); a classifier needs at least two")
    if len(uniques) > max_classes:
        raise InfluenceError(f"the label column '{column}' has {len(uniques)} distinct values, more than {max_classes} "
                             "classes; is it the right column?")
    return np.searchsorted(uniques, values.to_numpy()).astype(np.int64), [str(u) for u in uniques]


def binarise_sensitive(values: pd.Series, column: str, threshold: float | None = None) -> tuple[np.ndarray, str]:
    """A 0/1 sensitive attribute and a sentence saying what s = 1 means.

    Two distinct values: 0/1 and booleans are kept; otherwise the value that sorts second is 1.
    Numeric with more values: 1 when value ≥ ``threshold`` (default: the median). Other columns are refused.
    """
    missing = values.isna().to_numpy()
    if missing.any():
        raise InfluenceError(f"the sensitive column '{column}' is missing in {int(missing.sum())} rows ({_rows(missing)}); fill or drop them")
    if pd.api.types.is_bool_dtype(values):
        values = values.astype(np.int64)
    uniques = np.unique(values.to_numpy() if pd.api.types.is_numeric_dtype(values) else values.astype(str).to_numpy())
    if len(uniques) < 2:
        raise InfluenceError(f"the sensitive column '{column}' has one value only ('{uniques[0]}'); it must split the rows into two groups")
    numeric = pd.api.types.is_numeric_dtype(values)
    if len(uniques) == 2 and threshold is None:
        if numeric and set(uniques.tolist()) <= {0, 1}:
            return values.to_numpy().astype(np.int64), f"{column} = 1"
        s = (values.to_numpy() if numeric else values.astype(str).to_numpy()) == uniques[1]
        return s.astype(np.int64), f"{column} = {uniques[1]}"
    if not numeric:
        shown = ", ".join(map(str, uniques[:5])) + (", …" if len(uniques) > 5 else "")
        raise InfluenceError(f"the sensitive column '{column}' has {len(uniques)} values ({shown}); it must be binary "
                             "(two values) or numeric (split at a threshold)")
    cut = float(np.median(values.to_numpy())) if threshold is None else float(threshold)
    s = (values.to_numpy() >= cut).astype(np.int64)
    if s.min() == s.max():
        raise InfluenceError(f"splitting the sensitive column '{column}' at {cut:g} puts every row in one group; choose another threshold")
    return s, f"{column} >= {cut:g}"
