"""TracIn (Pruthi et al. 2020, TracInCP): score_i = Σ_t lr_t · grad f(θ_t)ᵀ grad ℓ(z_i; θ_t) over saved checkpoints.

IP is TracIn with the converged model as the only checkpoint and unit learning rate. lr_t is the optimiser's step
size saved with the checkpoint (for Adam its base rate, as captum's TracInCP and most TracIn code use). Lower = more detrimental,
as for IP: a mislabelled sample's gradient points against the impact gradient at most checkpoints.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterator

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


def checkpoint_plan(ctx: ScoringContext, method: str, direction: Callable[[nn.Module, dict, float, float], dict], *,
                    start: float, lr_weighted: bool = False, mean: bool = False) -> LinearPlan:
    """A plan with one term per training checkpoint θ_t: ``direction(module_t, params_t, lo, hi)`` solved once per
    checkpoint (progress from lo to hi of [0, start]), weighted by lr_t (TracIn) and/or averaged over T (TDA)."""
    n_ckpt = len(require_checkpoints(ctx, method))
    terms = []
    for t, (ckpt, module) in enumerate(checkpoint_modules(ctx, method)):
        lo, hi = start * t / n_ckpt, start * (t + 1) / n_ckpt
        ctx.report(lo, f"checkpoint {t + 1}/{n_ckpt}: impact gradient")
        terms.append(Term(direction(module, ctx.selected_params(module), lo, hi), weight=ckpt.lr if lr_weighted else 1.0,
                          state=ckpt.state, message=f"checkpoint {t + 1}/{n_ckpt}"))
    return LinearPlan(terms, divide_by=n_ckpt if mean else 1, start=start)


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
        return checkpoint_plan(ctx, self.label, lambda module, params, lo, hi: ctx.target_gradient(module, params),
                               start=0.1, lr_weighted=True)
