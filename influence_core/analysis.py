"""Computations behind the workbench's views: gradient geometry (paper Fig. 1), sample-to-sample gradient
similarity ("why flagged"), model predictions, penultimate-layer features and a 2-D decision grid.

Scores follow the project's sign: lower = more detrimental (a negative IP / influence means that removing the
sample would lower the impact f).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import grad

from .data.base import Dataset, Split
from .errors import InfluenceError
from .grads import MAX_EXACT_PARAMS, Progress, num_params, per_sample_losses, predict_labels
from .impacts import make_impact
from .methods.base import ScoringContext, stream_inner_products
from .methods.exact import inverse_hvp_target
from .models.train import FittedModel


@dataclass
class AngleGeometry:
    """Each training gradient g_i against u = ∇f and w = H⁻¹∇f (paper Fig. 1 / App. A).

    ``ip`` = g_iᵀu (the IP score), ``influence`` = g_iᵀw (the influence score); ``coords`` is the projection of
    g_i onto the plane span(u, w) in the orthonormal basis e1 = u/‖u‖, e2 ⊥ e1; ``u_xy`` and ``w_xy`` are u and w
    in that basis, so coords @ u_xy = ip and coords @ w_xy = influence. ``hessian`` names how w was computed.
    """

    ip: np.ndarray
    influence: np.ndarray
    coords: np.ndarray
    u_xy: np.ndarray
    w_xy: np.ndarray
    hessian: str


def plane_coordinates(gu: np.ndarray, gw: np.ndarray, uu: float, uw: float, ww: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates in span(u, w) from the inner products gᵀu, gᵀw and the Gram entries uᵀu, uᵀw, wᵀw.

    With e1 = u/‖u‖ and e2 = (w − (wᵀe1)e1)/‖·‖: gᵀe1 = gᵀu/‖u‖, gᵀe2 = (gᵀw − (wᵀe1)·gᵀe1)/‖w⊥‖.
    Returns (coords N×2, u_xy, w_xy).
    """
    nu = np.sqrt(uu)
    if nu == 0:
        raise InfluenceError("the impact gradient is zero: the model is at a stationary point of f, nothing to rank")
    w1 = uw / nu
    w_perp = np.sqrt(max(ww - w1 * w1, 0.0))
    a = gu / nu
    b = (gw - w1 * a) / w_perp if w_perp > 1e-12 * max(np.sqrt(ww), 1e-30) else np.zeros_like(a)
    return np.stack([a, b], axis=1), np.array([nu, 0.0]), np.array([w1, w_perp])


def angle_geometry(dataset: Dataset, fitted: FittedModel, impact: str = "utility", params: str = "all",
                   damping: float = 0.0, hessian: str = "auto", lissa_settings: dict | None = None,
                   progress: Progress | None = None, impact_settings: dict | None = None) -> AngleGeometry:
    """gᵀu and gᵀw for every training sample by two JVP passes.

    ``hessian``: "exact" (explicit Hessian, models up to the explicit-Hessian size), "lissa" (the LiSSA estimate
    of (H + λI)⁻¹∇f; λ = max(damping, 0.01) unless ``lissa_settings`` say otherwise) or "auto" (exact when small
    enough, else LiSSA).
    """
    ctx = ScoringContext(fitted, dataset, make_impact(impact, **(impact_settings or {})), params=params, progress=progress)
    count = num_params(ctx.selected_params(ctx.module()))
    if hessian not in ("auto", "exact", "lissa"):
        raise InfluenceError(f"unknown Hessian '{hessian}'; choose auto, exact or lissa")
    if hessian == "exact" or (hessian == "auto" and count <= MAX_EXACT_PARAMS):
        module, sel, w, _ = inverse_hvp_target(ctx, damping, span=0.5)
        u = ctx.target_gradient(module, sel)
        how = "exact Hessian" + (f" + {damping:g}·I" if damping else "")
    else:
        from .methods.lissa import LiSSASettings, lissa_inverse_hvp, resolve_scale

        settings = LiSSASettings(**{"damping": max(damping, 0.01), **(lissa_settings or {})})
        module = ctx.module()
        sel = ctx.selected_params(module)
        scale = resolve_scale(ctx, module, sel, settings)
        u = ctx.target_gradient(module, sel)
        solved = lissa_inverse_hvp(ctx, module, sel, {k: v.unsqueeze(0) for k, v in u.items()}, settings, scale, span=(0.0, 0.5))
        w = {k: v[0] for k, v in solved.items()}
        how = f"LiSSA (depth {settings.depth}, damping {settings.damping:g})"
    gu = stream_inner_products(ctx, module, sel, u, span=(0.5, 0.75), message="gradient · u").numpy()
    gw = stream_inner_products(ctx, module, sel, w, span=(0.75, 1.0), message="gradient · w").numpy()
    dot = lambda a, b: float(sum((a[k].double() * b[k].double()).sum() for k in a))  # noqa: E731
    coords, u_xy, w_xy = plane_coordinates(gu, gw, dot(u, u), dot(u, w), dot(w, w))
    return AngleGeometry(gu, gw, coords, u_xy, w_xy, how)


def gradient_similarity(dataset: Dataset, fitted: FittedModel, sample: int, params: str = "all") -> np.ndarray:
    """grad ℓ_jᵀ grad ℓ_i for every training sample j against training sample ``sample`` = i.

    One JVP pass along i's own gradient. Positive: a gradient step on j also lowers ℓ_i (j supports i's given
    label); negative: training on j pushes against i.
    """
    if not 0 <= sample < len(dataset.train):
        raise InfluenceError(f"sample {sample} is not in the training split (0..{len(dataset.train) - 1})")
    ctx = ScoringContext(fitted, dataset, make_impact("utility"), params=params)
    module = ctx.module()
    sel = ctx.selected_params(module)
    x, y = dataset.train.x[sample : sample + 1], dataset.train.y[sample : sample + 1]
    g = grad(lambda p: per_sample_losses(module, p, x, y).sum())(sel)
    return stream_inner_products(ctx, module, sel, g).numpy()


@torch.no_grad()
def predict(fitted: FittedModel, split: Split, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(predicted labels, class probabilities N×C) of the fitted model on ``split``."""
    module = fitted.module.eval()
    labels, probs = [], []
    for x, _ in split.batches(batch_size):
        logits = module(x)
        labels.append(predict_labels(logits))
        if logits.shape[-1] == 1:
            p1 = torch.sigmoid(logits[:, 0])
            probs.append(torch.stack([1 - p1, p1], dim=1))
        else:
            probs.append(torch.softmax(logits, dim=-1))
    if not labels:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0))
    return torch.cat(labels).numpy(), torch.cat(probs).double().numpy()


@torch.no_grad()
def penultimate_features(fitted: FittedModel, split: Split, batch_size: int = 512) -> np.ndarray:
    """The input of the classifier head for every row (the model's learned features); raw inputs when no head."""
    module = fitted.module.eval()
    head = dict(module.named_modules()).get(fitted.head_prefix) if fitted.head_prefix else None
    if not isinstance(head, nn.Module):
        return split.x.flatten(1).numpy()
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda m, inp, out: captured.append(inp[0].flatten(1).detach()))
    try:
        for x, _ in split.batches(batch_size):
            module(x)
    finally:
        hook.remove()
    return torch.cat(captured).double().numpy()


def embed_2d(features: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """A 2-D UMAP embedding of ``features`` (N×D); features that are already 2-D are returned as they are."""
    if features.shape[1] <= 2:
        return np.pad(features, ((0, 0), (0, 2 - features.shape[1])))
    import umap  # slow import (numba); only when asked

    reducer = umap.UMAP(n_neighbors=min(n_neighbors, max(2, len(features) - 1)), random_state=seed, n_jobs=1)
    return reducer.fit_transform(features)


@torch.no_grad()
def decision_grid(fitted: FittedModel, x: np.ndarray, steps: int = 120, margin: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xs, ys, P(class 1) on the grid) around 2-D points ``x`` — the model's decision surface."""
    if x.shape[1] != 2:
        raise InfluenceError("the decision boundary is drawn only for data sets with two features")
    lo, hi = x.min(0) - margin, x.max(0) + margin
    xs, ys = np.linspace(lo[0], hi[0], steps), np.linspace(lo[1], hi[1], steps)
    gx, gy = np.meshgrid(xs, ys)
    grid = torch.tensor(np.stack([gx.ravel(), gy.ravel()], axis=1), dtype=torch.float32)
    _, probs = predict(fitted, Split(grid, torch.zeros(len(grid), dtype=torch.int64)))
    return xs, ys, probs[:, 1].reshape(steps, steps)
