"""The functional maths every method shares (torch.func): per-sample losses, directional derivatives (JVP),
per-sample gradients (vmap), Hessian-vector products and the explicit Hessian for small models.

Parameters are handled as a dict ``{name: tensor}`` of the *selected* parameters; the rest of the module
(other parameters, buffers) is held fixed by `functional_call`. All functions run the module in eval mode.
"""

from __future__ import annotations

import warnings
from typing import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

from .errors import InfluenceError

# torch.func's forward-mode AD scripts its decompositions internally and warns about it on every first use;
# the warning is torch's own business, not the user's.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)

Params = dict[str, torch.Tensor]
Progress = Callable[[float, str], None]


# ----------------------------------------------------------------------------------------------- losses
def per_sample_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unreduced training loss: BCE-with-logits for one logit, cross-entropy for C logits."""
    if logits.shape[-1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], y.to(logits.dtype), reduction="none")
    return F.cross_entropy(logits, y, reduction="none")


def positive_probability(logits: torch.Tensor, positive_class: int = 1) -> torch.Tensor:
    """p̂(y = positive_class | x), the prediction the demographic-parity gap is measured on."""
    if logits.shape[-1] == 1:
        p1 = torch.sigmoid(logits[:, 0])
        return p1 if positive_class == 1 else 1 - p1
    return torch.softmax(logits, dim=-1)[:, positive_class]


def predict_labels(logits: torch.Tensor) -> torch.Tensor:
    if logits.shape[-1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(-1)


# ------------------------------------------------------------------------------------------- parameters
def select_params(module: nn.Module, selection: str = "all", head_prefix: str = "") -> Params:
    """Detached copies of the parameters influence is computed over.

    ``selection``: ``"all"``; ``"head"`` (the architecture's classifier head, ``head_prefix``); ``"last_block"``
    (a fine-tuned backbone's last block and head, else the head); or a name
    prefix such as ``"layer4"`` (several prefixes separated by commas).
    """
    named = {n: p.detach() for n, p in module.named_parameters()}
    group = getattr(module, "parameter_group", None)  # a module's own groups (models/hf.py: "head", "lora", "last:k")
    names = group(selection or "all") if callable(group) else None
    if names is not None:
        return {n: named[n] for n in names}
    if selection == "last_block":  # a fine-tuned backbone's last block and head (models.backbones.LastBlockNetwork)
        selection = getattr(module, "last_block_params", None) or "head"
    if selection in ("all", "", None):
        return named
    prefixes = [head_prefix] if selection == "head" else [s.strip() for s in selection.split(",") if s.strip()]
    if selection == "head" and not head_prefix:
        raise InfluenceError("this model has no declared head; use --params all or a parameter name prefix")
    # Whole name components only: "layer1" selects layer1.* but not layer10.*.
    chosen = {n: p for n, p in named.items() if any(n == pre or n.startswith(pre.rstrip(".") + ".") for pre in prefixes)}
    if not chosen:
        sample = ", ".join(list(named)[:6])
        raise InfluenceError(f"no parameters match '{selection}'; names start with e.g.: {sample}")
    return chosen


def num_params(params: Mapping[str, torch.Tensor]) -> int:
    return sum(p.numel() for p in params.values())


def flatten(tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def unflatten(vector: torch.Tensor, like: Mapping[str, torch.Tensor]) -> Params:
    out, start = {}, 0
    for name, t in like.items():
        out[name] = vector[start : start + t.numel()].view_as(t)
        start += t.numel()
    return out


def lanczos_extremes(apply: Callable[[torch.Tensor], torch.Tensor], dim: int, steps: int = 40,
                     seed: int = 0) -> tuple[float, float]:
    """(smallest, largest) eigenvalue estimates of a symmetric linear map on R^dim by ``steps`` Lanczos steps with
    full reorthogonalisation (float64): the extreme Ritz values of the tridiagonal T = QᵀAQ. They lie inside the
    spectrum and converge far faster than power iteration when an extreme eigenvalue is close to the rest (a
    slightly negative λ_min beside many near-zero ones, as in a trained network's Hessian). Memory: steps × dim."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(dim, generator=gen, dtype=torch.float64)
    basis = [q / q.norm()]
    alphas: list[float] = []
    betas: list[float] = []
    for _ in range(min(steps, dim)):
        w = apply(basis[-1]).to(torch.float64)
        alphas.append(float(w @ basis[-1]))
        stacked = torch.stack(basis)
        for _ in range(2):  # twice is enough (Kahan–Parlett): keeps the basis orthogonal in floating point
            w = w - stacked.T @ (stacked @ w)
        norm = float(w.norm())
        if norm <= 1e-10 * max(abs(a) for a in alphas) or len(alphas) == min(steps, dim):
            break
        betas.append(norm)
        basis.append(w / norm)
    tri = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas[: len(alphas) - 1], dtype=torch.float64)
        tri += torch.diag(off, 1) + torch.diag(off, -1)
    ritz = torch.linalg.eigvalsh(tri)
    return float(ritz[0]), float(ritz[-1])


def dot(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return sum((a[k].double() * b[k].double()).sum() for k in a)


def to_device(params: Mapping[str, torch.Tensor], device: torch.device | str, dtype: torch.dtype | None = None) -> Params:
    return {k: v.to(device=device, dtype=dtype or v.dtype) for k, v in params.items()}


# ------------------------------------------------------------------------------------- functional losses
def forward(module: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits of ``module`` with ``params`` substituted (other parameters and buffers as in the module)."""
    return functional_call(module, dict(params), (x,), strict=False)


def per_sample_losses(module: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return per_sample_loss(forward(module, params, x), y)


def directional_derivatives(module: nn.Module, params: Params, direction: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``grad ℓ(z_i; θ)ᵀ v`` for every sample of the batch, as one forward-mode JVP.

    d/dt ℓ_i(θ + t·v) at t=0 is exactly the inner product of the per-sample gradient with v, so all B scores
    come out of a single forward pass carrying tangents: no B×P gradient matrix is ever built.
    """
    direction = {k: direction[k].to(params[k].dtype) for k in params}
    _, tangent = jvp(lambda p: per_sample_losses(module, p, x, y), (params,), (direction,))
    return tangent


def per_sample_grads(module: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor) -> Params:
    """Per-sample gradients ``{name: B×shape}`` by vmap over grad (for methods that need the gradients)."""

    def one(p: Params, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return per_sample_losses(module, p, xi.unsqueeze(0), yi.unsqueeze(0))[0]

    return vmap(grad(one), in_dims=(None, 0, 0))(params, x, y)


# ------------------------------------------------------------------------------------------ curvature
def training_objective_hvp(
    module: nn.Module, params: Params, vector: Params, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], n: int, l2: float
) -> Params:
    """``H v`` for H the Hessian of the training objective (1/n)Σℓ_i + (l2/2)‖θ‖², forward-over-reverse."""
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for x, y in batches:
        g = lambda p: grad(lambda q: per_sample_losses(module, q, x, y).sum())(p)  # noqa: E731
        _, hv = jvp(g, (params,), (vector,))
        for k in total:
            total[k] += hv[k]
    return {k: total[k] / n + l2 * vector[k] for k in total}


MAX_EXACT_PARAMS = 20_000


def explicit_hessian(
    module: nn.Module, params: Params, batches_factory: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    n: int, l2: float, chunk: int = 256, progress: Progress | None = None,
) -> torch.Tensor:
    """The P×P Hessian of the training objective, column block by column block (vmap over HVPs)."""
    p = num_params(params)
    if p > MAX_EXACT_PARAMS:
        raise InfluenceError(
            f"the explicit Hessian needs a model of at most {MAX_EXACT_PARAMS:,} parameters, this selection has {p:,}; "
            "use --params head, or a Hessian-free method"
        )
    dtype, device = next(iter(params.values())).dtype, next(iter(params.values())).device
    hessian = torch.zeros(p, p, dtype=dtype, device=device)
    eye = torch.eye(p, dtype=dtype, device=device)
    for start in range(0, p, chunk):
        basis = eye[start : start + chunk]
        for x, y in batches_factory():
            def col(v: torch.Tensor) -> torch.Tensor:
                g = lambda q: grad(lambda r: per_sample_losses(module, r, x, y).sum())(q)  # noqa: E731
                return flatten(jvp(g, (params,), (unflatten(v, params),))[1])

            hessian[start : start + chunk] += vmap(col)(basis)
        if progress:
            progress(min(1.0, (start + chunk) / p), "building the Hessian")
    hessian /= n
    hessian += l2 * eye
    return 0.5 * (hessian + hessian.T)


def squared_norms(per_sample: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """‖g_i‖² per sample of a batch of per-sample gradients ``{name: B×shape}`` (float64)."""
    return sum(g.detach().double().flatten(1).pow(2).sum(1) for g in per_sample.values())


def batched_hvp(module: nn.Module, params: Params, vectors: Params, x: torch.Tensor, y: torch.Tensor, l2: float) -> Params:
    """``H_B v_k`` for a stack of K vectors ``{name: K×shape}`` at once, H_B the Hessian of the training objective
    on the batch (x, y) alone: mean loss over the batch + (l2/2)‖θ‖².

    Reverse-over-reverse with batched grad_outputs: on a CPU this is several times faster than vmap over
    torch.func's forward-over-reverse for the small models the stochastic solvers (LiSSA) call it on thousands of times.
    """
    leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    names = list(leaves)
    with torch.enable_grad():
        loss = per_sample_losses(module, leaves, x, y).mean()
        g = torch.autograd.grad(loss, [leaves[k] for k in names], create_graph=True, allow_unused=True, materialize_grads=True)
        live = [i for i, t in enumerate(g) if t.requires_grad]  # a gradient with no graph has a zero Hessian block
        hv = torch.autograd.grad([g[i] for i in live], [leaves[k] for k in names], grad_outputs=[vectors[names[i]] for i in live],
                                 is_grads_batched=True, allow_unused=True, materialize_grads=True) if live else None
    out = {}
    for j, k in enumerate(names):
        block = hv[j].detach() if hv is not None else torch.zeros_like(vectors[k])
        out[k] = block + l2 * vectors[k]
    return out
