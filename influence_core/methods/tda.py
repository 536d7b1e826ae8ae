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

from .base import LinearMethod, LinearPlan, ScoringContext
from .ekfac import covered_layers, ekfac_inverse_hvp
from .tracin import checkpoint_plan


@dataclass(frozen=True)
class TDASettings:
    damping: float = 0.001  # added to the model's own L2


class TDA(LinearMethod):
    """Mean EKFAC influence over the training checkpoints (SOURCE without the unrolling terms)."""

    name = "tda"
    label = "TDA"
    kind = "hessian-based"
    cost = "T×(EKFAC fit + JVP pass)"
    needs_checkpoints = True
    Settings = TDASettings

    def prepare(self, ctx: ScoringContext) -> LinearPlan:
        """Each checkpoint's EKFAC direction, solved once; scores (lower = more detrimental) are their mean IP."""
        def direction(module, params, lo, hi):
            covered_layers(module, params)
            target = ctx.target_gradient(module, params)
            return ekfac_inverse_hvp(ctx, module, params, target, self.settings.damping, span=(lo, hi))

        return checkpoint_plan(ctx, self.label, direction, start=0.8, mean=True)
