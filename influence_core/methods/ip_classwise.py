"""IP against class-conditional targets: one impact gradient per class, g_c = ∇f over the validation samples of
class c, M[i, c] = g_cᵀ ∇ℓ(z_i; θ), and score_i = min_c M[i, c] (or Σ_{c ≠ y_i} M[i, c]).

Why: the mean validation gradient averages the classes' pulls away. A wrong-labelled training sample helps its
given class and hurts the others, so its inner product with some other class's target is strongly negative (lower
= more detrimental, as everywhere); with its own class's target alone the sign flips. All C inner products of a
batch come from one batched forward-mode pass (vmap over the C tangents).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.func import vmap

from ..errors import InfluenceError
from ..grads import directional_derivatives
from .base import InfluenceMethod, ScoringContext

REDUCTIONS = ("others", "min")


@dataclass(frozen=True)
class ClasswiseSettings:
    # "min": the most negative class-target IP (default: on the CIFAR-10N leaderboard it held up on every label set);
    # "others": Σ over the classes other than the given label.
    reduce: str = "min"


class ClasswiseIP(InfluenceMethod):
    """IP against one validation target per class, reduced by the minimum over classes (C forward-mode passes)."""

    name = "ip_classwise"
    label = "IP, class targets"
    kind = "hessian-free"
    cost = "C forward-mode passes"
    Settings = ClasswiseSettings

    def compute(self, ctx: ScoringContext) -> torch.Tensor:
        return torch.from_numpy(classwise_ip(ctx, self.settings.reduce))


def class_targets(ctx: ScoringContext, module, params) -> list[dict | None]:
    """g_c for every class c: the impact's gradient over the validation samples labelled c (None if there are none)."""
    if ctx.impact.name == "fairness":
        raise InfluenceError("class-conditional targets need an impact that is a mean over validation samples "
                             "(utility or robustness), not the fairness gap")
    val_y = ctx.dataset.val.y.numpy()
    dtype = next(iter(params.values())).dtype
    targets = []
    for c in range(ctx.dataset.num_classes):
        rows = np.flatnonzero(val_y == c)
        if len(rows) == 0:
            targets.append(None)
            continue
        view = replace(ctx.dataset, val=ctx.dataset.val.subset(rows))
        targets.append(ctx.impact.target_gradient(module, params, view, ctx.batch_size, ctx.device, dtype))
        ctx.report(0.2 * (c + 1) / ctx.dataset.num_classes, f"target of class {c + 1}/{ctx.dataset.num_classes}")
    return targets


def classwise_ip(ctx: ScoringContext, reduce: str = "min") -> np.ndarray:
    """Per-sample reduction of the N×C matrix M[i, c] = g_cᵀ∇ℓ_i (streamed in batches; one JVP per class)."""
    if reduce not in REDUCTIONS:
        raise InfluenceError(f"ip_classwise: reduce must be one of {', '.join(REDUCTIONS)}, got '{reduce}'")
    module = ctx.module()
    params = ctx.selected_params(module)
    targets = class_targets(ctx, module, params)
    present = [c for c, g in enumerate(targets) if g is not None]
    stacked = {k: torch.stack([targets[c][k] for c in present]) for k in params}  # C'×shape
    out = np.empty(ctx.n_train)
    start = 0
    for x, y in ctx.train_batches():
        m = torch.zeros(len(y), len(targets), dtype=torch.float64)  # B×C; a class without validation samples: 0
        m[:, present] = vmap(lambda d: directional_derivatives(module, params, d, x, y))(stacked).detach().double().cpu().T
        yc = y.cpu()
        if reduce == "others":
            block = m.sum(1) - m.gather(1, yc[:, None])[:, 0]
        else:
            block = m.min(1).values
        out[start : start + len(y)] = block.numpy()
        start += len(y)
        ctx.report(0.2 + 0.8 * start / ctx.n_train, "class-target IP")
    return out
