"""LiSSA (Agarwal et al. 2017, as used by Koh & Liang 2017): score_i = grad fᵀ (H + λI)⁻¹ grad ℓ(z_i; θ) with
s = (H + λI)⁻¹ grad f estimated by the stochastic Neumann recursion

    h_0 = v,   h_j = v + h_{j-1} − (H_j + λI) h_{j-1} / scale,   s ≈ h_depth / scale   (averaged over repeats),

H_j the Hessian of the training objective (mean loss + (l2/2)‖θ‖²) on a random mini-batch (drawn with
replacement; hvp_batch_size ≥ N uses the whole training set every step). The recursion converges
when scale exceeds the largest eigenvalue of H + λI (scale = 0 picks 2 × a power-iteration estimate of it); it
diverges otherwise, which is reported as an error. Then scores are one JVP pass along s. Same orientation as
`exact`: lower = more detrimental.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..errors import InfluenceError
from ..grads import Params, batched_hvp, flatten, lanczos_extremes, training_objective_hvp, unflatten
from .base import LinearMethod, LinearPlan, ScoringContext, Term
from .exact import automatic_damping, hessian_note

# ‖h_j‖ may legitimately reach scale·‖v‖/λ_min; far beyond that the recursion is diverging.
DIVERGENCE_RATIO = 1e8


@dataclass(frozen=True)
class LiSSASettings:
    depth: int = 1000
    repeats: int = 1
    scale: float = 0.0  # 0 = auto: 2 × the largest eigenvalue of H + λI (Lanczos, `hessian_extremes`)
    # None = automatic, as exact influence: 0.01, or more where the Hessian is not positive definite (λ = −λ_min +
    # 1% of |λ_max|, both by Lanczos). The recursion has no meaning unless H + λI is positive definite: at
    # 0.01 on the moons MLP (λ_min ≈ −0.1) its scores reached ±10⁷ and agreed with exact influence at Spearman 0.05.
    damping: float | None = None
    hvp_batch_size: int = 64
    seed: int = 0


MIN_DAMPING = 0.01  # automatic damping's floor: LiSSA's usual λ where the Hessian is positive definite


def _objective_hvp(ctx: ScoringContext, params: Params, module, v: Params) -> Params:
    return training_objective_hvp(module, params, v, ctx.train_batches(next(iter(params.values())).dtype), ctx.n_train,
                                  ctx.fitted.l2)


def hessian_extremes(ctx: ScoringContext, module, params: Params, steps: int = 40) -> tuple[float, float]:
    """(λ_min, λ_max) of the training objective's Hessian on the selected parameters: Lanczos over full-batch HVPs
    (`grads.lanczos_extremes`; ``steps`` HVP passes over the training set)."""
    first = next(iter(params.values()))

    def apply(flat: torch.Tensor) -> torch.Tensor:
        vector = unflatten(flat.to(device=first.device, dtype=first.dtype), params)
        return flatten(_objective_hvp(ctx, params, module, vector)).detach().cpu()

    return lanczos_extremes(apply, sum(p.numel() for p in params.values()), steps)


def resolve_settings(ctx: ScoringContext, module, params: Params, settings: LiSSASettings,
                     details: dict | None = None) -> tuple[LiSSASettings, float]:
    """The settings with the damping λ resolved (automatic when None) and the scale (automatic when 0), after the
    Hessian's extreme eigenvalues are estimated: a λ that leaves H + λI indefinite is refused in one line (the
    recursion would not converge to anything). ``details`` receives the eigenvalues, the λ and a note."""
    bad = (settings.scale < 0 or settings.depth < 1 or settings.repeats < 1 or settings.hvp_batch_size < 1
           or (settings.damping is not None and settings.damping < 0))
    if bad:
        raise InfluenceError("LiSSA needs depth ≥ 1, repeats ≥ 1, hvp_batch_size ≥ 1, damping ≥ 0 (empty: automatic) "
                             "and scale ≥ 0 (0 = auto)")
    ctx.report(0.0, "LiSSA: estimating the Hessian's extreme eigenvalues")
    smallest, largest = hessian_extremes(ctx, module, params)
    automatic = settings.damping is None
    damping = max(MIN_DAMPING, automatic_damping(smallest, largest)) if automatic else float(settings.damping)
    if smallest + damping <= 0:
        raise InfluenceError(f"LiSSA needs H + λI positive definite, but the Hessian's smallest eigenvalue is about "
                             f"{smallest:.3g} and damping λ = {damping:.3g}: set damping above {-smallest:.3g} (or leave "
                             "it empty for automatic)")
    if details is not None:
        details.update(hessian_min_eigenvalue=smallest, hessian_max_eigenvalue=largest, damping=damping,
                       automatic=automatic, note=hessian_note(smallest, damping, automatic))
    scale = float(settings.scale) if settings.scale > 0 else max(2.0 * (abs(largest) + damping), 1e-8)
    return replace(settings, damping=damping), scale


def lissa_inverse_hvp(ctx: ScoringContext, module, params: Params, vectors: Params, settings: LiSSASettings,
                      scale: float, span: tuple[float, float] = (0.0, 1.0)) -> Params:
    """(H + λI)⁻¹ v_k for a stack of K vectors ``{name: K×shape}`` by the LiSSA recursion (the same mini-batch
    sequence for every vector, so the estimate is one fixed linear map applied to all of them)."""
    train, l2, lam = ctx.dataset.train, ctx.fitted.l2, settings.damping
    dtype = next(iter(params.values())).dtype
    v_norm = torch.sqrt(sum(t.double().flatten(1).pow(2).sum(1) for t in vectors.values())).clamp_min(1e-30)
    limit = DIVERGENCE_RATIO * max(scale, 1.0) / max(lam + l2, 1e-8) * v_norm
    estimate = {k: torch.zeros_like(t) for k, t in vectors.items()}
    total_steps = settings.repeats * settings.depth
    for r in range(settings.repeats):
        gen = torch.Generator().manual_seed(settings.seed + r)
        h = {k: t.clone() for k, t in vectors.items()}
        for j in range(settings.depth):
            if settings.hvp_batch_size >= len(train):  # the whole training set: deterministic Neumann series
                x, y = ctx.train_rows(slice(None), dtype)
            else:
                idx = torch.randint(len(train), (settings.hvp_batch_size,), generator=gen)
                x, y = ctx.train_rows(idx, dtype)
            hv = batched_hvp(module, params, h, x, y, l2)
            h = {k: vectors[k] + h[k] - (hv[k] + lam * h[k]) / scale for k in h}
            if j % 10 == 9 or j == settings.depth - 1:
                norm = torch.sqrt(sum(t.double().flatten(1).pow(2).sum(1) for t in h.values()))
                if not bool(torch.isfinite(norm).all()) or bool((norm > limit).any()):
                    raise InfluenceError(
                        f"LiSSA diverged after {j + 1} steps (scale={scale:g}); use a larger scale (above the largest "
                        "Hessian eigenvalue, or 0 for auto) or more damping")
                step = r * settings.depth + j + 1
                ctx.report(span[0] + (span[1] - span[0]) * step / total_steps, f"LiSSA step {step}/{total_steps}")
        for k in estimate:
            estimate[k] += h[k] / (scale * settings.repeats)
    return estimate


class LiSSA(LinearMethod):
    """Influence with (H + λI)⁻¹ grad f estimated by the stochastic LiSSA recursion (HVPs on mini-batches)."""

    name = "lissa"
    label = "LiSSA"
    kind = "hessian-based"
    cost = "depth×repeats HVPs + 1 JVP"
    Settings = LiSSASettings

    def prepare(self, ctx: ScoringContext) -> LinearPlan:
        """s ≈ (H+λI)⁻¹ grad f by the LiSSA recursion, once; scores = grad ℓ_iᵀ s, lower = more detrimental."""
        module = ctx.module()
        params = ctx.selected_params(module)
        settings, scale = resolve_settings(ctx, module, params, self.settings, details=self.details)
        ctx.report(0.0, "impact gradient")
        target = ctx.target_gradient(module, params)
        stacked = {k: v.unsqueeze(0) for k, v in target.items()}
        solved = lissa_inverse_hvp(ctx, module, params, stacked, settings, scale, span=(0.0, 0.9))
        direction = {k: v[0] for k, v in solved.items()}
        return LinearPlan([Term(direction, message="LiSSA scores")], start=0.9)
