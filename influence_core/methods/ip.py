"""IP (paper Eq. 2): score_i = grad f(θ)ᵀ grad ℓ(z_i; θ) at the converged model — influence with H⁻¹ := I."""

from __future__ import annotations

from .base import LinearMethod, LinearPlan, ScoringContext, Term


class InnerProduct(LinearMethod):
    """Inner product of each sample's loss gradient with the impact gradient (one JVP pass over the data)."""

    name = "ip"
    label = "IP"
    kind = "hessian-free"
    cost = "1 forward-mode pass"

    def prepare(self, ctx: ScoringContext) -> LinearPlan:
        """The impact gradient at θ, computed once; scores are one JVP pass along it (lower = more detrimental)."""
        module = ctx.module()
        params = ctx.selected_params(module)
        ctx.report(0.0, "impact gradient")
        return LinearPlan([Term(ctx.target_gradient(module, params), message="IP")])
