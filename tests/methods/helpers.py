"""Brute-force references for the baseline method tests (on top of tests.reference): models at checkpoints,
the explicit Hessian by torch.autograd.functional, a max-relative error."""

from __future__ import annotations

import copy

import numpy as np
import torch

from tests.reference import loss_terms, per_sample_grad_loop, validation_loss_grad


def module_at(fitted, state=None, dtype=torch.float64):
    module = copy.deepcopy(fitted.module)
    if state is not None:
        module.load_state_dict(state)
    return module.to(dtype).eval()


def loop_grads(module, x, y) -> np.ndarray:
    """N×P per-sample gradients of the loss, one torch.autograd.grad call per sample (tests.reference)."""
    return per_sample_grad_loop(module, x.to(next(module.parameters()).dtype), y).detach().numpy()


def val_loss_gradient(module, dataset) -> np.ndarray:
    """Gradient of the mean validation loss (the utility impact), by autograd (tests.reference)."""
    x = dataset.val.x.to(next(module.parameters()).dtype)
    return validation_loss_grad(module, x, dataset.val.y).detach().numpy()


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
        loss = loss_terms(functional_call(module, params, (x,)), y).mean()
        return loss + 0.5 * fitted.l2 * (flat * flat).sum()

    theta = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
    hessian = torch.autograd.functional.hessian(objective, theta).numpy()
    return hessian + damping * np.eye(len(theta))
