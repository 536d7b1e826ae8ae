"""GEX (Kim et al. 2024), as the paper uses it: IP averaged over K models θ_k obtained from the converged θ by a
few extra SGD iterations on the training objective (1/B)Σℓ_i + (l2/2)‖θ‖² (random mini-batches, seed + k).

score_i = (1/K) Σ_k grad f(θ_k)ᵀ grad ℓ(z_i; θ_k); with steps = 0 every θ_k = θ and GEX is IP. Only the selected
parameters move. Lower = more detrimental.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import grad

from ..errors import InfluenceError
from ..grads import Params, per_sample_losses
from .base import LinearMethod, LinearPlan, ScoringContext, Term


@dataclass(frozen=True)
class GEXSettings:
    ensemble_size: int = 5
    steps: int = 10
    lr: float = 0.01
    sgd_batch_size: int = 32
    seed: int = 0


def sgd_from(ctx: ScoringContext, module, params: Params, steps: int, lr: float, batch_size: int, seed: int) -> Params:
    """``steps`` plain SGD iterations on the training objective from ``params`` (a new dict; inputs untouched)."""
    train, l2 = ctx.dataset.train, ctx.fitted.l2
    gen = torch.Generator().manual_seed(seed)
    current = {k: v.clone() for k, v in params.items()}
    dtype = next(iter(params.values())).dtype

    def objective(p: Params, x, y) -> torch.Tensor:
        return per_sample_losses(module, p, x, y).mean() + 0.5 * l2 * sum((v * v).sum() for v in p.values())

    for _ in range(steps):
        idx = torch.randint(len(train), (min(batch_size, len(train)),), generator=gen)
        x, y = ctx.train_rows(idx, dtype)
        g = grad(objective)(current, x, y)
        current = {k: current[k] - lr * g[k] for k in current}
    return current


class GEX(LinearMethod):
    """Mean IP over K models reached by a few extra SGD steps from the converged model."""

    name = "gex"
    label = "GEX"
    kind = "hessian-free"
    cost = "K×steps SGD + K JVP passes"
    Settings = GEXSettings

    def check_settings(self) -> None:
        s = self.settings
        if s.ensemble_size < 1 or s.steps < 0 or s.lr < 0 or s.sgd_batch_size < 1:
            raise InfluenceError("GEX needs ensemble_size ≥ 1, steps ≥ 0, lr ≥ 0 and sgd_batch_size ≥ 1")

    def prepare(self, ctx: ScoringContext) -> LinearPlan:
        """K models θ_k and their impact gradients, once; scores (lower = more detrimental) are the mean over k of
        grad f(θ_k)ᵀ grad ℓ_i(θ_k)."""
        s = self.settings
        module = ctx.module()
        params = ctx.selected_params(module)
        k = s.ensemble_size
        terms = []
        for i in range(k):
            ctx.report(0.5 * i / k, f"model {i + 1}/{k}: {s.steps} SGD steps")
            theta = sgd_from(ctx, module, params, s.steps, s.lr, s.sgd_batch_size, s.seed + i)
            if not all(bool(torch.isfinite(v).all()) for v in theta.values()):
                raise InfluenceError(f"GEX's extra SGD steps diverged (lr={s.lr}); use a smaller lr")
            terms.append(Term(ctx.target_gradient(module, theta), params=theta, message=f"model {i + 1}/{k}"))
        return LinearPlan(terms, divide_by=k, start=0.5)
