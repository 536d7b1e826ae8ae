"""Independent reference computations for tests: plain torch.autograd loops over nn.Module parameters,
written without influence_core.grads / torch.func so they can catch mistakes there."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def loss_terms(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if logits.shape[-1] == 1:
        z = logits[:, 0]
        # log(1 + e^z) − y z, written out by hand rather than through the library's loss.
        return F.softplus(z) - y.to(z.dtype) * z
    return -torch.log_softmax(logits, -1).gather(1, y[:, None])[:, 0]


def flat_grad(scalar: torch.Tensor, module: nn.Module) -> torch.Tensor:
    grads = torch.autograd.grad(scalar, list(module.parameters()), allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, module.parameters())])


def per_sample_grad_loop(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """N×P matrix of per-sample loss gradients, one autograd call per sample (fine for tiny N)."""
    module.eval()
    rows = [flat_grad(loss_terms(module(x[i : i + 1]), y[i : i + 1]).sum(), module) for i in range(len(y))]
    return torch.stack(rows)


def validation_loss_grad(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    module.eval()
    return flat_grad(loss_terms(module(x), y).mean(), module)


def parity_gap_grad(module: nn.Module, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    module.eval()
    logits = module(x)
    p = torch.sigmoid(logits[:, 0]) if logits.shape[-1] == 1 else torch.softmax(logits, -1)[:, 1]
    gap = (p[s == 0].mean() - p[s == 1].mean()).abs()
    return flat_grad(gap, module)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).norm() / b.norm().clamp_min(1e-30))
