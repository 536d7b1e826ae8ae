"""ResNet-18/34 with the 32×32 stem: shapes, head selection, IP on the head against autograd, one training epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.models.autograd_reference import brute_force_ip
from influence_core import compute_scores, load_dataset

FULL_TARGET = {"val_trim": 0.0}  # the autograd reference differentiates the whole validation loss
from influence_core.errors import InfluenceError
from influence_core.grads import select_params
from influence_core.models import TrainConfig, build_model, fitted_from_module, train_model


@pytest.fixture(scope="module")
def tiny(shared_data):
    return load_dataset("cifar10n", label_set="worst", max_train=44, max_test=8, val_fraction=0.25)


@pytest.mark.parametrize("arch, n_params", [("resnet18", 11_173_962), ("resnet34", 21_282_122)])
def test_cifar_stem_and_outputs(arch, n_params):
    net = build_model(arch, (3, 32, 32), 10)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1) and isinstance(net.maxpool, nn.Identity)
    assert sum(p.numel() for p in net.parameters()) == n_params
    assert net.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert build_model(arch, (3, 32, 32), 2).fc.out_features == 1  # binary: one logit


def test_resnet_refuses_tabular():
    with pytest.raises(InfluenceError, match="a ResNet needs images"):
        build_model("resnet18", (12,), 2)


def test_head_and_prefix_selection():
    net = build_model("resnet18", (3, 32, 32), 10)
    assert set(select_params(net, "head", "fc")) == {"fc.weight", "fc.bias"}
    layer4 = select_params(net, "layer4", "fc")
    assert layer4 and all(n.startswith("layer4.") for n in layer4)


def test_ip_on_head_matches_autograd_and_one_epoch_trains(tiny):
    # 33 training rows with batch 32 leave a last batch of one sample, which BatchNorm cannot train on.
    fitted = train_model(tiny, "resnet18", TrainConfig(epochs=1, batch_size=32, lr=0.01))
    assert len(fitted.history) == 1 and np.isfinite(fitted.history[0]["loss"])
    scores = compute_scores(tiny, fitted, "ip", "utility", params="head", batch_size=16, impact_settings=FULL_TARGET)
    expected = brute_force_ip(fitted.module, tiny, range(len(tiny.train)), {"fc.weight", "fc.bias"})
    np.testing.assert_allclose(scores, expected.numpy(), rtol=1e-3, atol=1e-6)


def test_ip_on_layer4_prefix_matches_autograd(tiny):
    torch.manual_seed(0)
    fitted = fitted_from_module(build_model("resnet18", tiny.input_shape, tiny.num_classes), "resnet18", tiny)
    names = set(select_params(fitted.module, "layer4.1.conv2"))
    scores = compute_scores(tiny, fitted, "ip", "utility", params="layer4.1.conv2", batch_size=16, impact_settings=FULL_TARGET)
    expected = brute_force_ip(fitted.module, tiny, range(5), names)
    np.testing.assert_allclose(scores[:5], expected.numpy(), rtol=1e-3, atol=1e-7)
