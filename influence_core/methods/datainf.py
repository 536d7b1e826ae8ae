"""DataInf (Kwon et al. 2023): a closed-form, layer-wise inverse of the damped empirical Fisher.

Per layer l (one parameter tensor, as in the authors' code), with per-sample gradients g_il and v = grad f:

    (G_l + λ_l I)⁻¹ v_l ≈ (1/λ_l) (v_l − (1/n) Σ_i [(v_lᵀ g_il) / (λ_l + ‖g_il‖²)] g_il)

(swap the average and the inverse, then Sherman–Morrison per sample), λ_l = 0.1 × mean_i ‖g_il‖² (the paper's
default; `lambda_scale`). Two streamed passes of per-sample gradients (norms, then the running sum), no N×P
matrix; then scores by one JVP pass along s. DataInf's curvature is its own (no L2 term). Same orientation as
`exact`: lower = more detrimental.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InfluenceError
from ..grads import per_sample_grads
from .base import LinearMethod, LinearPlan, ScoringContext, Term


@dataclass(frozen=True)
class DataInfSettings:
    lambda_scale: float = 0.1  # λ_l = lambda_scale × mean_i ‖g_il‖²


class DataInf(LinearMethod):
    """Influence with DataInf's layer-wise Sherman–Morrison closed form for the inverse damped Fisher."""

    name = "datainf"
    label = "DataInf"
    kind = "hessian-based"
    cost = "2 grad passes + 1 JVP pass"
    Settings = DataInfSettings

    def check_settings(self) -> None:
        if self.settings.lambda_scale <= 0:
            raise InfluenceError("DataInf needs lambda_scale > 0")

    def prepare(self, ctx: ScoringContext) -> LinearPlan:
        """The DataInf direction, solved once (two gradient passes); scores = grad ℓ_iᵀ s, lower = more detrimental."""
        module = ctx.module()
        params = ctx.selected_params(module)
        ctx.report(0.0, "impact gradient")
        v = {k: t.double() for k, t in ctx.target_gradient(module, params).items()}
        n = ctx.n_train
        # Pass 1: λ_l from the mean squared per-sample gradient norm of each layer.
        mean_sq = {k: 0.0 for k in params}
        for x, y in ctx.train_batches():
            for k, g in per_sample_grads(module, params, x, y).items():
                mean_sq[k] += float(g.detach().double().flatten(1).pow(2).sum())
        lam = {k: self.settings.lambda_scale * mean_sq[k] / n for k in params}
        if any(l <= 0 for l in lam.values()):
            raise InfluenceError("DataInf: a layer has zero gradient on every training sample; select other parameters")
        ctx.report(0.3, "DataInf: Sherman–Morrison sum")
        # Pass 2: Σ_i c_il g_il with c_il = (v_lᵀ g_il) / (λ_l + ‖g_il‖²), one batch of gradients at a time.
        acc = {k: torch.zeros_like(t) for k, t in v.items()}
        for x, y in ctx.train_batches():
            for k, g in per_sample_grads(module, params, x, y).items():
                g = g.detach().double().flatten(1)
                coeff = (g @ v[k].reshape(-1)) / (lam[k] + g.pow(2).sum(1))
                acc[k] += (coeff @ g).reshape(v[k].shape)
        direction = {k: ((v[k] - acc[k] / n) / lam[k]).to(params[k].dtype) for k in params}
        return LinearPlan([Term(direction, message="DataInf scores")], start=0.6)
