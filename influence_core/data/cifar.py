"""CIFAR-10N and CIFAR-100N: CIFAR images with human-annotated noisy labels (Wei et al., ICLR 2022).

The CIFAR-N label arrays are indexed by the ORIGINAL CIFAR training order (torchvision ``train=True`` order), so
training row ``i`` of the images joins label ``source_index[i]``; the join is checked against ``clean_label``.
Images come from a torchvision folder (given, already in the cache, or downloaded with ``download=True``); offline,
CIFAR-10 falls back to the real 4,000-image subset in ../shared/data and says so in ``meta``. CIFAR-100 images are
not bundled, so ``cifar100n`` needs a folder or a download. Validation is carved from the training images with a
fixed seed and, by default, labelled with the clean labels (the small trusted set the impact is measured on).

The full 50,000 images are kept on disk as uint8 (written once to the project's ``arrays/`` in the workspace) and
standardised a batch at a time (``on_disk``; 150 MB on disk instead of 720 MB of float32 tensors per copy in memory);
the 4,000-image subset stays in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import InfluenceError
from .base import Dataset, Split
from .paths import CIFAR_N, cache_dir, require_data_file, shared_data_dir
from .prepare import carve_indices, normalise_images
from .registry import register_dataset
from .storage import IMAGES_ON_DISK_FROM, stored_image_splits

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# User-facing label-set names -> keys of the CIFAR-10N release.
CIFAR10N_LABEL_SETS = {
    "aggregate": "aggre_label", "random1": "random_label1", "random2": "random_label2", "random3": "random_label3",
    "worst": "worse_label", "clean": "clean_label",
}
# The three independent human label sets of CIFAR-10N: its annotators (issue 20 §4), besides the chosen label set.
CIFAR10N_ANNOTATORS = ("random1", "random2", "random3")
# Noise rates over all 50,000 training images as published (Wei et al. 2022, Table 1).
PUBLISHED_NOISE_RATES = {"aggregate": 0.0903, "random1": 0.1723, "random2": 0.1812, "random3": 0.1764, "worst": 0.4021,
                         "clean": 0.0, "cifar100n": 0.4020}
SUBSET_FILE = "cifar10_subset_original_order.npz"
N_TRAIN_FULL = 50_000


# ------------------------------------------------------------------------------------------ label files
def load_label_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a CIFAR-N label file: our no-pickle ``.npz`` copy, or the authors' ``.pt`` release.

    The ``.pt`` files are torch pickles of numpy arrays; they are read with ``weights_only=True`` and only the
    three numpy globals an array needs allow-listed, so nothing else in the file can run.
    """
    path = Path(path)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:  # an object array (a pickle) is refused, never unpickled
                return {k: np.asarray(z[k]) for k in z.files}
        except ValueError as err:
            if "allow_pickle" in str(err):
                raise InfluenceError(f"refused to read {path.name}: it holds Python objects, not label arrays") from None
            raise InfluenceError(f"cannot read {path.name}: {str(err).splitlines()[0]}") from None
    if path.suffix == ".pt":
        try:
            from numpy._core.multiarray import _reconstruct  # numpy ≥ 2
        except ImportError:  # numpy 1.x
            from numpy.core.multiarray import _reconstruct

        allowed = [(_reconstruct, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype, type(np.dtype("int64"))]
        try:
            with torch.serialization.safe_globals(allowed):
                raw = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as err:  # noqa: BLE001 - any refusal is the same message to the user
            raise InfluenceError(f"refused to read {path.name}: it holds more than label arrays ({str(err).splitlines()[-1][:120]})") from None
        if not isinstance(raw, dict):
            raise InfluenceError(f"{path.name} does not hold a dict of label arrays")
        return {k: np.asarray(v, dtype=np.int64) for k, v in raw.items()}
    raise InfluenceError(f"a CIFAR-N label file must be .npz or .pt, not '{path.suffix}'")


def _labels(npz_name: str, pt_name: str, labels_path, download: bool) -> dict[str, np.ndarray]:
    found = require_data_file([f"cifar_n/{npz_name}", f"cifar_n/{pt_name}"], f"{CIFAR_N}/{pt_name}", labels_path, download)
    arrays = load_label_file(found)
    if any(len(v) != N_TRAIN_FULL for v in arrays.values()):
        raise InfluenceError(f"{found.name} does not hold {N_TRAIN_FULL:,} labels per key")
    return arrays


def label_file_of(dataset_name: str, labels_path: str | None = None) -> Path | None:
    """The CIFAR-N label file a CIFAR-N data set was read with (``labels_path``, else our copy under the shared data
    folder), or None for another data set or when the file is not here."""
    if not dataset_name.startswith(("cifar10n", "cifar100n")):
        return None
    name = "cifar100n_labels.npz" if dataset_name.startswith("cifar100n") else "cifar10n_labels.npz"
    path = Path(labels_path or shared_data_dir() / "cifar_n" / name)
    return path if path.exists() else None


def cifar10n_labels(label_set: str = "aggregate", labels_path: str | None = None, download: bool = False
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(noisy, clean, noise mask) over all 50,000 CIFAR-10 training images, in original training order."""
    if label_set not in CIFAR10N_LABEL_SETS:
        raise InfluenceError(f"unknown CIFAR-10N label set '{label_set}'; choose one of: {', '.join(CIFAR10N_LABEL_SETS)}")
    arrays = _labels("cifar10n_labels.npz", "CIFAR-10_human.pt", labels_path, download)
    noisy, clean = arrays[CIFAR10N_LABEL_SETS[label_set]].astype(np.int64), arrays["clean_label"].astype(np.int64)
    return noisy, clean, noisy != clean


def cifar10n_annotator_labels(labels_path: str | None = None, download: bool = False) -> np.ndarray:
    """The labels of CIFAR-10N's three annotators (`CIFAR10N_ANNOTATORS`) over all 50,000 training images in original
    training order, float64 50,000×3 (the `Dataset.annotators` layout; every image was labelled by all three)."""
    arrays = _labels("cifar10n_labels.npz", "CIFAR-10_human.pt", labels_path, download)
    return np.stack([arrays[CIFAR10N_LABEL_SETS[a]] for a in CIFAR10N_ANNOTATORS], axis=1).astype(np.float64)


def cifar100n_labels(coarse: bool = False, labels_path: str | None = None, download: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(noisy, clean, noise mask) over all 50,000 CIFAR-100 training images (fine 0-99, or coarse 0-19)."""
    arrays = _labels("cifar100n_labels.npz", "CIFAR-100_human.pt", labels_path, download)
    prefix = "coarse_" if coarse else ""
    noisy, clean = arrays[f"noisy_{prefix}label"].astype(np.int64), arrays[f"clean_{prefix}label"].astype(np.int64)
    return noisy, clean, noisy != clean


# ---------------------------------------------------------------------------------------------- images
def _torchvision_images(cls_name: str, root: Path, download: bool) -> dict:
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    try:
        train, test = cls(str(root), train=True, download=download), cls(str(root), train=False, download=download)
    except (RuntimeError, OSError) as err:
        raise InfluenceError(f"could not read {cls_name} images under {root}: {str(err).splitlines()[0]}") from None
    return {
        "x_train": np.asarray(train.data), "y_train": np.asarray(train.targets, dtype=np.int64),
        "train_index": np.arange(len(train.targets)), "x_test": np.asarray(test.data),
        "y_test": np.asarray(test.targets, dtype=np.int64), "classes": list(train.classes),
        "source": f"torchvision {cls_name} at {root}", "subset": False,
    }


def _npz_images(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        out = {k: np.asarray(z[k]) for k in ("x_train", "y_train", "train_index", "x_test", "y_test")}
    out.update(source=f"image file {path.name}", subset=len(out["train_index"]) < N_TRAIN_FULL, classes=None)
    return out


def _images(cls_name: str, folder: str, images: str | None, download: bool) -> dict | None:
    """Full images from ``images`` (a torchvision root or an .npz), the cache, or a download; None if none."""
    if images is not None:
        p = Path(images).expanduser()
        if p.suffix == ".npz":
            if not p.exists():
                raise InfluenceError(f"no such file: {p}")
            return _npz_images(p)
        return _torchvision_images(cls_name, p, download)
    root = cache_dir() / folder
    if (root / ("cifar-10-batches-py" if cls_name == "CIFAR10" else "cifar-100-python")).exists() or download:
        return _torchvision_images(cls_name, root, download)
    return None


def _build(name: str, imgs: dict, noisy: np.ndarray, clean: np.ndarray, classes: list[str], seed: int,
           val_fraction: float, max_train: int | None, max_test: int | None, clean_val: bool, meta: dict,
           on_disk: bool | None = None) -> Dataset:
    src = np.asarray(imgs["train_index"], dtype=np.int64)
    # The join: image row i is original training image src[i]; its label must be the CIFAR-N clean label there.
    if not np.array_equal(np.asarray(imgs["y_train"]), clean[src]):
        bad = int(np.flatnonzero(np.asarray(imgs["y_train"]) != clean[src])[0])
        raise InfluenceError(f"images and CIFAR-N labels do not line up (first mismatch at original index {src[bad]}); "
                             "the images must be in original CIFAR training order")
    x_all, n_avail = imgs["x_train"], len(src)
    if max_train is not None:
        if max_train < 10:
            raise InfluenceError(f"max_train must be at least 10, got {max_train}")
        x_all, src = x_all[:max_train], src[:max_train]
    x_test, y_test = imgs["x_test"], np.asarray(imgs["y_test"], dtype=np.int64)
    if max_test is not None:
        x_test, y_test = x_test[:max_test], y_test[:max_test]
    tr, va = carve_indices(len(src), val_fraction, seed, labels=noisy[src])
    if on_disk is None:
        on_disk = len(src) >= IMAGES_ON_DISK_FROM
    if on_disk:
        (x_tr, x_va, x_te), mean, std = stored_image_splits(name, [(x_all, tr), (x_all, va), (x_test, None)])
    else:
        (x_tr, x_va, x_te), mean, std = normalise_images(x_all[tr], x_all[va], x_test)
    src_tr, src_va = src[tr], src[va]
    mask = noisy[src_tr] != clean[src_tr]
    meta = dict(meta)
    meta.update(
        image_source=imgs["source"], subset=bool(imgs["subset"]), n_available_train=n_avail,
        n_used_train=len(src), on_disk=bool(on_disk), val_labels="clean" if clean_val else "noisy", trusted_val=bool(clean_val), pixel_mean=mean, pixel_std=std,
        val_source_index=src_va.tolist(), seed=seed,
    )
    if imgs["subset"]:
        meta["note"] = (f"offline subset: {n_avail:,} of {N_TRAIN_FULL:,} training images (original indices "
                        f"{src.min()}..{src.max()}) and {len(imgs['y_test']):,} test images; download=True gets all")
    return Dataset(
        name=name,
        train=Split(x_tr, torch.from_numpy(noisy[src_tr])),
        val=Split(x_va, torch.from_numpy((clean if clean_val else noisy)[src_va])),
        test=Split(x_te, torch.from_numpy(y_test)),
        classes=classes, kind="image", noise_mask=torch.from_numpy(mask), clean_labels=torch.from_numpy(clean[src_tr]),
        source_index=torch.from_numpy(src_tr), meta=meta,
    )


@register_dataset("cifar10n", "CIFAR-10 with human noisy labels (label_set: aggregate, random1-3, worst); "
                              "offline: the 4,000-image real subset",
                  server_side=("images", "labels_path", "download", "on_disk"))
def load_cifar10n(label_set: str = "aggregate", seed: int = 0, val_fraction: float = 0.1, max_train: int | None = None,
                  max_test: int | None = None, clean_val: bool = True, images: str | None = None,
                  labels_path: str | None = None, download: bool = False, on_disk: bool | None = None) -> Dataset:
    """CIFAR-10N: training labels from ``label_set``; noise mask = (noisy ≠ clean); images normalised per channel;
    the three annotators' own labels (random1-3) as ``annotators``.

    ``images``: a torchvision CIFAR-10 root folder or an .npz like the bundled subset; otherwise the cache
    (``$INFLUENCE_DATA_DIR/cifar10``), a download (``download=True``), or the offline 4,000-image subset.
    ``max_train`` / ``max_test`` keep the first images (in original order) for quick runs. ``on_disk``: keep the
    images on disk as uint8 and read them a batch at a time (None = from 10,000 training images, i.e. the full set).
    """
    noisy, clean, _ = cifar10n_labels(label_set, labels_path, download)
    imgs = _images("CIFAR10", "cifar10", images, download)
    if imgs is None:
        subset = shared_data_dir() / SUBSET_FILE
        if not subset.exists():
            raise InfluenceError(f"no CIFAR-10 images: {subset} is missing; pass images=<torchvision root> or download=True")
        imgs = _npz_images(subset)
    meta = {"label_set": label_set, "label_key": CIFAR10N_LABEL_SETS[label_set],
            "published_noise_rate": PUBLISHED_NOISE_RATES[label_set]}
    dataset = _build("cifar10n", imgs, noisy, clean, imgs.get("classes") or CIFAR10_CLASSES, seed, val_fraction,
                     max_train, max_test, clean_val, meta, on_disk)
    dataset.annotators = cifar10n_annotator_labels(labels_path, download)[dataset.source_index.numpy()]
    dataset.annotator_names = list(CIFAR10N_ANNOTATORS)
    return dataset


@register_dataset("cifar100n", "CIFAR-100 with human noisy labels (40% noise); needs the CIFAR-100 images "
                               "(images=<folder> or download=True)",
                  server_side=("images", "labels_path", "download", "on_disk"))
def load_cifar100n(seed: int = 0, val_fraction: float = 0.1, max_train: int | None = None, max_test: int | None = None,
                   clean_val: bool = True, images: str | None = None, labels_path: str | None = None,
                   download: bool = False, on_disk: bool | None = None) -> Dataset:
    """CIFAR-100N (fine labels): like `load_cifar10n`, but CIFAR-100 pixels are not bundled offline."""
    noisy, clean, _ = cifar100n_labels(False, labels_path, download)
    imgs = _images("CIFAR100", "cifar100", images, download)
    if imgs is None:
        raise InfluenceError("CIFAR-100 images are not available offline; pass images=<a torchvision CIFAR-100 folder> "
                             "(CLI: --images) or download=True (CLI: --download)")
    classes = imgs.get("classes") or [f"class {i}" for i in range(100)]
    meta = {"label_set": "noisy", "label_key": "noisy_label", "published_noise_rate": PUBLISHED_NOISE_RATES["cifar100n"]}
    return _build("cifar100n", imgs, noisy, clean, classes, seed, val_fraction, max_train, max_test, clean_val, meta,
                  on_disk)
