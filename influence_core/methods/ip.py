"""IP (paper Eq. 2): score_i = grad f(θ)ᵀ grad ℓ(z_i; θ) at the converged model — influence with H⁻¹ := I."""

from __future__ import annotations

import torch

from .base import InfluenceMethod, ScoringContext, stream_inner_products


class InnerProduct(InfluenceMethod):
    """Inner product of each sample's loss gradient with the impact gradient (one JVP pass over the data)."""

    name = "ip"
    label = "IP"
    kind = "hessian-free"
    cost = "1 forward-mode pass"

    def compute(self, ctx: ScoringContext) -> torch.Tensor:
        module = ctx.module()
        params = ctx.selected_params(module)
        ctx.report(0.0, "impact gradient")
        target = ctx.target_gradient(module, params)
        return stream_inner_products(ctx, module, params, target, message="IP")
