"""LiSSA (Agarwal et al. 2017, as used by Koh & Liang 2017): score_i = grad fᵀ (H + λI)⁻¹ grad ℓ(z_i; θ) with
s = (H + λI)⁻¹ grad f estimated by the stochastic Neumann recursion

    h_0 = v,   h_j = v + h_{j-1} − (H_j + λI) h_{j-1} / scale,   s ≈ h_depth / scale   (averaged over repeats),

H_j the Hessian of the training objective (mean loss + (l2/2)‖θ‖²) on a random mini-batch (drawn with
replacement; hvp_batch_size ≥ N uses the whole training set every step). The recursion converges
when scale exceeds the largest eigenvalue of H + λI (scale = 0 picks 2 × a power-iteration estimate of it); it
diverges otherwise, which is reported as an error. Then scores are one JVP pass along s. Same orientation as
`exact`: lower = more detrimental.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InfluenceError
from ..grads import Params, batched_hvp, training_objective_hvp
from .base import LinearMethod, LinearPlan, ScoringContext, Term

# ‖h_j‖ may legitimately reach scale·‖v‖/λ_min; far beyond that the recursion is diverging.
DIVERGENCE_RATIO = 1e8


@dataclass(frozen=True)
class LiSSASettings:
    depth: int = 1000
    repeats: int = 1
    scale: float = 0.0  # 0 = auto: 2 × the largest eigenvalue of H + λI (power iteration)
    damping: float = 0.01
    hvp_batch_size: int = 64
    seed: int = 0


def largest_eigenvalue(ctx: ScoringContext, module, params: Params, damping: float, iterations: int = 20) -> float:
    """Power-iteration estimate of the largest eigenvalue (in magnitude) of H + λI on the full training set."""
    gen = torch.Generator().manual_seed(0)
    v = {k: torch.randn(p.shape, generator=gen).to(p) for k, p in params.items()}
    value = 0.0
    for _ in range(iterations):
        norm = torch.sqrt(sum((t * t).sum() for t in v.values()))
        v = {k: t / norm for k, t in v.items()}
        hv = training_objective_hvp(module, params, v, ctx.train_batches(next(iter(params.values())).dtype), ctx.n_train, ctx.fitted.l2)
        value = float(sum((hv[k] * v[k]).sum() for k in v).detach()) + damping
        v = {k: hv[k] + damping * v[k] for k in v}
    return abs(value)


def resolve_scale(ctx: ScoringContext, module, params: Params, settings: LiSSASettings) -> float:
    if settings.scale < 0 or settings.depth < 1 or settings.repeats < 1 or settings.hvp_batch_size < 1 or settings.damping < 0:
        raise InfluenceError("LiSSA needs depth ≥ 1, repeats ≥ 1, hvp_batch_size ≥ 1, damping ≥ 0 and scale ≥ 0 (0 = auto)")
    if settings.scale > 0:
        return float(settings.scale)
    ctx.report(0.0, "LiSSA: estimating the largest Hessian eigenvalue")
    return max(2.0 * largest_eigenvalue(ctx, module, params, settings.damping), 1e-8)


def lissa_inverse_hvp(ctx: ScoringContext, module, params: Params, vectors: Params, settings: LiSSASettings,
                      scale: float, span: tuple[float, float] = (0.0, 1.0)) -> Params:
    """(H + λI)⁻¹ v_k for a stack of K vectors ``{name: K×shape}`` by the LiSSA recursion (the same mini-batch
    sequence for every vector, so the estimate is one fixed linear map applied to all of them)."""
    train, l2, lam = ctx.dataset.train, ctx.fitted.l2, settings.damping
    dtype = next(iter(params.values())).dtype
    v_norm = torch.sqrt(sum(t.double().flatten(1).pow(2).sum(1) for t in vectors.values())).clamp_min(1e-30)
    limit = DIVERGENCE_RATIO * max(scale, 1.0) / max(lam + l2, 1e-8) * v_norm
    estimate = {k: torch.zeros_like(t) for k, t in vectors.items()}
    total_steps = settings.repeats * settings.depth
    for r in range(settings.repeats):
        gen = torch.Generator().manual_seed(settings.seed + r)
        h = {k: t.clone() for k, t in vectors.items()}
        for j in range(settings.depth):
            if settings.hvp_batch_size >= len(train):  # the whole training set: deterministic Neumann series
                x, y = ctx.train_rows(slice(None), dtype)
            else:
                idx = torch.randint(len(train), (settings.hvp_batch_size,), generator=gen)
                x, y = ctx.train_rows(idx, dtype)
            hv = batched_hvp(module, params, h, x, y, l2)
            h = {k: vectors[k] + h[k] - (hv[k] + lam * h[k]) / scale for k in h}
            if j % 10 == 9 or j == settings.depth - 1:
                norm = torch.sqrt(sum(t.double().flatten(1).pow(2).sum(1) for t in h.values()))
                if not bool(torch.isfinite(norm).all()) or bool((norm > limit).any()):
                    raise InfluenceError(
                        f"LiSSA diverged after {j + 1} steps (scale={scale:g}); use a larger scale (above the largest "
                        "Hessian eigenvalue, or 0 for auto) or more damping")
                step = r * settings.depth + j + 1
                ctx.report(span[0] + (span[1] - span[0]) * step / total_steps, f"LiSSA step {step}/{total_steps}")
        for k in estimate:
            estimate[k] += h[k] / (scale * settings.repeats)
    return estimate


class LiSSA(LinearMethod):
    """Influence with (H + λI)⁻¹ grad f estimated by the stochastic LiSSA recursion (HVPs on mini-batches)."""

    name = "lissa"
    label = "LiSSA"
    kind = "hessian-based"
    cost = "depth×repeats HVPs + 1 JVP"
    Settings = LiSSASettings

    def prepare(self, ctx: ScoringContext) -> LinearPlan:
        """s ≈ (H+λI)⁻¹ grad f by the LiSSA recursion, once; scores = grad ℓ_iᵀ s, lower = more detrimental."""
        module = ctx.module()
        params = ctx.selected_params(module)
        scale = resolve_scale(ctx, module, params, self.settings)
        ctx.report(0.0, "impact gradient")
        target = ctx.target_gradient(module, params)
        stacked = {k: v.unsqueeze(0) for k, v in target.items()}
        solved = lissa_inverse_hvp(ctx, module, params, stacked, self.settings, scale, span=(0.0, 0.9))
        direction = {k: v[0] for k, v in solved.items()}
        return LinearPlan([Term(direction, message="LiSSA scores")], start=0.9)
