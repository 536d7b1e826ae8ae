"""Built-in architectures. Binary tasks get one logit (sigmoid / BCE), multiclass tasks C logits (softmax / CE)."""

from __future__ import annotations

import math

import torch
from torch import nn


def output_dim(num_classes: int) -> int:
    """One logit for a binary task (logistic form, needed by the linear white-box attack), else one per class."""
    return 1 if num_classes == 2 else num_classes


class LogisticRegression(nn.Module):
    """Linear model on flattened inputs; with L2 its training loss is strictly convex (invertible Hessian)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(math.prod(input_shape), output_dim(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class MLP(nn.Module):
    """The paper's MLP: two hidden layers of 32 units with ReLU, sigmoid/softmax output."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.head = nn.Linear(hidden, output_dim(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class SmallCNN(nn.Module):
    """A small CNN for 32×32 images (≈140k parameters) that trains on a CPU in minutes."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int = 16) -> None:
        super().__init__()
        c, h, w = input_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.fc = nn.Sequential(nn.Linear(2 * width * (h // 4) * (w // 4), 64), nn.ReLU())
        self.head = nn.Linear(64, output_dim(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc(self.features(x)))

