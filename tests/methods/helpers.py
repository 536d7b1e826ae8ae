"""Brute-force references shared by the method tests: per-sample gradients by a plain autograd loop."""

from __future__ import annotations

import copy

import numpy as np
import torch

from influence_core.grads import per_sample_loss


def module_at(fitted, state=None, dtype=torch.float64):
    module = copy.deepcopy(fitted.module)
    if state is not None:
        module.load_state_dict(state)
    return module.to(dtype).eval()


def loop_grads(module, x, y) -> np.ndarray:
    """N×P per-sample gradients of the loss, one torch.autograd.grad call per sample."""
    params = list(module.parameters())
    rows = []
    for i in range(len(y)):
        loss = per_sample_loss(module(x[i : i + 1].to(params[0].dtype)), y[i : i + 1])[0]
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]).detach().numpy())
    return np.stack(rows)


def val_loss_gradient(module, dataset) -> np.ndarray:
    """Gradient of the mean validation loss (the utility impact), by autograd."""
    params = list(module.parameters())
    x, y = dataset.val.x.to(params[0].dtype), dataset.val.y
    loss = per_sample_loss(module(x), y).mean()
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]).detach().numpy()


def rel_err(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / max(np.abs(np.asarray(b)).max(), 1e-30))


def objective_hessian(fitted, dataset, damping: float = 0.0) -> np.ndarray:
    """P×P Hessian of mean training loss + (l2/2)‖θ‖² (+ damping I) by torch.autograd.functional.hessian."""
    from torch.func import functional_call

    module = module_at(fitted)
    names = [n for n, _ in module.named_parameters()]
    shapes = [p.shape for p in module.parameters()]
    x, y = dataset.train.x.double(), dataset.train.y

    def objective(flat: torch.Tensor) -> torch.Tensor:
        params, start = {}, 0
        for n, s in zip(names, shapes):
            params[n] = flat[start : start + s.numel()].view(s)
            start += s.numel()
        loss = per_sample_loss(functional_call(module, params, (x,)), y).mean()
        return loss + 0.5 * fitted.l2 * (flat * flat).sum()

    theta = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
    hessian = torch.autograd.functional.hessian(objective, theta).numpy()
    return hessian + damping * np.eye(len(theta))
