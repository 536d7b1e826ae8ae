"""Self-LiSSA (the paper's [5], Bejan et al. 2023): score_i = −grad ℓ_iᵀ (H + λI)⁻¹ grad ℓ_i, with the inverse HVP
estimated by the LiSSA recursion (see `lissa`).

The recursion runs on a chunk of per-sample gradient vectors at once (vmap over the HVP), with the same
mini-batch sequence for every chunk, so all samples see one fixed LiSSA operator. Cost: (N / sample_chunk) ×
depth × repeats vmapped HVPs, i.e. about N × depth × repeats HVPs — hundreds of times IP; memory is
sample_chunk × P. Lower = more detrimental.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InfluenceError
from ..grads import per_sample_grads
from .base import InfluenceMethod, ScoringContext
from .lissa import lissa_inverse_hvp, resolve_scale


@dataclass(frozen=True)
class SelfLiSSASettings:
    depth: int = 200
    repeats: int = 1
    scale: float = 0.0  # 0 = auto: 2 × the largest eigenvalue of H + λI (power iteration)
    damping: float = 0.01
    hvp_batch_size: int = 64
    seed: int = 0
    sample_chunk: int = 64


class SelfLiSSA(InfluenceMethod):
    """Negative self-influence grad ℓ_iᵀ (H+λI)⁻¹ grad ℓ_i with the LiSSA inverse, per training sample."""

    name = "self_lissa"
    label = "Self-LiSSA"
    kind = "self-influence"
    cost = "N×depth×repeats HVPs"
    uses_impact = False
    Settings = SelfLiSSASettings

    def compute(self, ctx: ScoringContext) -> torch.Tensor:
        """Scores (n_train,) = −grad ℓ_iᵀ (H+λI)⁻¹ grad ℓ_i, lower = more detrimental."""
        s = self.settings
        if s.sample_chunk < 1:
            raise InfluenceError("Self-LiSSA needs sample_chunk ≥ 1")
        module = ctx.module()
        params = ctx.selected_params(module)
        scale = resolve_scale(ctx, module, params, s)  # type: ignore[arg-type]
        train, n = ctx.dataset.train, ctx.n_train
        out = torch.empty(n, dtype=torch.float64)
        dtype = next(iter(params.values())).dtype
        for start in range(0, n, s.sample_chunk):
            stop = min(start + s.sample_chunk, n)
            x, y = train.x[start:stop].to(ctx.device, dtype), train.y[start:stop].to(ctx.device)
            g = {k: v.detach() for k, v in per_sample_grads(module, params, x, y).items()}
            solved = lissa_inverse_hvp(ctx, module, params, g, s, scale, span=(start / n, stop / n))  # type: ignore[arg-type]
            out[start:stop] = -sum((g[k].double() * solved[k].double()).flatten(1).sum(1) for k in g).cpu()
        return out
