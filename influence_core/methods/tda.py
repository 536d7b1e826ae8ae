"""TDA (Bae et al. 2024, "Training Data Attribution via Approximate Unrolling", SOURCE), simplified: the mean
over the saved training checkpoints θ_t of EKFAC influence at θ_t,

    score_i = (1/T) Σ_t grad f(θ_t)ᵀ (G_t + (l2+λ)I)⁻¹ grad ℓ(z_i; θ_t),

with G_t the EKFAC curvature fitted at θ_t. This keeps SOURCE's segment-wise EKFAC curvature and its averaging over
the training trajectory but drops the unrolling terms that propagate each segment's effect to the final model
(treats segments as independent). For a converged convex model with one checkpoint it is EKFAC. Lower = more
detrimental (same orientation as `exact`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import InfluenceMethod, ScoringContext, stream_inner_products
from .ekfac import covered_layers, ekfac_inverse_hvp
from .tracin import checkpoint_modules, require_checkpoints


@dataclass(frozen=True)
class TDASettings:
    damping: float = 0.001  # added to the model's own L2


class TDA(InfluenceMethod):
    """Mean EKFAC influence over the training checkpoints (SOURCE without the unrolling terms)."""

    name = "tda"
    label = "TDA"
    kind = "hessian-based"
    cost = "T×(EKFAC fit + JVP pass)"
    needs_checkpoints = True
    Settings = TDASettings

    def compute(self, ctx: ScoringContext) -> torch.Tensor:
        """Scores (n_train,), lower = more detrimental: mean over checkpoints of EKFAC influence."""
        n_ckpt = len(require_checkpoints(ctx, self.label))
        total = torch.zeros(ctx.n_train, dtype=torch.float64)
        for t, (_, module) in enumerate(checkpoint_modules(ctx, self.label)):
            params = ctx.selected_params(module)
            covered_layers(module, params)
            lo, hi = t / n_ckpt, (t + 1) / n_ckpt
            ctx.report(lo, f"checkpoint {t + 1}/{n_ckpt}: impact gradient")
            target = ctx.target_gradient(module, params)
            direction = ekfac_inverse_hvp(ctx, module, params, target, self.settings.damping, span=(lo, lo + 0.8 * (hi - lo)))
            total += stream_inner_products(ctx, module, params, direction, span=(lo + 0.8 * (hi - lo), hi),
                                           message=f"checkpoint {t + 1}/{n_ckpt}")
        return total / n_ckpt
