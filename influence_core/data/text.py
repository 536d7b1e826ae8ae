"""Text data (issue 18 §1): free-text columns turned into model inputs by a registered featurizer.

A text `Dataset` has ``kind == "text"``, its raw texts in ``dataset.texts`` ({"train", "val", "test"} → list of
str, row-aligned with the features) and, for validation and test, ``split.twin``: the features of each row's
counterfactual twin x̃ (a perturbed column, or the text passed through a perturber), for the paper's Section 6
counterfactual-fairness impact.

Featurizers: ``fn(train_texts, texts_by_split, settings) -> {split: float32 N×D array or scipy sparse matrix}``,
fitted on ``train_texts`` only (the vectorizer never sees validation or test text). "tfidf" is scikit-learn's
`TfidfVectorizer`, its rows kept sparse (`SparseFeatures`: CSR in memory, read dense a batch at a time); other
featurizers (token ids for Hugging Face models) register themselves with `register_featurizer`. Large dense feature
matrices are written to the arrays folder a chunk at a time and read back by rows (`StoredFeatures`).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.feature_extraction.text import TfidfVectorizer

from ..errors import InfluenceError
from .base import Dataset, Split
from .columns import binarise_sensitive, encode_labels
from .prepare import carve_indices
from .registry import register_dataset
from .sparse import SparseFeatures, as_csr
from .storage import CHUNK_ROWS, FEATURES_ON_DISK_BYTES, DiskArray, StoredFeatures, _all_or_nothing, _store

TEXT_MIN_WORDS = 4  # a string column of mostly distinct values this many words long (the median) is free text
TEXT_MIN_DISTINCT = 0.5
TEXT_SEPARATOR = " [SEP] "  # joins several text columns (sentence pairs) into one text
SPLITS = ("train", "val", "test")

Featurizer = Callable[[list[str], dict[str, list[str]], Any], dict[str, np.ndarray]]
FEATURIZERS: dict[str, Featurizer] = {}


def register_featurizer(name: str, fn: Featurizer | None = None):
    """Register ``fn`` as featurizer ``name`` (also usable as a decorator: ``@register_featurizer("name")``)."""
    if fn is None:
        return lambda f: register_featurizer(name, f)
    FEATURIZERS[name] = fn
    return fn


# The largest TF-IDF settings anyone may choose (the CLI, the library and the Data page alike): the model has one
# weight per term and class, and the methods read dense rows a batch at a time (batch × max_features floats).
MAX_NGRAM = 3
MAX_TFIDF_FEATURES = 2**16
MAX_MIN_DF = 1000
# The longest text a row may hold (a long article): one 50 MB cell took 20 s and 1.9 GB to read, and a Review card
# shows its sample's text whole.
MAX_TEXT_CHARS = 100_000


@dataclass(frozen=True)
class TfidfSettings:
    """scikit-learn `TfidfVectorizer` settings: word n-grams 1..``ngram_max``, terms in at least ``min_df`` training
    texts, the ``max_features`` most frequent terms (the model has one weight per term and class), log-scaled term
    counts. Each within 1..`MAX_NGRAM` / `MAX_MIN_DF` / `MAX_TFIDF_FEATURES` (a one-line error otherwise)."""

    ngram_max: int = 2
    min_df: int = 2
    max_features: int = 2**14
    sublinear_tf: bool = True

    def __post_init__(self) -> None:
        for name, cap in (("ngram_max", MAX_NGRAM), ("min_df", MAX_MIN_DF), ("max_features", MAX_TFIDF_FEATURES)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= cap:
                raise InfluenceError(f"TF-IDF setting {name} must be a whole number from 1 to {cap:,}, "
                                     f"not {str(value)[:20]!r}")

    def vectorizer(self) -> TfidfVectorizer:
        return TfidfVectorizer(ngram_range=(1, self.ngram_max), min_df=self.min_df, max_features=self.max_features,
                               sublinear_tf=self.sublinear_tf, dtype=np.float32)


def tfidf_limits() -> dict[str, tuple[int, int]]:
    """(default, cap) of each TF-IDF setting a page offers."""
    caps = {"ngram_max": MAX_NGRAM, "min_df": MAX_MIN_DF, "max_features": MAX_TFIDF_FEATURES}
    return {name: (getattr(TfidfSettings(), name), cap) for name, cap in caps.items()}


def tfidf_settings(ngram_max: int | None = None, min_df: int | None = None,
                   max_features: int | None = None) -> TfidfSettings:
    """`TfidfSettings` with the given values (None = the default): the loaders' and the CLI's keywords."""
    given = {"ngram_max": ngram_max, "min_df": min_df, "max_features": max_features}
    return TfidfSettings(**{k: v for k, v in given.items() if v is not None})


def fit_tfidf(train_texts: list[str], settings: TfidfSettings) -> TfidfVectorizer:
    """The vectorizer fitted on the training texts only."""
    vectorizer = settings.vectorizer()
    try:
        vectorizer.fit(train_texts)
    except ValueError as err:  # "empty vocabulary" / "After pruning, no terms remain"
        raise InfluenceError(f"TF-IDF found no terms in the training texts ({str(err).splitlines()[0]}); "
                             "lower min_df or check the text column") from None
    return vectorizer


@register_featurizer("tfidf")
def tfidf_features(train_texts: list[str], texts_by_split: dict[str, list[str]],
                   settings: TfidfSettings | None = None) -> dict[str, sp.csr_matrix]:
    """float32 CSR TF-IDF rows for each split, the vectorizer fitted on ``train_texts`` only. Kept sparse: a row has a
    few dozen nonzeros, so 100k rows are megabytes where dense rows would be gigabytes (`SparseFeatures`)."""
    vectorizer = fit_tfidf(train_texts, settings or TfidfSettings())
    return {split: as_csr(vectorizer.transform(texts)) for split, texts in texts_by_split.items()}


def _stored_dense(name: str, matrix: sp.csr_matrix, written: list) -> DiskArray:
    """The dense float32 rows of ``matrix`` written to the arrays folder CHUNK_ROWS at a time (memory: one chunk),
    named by content (an equal matrix is stored once)."""
    from .storage import _arrays_folder, write_array

    digest = hashlib.sha256(SparseFeatures(matrix).token()).hexdigest()[:16]
    path = _arrays_folder() / f"{name}-{digest}.npy"
    if path.exists():
        return DiskArray(path)
    chunks = (matrix[s : s + CHUNK_ROWS].toarray() for s in range(0, matrix.shape[0], CHUNK_ROWS))
    try:
        stored = write_array(path, chunks, matrix.shape, "float32")
    except OSError as err:
        raise InfluenceError(f"cannot store '{name}': {err.strerror}; pass on_disk=False") from None
    written.append(path)
    return stored


def detect_text_columns(frame: pd.DataFrame) -> list[str]:
    """The free-text columns of ``frame``: strings whose values are mostly distinct (≥ 50%) and, at the median,
    `TEXT_MIN_WORDS` words or longer."""
    found = []
    for col in frame.columns:
        values = frame[col]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        text = values.dropna().astype(str).str.strip()
        if len(text) and text.nunique() >= TEXT_MIN_DISTINCT * len(text) and text.str.split().str.len().median() >= TEXT_MIN_WORDS:
            found.append(str(col))
    return found


def joined_texts(frame: pd.DataFrame, text_columns: list[str]) -> list[str]:
    """One text per row: the ``text_columns`` (missing cells empty) joined with `TEXT_SEPARATOR`."""
    missing = [c for c in text_columns if c not in frame.columns]
    if missing:
        raise InfluenceError(f"no text column {', '.join(map(repr, missing))}; the columns are: {', '.join(map(str, frame.columns))}")
    parts = [frame[c].fillna("").astype(str).tolist() for c in text_columns]
    for column, texts in zip(text_columns, parts):
        longest = int(np.argmax([len(t) for t in texts])) if texts else 0
        if texts and len(texts[longest]) > MAX_TEXT_CHARS:
            raise InfluenceError(f"the text in row {frame.index[longest]} of column '{column}' has {len(texts[longest]):,} "
                                 f"characters; a text may have at most {MAX_TEXT_CHARS:,}")
    return [TEXT_SEPARATOR.join(p) for p in zip(*parts)] if len(parts) > 1 else parts[0]


def _labels(frames: list[pd.DataFrame], label_column: str) -> tuple[list[np.ndarray], list[str]]:
    """Class indices per frame over one sorted class list (all frames' labels)."""

    for f in frames:
        if label_column not in f.columns:
            raise InfluenceError(f"no label column '{label_column}'; the columns are: {', '.join(map(str, f.columns))}")
    both = pd.concat([f[label_column] for f in frames], ignore_index=True)
    y, classes = encode_labels(both, label_column)
    bounds = np.cumsum([0] + [len(f) for f in frames])
    return [y[a:b] for a, b in zip(bounds[:-1], bounds[1:])], classes


def text_dataset(
    train: pd.DataFrame, val: pd.DataFrame | None = None, test: pd.DataFrame | None = None, *,
    text_columns: list[str], label_column: str, sensitive_column: str | None = None,
    perturbed_column: str | None = None, perturber: Callable[[str], str] | None = None, features: str = "tfidf",
    feature_columns: list[str] | None = None,
    tfidf: TfidfSettings = TfidfSettings(), name: str = "text", seed: int = 0, val_fraction: float = 0.2,
    test_fraction: float = 0.2, on_disk: bool | None = None, meta: dict | None = None, featurizer_settings: Any = None,
) -> Dataset:
    """A text `Dataset` from pandas frames (see the module doc). ``val`` / ``test`` None: carved from ``train`` with
    ``seed`` as tabular uploads are (test first, then validation from the rest, stratified).

    ``source_index`` of a training row (and ``meta["val_source_index"]`` / ``["test_source_index"]``) is its row
    position in the frame it came from. ``sensitive_column``: a binary column (see `binarise_sensitive`).
    ``perturbed_column`` (its text replaces the first text column) or ``perturber`` give the validation and test
    twins. ``feature_columns``: other columns kept as features (numeric standardised, others one-hot, fitted on
    train as for tables), appended to the text features. ``on_disk``: force (True) or forbid (False) features on
    disk; None = past 256 MiB a split."""
    if not text_columns:
        raise InfluenceError("name at least one text column")
    if features not in FEATURIZERS:
        raise InfluenceError(f"unknown text features '{features}'; choose one of: {', '.join(sorted(FEATURIZERS))}")
    given = {"train": train, "val": val, "test": test}
    names = [k for k, f in given.items() if f is not None]
    ys, classes = _labels([given[k] for k in names], label_column)
    y_of = dict(zip(names, ys))
    rows = {"train": np.arange(len(train))}  # positions in the frames; the frames' own index is the source index
    frames = {"train": train}
    if test is None:
        keep, cut = carve_indices(len(train), test_fraction, seed, labels=y_of["train"])
        rows.update(train=keep, test=cut)
        frames["test"] = train
    else:
        rows["test"], frames["test"] = np.arange(len(test)), test
    if val is None:
        tr, va = carve_indices(len(rows["train"]), val_fraction, seed + 1, labels=y_of["train"][rows["train"]])
        rows.update(train=rows["train"][tr], val=rows["train"][va])
        frames["val"] = train
    else:
        rows["val"], frames["val"] = np.arange(len(val)), val
    y_src = {"train": y_of["train"], "val": y_of.get("val", y_of["train"]), "test": y_of.get("test", y_of["train"])}
    parts = {s: frames[s].iloc[rows[s]] for s in SPLITS}
    texts = {s: joined_texts(parts[s], text_columns) for s in SPLITS}

    twins: dict[str, list[str]] = {}
    if perturbed_column is not None:
        for s in ("val", "test"):
            if perturbed_column not in parts[s].columns:
                _no_column(perturbed_column, parts[s])
            twins[s] = joined_texts(parts[s].assign(**{text_columns[0]: parts[s][perturbed_column]}), text_columns)
    elif perturber is not None:
        twins = {s: [perturber(t) for t in texts[s]] for s in ("val", "test")}

    settings = tfidf if features == "tfidf" else featurizer_settings  # e.g. models/hf.py's TokenSettings for "hf"
    feats = FEATURIZERS[features](texts["train"], {**texts, **{f"{s}_twin": t for s, t in twins.items()}}, settings)
    if feature_columns:
        feats = _with_columns(feats, parts, list(feature_columns))
    sens = {s: None for s in SPLITS}
    s_name = None
    if sensitive_column is not None:

        for s in SPLITS:
            if sensitive_column not in parts[s].columns:
                _no_column(sensitive_column, parts[s])
        whole = pd.concat([parts[s][sensitive_column] for s in SPLITS], ignore_index=True)
        values, s_name = binarise_sensitive(whole, sensitive_column)
        bounds = np.cumsum([0] + [len(parts[s]) for s in SPLITS])
        sens = {s: values[a:b] for s, a, b in zip(SPLITS, bounds[:-1], bounds[1:])}

    splits = {}
    with _all_or_nothing() as written:  # a refused data set leaves no feature files behind
        def make(key: str, y: np.ndarray, s: np.ndarray | None, twin: Split | None = None) -> Split:
            return Split(_as_input(f"{name}-{key}", feats[key], on_disk, written), torch.from_numpy(y.astype(np.int64)),
                         None if s is None else torch.from_numpy(s.astype(np.int64)), twin)

        for s in SPLITS:
            y = y_src[s][rows[s]]
            twin = make(f"{s}_twin", y, sens[s]) if f"{s}_twin" in feats else None
            splits[s] = make(s, y, sens[s], twin)
    info = dict(meta or {})
    info.update(text_columns=list(text_columns), feature_columns=list(feature_columns or []),
                label_column=label_column, sensitive_column=sensitive_column,
                perturbed_column=perturbed_column, features=features, seed=seed,
                tfidf=asdict(tfidf) if features == "tfidf" else None,
                featurizer_settings=(asdict(featurizer_settings) if is_dataclass(featurizer_settings)
                                     else featurizer_settings) if features != "tfidf" else None,
                val_source_index=_source(frames["val"], rows["val"]).tolist(),
                test_source_index=_source(frames["test"], rows["test"]).tolist(),
                splits="given" if val is not None and test is not None else "carved")
    return Dataset(name=name, train=splits["train"], val=splits["val"], test=splits["test"], classes=classes,
                   kind="text", source_index=torch.from_numpy(_source(frames["train"], rows["train"])),
                   sensitive_name=s_name, meta=info, texts=texts)


def _source(frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """The source positions of ``rows``: the frame's own integer index (a file's line numbers, for frames cut from
    one table), else the positions."""
    index = frame.index
    if pd.api.types.is_integer_dtype(index):
        return index.to_numpy()[rows].astype(np.int64)
    return rows.astype(np.int64)


def _with_columns(feats: dict, parts: dict[str, pd.DataFrame], columns: list[str]) -> dict:
    """The text features with ``columns`` appended, encoded as tabular features are (fitted on the training rows)."""
    from .tabular import _encoder, refuse_infinite

    for c in columns:
        if c not in parts["train"].columns:
            _no_column(c, parts["train"])
    refuse_infinite(parts["train"][columns])
    enc = _encoder(parts["train"][columns], sum(len(parts[key.removesuffix("_twin")]) for key in feats))
    enc.fit(parts["train"][columns])
    out = {}
    for key, x in feats.items():
        extra = enc.transform(parts[key.removesuffix("_twin")][columns]).astype(np.float32)
        out[key] = (as_csr(sp.hstack([x, sp.csr_matrix(extra)])) if sp.issparse(x)
                    else np.hstack([np.asarray(x, dtype=np.float32), extra]))
    return out


def _no_column(column: str, frame: pd.DataFrame):
    raise InfluenceError(f"no column '{column}'; the columns are: {', '.join(map(str, frame.columns))}")


def _as_input(name: str, x, on_disk: bool | None, written: list) -> torch.Tensor | StoredFeatures | SparseFeatures:
    """A featurizer's output as a split's features: a sparse matrix stays sparse (CSR in memory; ``on_disk=True``:
    dense float32 rows on disk), a memory-mapped file stays on disk (read by rows), a large dense array is stored
    (unless ``on_disk`` is False), a small one stays in memory."""
    if sp.issparse(x):
        return StoredFeatures(_stored_dense(name, as_csr(x), written)) if on_disk else SparseFeatures(x)
    if isinstance(x, np.memmap) and on_disk is not False:
        return StoredFeatures(DiskArray(x.filename))
    x = np.asarray(x)
    if on_disk or (on_disk is None and x.nbytes > FEATURES_ON_DISK_BYTES and x.dtype == np.float32):
        return StoredFeatures(_store(name, np.asarray(x, dtype=np.float32), written))
    return torch.from_numpy(np.array(x, dtype=np.float32))


# ------------------------------------------------------------------------------------------- generated text
_SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de", "va", "zu", "he", "fo", "gi", "ba", "ye"]


def _words(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    """``n`` new pseudo-words of three syllables (none in ``taken``)."""
    out: list[str] = []
    while len(out) < n:
        w = "".join(rng.choice(_SYLLABLES, size=3))
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


def generated_text_frame(n: int, num_classes: int = 4, seed: int = 0, topic_rate: float = 0.3,
                         confusion_rate: float = 0.1) -> pd.DataFrame:
    """``n`` generated documents (columns "text", "label"): 6–16 words each; a word is from the document's own
    topic vocabulary with probability ``topic_rate``, from another topic's with ``confusion_rate``, else from a
    shared vocabulary. The vocabularies depend on ``num_classes`` only (fixed seed), the documents on ``seed``."""
    vocab_rng, rng = np.random.default_rng(1234), np.random.default_rng(seed)
    taken: set[str] = set()
    topics = [_words(vocab_rng, 40, taken) for _ in range(num_classes)]
    shared = _words(vocab_rng, 300, taken)
    labels = rng.integers(0, num_classes, size=n)
    docs = []
    for c in labels:
        length = int(rng.integers(6, 17))
        draw = rng.random(length)
        words = []
        for u in draw:
            if u < topic_rate:
                words.append(topics[c][rng.integers(40)])
            elif u < topic_rate + confusion_rate:
                other = (c + rng.integers(1, num_classes)) % num_classes
                words.append(topics[other][rng.integers(40)])
            else:
                words.append(shared[rng.integers(len(shared))])
        docs.append(" ".join(words))
    return pd.DataFrame({"text": docs, "label": [f"topic {c}" for c in labels]})


@register_dataset("text-topics", "Generated short documents on 4 topics (TF-IDF features; 1,000 train / 300 val / "
                                 "300 test), 10% of training labels moved to another topic")
def load_text_topics(seed: int = 0, n_train: int = 1000, n_val: int = 300, n_test: int = 300,
                     label_noise: float = 0.1, ngram_max: int | None = None, min_df: int | None = None,
                     max_features: int | None = None) -> Dataset:
    """`generated_text_frame` as a text data set, with ``label_noise`` of the training labels moved (the noise mask
    and clean labels kept for scoring detectors); ``ngram_max`` / ``min_df`` / ``max_features``: `TfidfSettings`."""
    for what, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if int(n) < 20:
            raise InfluenceError(f"text-topics: {what} must be at least 20, got {n}")
    frame = generated_text_frame(n_train + n_val + n_test, seed=seed)
    parts = frame.iloc[:n_train], frame.iloc[n_train : n_train + n_val], frame.iloc[n_train + n_val :]
    ds = text_dataset(*(p.reset_index(drop=True) for p in parts), text_columns=["text"], label_column="label",
                      name="text-topics", seed=seed, meta={"source": "generated"},
                      tfidf=tfidf_settings(ngram_max, min_df, max_features))
    from .prepare import with_label_noise

    return with_label_noise(ds, label_noise, seed=seed, include_val=False) if label_noise > 0 else ds
