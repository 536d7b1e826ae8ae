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
`stored_data_issues` keeps a result in the workspace (key `keys.data_issues_key`, an ``.npz`` without pickles) and in
the memory layer; ``Project.find_data_issues`` / ``data_issues`` / ``issue_rankings`` are the facade over it.
"""

from __future__ import annotations

import contextlib
import io
from importlib import import_module
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
# Near duplicates of images (bench/results/datalab_near_duplicates.md): Datalab's near-duplicate check on a descriptor
# made for it — each image's blurred colour thumbnail (DESCRIPTOR_SIDE² per channel) and gradient-orientation
# histograms (HOG_CELLS² cells × HOG_BINS), each standardised, projected onto the DESCRIPTOR_DIMS directions that vary
# most between images relative to how they move under crops — through a k-NN graph whose distances are locally scaled
# (d_ij / √(σ_i σ_j), σ = distance to the LOCAL_SCALE_K-th neighbour)
NEAR_DUPLICATE_SOURCES = ("descriptor", "features")
DESCRIPTOR_SIDE, DESCRIPTOR_DIMS, DESCRIPTOR_WORK_SIDE = 8, 48, 32
HOG_CELLS, HOG_BINS = 4, 8
DESCRIPTOR_FIT_ROWS = 2000  # images the projection is fitted on (a random subset of larger sets)
CROP_SIDE = (0.75, 0.97)  # the crops it is made invariant to: this share of each side, anywhere in the image
LOCAL_SCALE_K = 5
DATALAB_NEAR_DUPLICATE_THRESHOLD = 0.13  # Datalab's default, on the model's (or pixel) features
DESCRIPTOR_NEAR_DUPLICATE_THRESHOLD = 0.6  # on the descriptor's locally scaled graph (tuned on the bench)
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
    this × the median nearest-neighbour distance is a near duplicate (None: 0.13, Datalab's default, on features;
    0.6 on the image descriptor); ``features``: what the neighbour checks compare — the model's penultimate
    features, or for images the pixels at 8×8 (what finds images from another source when the model has learnt to
    place them among its classes; bench/results/datalab.md); ``near_duplicates``: for images, "descriptor" (a
    crop-invariant descriptor, `near_duplicate_descriptor`: recall 0.97 on crops + jitter where the model's
    features find 0.05; bench/results/datalab_near_duplicates.md) or "features" (the neighbour checks' features); tables and text always use the features.
    Defaults: every check, fast enough for a few thousand rows."""

    checks: tuple[str, ...] = FEATURE_CHECKS
    image_checks: tuple[str, ...] = IMAGE_CHECKS
    k: int = 10
    near_duplicate_threshold: float | None = None
    features: str = "model"  # "model": penultimate features; "pixels" (images): each image at 8×8, standardised
    near_duplicates: str = "descriptor"  # images: "descriptor" or "features"

    def __post_init__(self) -> None:
        for name, allowed in (("checks", FEATURE_CHECKS), ("image_checks", IMAGE_CHECKS)):
            unknown = [c for c in getattr(self, name) if c not in allowed]
            if unknown:
                raise InfluenceError(f"unknown data check '{unknown[0]}'; choose among: {', '.join(allowed)}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= MAX_K:
            raise InfluenceError(f"k (neighbours) must be a whole number from 1 to {MAX_K}, not {str(self.k)[:20]}")
        if self.features not in FEATURE_SOURCES:
            raise InfluenceError(f"features must be one of: {', '.join(FEATURE_SOURCES)}, not {str(self.features)[:20]!r}")
        threshold = self.near_duplicate_threshold
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not 0 < threshold <= 10):
            raise InfluenceError("near_duplicate_threshold must be a number in (0, 10] (× the median neighbour distance)")
        if self.near_duplicates not in NEAR_DUPLICATE_SOURCES:
            raise InfluenceError(f"near_duplicates must be one of: {', '.join(NEAR_DUPLICATE_SOURCES)}, "
                                 f"not {str(self.near_duplicates)[:20]!r}")

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
        if self.table.empty:
            return {}
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
        import_module("cleanvision")  # Datalab runs its checks
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


def _thumbnails(images: "torch.Tensor") -> np.ndarray:
    """N×C×H×W images → each blurred (3×3 mean), average-pooled to `DESCRIPTOR_SIDE`² per channel and standardised
    on its own (brightness and contrast left out)."""
    import torch

    x = torch.nn.functional.avg_pool2d(images, 3, 1, 1, count_include_pad=False)
    x = torch.nn.functional.adaptive_avg_pool2d(x, DESCRIPTOR_SIDE).flatten(1).numpy()
    return (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-6)


def _gradient_histograms(images: "torch.Tensor") -> np.ndarray:
    """N×C×H×W images → histograms of gradient orientation (HOG-like: `HOG_BINS` unsigned orientations, each gradient
    split between its two nearest bins by angle and weighted by its magnitude, 5×5-smoothed, pooled over
    `HOG_CELLS`² cells, square-rooted) of the blurred grey image, standardised on their own: edges shifted by a few
    pixels stay in their cell, so a crop changes them less than it changes pixels."""
    import torch

    functional = torch.nn.functional
    grey = images.mean(1, keepdim=True) if images.shape[1] != 3 else (
        images * torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    grey = functional.avg_pool2d(grey, 3, 1, 1, count_include_pad=False)
    gx = functional.pad(grey[..., :, 2:] - grey[..., :, :-2], (1, 1, 0, 0))  # central differences
    gy = functional.pad(grey[..., 2:, :] - grey[..., :-2, :], (0, 0, 1, 1))
    magnitude, position = (gx ** 2 + gy ** 2).sqrt(), torch.atan2(gy, gx) % np.pi / np.pi * HOG_BINS
    low, weight = position.floor().long() % HOG_BINS, position - position.floor()
    histograms = torch.zeros(len(images), HOG_BINS, *images.shape[-2:], dtype=images.dtype)
    histograms.scatter_add_(1, low, magnitude * (1 - weight)).scatter_add_(1, (low + 1) % HOG_BINS, magnitude * weight)
    histograms = functional.avg_pool2d(histograms, 5, 1, 2, count_include_pad=False)
    h = np.sqrt(functional.adaptive_avg_pool2d(histograms, HOG_CELLS).flatten(1).numpy())
    return (h - h.mean(1, keepdims=True)) / (h.std(1, keepdims=True) + 1e-6)


def _descriptor_parts(images: "torch.Tensor") -> np.ndarray:
    """What the near-duplicate descriptor projects: `_thumbnails` and `_gradient_histograms` side by side."""
    return np.concatenate([_thumbnails(images), _gradient_histograms(images)], axis=1)


def random_crops(images: "torch.Tensor", generator: "torch.Generator") -> "torch.Tensor":
    """Each image cropped to a random `CROP_SIDE` share of its sides at a random place and resized back (bilinear)."""
    import torch

    n = len(images)
    side = torch.empty(n, dtype=torch.float64).uniform_(*CROP_SIDE, generator=generator)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = theta[:, 1, 1] = side
    theta[:, :, 2] = (torch.rand(n, 2, generator=generator, dtype=torch.float64) * 2 - 1) * (1 - side)[:, None]
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    return torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def near_duplicate_descriptor(dataset: Dataset, *, seed: int = 0, batch: int = 512) -> np.ndarray:
    """A descriptor of each training image made for finding near duplicates (crops, colour jitter): its blurred
    standardised thumbnail and gradient histograms (`_descriptor_parts`, at any image size: resized to
    `DESCRIPTOR_WORK_SIDE` first) projected onto the `DESCRIPTOR_DIMS` directions v maximising vᵀΣ_images v /
    vᵀΣ_crops v — Σ_images the parts' covariance, Σ_crops that of the change a random crop (`random_crops`) makes —
    fitted on the data set's own images (a generalised eigenproblem)."""
    import torch
    from scipy.linalg import eigh

    from .export import images_uint8

    n = len(dataset.train)
    rng = np.random.default_rng(seed)
    fit = np.sort(rng.choice(n, DESCRIPTOR_FIT_ROWS, replace=False)) if n > DESCRIPTOR_FIT_ROWS else np.arange(n)
    thumbs, kept = [], []  # every image's parts; the fitting images themselves, at the working size
    for start in range(0, n, batch):
        rows = np.arange(start, min(n, start + batch))
        x = torch.from_numpy(images_uint8(dataset, rows)).permute(0, 3, 1, 2).double()
        if x.shape[-2:] != (DESCRIPTOR_WORK_SIDE, DESCRIPTOR_WORK_SIDE):
            x = torch.nn.functional.interpolate(x, size=(DESCRIPTOR_WORK_SIDE, DESCRIPTOR_WORK_SIDE), mode="bilinear",
                                                align_corners=False, antialias=True)
        thumbs.append(_descriptor_parts(x))
        kept.append(x[torch.from_numpy(np.isin(rows, fit))])
    thumbs, images = np.concatenate(thumbs), torch.cat(kept)
    generator = torch.Generator().manual_seed(seed)
    moved = np.concatenate([_descriptor_parts(random_crops(images, generator)) - thumbs[fit] for _ in range(2)])
    dims = thumbs.shape[1]
    between = np.cov(thumbs[fit], rowvar=False) + 1e-6 * np.eye(dims)
    within = moved.T @ moved / len(moved) + 1e-3 * np.eye(dims)
    values, vectors = eigh(between, within)
    projection = vectors[:, np.argsort(values)[::-1][:min(DESCRIPTOR_DIMS, dims)]]
    return (thumbs - thumbs[fit].mean(0)) @ projection


def locally_scaled_knn_graph(features: np.ndarray, k: int):
    """Datalab's k-NN graph of ``features`` (cleanlab's own, cosine, exact duplicates at distance 0) with each
    distance locally scaled, d_ij / √(σ_i σ_j), σ_i = i's distance to its `LOCAL_SCALE_K`-th neighbour
    (Zelnik-Manor & Perona's local scaling): a pair much closer than their neighbourhoods stands out in dense and
    sparse regions alike. Each row re-sorted by the scaled distance."""
    from cleanlab.internal.neighbor.knn_graph import create_knn_graph_and_index
    from scipy.sparse import csr_matrix

    graph, _ = create_knn_graph_and_index(np.asarray(features, np.float64), n_neighbors=k, metric="cosine")
    n = graph.shape[0]
    distances, neighbours = graph.data.reshape(n, k), graph.indices.reshape(n, k)
    sigma = np.maximum(distances[:, min(LOCAL_SCALE_K, k) - 1], 1e-12)
    scaled = distances / np.sqrt(sigma[:, None] * sigma[neighbours])
    order = np.argsort(scaled, axis=1, kind="stable")
    return csr_matrix((np.take_along_axis(scaled, order, 1).ravel(), np.take_along_axis(neighbours, order, 1).ravel(),
                       np.arange(0, n * k + 1, k)), shape=(n, n))


def find_data_issues(dataset: Dataset, fitted: FittedModel, *, fold_models: list[FittedModel] | None = None,
                     settings: DataIssueSettings = DataIssueSettings(), progress: Progress | None = None,
                     folds: int | None = None) -> DataIssues:
    """Run cleanlab's Datalab on ``fitted``'s penultimate features and predicted probabilities of the training split
    (out of fold from ``fold_models`` when given, ``folds`` parts, default their number) — and cleanvision's image
    checks on image data; near duplicates of images on `near_duplicate_descriptor` in a Datalab run of their own —
    and return what it found (`DataIssues`; scores: lower = more likely an issue). Progress after each check."""
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
    by_descriptor = (is_image_dataset(dataset) and "near_duplicate" in settings.checks
                     and settings.near_duplicates == "descriptor")
    data: dict = {"label": labels}
    if images:
        report(0.25, "images for cleanvision")
        data = image_records(dataset).add_column("label", labels.tolist())
    end = 0.8 if by_descriptor else 0.95
    lab = run_datalab(data, features, probs, settings, image_key="image" if images else None,
                      progress=lambda f, m: report(0.3 + (end - 0.3) * f, m))
    near_lab = None
    if by_descriptor:
        report(0.8, "near duplicates: crop-invariant image descriptor")
        near_lab = run_near_duplicates(labels, near_duplicate_descriptor(dataset), settings)
    report(0.95, "collecting the issues")
    table, sets = collect(lab, settings, images, near_lab)
    table.insert(1, "index", source_rows(dataset, "train")[table["sample"].to_numpy()])
    report(1.0, "done")
    return DataIssues(table, sets, bool(fold_models))


def datalab_issue_types(settings: DataIssueSettings, images: bool) -> dict:
    """The ``issue_types`` argument of ``Datalab.find_issues`` for ``settings`` (k for the neighbour checks)."""
    threshold = settings.near_duplicate_threshold
    kwargs = {"near_duplicate": {"k": settings.k, "threshold": float(threshold or DATALAB_NEAR_DUPLICATE_THRESHOLD)},
              "outlier": {"k": settings.k}, "non_iid": {"k": settings.k}, "underperforming_group": {"k": settings.k},
              # in this process: cleanlab's default forks a process pool, whose workers hang when forked from the app
              # server's job thread (they ignore the pool's SIGTERM)
              "label": {"clean_learning_kwargs": {"find_label_issues_kwargs": {"n_jobs": 1}}}}
    types = {c: kwargs.get(c, {}) for c in settings.checks}
    if images:
        types["image_issue_types"] = {c: {} for c in settings.image_checks}
    return types


@contextlib.contextmanager
def _quiet():
    """Datalab prints, cleanvision draws tqdm bars on stderr, both warn."""
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def run_datalab(data, features: np.ndarray, probs: np.ndarray, settings: DataIssueSettings, image_key: str | None = None,
                progress: Progress | None = None):
    """``Datalab(data, label_name="label").find_issues(...)``, one call per check (cleanvision's image checks in one)
    so that ``progress`` hears of each; the same checks in the same order on one ``Datalab`` as one call would run
    them (it keeps the k-NN graph between calls), so the same results. Console output and warnings kept quiet."""
    from cleanlab import Datalab

    if len(features) <= settings.k:
        raise InfluenceError(f"Datalab needs more training samples ({len(features)}) than neighbours (k = {settings.k})")
    report = progress or (lambda fraction, message: None)
    lab = Datalab(data=data, label_name="label", image_key=image_key, verbosity=0)
    steps = list(datalab_issue_types(settings, image_key is not None).items())
    for done, (name, arguments) in enumerate(steps):
        report(done / len(steps), "Datalab: " + (", ".join(arguments) if name == "image_issue_types" else name))
        with _quiet():
            lab.find_issues(features=np.asarray(features, dtype=np.float64), pred_probs=probs,
                            issue_types={name: arguments})
    report(1.0, "Datalab: done")
    return lab


def run_near_duplicates(labels: np.ndarray, descriptor: np.ndarray, settings: DataIssueSettings):
    """Datalab's near-duplicate check, on its own ``Datalab``, given `locally_scaled_knn_graph` of ``descriptor``."""
    from cleanlab import Datalab

    if len(descriptor) <= settings.k:
        raise InfluenceError(f"Datalab needs more training samples ({len(descriptor)}) than neighbours (k = {settings.k})")
    threshold = float(settings.near_duplicate_threshold or DESCRIPTOR_NEAR_DUPLICATE_THRESHOLD)
    lab = Datalab(data={"label": labels}, label_name="label", verbosity=0)
    with _quiet():
        lab.find_issues(knn_graph=locally_scaled_knn_graph(descriptor, settings.k),
                        issue_types={"near_duplicate": {"k": settings.k, "threshold": threshold}})
    return lab


def collect(lab, settings: DataIssueSettings, images: bool, near_lab=None) -> tuple[pd.DataFrame, list[list[int]]]:
    """Datalab's per-sample issues as our long table (sample, issue, score, is_issue) and the duplicate groups;
    ``near_lab``: the run near duplicates come from, when it is not ``lab`` (exact duplicates: always ``lab``'s)."""
    issues = lab.get_issues()
    near_issues = near_lab.get_issues() if near_lab is not None else issues
    n = len(issues)
    frames = []
    names = list(settings.checks) + (list(settings.image_checks) if images else [])
    for name in names:
        score_col, flag_col = f"{name}_score", f"is_{name}_issue"
        if score_col not in issues:  # a check Datalab skipped (e.g. too little data for it)
            continue
        source = near_issues if name == "near_duplicate" else issues
        frames.append(_rows(name, source[score_col].to_numpy(np.float64), source[flag_col].to_numpy(bool)))
        if name == "near_duplicate":  # cleanlab: "a score of 0 indicates that an example has an exact duplicate"
            scores = issues[score_col].to_numpy(np.float64)
            frames.append(_rows("exact_duplicate", scores, scores == 0.0))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["sample", "issue", "score", "is_issue"])
    sets: list[list[int]] = []
    if "near_duplicate" in settings.checks and "near_duplicate_score" in near_issues:
        sets = duplicate_groups((near_lab or lab).get_info("near_duplicate")["near_duplicate_sets"], n)
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
