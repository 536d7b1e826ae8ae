"""Exact influence (paper Eq. 1): grad f(θ)ᵀ (H + λI)⁻¹ grad ℓ(z_i; θ) with the explicit Hessian.

H is the Hessian of the training objective (1/n)Σℓ_i + (l2/2)‖θ‖². Removing z_i moves θ by ≈ (1/n) H⁻¹ grad ℓ_i,
so the score is n × the change in f on removal: negative = removing it lowers f = detrimental. (Koh & Liang's
up-weighting influence is its negative.) One solve s = (H+λI)⁻¹ grad f, then scores are JVPs along s.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InfluenceError
from ..grads import explicit_hessian, flatten, unflatten
from .base import InfluenceMethod, ScoringContext, stream_inner_products


@dataclass(frozen=True)
class ExactSettings:
    damping: float = 0.0


def inverse_hvp_target(ctx: ScoringContext, damping: float, span: float = 0.7):
    """(module, params, s) in float64 with s = (H + λI)⁻¹ grad f from the explicit Hessian."""
    module = ctx.module(torch.float64)
    params = ctx.selected_params(module)
    target = ctx.target_gradient(module, params)
    n = ctx.n_train
    hessian = explicit_hessian(module, params, lambda: ctx.train_batches(torch.float64), n, ctx.fitted.l2,
                               progress=lambda f, m: ctx.report(span * f, m))
    hessian += damping * torch.eye(hessian.shape[0], dtype=hessian.dtype, device=hessian.device)
    try:
        solved = torch.linalg.solve(hessian, flatten(target))
    except RuntimeError:
        raise InfluenceError("the Hessian is singular; train with L2 > 0 or set a damping > 0") from None
    return module, params, unflatten(solved, params), hessian


class ExactInfluence(InfluenceMethod):
    """Influence with the explicit (damped) Hessian of the training objective; for models up to 20k parameters."""

    name = "exact"
    label = "Exact influence"
    kind = "hessian-based"
    cost = "P×P Hessian + solve"
    Settings = ExactSettings

    def compute(self, ctx: ScoringContext) -> torch.Tensor:
        module, params, direction, _ = inverse_hvp_target(ctx, self.settings.damping)
        return stream_inner_products(ctx, module, params, direction, span=(0.7, 1.0), message="exact influence")
