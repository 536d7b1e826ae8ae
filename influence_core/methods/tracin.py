"""TracIn (Pruthi et al. 2020, TracInCP): score_i = Σ_t lr_t · grad f(θ_t)ᵀ grad ℓ(z_i; θ_t) over saved checkpoints.

IP is TracIn with the converged model as the only checkpoint and unit learning rate. lr_t is the optimiser's step
size saved with the checkpoint (for Adam its base rate, as captum's TracInCP and most TracIn code use). Lower = more detrimental,
as for IP: a mislabelled sample's gradient points against the impact gradient at most checkpoints.
"""

from __future__ import annotations

import copy
from typing import Iterator

import torch
from torch import nn

from ..errors import InfluenceError
from ..models.train import Checkpoint
from .base import InfluenceMethod, LinearMethod, LinearPlan, ScoringContext, Term


def require_checkpoints(ctx: ScoringContext, method: str) -> list[Checkpoint]:
    """The fitted model's training checkpoints, or a one-line error saying how to get them."""
    if not ctx.fitted.checkpoints:
        raise InfluenceError(f"{method} needs training checkpoints and this model has none; "
                             "train it with checkpoint_every > 0 (CLI: --checkpoint-every 1)")
    return list(ctx.fitted.checkpoints)


def checkpoint_modules(ctx: ScoringContext, method: str, dtype: torch.dtype = torch.float32) -> Iterator[tuple[Checkpoint, nn.Module]]:
    """Each checkpoint with a copy of the model holding its parameters (on the context's device, eval mode)."""
    for ckpt in require_checkpoints(ctx, method):
        module = copy.deepcopy(ctx.fitted.module)
        module.load_state_dict(ckpt.state)
        yield ckpt, module.to(device=ctx.device, dtype=dtype).eval()


class TracIn(LinearMethod):
    """Learning-rate-weighted sum of IP over the training checkpoints (TracInCP)."""

    name = "tracin"
    label = "TracIn"
    kind = "hessian-free"
    cost = "T JVP passes (checkpoints)"
    needs_checkpoints = True

    def prepare(self, ctx: ScoringContext) -> LinearPlan:
        """Each checkpoint's impact gradient, computed once; scores (lower = more detrimental) are
        Σ_t lr_t grad f(θ_t)ᵀ grad ℓ_i(θ_t), one JVP pass per checkpoint."""
        n_ckpt = len(require_checkpoints(ctx, self.label))
        terms = []
        for t, (ckpt, module) in enumerate(checkpoint_modules(ctx, self.label)):
            params = ctx.selected_params(module)
            ctx.report(0.1 * t / n_ckpt, f"checkpoint {t + 1}/{n_ckpt}: impact gradient")
            terms.append(Term(ctx.target_gradient(module, params), weight=ckpt.lr, state=ckpt.state,
                              message=f"checkpoint {t + 1}/{n_ckpt}"))
        return LinearPlan(terms, start=0.1)
