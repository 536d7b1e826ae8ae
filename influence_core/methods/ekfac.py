"""EKFAC (George et al. 2018; Grosse et al. 2023): influence grad fᵀ (G + (l2 + λ)I)⁻¹ grad ℓ(z_i; θ) with G the
eigenvalue-corrected Kronecker-factored approximation of the Gauss-Newton (Fisher) matrix, layer by layer.

Per nn.Linear / nn.Conv2d layer: A = E[Σ_t a_t a_tᵀ] over inputs a (im2col patches for convolutions, with a
constant 1 appended when the bias is selected) and S = E[Σ_t δ_t δ_tᵀ] over output gradients δ; Q_A, Q_S are their
eigenvectors and the corrections Λ = E[(Q_Sᵀ G_i Q_A)²] are fitted to each sample's layer gradient G_i = Σ_t δ_t a_tᵀ
(streamed in batches). The output gradients are taken under the model's own predictive distribution, with the
expectation over labels computed exactly (every class, weighted by p̂(c | x)) instead of sampled: this is the true
Fisher, which equals the Gauss-Newton matrix for BCE/CE on logits (and the Hessian for logistic regression), and it
has no sampling noise. The L2 term of the training objective adds l2·I; λ is extra damping.
Scores: s = (G + (l2+λ)I)⁻¹ grad f once, then one JVP pass. Same orientation as `exact`: lower = more detrimental.

Written here rather than wrapping `kronfluence`: kronfluence 1.0.1 installs beside torch 2.14.1, but it brings
the accelerate / huggingface_hub stack, writes its factors to an output directory, needs a Task class per loss,
and its curvature has no L2 term; this module is ~200 lines and has none of that. The tests check it against an
independent construction, brute-force per-sample layer gradients, and kronfluence itself (agreement ~1e-7 where
kronfluence is installed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InfluenceError
from ..grads import Params
from .base import LinearMethod, LinearPlan, ScoringContext, Term

SUPPORTED_LAYERS = (nn.Linear, nn.Conv2d)


@dataclass(frozen=True)
class EKFACSettings:
    damping: float = 0.001  # added to the model's own L2


@dataclass
class KroneckerLayer:
    """One layer the selection covers: which of its parameters are selected, and (once fitted) its factors."""

    module: nn.Module
    weight: str | None
    bias: str | None
    q_a: torch.Tensor | None = None
    q_s: torch.Tensor | None = None
    corrections: torch.Tensor | None = None


def covered_layers(module: nn.Module, params: Params) -> list[KroneckerLayer]:
    """The Linear/Conv2d layers holding the selected parameters; an error if any selected parameter is elsewhere."""
    layers, covered = [], set()
    for name, m in module.named_modules():
        if not isinstance(m, SUPPORTED_LAYERS):
            continue
        prefix = f"{name}." if name else ""
        w = prefix + "weight" if prefix + "weight" in params else None
        b = prefix + "bias" if m.bias is not None and prefix + "bias" in params else None
        if w is None and b is None:
            continue
        if isinstance(m, nn.Conv2d) and (m.groups != 1 or isinstance(m.padding, str) or m.padding_mode != "zeros"):
            raise InfluenceError(f"EKFAC supports plain Conv2d layers only (groups=1, numeric zero padding); '{name}' is not")
        layers.append(KroneckerLayer(m, w, b))
        covered |= {w, b}
    missing = sorted(set(params) - covered)
    if missing:
        raise InfluenceError(
            f"EKFAC covers nn.Linear and nn.Conv2d layers only, but parameter '{missing[0]}' belongs to another layer "
            "type; select only such layers (e.g. --params head)")
    return layers


def _layer_inputs(layer: KroneckerLayer, inputs: torch.Tensor) -> torch.Tensor:
    """Per-sample rows a_t, shape B×T×d_in (T = positions), with a column of ones when the bias is selected."""
    m = layer.module
    if isinstance(m, nn.Conv2d):
        a = F.unfold(inputs, m.kernel_size, dilation=m.dilation, padding=m.padding, stride=m.stride).transpose(1, 2)
    else:
        a = inputs.reshape(inputs.shape[0], -1, inputs.shape[-1])
    parts = ([a] if layer.weight else []) + ([torch.ones_like(a[..., :1])] if layer.bias else [])
    return torch.cat(parts, dim=-1).double()


def _layer_output_grads(layer: KroneckerLayer, grads: torch.Tensor) -> torch.Tensor:
    """Output gradients δ_t, shape B×T×d_out."""
    if isinstance(layer.module, nn.Conv2d):
        return grads.flatten(2).transpose(1, 2).double()
    return grads.reshape(grads.shape[0], -1, grads.shape[-1]).double()


def _fisher_batches(ctx: ScoringContext, module: nn.Module, layers: list[KroneckerLayer]):
    """Per batch: layer inputs and, for each class c, the output gradients under label c with weights p̂(c | x)."""
    captured: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    hooks = [l.module.register_forward_hook(lambda m, i, o, k=k: captured.setdefault(k, []).append((i[0], o)))
             for k, l in enumerate(layers)]
    dtype = next(module.parameters()).dtype
    for layer in layers:  # the output gradients are read off the autograd graph through these layers
        for p in layer.module.parameters():
            p.requires_grad_(True)
    try:
        for x, _ in ctx.train_batches(dtype):
            captured.clear()
            with torch.enable_grad():
                logits = module(x)
                outputs = [torch.cat([o for _, o in captured[k]], dim=1) if len(captured[k]) > 1 else captured[k][0][1]
                           for k in range(len(layers))]
                inputs = [_layer_inputs(l, captured[k][0][0].detach()) if len(captured[k]) == 1 else
                          torch.cat([_layer_inputs(l, i.detach()) for i, _ in captured[k]], dim=1)
                          for k, l in enumerate(layers)]
                if logits.shape[-1] == 1:  # BCE on one logit: dℓ/dz = p − c for c ∈ {0, 1}
                    p1 = torch.sigmoid(logits.detach())
                    probs = torch.cat([1 - p1, p1], dim=1)
                    dlogits = [p1 - c for c in (0.0, 1.0)]
                else:  # CE: dℓ/dz = softmax − e_c
                    probs = torch.softmax(logits.detach(), dim=-1)
                    eye = torch.eye(logits.shape[-1], dtype=logits.dtype, device=logits.device)
                    dlogits = [probs - eye[c] for c in range(logits.shape[-1])]
                per_class = []
                for c, dz in enumerate(dlogits):
                    g = torch.autograd.grad(logits, outputs, grad_outputs=dz, retain_graph=c < len(dlogits) - 1)
                    per_class.append(([_layer_output_grads(l, gk) for l, gk in zip(layers, g)], probs[:, c].double()))
            yield inputs, per_class
    finally:
        for h in hooks:
            h.remove()


def fit_ekfac(ctx: ScoringContext, module: nn.Module, layers: list[KroneckerLayer], span: tuple[float, float]) -> None:
    """Fit Q_A, Q_S (pass 1: Kronecker factors) and the eigenvalue corrections Λ (pass 2), streamed in batches."""
    n = ctx.n_train
    a_cov = [None] * len(layers)
    s_cov = [None] * len(layers)
    mid = (span[0] + span[1]) / 2
    for inputs, per_class in _fisher_batches(ctx, module, layers):
        for k, a in enumerate(inputs):
            a_term = torch.einsum("bti,btj->ij", a, a)
            a_cov[k] = a_term if a_cov[k] is None else a_cov[k] + a_term
            for deltas, w in per_class:
                d = deltas[k]
                s_term = torch.einsum("b,bti,btj->ij", w, d, d)
                s_cov[k] = s_term if s_cov[k] is None else s_cov[k] + s_term
    for k, layer in enumerate(layers):
        layer.q_a = torch.linalg.eigh(a_cov[k] / n).eigenvectors
        layer.q_s = torch.linalg.eigh(s_cov[k] / n).eigenvectors
        layer.corrections = torch.zeros(layer.q_s.shape[0], layer.q_a.shape[0], dtype=torch.float64, device=layer.q_a.device)
    ctx.report(mid, "EKFAC: eigenvalue corrections")
    for inputs, per_class in _fisher_batches(ctx, module, layers):
        for k, layer in enumerate(layers):
            a_rot = inputs[k] @ layer.q_a
            for deltas, w in per_class:
                for lo in range(0, a_rot.shape[0], 32):  # sample chunks bound the B×d_out×d_in projected gradients
                    d_rot = deltas[k][lo : lo + 32] @ layer.q_s
                    g_rot = torch.einsum("bto,bti->boi", d_rot, a_rot[lo : lo + 32])
                    layer.corrections += torch.einsum("b,boi->oi", w[lo : lo + 32], g_rot * g_rot)
    for layer in layers:
        layer.corrections /= n


def _as_matrix(layer: KroneckerLayer, vector: Params) -> torch.Tensor:
    parts = []
    if layer.weight:
        w = vector[layer.weight]
        parts.append(w.reshape(w.shape[0], -1))
    if layer.bias:
        parts.append(vector[layer.bias].reshape(-1, 1))
    return torch.cat(parts, dim=1).double()


FACTORS = ("q_a", "q_s", "corrections")


def ekfac_inverse_hvp(ctx: ScoringContext, module: nn.Module, params: Params, vector: Params, damping: float,
                      span: tuple[float, float] = (0.0, 1.0), cached: bool = False) -> Params:
    """(G_EKFAC + (l2 + λ)I)⁻¹ v over the selected parameters (fits the factors at ``module``'s parameters).

    ``cached``: ``module`` holds the fitted model's weights, so its factors (which depend on neither the impact nor
    the damping) go through the workspace cache when the context has one."""
    shift = ctx.fitted.l2 + damping
    if damping < 0 or shift <= 0:
        raise InfluenceError("EKFAC needs damping ≥ 0 and L2 + damping > 0 (this model has no L2: set a damping > 0)")
    layers = covered_layers(module, params)

    def compute() -> dict:
        fit_ekfac(ctx, module, layers, span)
        return {f"{k}.{name}": getattr(layer, name).detach().cpu().numpy() for k, layer in enumerate(layers)
                for name in FACTORS}

    arrays = ctx.cached_arrays("ekfac_factors", {}, compute) if cached else compute()
    for k, layer in enumerate(layers):
        for name in FACTORS:
            setattr(layer, name, torch.from_numpy(arrays[f"{k}.{name}"]).to(ctx.device))
    out: Params = {}
    for layer in layers:
        rotated = layer.q_s.T @ _as_matrix(layer, vector).to(layer.q_a.device) @ layer.q_a
        solved = layer.q_s @ (rotated / (layer.corrections + shift)) @ layer.q_a.T
        if layer.weight:
            w = params[layer.weight]
            out[layer.weight] = solved[:, : w[0].numel()].reshape(w.shape).to(w.dtype)
        if layer.bias:
            b = params[layer.bias]
            out[layer.bias] = solved[:, -1].reshape(b.shape).to(b.dtype)
    return {k: out[k] for k in params}


class EKFAC(LinearMethod):
    """Influence with the eigenvalue-corrected K-FAC inverse Gauss-Newton (Linear and Conv2d layers)."""

    name = "ekfac"
    label = "EKFAC"
    kind = "hessian-based"
    cost = "2 factor passes + 1 JVP"
    Settings = EKFACSettings

    def prepare(self, ctx: ScoringContext) -> LinearPlan:
        """s = (G + (l2+λ)I)⁻¹ grad f, solved once; scores = grad ℓ_iᵀ s, lower = more detrimental."""
        module = ctx.module()
        params = ctx.selected_params(module)
        covered_layers(module, params)  # fail fast, before any pass over the data
        ctx.report(0.0, "impact gradient")
        target = ctx.target_gradient(module, params)
        direction = ekfac_inverse_hvp(ctx, module, params, target, self.settings.damping, span=(0.0, 0.8), cached=True)
        return LinearPlan([Term(direction, message="EKFAC scores")], start=0.8)
