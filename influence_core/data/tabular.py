"""Tabular data: UCI Adult and Bank Marketing (fairness benchmarks), and the encoder CSV uploads share.

Features: numeric columns standardised, categorical columns one-hot, by a scikit-learn ColumnTransformer fitted
on the training rows only (validation and test are transformed with the training statistics). Missing feature
values are imputed by a fixed rule, fitted on train too: numeric → the training median, categorical → their own
category "missing" (``missing="refuse"`` raises instead, naming columns and rows). Labels and the sensitive
attribute are never imputed.

The raw table is not kept with the data set: ``meta["originals"]`` says how to read it again (see
`influence_core.data.originals`), so exports and the Review page can show rows as the file has them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ..errors import InfluenceError
from .base import Dataset, Split
from .originals import register_table_reader, table_spec
from .paths import UCI, require_data_file
from .prepare import carve_indices
from .registry import register_dataset
from .storage import FEATURES_ON_DISK_BYTES, stored_feature_splits

ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
                 "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
                 "income"]
BANK_PRIVILEGED_AGE = 25  # AIF360's convention for Bank Marketing: age ≥ 25 is the privileged group (s = 1)
# Rows × encoded columns of a table, at most (float64 while encoding: 2 GiB). Each category of a text column is a
# column of its own: a column with a distinct value per row would need rows² numbers (a 2 MB upload, 2 GB).
MAX_ENCODED_VALUES = 2**28


def shown_rows(rows: np.ndarray, limit: int = 5) -> str:
    """'3, 8, 11, …': the first ``limit`` row numbers for a message."""
    return ", ".join(str(r) for r in rows[:limit]) + (", …" if len(rows) > limit else "")


def describe_missing(frame: pd.DataFrame, limit: int = 5) -> str:
    """'column a (rows 3, 8), column b (rows 1, …)': where ``frame`` has missing values (rows 0-based)."""
    parts = []
    for col in frame.columns[frame.isna().any()]:
        rows = np.flatnonzero(frame[col].isna().to_numpy())
        parts.append(f"'{col}' ({len(rows)} rows: {shown_rows(rows, limit)})")
    return "; ".join(parts)


def refuse_infinite(frame: pd.DataFrame, limit: int = 5, where: str = "") -> None:
    """Refuse numeric cells that are infinite or too large for float32 (the features' type), naming the column and
    rows (0-based); scikit-learn would stop with a traceback that names neither."""
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col]):
            continue
        values = frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
        rows = np.flatnonzero(np.isinf(values) | (np.abs(np.nan_to_num(values)) > np.finfo(np.float32).max))
        if len(rows):
            raise InfluenceError(f"feature column '{col}' holds infinite or too large numbers in {len(rows)} rows "
                                 f"({shown_rows(rows, limit)}){where}; replace them with numbers or leave the cells empty")


def _encoder(features: pd.DataFrame, rows: int | None = None) -> ColumnTransformer:
    """The encoder of ``features``, once `check_encoded_size` allows ``rows`` (default: ``features``'s) of them."""
    numeric = [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c]) and not pd.api.types.is_bool_dtype(features[c])]
    categorical = [c for c in features.columns if c not in numeric]
    check_encoded_size(features, categorical, len(features) if rows is None else rows)
    return ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                              OneHotEncoder(handle_unknown="ignore", sparse_output=False)), categorical),
    ], verbose_feature_names_out=False)


def check_encoded_size(features: pd.DataFrame, categorical: list[str], rows: int) -> None:
    """A one-line refusal, before anything is encoded, when ``rows`` rows of ``features`` would take more than
    `MAX_ENCODED_VALUES` numbers: a numeric column is one column, a categorical one a column per distinct value."""
    counts = {c: int(features[c].nunique(dropna=False)) for c in categorical}
    width = len(features.columns) - len(counts) + sum(counts.values())
    if rows * width <= MAX_ENCODED_VALUES:
        return
    why = ""
    if counts:
        widest = max(counts, key=counts.get)
        why = (f": column '{widest}' has {counts[widest]:,} distinct values, a column each; leave it out, or name it as a "
               "text column if it is free text")
    raise InfluenceError(f"the features would be {rows:,} rows × {width:,} columns once encoded ({rows * width:,} numbers; "
                         f"the limit is {MAX_ENCODED_VALUES:,}){why}")


def encode_tabular(
    name: str, features: pd.DataFrame, y: np.ndarray, sensitive: np.ndarray | None, classes: list[str], *,
    test: tuple[pd.DataFrame, np.ndarray, np.ndarray | None] | None = None, test_fraction: float = 0.2,
    val_fraction: float = 0.2, seed: int = 0, sensitive_name: str | None = None, missing: str = "impute",
    meta: dict | None = None, on_disk: bool | None = None, assigned: np.ndarray | None = None,
) -> Dataset:
    """A `Dataset` from raw feature columns: carve test (unless given) and validation with ``seed``, then encode.

    ``source_index`` of a training row is its row position in ``features`` (its line in the file, 0-based);
    ``meta["val_source_index"]`` / ``meta["test_source_index"]`` do the same for validation and test (test rows
    index the given test table when there is one). ``on_disk``: keep the encoded float32 features on disk and read
    them a batch at a time (None = when they would take more than 256 MiB). ``assigned``: each row's split
    ("train", "val" or "test", e.g. from a cleaned export's split column) instead of carving; a split with no rows is
    still carved from the training rows.
    """
    if missing not in ("impute", "refuse"):
        raise InfluenceError(f"missing must be 'impute' or 'refuse', not '{missing}'")
    all_missing = [c for c in features.columns if features[c].isna().all()]
    if all_missing:
        raise InfluenceError(f"feature column(s) {', '.join(map(repr, all_missing))} hold no values; drop them")
    refuse_infinite(features)
    if test is not None:
        refuse_infinite(test[0], where=" of the test table")
    if missing == "refuse" and features.isna().any().any():
        raise InfluenceError(f"missing feature values in {describe_missing(features)}; fill them or use missing='impute'")
    rows = np.arange(len(features))
    given_val = None
    if assigned is not None:
        if test is not None:
            raise InfluenceError("give either assigned splits or a test table, not both")
        assigned = np.asarray(assigned)
        rows, given_val, test_rows = (np.flatnonzero(assigned == s) for s in ("train", "val", "test"))
        if len(rows) == 0:
            raise InfluenceError("the split column marks no row as train")
        if len(test_rows) == 0:
            keep, cut = carve_indices(len(rows), test_fraction, seed, labels=y[rows])
            rows, test_rows = rows[keep], rows[cut]
        test = (features.iloc[test_rows], y[test_rows], None if sensitive is None else sensitive[test_rows])
    elif test is None:
        rows, test_rows = carve_indices(len(features), test_fraction, seed, labels=y)
        test = (features.iloc[test_rows], y[test_rows], None if sensitive is None else sensitive[test_rows])
    else:
        test_rows = np.arange(len(test[0]))
    if given_val is not None and len(given_val):
        tr, va = rows, given_val
    else:
        tr_pos, va_pos = carve_indices(len(rows), val_fraction, seed + 1, labels=y[rows])
        tr, va = rows[tr_pos], rows[va_pos]
    enc = _encoder(features, len(tr) + len(va) + len(test[0]))
    x_tr = enc.fit_transform(features.iloc[tr])  # statistics from the training rows only
    x_va, x_te = enc.transform(features.iloc[va]), enc.transform(test[0])

    xs = [np.asarray(x, dtype=np.float32) for x in (x_tr, x_va, x_te)]
    if on_disk is None:
        on_disk = sum(x.nbytes for x in xs) > FEATURES_ON_DISK_BYTES
    if on_disk:
        xs = stored_feature_splits(name, xs)
    x_tr, x_va, x_te = xs

    def split(x, idx_y, s):
        return Split(x if on_disk else torch.from_numpy(x), torch.from_numpy(idx_y.astype(np.int64)),
                     None if s is None else torch.from_numpy(s.astype(np.int64)))

    s_tr = None if sensitive is None else sensitive[tr]
    s_va = None if sensitive is None else sensitive[va]
    info = dict(meta or {})
    info.update(seed=seed, missing=missing, splits="column" if assigned is not None else "carved",
                n_missing_rows=int(features.isna().any(axis=1).sum()),
                numeric_columns=list(enc.transformers_[0][2]), categorical_columns=list(enc.transformers_[1][2]),
                val_source_index=va.tolist(), test_source_index=test_rows.tolist())
    return Dataset(
        name=name, train=split(x_tr, y[tr], s_tr), val=split(x_va, y[va], s_va), test=split(x_te, test[1], test[2]),
        classes=classes, kind="tabular", feature_names=[str(f) for f in enc.get_feature_names_out()],
        source_index=torch.from_numpy(tr.astype(np.int64)), sensitive_name=sensitive_name, meta=info,
    )


def _subsample(frame: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    if max_rows is None or max_rows >= len(frame):
        return frame
    if max_rows < 20:
        raise InfluenceError(f"max_rows must be at least 20, got {max_rows}")
    keep = np.sort(np.random.default_rng(seed).choice(len(frame), size=max_rows, replace=False))
    return frame.iloc[keep].reset_index(drop=True)


def _read_adult(path, skiprows: int) -> pd.DataFrame:
    frame = pd.read_csv(path, header=None, names=ADULT_COLUMNS, skipinitialspace=True, na_values="?", skiprows=skiprows)
    frame["income"] = frame["income"].str.rstrip(".")  # adult.test writes '<=50K.' / '>50K.'
    return frame


@register_table_reader("adult")
def read_adult_table(path, skiprows: int = 0, max_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """An Adult file as `load_adult` reads it (named columns, '?' missing, the test file's '.' after the income
    dropped), subsampled as ``max_rows`` and ``seed`` say; also how the originals are read again."""
    return _subsample(_read_adult(path, skiprows), max_rows, seed)


@register_dataset("adult", "UCI Adult income (>50K), sensitive attribute: sex; 26,049 train / 6,512 val / 16,281 test",
                  server_side=("data_path", "test_path", "download"))
def load_adult(seed: int = 0, val_fraction: float = 0.2, max_rows: int | None = None, drop_sensitive: bool = False,
               data_path: str | None = None, test_path: str | None = None, download: bool = False) -> Dataset:
    """Adult: adult.data is train (+ validation carved with ``seed``), adult.test the test split.

    Label 1 = income >50K; sensitive s = 1 for Male (the privileged group), 0 for Female.
    ``max_rows`` subsamples adult.data for quick runs; the sensitive column stays a feature unless ``drop_sensitive``.
    """
    train_file = require_data_file(["adult/adult.data"], f"{UCI}/adult/adult.data", data_path, download)
    test_file = require_data_file(["adult/adult.test"], f"{UCI}/adult/adult.test", test_path, download)
    train = read_adult_table(train_file, 0, max_rows, seed)
    test = read_adult_table(test_file, 1)
    originals = {"label_column": "income", "tables": {
        "train": table_spec("adult", train_file, len(train), skiprows=0, max_rows=max_rows, seed=seed),
        "test": table_spec("adult", test_file, len(test), skiprows=1)}}

    def parts(frame):
        y = (frame["income"] == ">50K").to_numpy().astype(np.int64)
        s = (frame["sex"] == "Male").to_numpy().astype(np.int64)
        drop = ["income"] + (["sex"] if drop_sensitive else [])
        return frame.drop(columns=drop), y, s

    x, y, s = parts(train)
    return encode_tabular("adult", x, y, s, ["<=50K", ">50K"], test=parts(test), val_fraction=val_fraction, seed=seed,
                          sensitive_name="sex (1 = Male)",
                          meta={"source": "UCI Adult", "max_rows": max_rows, "originals": originals})


def _read_bank(path) -> pd.DataFrame:
    if str(path).endswith(".zip"):  # the UCI download: bank.zip holding bank-full.csv
        import zipfile

        with zipfile.ZipFile(path) as z, z.open("bank-full.csv") as f:
            return pd.read_csv(f, sep=";")
    return pd.read_csv(path, sep=";")


@register_table_reader("bank")
def read_bank_table(path, max_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """bank-full.csv (or the UCI bank.zip) as `load_bank` reads it, subsampled as ``max_rows`` and ``seed`` say."""
    return _subsample(_read_bank(path), max_rows, seed)


@register_dataset("bank", "UCI Bank Marketing (subscribed a term deposit), sensitive: age >= 25; 45,211 rows "
                           "(20% test, 20% of the rest validation)", server_side=("data_path", "download"))
def load_bank(seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2, max_rows: int | None = None,
              drop_sensitive: bool = False, data_path: str | None = None, download: bool = False) -> Dataset:
    """Bank Marketing (bank-full.csv): label 1 = 'yes'; sensitive s = 1 when age ≥ 25 (AIF360 convention).

    No official test split: test and validation are carved with ``seed``; ``max_rows`` subsamples first.
    """
    path = require_data_file(["bank/bank-full.csv", "bank/bank.zip"], f"{UCI}/00222/bank.zip", data_path, download)
    frame = read_bank_table(path, max_rows, seed)
    originals = {"label_column": "y", "tables": {"train": table_spec("bank", path, len(frame), max_rows=max_rows, seed=seed)}}
    y = (frame["y"] == "yes").to_numpy().astype(np.int64)
    s = (frame["age"] >= BANK_PRIVILEGED_AGE).to_numpy().astype(np.int64)
    features = frame.drop(columns=["y"] + (["age"] if drop_sensitive else []))
    return encode_tabular("bank", features, y, s, ["no", "yes"], test_fraction=test_fraction, val_fraction=val_fraction,
                          seed=seed, sensitive_name=f"age >= {BANK_PRIVILEGED_AGE}",
                          meta={"source": "UCI Bank Marketing (bank-full.csv)", "max_rows": max_rows, "originals": originals})
