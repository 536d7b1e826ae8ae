"""`with_label_noise`: a seeded share of training (and validation) labels moved to another class, mask kept."""

from __future__ import annotations

import numpy as np

import influence_core as ic
from influence_core.data.prepare import with_label_noise


def test_label_noise_moves_the_asked_share_to_other_classes_and_keeps_the_truth():
    ds = ic.load_dataset("blobs", seed=0, n_flipped=0)
    noisy = with_label_noise(ds, 0.2, seed=3)
    mask = noisy.noise_mask.numpy()
    assert mask.sum() == round(0.2 * len(ds.train))
    assert (noisy.train.y.numpy() != ds.train.y.numpy()).sum() == mask.sum()
    np.testing.assert_array_equal(noisy.clean_labels.numpy(), ds.train.y.numpy())
    assert (noisy.val.y != ds.val.y).sum() == round(0.2 * len(ds.val)) and not noisy.meta["trusted_val"]
    assert (noisy.test.y == ds.test.y).all()
    again = with_label_noise(ds, 0.2, seed=3)
    np.testing.assert_array_equal(again.train.y.numpy(), noisy.train.y.numpy())
    train_only = with_label_noise(ds, 0.2, seed=3, include_val=False)
    assert (train_only.val.y == ds.val.y).all()
