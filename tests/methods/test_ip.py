"""IP (influence_core/methods/ip.py) against a brute-force loop of per-sample autograd dot products."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import influence_core as ic
from influence_core.data import Dataset, Split
from influence_core.models import train_model, TrainConfig

from tests.reference import parity_gap_grad, per_sample_grad_loop, relative_error, validation_loss_grad


def _brute_force_ip(fitted, dataset, target_fn) -> torch.Tensor:
    module = copy.deepcopy(fitted.module).eval()
    target = target_fn(module)
    grads = per_sample_grad_loop(module, dataset.train.x, dataset.train.y)
    return grads @ target


@pytest.mark.parametrize("arch", ["logreg", "mlp"])
def test_ip_matches_autograd_loop_on_moons(moons, arch):
    fitted = train_model(moons, arch, TrainConfig(seed=1, epochs=20))
    expected = _brute_force_ip(fitted, moons, lambda m: validation_loss_grad(m, moons.val.x, moons.val.y))
    got = ic.compute_scores(moons, fitted, "ip", batch_size=64)
    assert relative_error(got, expected) < 1e-5


def _tiny_images(num_classes: int = 3, n: int = 24) -> Dataset:
    g = torch.Generator().manual_seed(0)
    make = lambda k: Split(torch.randn(k, 3, 8, 8, generator=g), torch.randint(0, num_classes, (k,), generator=g))  # noqa: E731
    return Dataset("tiny-images", make(n), make(16), make(8), [f"c{i}" for i in range(num_classes)], kind="image")


def test_ip_matches_autograd_loop_on_small_cnn():
    ds = _tiny_images()
    fitted = train_model(ds, "cnn", TrainConfig(seed=0, epochs=2, batch_size=8))
    expected = _brute_force_ip(fitted, ds, lambda m: validation_loss_grad(m, ds.val.x, ds.val.y))
    got = ic.compute_scores(ds, fitted, "ip", batch_size=7)  # a batch size that does not divide N
    assert relative_error(got, expected) < 1e-5


def test_ip_fairness_matches_autograd_parity_gap(blobs, blobs_logreg_fit):
    expected = _brute_force_ip(blobs_logreg_fit, blobs, lambda m: parity_gap_grad(m, blobs.val.x, blobs.val.sensitive))
    got = ic.compute_scores(blobs, blobs_logreg_fit, "ip", "fairness", batch_size=32)
    assert relative_error(got, expected) < 1e-5


def test_ip_robustness_uses_white_box_attack_for_linear_model(blobs, blobs_logreg_fit):
    w = blobs_logreg_fit.module.linear.weight.detach()[0]
    b = blobs_logreg_fit.module.linear.bias.detach()[0]
    x = blobs.val.x
    x_adv = x - 1.3 * ((x @ w + b) / (w @ w))[:, None] * w[None, :]
    # The attack pushes every point just past the boundary: all predictions flip.
    before = (x @ w + b) > 0
    after = (x_adv @ w + b) > 0
    assert bool((before != after).all())
    expected = _brute_force_ip(blobs_logreg_fit, blobs, lambda m: validation_loss_grad(m, x_adv, blobs.val.y))
    got = ic.compute_scores(blobs, blobs_logreg_fit, "ip", "robustness")
    assert relative_error(got, expected) < 1e-5


def test_ip_sign_convention_flipped_labels_are_negative(blobs, blobs_logreg_fit):
    scores = ic.compute_scores(blobs, blobs_logreg_fit, "ip")
    noisy = blobs.noise_mask.numpy()
    assert np.median(scores[noisy]) < 0 < np.median(scores[~noisy]) + 1e-12


def test_ip_head_selection_matches_loop_restricted_to_head(moons, moons_mlp_fit):
    module = copy.deepcopy(moons_mlp_fit.module).eval()
    head = [module.head.weight, module.head.bias]
    def grads_of(scalar):
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(scalar, head)])
    from tests.reference import loss_terms
    target = grads_of(loss_terms(module(moons.val.x), moons.val.y).mean())
    expected = torch.stack([grads_of(loss_terms(module(moons.train.x[i:i+1]), moons.train.y[i:i+1]).sum()) for i in range(len(moons.train))]) @ target
    got = ic.compute_scores(moons, moons_mlp_fit, "ip", params="head")
    assert relative_error(got, expected) < 1e-5


def test_model_that_does_not_fit_the_data_is_refused(moons):
    three_class = _tiny_images(num_classes=3)
    fitted = train_model(three_class, "cnn", TrainConfig(seed=0, epochs=1, batch_size=8))
    binary = Dataset("bin", three_class.train, three_class.val, three_class.test, ["a", "b"], kind="image")
    with pytest.raises(ic.InfluenceError, match="3 outputs but 'bin' has 2 classes"):
        ic.compute_scores(binary, fitted, "ip")
