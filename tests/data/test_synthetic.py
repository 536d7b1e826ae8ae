"""Synthetic sets (influence_core/data/synthetic.py): sizes, flipped labels, standardisation, sensitive groups."""

from __future__ import annotations

import numpy as np
import pytest

import influence_core as ic


@pytest.mark.parametrize("name,sizes,flipped", [("blobs", (150, 100, 100), 10), ("moons", (250, 100, 100), 20)])
def test_sizes_and_flips(name, sizes, flipped):
    ds = ic.load_dataset(name, seed=3)
    assert (len(ds.train), len(ds.val), len(ds.test)) == sizes
    mask = ds.noise_mask.numpy()
    assert mask.sum() == flipped
    # Flipped means: the given label differs from the clean one exactly there.
    np.testing.assert_array_equal(ds.train.y.numpy() != ds.clean_labels.numpy(), mask)
    if name == "moons":
        assert (ds.clean_labels.numpy()[mask] == 0).sum() == 10  # 10 per class
    x = ds.train.x.numpy()
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(0), 1, atol=1e-4)


def test_seed_changes_sample_not_geometry():
    a, b = ic.load_dataset("blobs", seed=0), ic.load_dataset("blobs", seed=1)
    assert not np.array_equal(a.noise_mask.numpy(), b.noise_mask.numpy())
    again = ic.load_dataset("blobs", seed=0)
    np.testing.assert_array_equal(a.train.x.numpy(), again.train.x.numpy())


@pytest.mark.parametrize("name", ["blobs", "moons"])
def test_sensitive_groups_differ_in_base_rate(name):
    ds = ic.load_dataset(name, seed=0)
    s, y = ds.train.sensitive.numpy(), ds.clean_labels.numpy()
    assert set(np.unique(s)) == {0, 1}
    assert abs(y[s == 0].mean() - y[s == 1].mean()) > 0.15


def test_impossible_sizes_are_one_line_errors():
    import pytest

    from influence_core.data import load_dataset
    from influence_core.errors import InfluenceError

    with pytest.raises(InfluenceError, match="n_train must be at least 10"):
        load_dataset("moons", n_train=0)
    with pytest.raises(InfluenceError, match="flipped labels"):
        load_dataset("blobs", n_flipped=500)
