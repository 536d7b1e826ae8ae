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
    shardable = True

    def compute(self, ctx: ScoringContext) -> torch.Tensor:
        """Scores (n_train,) = −‖grad ℓ_i‖², lower = more detrimental."""
        return self.score_rows(ctx, self.prepare(ctx), 0, ctx.n_train)

    def prepare(self, ctx: ScoringContext) -> None:
        return None  # each sample's score needs only its own gradient

    def score_rows(self, ctx: ScoringContext, prepared, start: int, stop: int) -> torch.Tensor:
        """−‖grad ℓ_i‖² for training rows start..stop, one batch of per-sample gradients at a time."""
        module = ctx.module()
        params = ctx.selected_params(module)
        out = torch.empty(stop - start, dtype=torch.float64)
        done = 0
        for x, y in ctx.train_batches(start=start, stop=stop):
            out[done : done + len(y)] = -squared_norms(per_sample_grads(module, params, x, y)).cpu()
            done += len(y)
            ctx.report(done / max(stop - start, 1), "Self-TracIn")
        return out
