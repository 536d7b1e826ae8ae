"""ResNet-18 / ResNet-34 for 32×32 images: torchvision's networks with the CIFAR stem (3×3 stride-1 first
convolution, no max-pool), randomly initialised (nothing is downloaded) or loaded from user weights.

The classifier is ``fc`` (``--params head`` differentiates only it); binary tasks get one logit as elsewhere.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18, resnet34

from ..errors import InfluenceError
from .architectures import output_dim


def _cifar_resnet(factory, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(input_shape) != 3:
        raise InfluenceError(f"a ResNet needs images (C×H×W), got inputs of shape {tuple(input_shape)}")
    net = factory(weights=None, num_classes=output_dim(num_classes))
    # The ImageNet stem (7×7 stride 2 + max-pool) would shrink 32×32 inputs to 8×8 before the first block.
    net.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def resnet18_cifar(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """ResNet-18 (11.2M parameters) with the 32×32 stem."""
    return _cifar_resnet(resnet18, input_shape, num_classes)


def resnet34_cifar(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """ResNet-34 (21.3M parameters) with the 32×32 stem."""
    return _cifar_resnet(resnet34, input_shape, num_classes)
