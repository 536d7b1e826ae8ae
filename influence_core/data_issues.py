"""Data issues beyond wrong labels, found by cleanlab's ``Datalab`` (its checks, not ours): (near) duplicates,
outliers, non-IID ordering, class imbalance, underperforming groups and wrong labels on the model's penultimate
features and predicted probabilities (out of fold when fold models are given), and for images cleanvision's checks
(dark, light, blurry, low information, odd aspect ratio or size, grayscale) through Datalab's ``image_key`` path.

    issues = find_data_issues(dataset, fitted)          # DataIssues
    issues.table                                        # sample, index, issue, score (lower = more likely), is_issue
    issues.duplicate_sets                               # [[3, 17], [40, 41, 95], ...] training rows
    issues.summary()                                    # issue, count, share

Each issue type is also a ranking (`rankings`): one score per training row, lower = more likely an issue, as
Datalab's quality scores are. ``exact_duplicate`` is Datalab's near-duplicate check where it scores 0 ("a score of 0
indicates that an example has an exact duplicate", cleanlab's ``_compute_scores_with_exp_transform``).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .data.base import Dataset
from .errors import InfluenceError
from .grads import Progress
from .models.train import FittedModel

# Datalab's checks on features and probabilities, and cleanvision's image checks (Datalab's names = ours)
FEATURE_CHECKS = ("label", "near_duplicate", "outlier", "non_iid", "class_imbalance", "underperforming_group")
IMAGE_CHECKS = ("dark", "light", "blurry", "low_information", "odd_aspect_ratio", "odd_size", "grayscale")
# every issue type a table may hold, in the order summaries list them
ISSUE_TYPES = ("label", "exact_duplicate", "near_duplicate", "outlier", "non_iid", "class_imbalance",
               "underperforming_group") + IMAGE_CHECKS
COLUMNS = ("sample", "index", "issue", "score", "is_issue")
FEATURE_SOURCES = ("model", "pixels")
PIXEL_SIDE = 8  # "pixels" features: each image average-pooled to 8×8 per channel
# Methods whose scores add up over a group (first-order: removing a group changes f by about the sum of its
# members' scores), so a duplicate group's summed score says what the group does to the impact
ADDITIVE_METHODS = ("ip", "ip_ensemble", "exact", "lissa", "ekfac", "datainf", "tracin", "tda")
IMPACT_QUANTITY = {"utility": "the validation loss", "fairness": "the fairness gap", "robustness": "the loss under attack"}
LAST_RUN_FILE = "data_issues.json"  # in a project folder: the folds and settings of its last Datalab run
MAX_K = 200  # neighbours a browser may ask for


@dataclass(frozen=True)
class DataIssueSettings:
    """Which of Datalab's checks run and with how many neighbours (``k``, Datalab's default 10); ``image_checks``
    (cleanvision's, images only) run on the raw pixels; ``near_duplicate_threshold``: Datalab's, a pair closer than
    this × the median nearest-neighbour distance is a near duplicate (its default 0.13; bench/results/datalab.md
    measures larger ones); ``features``: what the neighbour checks compare — the model's penultimate features, or
    for images the pixels at 8×8 (what finds images from another source when the model has learnt to place them
    among its classes; bench/results/datalab.md). Defaults: every check, fast enough for a few thousand rows."""

    checks: tuple[str, ...] = FEATURE_CHECKS
    image_checks: tuple[str, ...] = IMAGE_CHECKS
    k: int = 10
    near_duplicate_threshold: float = 0.13
    features: str = "model"  # "model": penultimate features; "pixels" (images): each image at 8×8, standardised

    def __post_init__(self) -> None:
        for name, allowed in (("checks", FEATURE_CHECKS), ("image_checks", IMAGE_CHECKS)):
            unknown = [c for c in getattr(self, name) if c not in allowed]
            if unknown:
                raise InfluenceError(f"unknown data check '{unknown[0]}'; choose among: {', '.join(allowed)}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= MAX_K:
            raise InfluenceError(f"k (neighbours) must be a whole number from 1 to {MAX_K}, not {str(self.k)[:20]}")
        if self.features not in FEATURE_SOURCES:
            raise InfluenceError(f"features must be one of: {', '.join(FEATURE_SOURCES)}, not {str(self.features)[:20]!r}")
        if not isinstance(self.near_duplicate_threshold, (int, float)) or not 0 < self.near_duplicate_threshold <= 10:
            raise InfluenceError("near_duplicate_threshold must be a number in (0, 10] (× the median neighbour distance)")

    def key(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DataIssues:
    """What Datalab found: ``table`` has one row per (training row, issue type) with columns `COLUMNS` (``score``:
    lower = more likely an issue; ``is_issue``: Datalab's own decision); ``duplicate_sets``: groups of training rows
    that are exact or near duplicates of each other (each sorted, the groups by their first row)."""

    table: pd.DataFrame
    duplicate_sets: list[list[int]] = field(default_factory=list)
    out_of_fold: bool = False

    def summary(self) -> pd.DataFrame:
        """issue, count (flagged), share (of the training rows), one row per issue type that was checked."""
        rows = []
        n = int(self.table["sample"].max()) + 1 if len(self.table) else 0
        for issue in [i for i in ISSUE_TYPES if i in set(self.table["issue"])]:
            part = self.table[self.table["issue"] == issue]
            count = int(part["is_issue"].sum())
            rows.append({"issue": issue, "count": count, "share": count / max(len(part), n, 1)})
        return pd.DataFrame(rows, columns=["issue", "count", "share"])

    def rankings(self) -> dict[str, np.ndarray]:
        """issue type → one score per training row (lower = more likely an issue)."""
        out = {}
        for issue, part in self.table.groupby("issue", sort=False):
            scores = np.full(int(self.table["sample"].max()) + 1, np.nan)
            scores[part["sample"].to_numpy()] = part["score"].to_numpy(dtype=np.float64)
            out[str(issue)] = scores
        return {i: out[i] for i in ISSUE_TYPES if i in out}

    def flagged(self, issue: str) -> np.ndarray:
        """Training rows Datalab flags with ``issue`` (sorted)."""
        part = self.table[(self.table["issue"] == issue) & self.table["is_issue"]]
        return np.sort(part["sample"].to_numpy(dtype=np.int64))

    # storage: plain arrays (an .npz without pickles) and back
    def to_arrays(self) -> dict[str, np.ndarray]:
        sets = self.duplicate_sets
        return {"sample": self.table["sample"].to_numpy(np.int64), "index": self.table["index"].to_numpy(np.int64),
                "issue": self.table["issue"].to_numpy().astype(str), "score": self.table["score"].to_numpy(np.float64),
                "is_issue": self.table["is_issue"].to_numpy(bool),
                "set_rows": np.array([r for s in sets for r in s], dtype=np.int64),
                "set_sizes": np.array([len(s) for s in sets], dtype=np.int64),
                "out_of_fold": np.array(self.out_of_fold)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "DataIssues":
        table = pd.DataFrame({c: arrays[c] for c in COLUMNS})
        table["issue"] = table["issue"].astype(str)
        bounds = np.cumsum(np.concatenate([[0], arrays["set_sizes"]]))
        sets = [arrays["set_rows"][a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:])]
        return cls(table, sets, bool(arrays["out_of_fold"]))


def is_image_dataset(dataset: Dataset) -> bool:
    """Whether the training split holds images (also behind a backbone's embeddings, which keep their pixels)."""
    return dataset.kind == "image" or getattr(dataset.train, "pixels", None) is not None


def image_records(dataset: Dataset, batch: int = 512):
    """The training images as a Hugging Face ``datasets.Dataset`` with one ``image`` column of PIL images (what
    Datalab's ``image_key`` path hands to cleanvision)."""
    try:
        import cleanvision  # noqa: F401  (Datalab runs its checks)
        from datasets import Dataset as HFDataset, Features, Image as ImageFeature
    except ImportError:
        raise InfluenceError("the image checks need cleanvision and datasets (pip install -r requirements.txt), or "
                             "run without them (image_checks=())") from None
    from PIL import Image

    from .export import images_uint8

    n, images = len(dataset.train), []
    for start in range(0, n, batch):
        for img in images_uint8(dataset, np.arange(start, min(n, start + batch))):
            images.append(Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img))
    return HFDataset.from_dict({"image": images}, features=Features({"image": ImageFeature()}))


def pixel_features(dataset: Dataset, batch: int = 512) -> np.ndarray:
    """Each training image average-pooled to `PIXEL_SIDE`² per channel and standardised on its own (brightness and
    contrast left out): a model-free embedding for Datalab's neighbour checks."""
    import torch

    from .export import images_uint8

    out = []
    for start in range(0, len(dataset.train), batch):
        imgs = images_uint8(dataset, np.arange(start, min(len(dataset.train), start + batch)))
        pooled = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(imgs).permute(0, 3, 1, 2).double(), PIXEL_SIDE)
        out.append(pooled.flatten(1).numpy())
    x = np.concatenate(out)
    return (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-6)


def find_data_issues(dataset: Dataset, fitted: FittedModel, *, fold_models: list[FittedModel] | None = None,
                     settings: DataIssueSettings = DataIssueSettings(), progress: Progress | None = None,
                     folds: int | None = None) -> DataIssues:
    """Run cleanlab's Datalab on ``fitted``'s penultimate features and predicted probabilities of the training split
    (out of fold from ``fold_models`` when given, ``folds`` parts, default their number) — and cleanvision's image
    checks on image data — and return what it found (`DataIssues`; scores: lower = more likely an issue)."""
    from .analysis import penultimate_features
    from .api import out_of_fold_probabilities, predicted_probabilities
    from .data.originals import source_rows
    from .folds import FoldSettings

    report = progress or (lambda fraction, message: None)
    report(0.02, "penultimate features" if settings.features == "model" else "pixel features")
    if settings.features == "pixels":
        if not is_image_dataset(dataset):
            raise InfluenceError("features='pixels' needs image data; use the model's features for this data set")
        features = pixel_features(dataset)
    else:
        features = penultimate_features(fitted, dataset.train)
    report(0.15, "predicted probabilities" + (" (out of fold)" if fold_models else ""))
    if fold_models:
        probs = out_of_fold_probabilities(dataset, fold_models, FoldSettings(int(folds or len(fold_models))))
    else:
        probs = predicted_probabilities(dataset, fitted)
    labels = dataset.train.y.numpy()
    images = is_image_dataset(dataset) and bool(settings.image_checks)
    data: dict = {"label": labels}
    if images:
        report(0.25, "images for cleanvision")
        data = image_records(dataset).add_column("label", labels.tolist())
    report(0.35, "Datalab: " + ", ".join(settings.checks + (settings.image_checks if images else ())))
    lab = run_datalab(data, features, probs, settings, image_key="image" if images else None)
    report(0.95, "collecting the issues")
    table, sets = collect(lab, settings, images)
    table.insert(1, "index", source_rows(dataset, "train")[table["sample"].to_numpy()])
    report(1.0, "done")
    return DataIssues(table, sets, bool(fold_models))


def datalab_issue_types(settings: DataIssueSettings, images: bool) -> dict:
    """The ``issue_types`` argument of ``Datalab.find_issues`` for ``settings`` (k for the neighbour checks)."""
    kwargs = {"near_duplicate": {"k": settings.k, "threshold": float(settings.near_duplicate_threshold)},
              "outlier": {"k": settings.k}, "non_iid": {"k": settings.k}, "underperforming_group": {"k": settings.k}}
    types = {c: kwargs.get(c, {}) for c in settings.checks}
    if images:
        types["image_issue_types"] = {c: {} for c in settings.image_checks}
    return types


def run_datalab(data, features: np.ndarray, probs: np.ndarray, settings: DataIssueSettings, image_key: str | None = None):
    """``Datalab(data, label_name="label").find_issues(...)`` with its console output and warnings kept quiet."""
    from cleanlab import Datalab

    if len(features) <= settings.k:
        raise InfluenceError(f"Datalab needs more training samples ({len(features)}) than neighbours (k = {settings.k})")
    lab = Datalab(data=data, label_name="label", image_key=image_key, verbosity=0)
    quiet = io.StringIO()  # Datalab prints, cleanvision draws tqdm bars on stderr
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab.find_issues(features=np.asarray(features, dtype=np.float64), pred_probs=probs,
                        issue_types=datalab_issue_types(settings, image_key is not None))
    return lab


def collect(lab, settings: DataIssueSettings, images: bool) -> tuple[pd.DataFrame, list[list[int]]]:
    """Datalab's per-sample issues as our long table (sample, issue, score, is_issue) and the duplicate groups."""
    issues = lab.get_issues()
    n = len(issues)
    frames = []
    names = list(settings.checks) + (list(settings.image_checks) if images else [])
    for name in names:
        score_col, flag_col = f"{name}_score", f"is_{name}_issue"
        if score_col not in issues:  # a check Datalab skipped (e.g. too little data for it)
            continue
        frames.append(_rows(name, issues[score_col].to_numpy(np.float64), issues[flag_col].to_numpy(bool)))
        if name == "near_duplicate":  # cleanlab: "a score of 0 indicates that an example has an exact duplicate"
            scores = issues[score_col].to_numpy(np.float64)
            frames.append(_rows("exact_duplicate", scores, scores == 0.0))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["sample", "issue", "score", "is_issue"])
    sets: list[list[int]] = []
    if "near_duplicate" in settings.checks and "near_duplicate_score" in issues:
        sets = duplicate_groups(lab.get_info("near_duplicate")["near_duplicate_sets"], n)
    return table, sets


def _rows(issue: str, scores: np.ndarray, flags: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"sample": np.arange(len(scores), dtype=np.int64), "issue": issue,
                         "score": np.nan_to_num(scores, nan=1.0), "is_issue": flags.astype(bool)})


def duplicate_groups(near_duplicate_sets, n: int) -> list[list[int]]:
    """Datalab's per-sample near-duplicate sets joined into groups (connected components of size ≥ 2)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows = [i for i, s in enumerate(near_duplicate_sets) for _ in s]
    cols = [int(j) for s in near_duplicate_sets for j in s]
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    members = pd.Series(np.arange(n)).groupby(component).apply(list)
    return sorted((sorted(int(r) for r in m) for m in members if len(m) > 1), key=lambda g: g[0])


def issue_label(issue: str) -> str:
    """The ranking's label other pages show: "issue: near duplicate"."""
    return "issue: " + issue.replace("_", " ")


def stored_data_issues(store, dataset: Dataset, fitted: FittedModel, *, folds: int = 0, fold_models=None,
                       settings: DataIssueSettings = DataIssueSettings(), progress: Progress | None = None,
                       memo_scope: str = "") -> DataIssues:
    """`find_data_issues` through the store (``store``: a `Workspace`; key `keys.data_issues_key`) and the memory
    layer: computed once per data, model, settings and folds. ``fold_models()``: the K fold models, asked for only
    when the result is not stored."""
    from .keys import data_issues_key, hash_key
    from .memo import MEMORY

    key = hash_key(data_issues_key(dataset, fitted, settings, folds))

    def compute() -> dict[str, np.ndarray]:
        report = progress or (lambda fraction, message: None)
        models = None
        if folds:
            report(0.0, f"{folds} fold models")
            models = fold_models(lambda f, m: report(0.5 * f, f"fold models: {m}"))
        inner = report if not folds else (lambda f, m: report(0.5 + 0.5 * f, m))
        return find_data_issues(dataset, fitted, fold_models=models, settings=settings, progress=inner,
                                folds=folds or None).to_arrays()

    def load() -> DataIssues:
        return DataIssues.from_arrays(store.get_or_compute_arrays("data_issues", key, compute))

    return MEMORY.get("results", f"{memo_scope}:data_issues:{key}", load)


def has_stored_data_issues(store, dataset: Dataset, fitted: FittedModel, *, folds: int = 0,
                           settings: DataIssueSettings = DataIssueSettings()) -> bool:
    from .keys import data_issues_key, hash_key

    return store.has_entry("data_issues", hash_key(data_issues_key(dataset, fitted, settings, folds)), ".npz")


def make_settings(settings: "DataIssueSettings | dict | None") -> DataIssueSettings:
    """``settings`` as `DataIssueSettings` (a dict's keys checked: an unknown one is a one-line error)."""
    if isinstance(settings, DataIssueSettings):
        return settings
    known = set(DataIssueSettings.__dataclass_fields__)
    unknown = sorted(set(settings or {}) - known)
    if unknown:
        raise InfluenceError(f"unknown data issue setting '{str(unknown[0])[:40]}'; choose among: {', '.join(sorted(known))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in (settings or {}).items()}
    return DataIssueSettings(**values)


def last_run(project_folder) -> tuple[int, DataIssueSettings]:
    """The folds and settings of a project's last Datalab run ((0, defaults): in-sample, or never run)."""
    import json
    from pathlib import Path

    try:
        record = json.loads((Path(project_folder) / LAST_RUN_FILE).read_text())
        return int(record.get("folds", 0)), make_settings(record.get("settings"))
    except (OSError, ValueError, AttributeError, TypeError, InfluenceError):
        return 0, DataIssueSettings()


def group_influence(groups: list[list[int]], scores: np.ndarray, index: np.ndarray, impact: str = "utility") -> pd.DataFrame:
    """What influence adds to Datalab's duplicate groups: each group's samples (original index), size, summed score
    (≈ the change in f if the whole group were removed, up to a positive factor) and what that means in words;
    the most detrimental group first."""
    quantity = IMPACT_QUANTITY.get(impact, f"the {impact} impact")
    rows = []
    for group in groups:
        total = float(np.sum(np.asarray(scores, np.float64)[group]))
        rows.append({"samples": ", ".join(str(int(index[r])) for r in group), "size": len(group), "summed score": total,
                     "effect": (f"pulls {quantity} up (removing it would lower it)" if total < 0 else
                                f"holds {quantity} down (removing it would raise it)")})
    frame = pd.DataFrame(rows, columns=["samples", "size", "summed score", "effect"])
    return frame.sort_values("summed score", kind="stable").reset_index(drop=True)
