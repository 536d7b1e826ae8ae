"""Self-TracIn (the paper's [52], Thakkar et al. 2023): TracIn's self-influence at the converged model only,
score_i = −‖grad ℓ(z_i; θ)‖².

It needs no impact function. Per-sample gradients are formed one batch at a time (vmap), reduced to their
squared norms and dropped, so memory does not grow with N. Lower = more detrimental (large gradient = the model
finds the sample hard, the classic symptom of a wrong label).
"""

from __future__ import annotations

import torch

from ..grads import per_sample_grads, squared_norms
from .base import InfluenceMethod, ScoringContext


class SelfTracIn(InfluenceMethod):
    """Negative squared norm of each sample's loss gradient at the converged model."""

    name = "self_tracin"
    label = "Self-TracIn"
    kind = "self-influence"
    cost = "1 per-sample-grad pass"
    uses_impact = False

    def compute(self, ctx: ScoringContext) -> torch.Tensor:
        """Scores (n_train,) = −‖grad ℓ_i‖², lower = more detrimental."""
        module = ctx.module()
        params = ctx.selected_params(module)
        out = torch.empty(ctx.n_train, dtype=torch.float64)
        start = 0
        for x, y in ctx.train_batches():
            out[start : start + len(y)] = -squared_norms(per_sample_grads(module, params, x, y)).cpu()
            start += len(y)
            ctx.report(start / ctx.n_train, "Self-TracIn")
        return out
