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
from .lissa import LiSSASettings, lissa_inverse_hvp, resolve_settings


@dataclass(frozen=True)
class SelfLiSSASettings(LiSSASettings):
    """LiSSA's settings with a shallower default recursion (it runs once per chunk of samples) and the chunk size."""

    depth: int = 200
    sample_chunk: int = 64


class SelfLiSSA(InfluenceMethod):
    """Negative self-influence grad ℓ_iᵀ (H+λI)⁻¹ grad ℓ_i with the LiSSA inverse, per training sample."""

    name = "self_lissa"
    label = "Self-LiSSA"
    kind = "self-influence"
    cost = "N×depth×repeats HVPs"
    uses_impact = False
    shardable = True
    Settings = SelfLiSSASettings

    def compute(self, ctx: ScoringContext) -> torch.Tensor:
        """Scores (n_train,) = −grad ℓ_iᵀ (H+λI)⁻¹ grad ℓ_i, lower = more detrimental."""
        return self.score_rows(ctx, self.prepare(ctx), 0, ctx.n_train)

    def prepare(self, ctx: ScoringContext) -> tuple[SelfLiSSASettings, float]:
        """The resolved settings (damping) and the scale, from the Hessian's extreme eigenvalues (Lanczos over the
        whole training set), once."""
        if self.settings.sample_chunk < 1:
            raise InfluenceError("Self-LiSSA needs sample_chunk ≥ 1")
        module = ctx.module()
        return resolve_settings(ctx, module, ctx.selected_params(module), self.settings,  # type: ignore[arg-type]
                                details=self.details)

    def score_rows(self, ctx: ScoringContext, prepared: tuple[SelfLiSSASettings, float], start: int,
                   stop: int) -> torch.Tensor:
        """Self-influence of training rows start..stop, ``sample_chunk`` samples per LiSSA recursion (each recursion
        draws its mini-batches from the whole training set, the same sequence for every chunk)."""
        s, scale = prepared
        module = ctx.module()
        params = ctx.selected_params(module)
        out = torch.empty(stop - start, dtype=torch.float64)
        dtype = next(iter(params.values())).dtype
        n = max(stop - start, 1)
        for lo in range(start, stop, s.sample_chunk):
            hi = min(lo + s.sample_chunk, stop)
            x, y = ctx.train_rows(slice(lo, hi), dtype)
            g = {k: v.detach() for k, v in per_sample_grads(module, params, x, y).items()}
            solved = lissa_inverse_hvp(ctx, module, params, g, s, scale, span=((lo - start) / n, (hi - start) / n))  # type: ignore[arg-type]
            out[lo - start : hi - start] = -sum((g[k].double() * solved[k].double()).flatten(1).sum(1) for k in g).cpu()
        return out
