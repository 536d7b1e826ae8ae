"""The generated text set with a demographic shortcut (text-shortcut): labels, twins, noise mask."""

import numpy as np
import pytest
import torch

import influence_core as ic
from influence_core.data.perturb import default_perturber
from influence_core.data.synthetic_text import shortcut_text_frame


@pytest.fixture(scope="module")
def shortcut_set():
    return ic.load_dataset("text-shortcut", seed=0, n_train=400, n_val=100, n_test=100)


def test_training_labels_carry_the_shortcut_and_test_labels_do_not():
    train = shortcut_text_frame(2000, seed=0, shortcut=0.2)
    test = shortcut_text_frame(2000, seed=1)
    agree = lambda f: float(((f["gender"] == "male") == (f["label"] == "positive")).mean())  # noqa: E731
    # Shortcut share 0.2: labels follow gender with probability 0.2 + 0.8 * 0.5 = 0.6; without it 0.5.
    assert agree(train) == pytest.approx(0.6, abs=0.03)
    assert agree(test) == pytest.approx(0.5, abs=0.03)
    assert (test["label"] == test["true_label"]).all() and not test["shortcut"].any()
    changed = train["label"] != train["true_label"]
    assert (changed == train["shortcut"]).all() and changed.mean() == pytest.approx(0.1, abs=0.02)


def test_dataset_has_twins_sensitive_and_the_noise_mask(shortcut_set):
    ds = shortcut_set
    assert ds.kind == "text" and ds.classes == ["negative", "positive"]
    assert ds.val.twin is not None and ds.test.twin is not None and ds.train.sensitive is not None
    swap = default_perturber()
    # Every sentence names a gendered subject, so every twin differs from its text, and its features too.
    assert all(swap.changes(t) for t in ds.texts["test"])
    assert not torch.equal(ds.test.x, ds.test.twin.x)
    noisy = ds.noise_mask.numpy()
    assert noisy.any()
    np.testing.assert_array_equal(noisy, (ds.train.y != ds.clean_labels).numpy())


def test_bad_sizes_are_one_line_errors():
    with pytest.raises(ic.InfluenceError, match="at least 20"):
        ic.load_dataset("text-shortcut", n_train=5)
    with pytest.raises(ic.InfluenceError, match="shortcut"):
        ic.load_dataset("text-shortcut", shortcut=1.5)
