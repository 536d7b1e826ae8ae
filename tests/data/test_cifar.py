"""CIFAR-10N / CIFAR-100N: sizes, the label join against the independent image labels, published noise rates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from influence_core.data import load_dataset, raw_images
from influence_core.data.cifar import PUBLISHED_NOISE_RATES, cifar100n_labels, cifar10n_labels, load_label_file
from influence_core.errors import InfluenceError

KEYS = {"aggregate": "aggre_label", "random1": "random_label1", "random2": "random_label2",
        "random3": "random_label3", "worst": "worse_label"}


@pytest.fixture(scope="module")
def subset(shared_data):
    with np.load(shared_data / "cifar10_subset_original_order.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def labels(shared_data):
    with np.load(shared_data / "cifar_n" / "cifar10n_labels.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def worst(shared_data):
    return load_dataset("cifar10n", label_set="worst", seed=0)


def test_offline_subset_sizes_and_meta(worst):
    assert (len(worst.train), len(worst.val), len(worst.test)) == (3600, 400, 1000)
    assert worst.input_shape == (3, 32, 32) and worst.kind == "image" and worst.num_classes == 10
    assert worst.meta["subset"] is True and worst.meta["n_available_train"] == 4000
    assert "4,000 of 50,000" in worst.meta["note"]
    # source_index and the validation rows together are exactly the original images 0..3999.
    together = np.concatenate([worst.source_index.numpy(), worst.meta["val_source_index"]])
    assert np.array_equal(np.sort(together), np.arange(4000))


def test_join_matches_the_image_labels_and_the_label_file(worst, subset, labels):
    src = worst.source_index.numpy()
    # The images' own labels (decoded from the sprites, an independent source) equal CIFAR-N clean_label there.
    assert np.array_equal(worst.clean_labels.numpy(), subset["y_train"][src])
    assert np.array_equal(worst.train.y.numpy(), labels["worse_label"][src])
    assert np.array_equal(worst.noise_mask.numpy(), labels["worse_label"][src] != subset["y_train"][src])
    # Validation is labelled clean by default; test labels come from the test images.
    assert np.array_equal(worst.val.y.numpy(), subset["y_train"][worst.meta["val_source_index"]])
    assert np.array_equal(worst.test.y.numpy(), subset["y_test"])


def test_pixels_are_normalised_with_train_statistics_and_recoverable(worst, subset):
    x = worst.train.x.double()
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3, dtype=torch.float64), atol=1e-3)
    rows = [0, 17, 3599]
    assert np.array_equal(raw_images(worst, "train", rows), subset["x_train"][worst.source_index.numpy()[rows]])
    assert np.array_equal(raw_images(worst, "test", [5]), subset["x_test"][[5]])


@pytest.mark.parametrize("label_set", list(KEYS))
def test_noise_rate_on_subset_is_close_to_published(label_set, labels):
    noisy, clean, mask = cifar10n_labels(label_set)
    assert np.array_equal(noisy, labels[KEYS[label_set]]) and np.array_equal(mask, noisy != labels["clean_label"])
    rate = float(mask[:4000].mean())
    print(f"{label_set}: noise rate on the 4,000-image subset {rate:.2%} (published {PUBLISHED_NOISE_RATES[label_set]:.2%})")
    assert abs(rate - PUBLISHED_NOISE_RATES[label_set]) < 0.03
    assert abs(float(mask.mean()) - PUBLISHED_NOISE_RATES[label_set]) < 0.001  # all 50,000: the published figure


def test_dataset_noise_rate_matches_label_set(shared_data):
    ds = load_dataset("cifar10n", label_set="aggregate", max_train=500, max_test=100)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (450, 50, 100)
    assert 0.04 < float(ds.noise_mask.float().mean()) < 0.15


def test_authors_pt_release_loads_safely_and_equals_npz(shared_data, labels):
    pt = load_label_file(shared_data / "cifar_n" / "CIFAR-10_human.pt")
    assert set(pt) == set(labels)
    for k in labels:
        assert np.array_equal(pt[k], labels[k])


def test_label_file_with_foreign_objects_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Sneaky:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "labels.pt"
    torch.save({"clean_label": np.zeros(3), "x": Sneaky()}, path)
    with pytest.raises(InfluenceError, match="refused to read labels.pt"):
        load_label_file(path)
    assert not marker.exists()
    npz = tmp_path / "labels.npz"
    np.savez(npz, clean_label=np.zeros(3), x=np.array([Sneaky()], dtype=object))  # an object array is a pickle
    with pytest.raises(InfluenceError, match="^refused to read labels.npz: it holds Python objects, not label arrays"):
        load_label_file(npz)
    assert not marker.exists()


def test_misaligned_images_are_refused(tmp_path, subset):
    shuffled = dict(subset)
    shuffled["train_index"] = subset["train_index"][::-1].copy()  # claims the images are in reverse order
    path = tmp_path / "mine.npz"
    np.savez(path, **shuffled)
    with pytest.raises(InfluenceError, match="do not line up"):
        load_dataset("cifar10n", images=str(path))


def test_cifar100n_labels_and_offline_refusal(shared_data):
    noisy, clean, mask = cifar100n_labels()
    assert noisy.shape == clean.shape == (50_000,) and noisy.max() == 99
    assert abs(float(mask.mean()) - 0.4020) < 0.001
    assert clean[:10].tolist() == [19, 29, 0, 11, 1, 86, 90, 28, 23, 31]  # the known start of CIFAR-100 train
    coarse_noisy, coarse_clean, _ = cifar100n_labels(coarse=True)
    assert coarse_clean.max() == 19
    with pytest.raises(InfluenceError, match="CIFAR-100 images are not available offline"):
        load_dataset("cifar100n")


def test_unknown_label_set():
    with pytest.raises(InfluenceError, match="unknown CIFAR-10N label set 'best'; choose one of: aggregate"):
        load_dataset("cifar10n", label_set="best")


def test_cifar100n_builds_from_user_images_joined_by_original_index(shared_data, tmp_path):
    """With images supplied (here a tiny synthetic .npz in original order), CIFAR-100N joins labels by index."""
    noisy, clean, _ = cifar100n_labels()
    rng = np.random.default_rng(0)
    idx = np.arange(100, 160)
    path = tmp_path / "c100.npz"
    np.savez(path, x_train=rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8), y_train=clean[idx], train_index=idx,
             x_test=rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8), y_test=np.arange(10))
    ds = load_dataset("cifar100n", images=str(path), val_fraction=0.2)
    assert ds.num_classes == 100 and ds.meta["subset"] is True and ds.meta["n_available_train"] == 60
    src = ds.source_index.numpy()
    assert set(src) < set(idx.tolist())
    assert np.array_equal(ds.train.y.numpy(), noisy[src]) and np.array_equal(ds.clean_labels.numpy(), clean[src])
    assert np.array_equal(ds.noise_mask.numpy(), noisy[src] != clean[src])
