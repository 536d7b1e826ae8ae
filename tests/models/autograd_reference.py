"""An independent reference for IP: plain reverse-mode autograd, one sample at a time (no torch.func)."""

from __future__ import annotations

import torch

from influence_core.grads import per_sample_loss


def brute_force_ip(module: torch.nn.Module, dataset, rows, names: set[str] | None = None) -> torch.Tensor:
    """IP by plain reverse-mode autograd, one training sample at a time: ∇(mean val loss)ᵀ ∇ℓ_i."""
    module = module.eval()
    params = [p for n, p in module.named_parameters() if names is None or n in names]
    val_loss = per_sample_loss(module(dataset.val.x), dataset.val.y).mean()
    g_val = torch.autograd.grad(val_loss, params)
    out = []
    for i in rows:
        loss_i = per_sample_loss(module(dataset.train.x[i : i + 1]), dataset.train.y[i : i + 1]).sum()
        g_i = torch.autograd.grad(loss_i, params)
        out.append(sum(float((a.double() * b.double()).sum()) for a, b in zip(g_val, g_i)))
    return torch.tensor(out, dtype=torch.float64)
