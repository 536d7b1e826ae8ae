"""IP Ensemble: the mean IP over K models θ_k = m_k ⊙ θ made by Bernoulli dropout masks on the parameters.

No rescaling by 1/(1−p): the paper perturbs the converged parameters to get nearby models, and at the default
p = 0.01 the rescale would shift every weight by 1% for no benefit. Each model's impact gradient is taken at θ_k.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InfluenceError
from .base import LinearMethod, LinearPlan, ScoringContext, Term


@dataclass(frozen=True)
class IPEnsembleSettings:
    ensemble_size: int = 5
    dropout: float = 0.01
    seed: int = 0


class IPEnsemble(LinearMethod):
    """Average IP over K dropout-masked copies of the converged model (no retraining, no checkpoints)."""

    name = "ip_ensemble"
    label = "IP Ensemble"
    kind = "hessian-free"
    cost = "K forward-mode passes"
    Settings = IPEnsembleSettings

    def check_settings(self) -> None:
        if self.settings.ensemble_size < 1 or not 0.0 <= self.settings.dropout < 1.0:
            raise InfluenceError("IP Ensemble needs ensemble_size ≥ 1 and 0 ≤ dropout < 1")

    def prepare(self, ctx: ScoringContext) -> LinearPlan:
        """K masked models and their impact gradients, drawn and computed once (so every shard of a sharded run sees
        the same masks); scores are the mean of K JVP passes (lower = more detrimental)."""
        k, p = self.settings.ensemble_size, self.settings.dropout
        module = ctx.module()
        params = ctx.selected_params(module)
        gen = torch.Generator().manual_seed(self.settings.seed)
        terms = []
        for i in range(k):
            # m_k ~ Bernoulli(1 − p) per parameter entry, drawn on the CPU so results do not depend on the device.
            masked = {n: v * (torch.rand(v.shape, generator=gen) >= p).to(v.device, v.dtype) for n, v in params.items()}
            ctx.report(0.1 * i / k, f"model {i + 1}/{k}: impact gradient")
            terms.append(Term(ctx.target_gradient(module, masked), params=masked, message=f"model {i + 1}/{k}"))
        return LinearPlan(terms, divide_by=k, start=0.1)
