"""Computations behind the workbench's views: gradient geometry (paper Fig. 1), sample-to-sample gradient
similarity ("why flagged"), model predictions, penultimate-layer features and a 2-D decision grid.

Scores follow the project's sign: lower = more detrimental (a negative IP / influence means that removing the
sample would lower the impact f).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import nn
from torch.func import grad

from .data.base import Dataset, Split
from .errors import InfluenceError
from .grads import MAX_EXACT_PARAMS, Progress, num_params, per_sample_losses, predict_labels, select_params
from .impacts import make_impact
from .methods.base import ScoringContext, stream_inner_products
from .methods.exact import inverse_hvp_target
from .models.train import FittedModel


@dataclass
class AngleGeometry:
    """Each training gradient g_i against u = ∇f and w = H⁻¹∇f (paper Fig. 1 / App. A).

    ``ip`` = g_iᵀu (the IP score), ``influence`` = g_iᵀw (the influence score); ``coords`` is the projection of
    g_i onto the plane span(u, w) in the orthonormal basis e1 = u/‖u‖, e2 ⊥ e1; ``u_xy`` and ``w_xy`` are u and w
    in that basis, so coords @ u_xy = ip and coords @ w_xy = influence. ``hessian`` names how w was computed.
    """

    ip: np.ndarray
    influence: np.ndarray
    coords: np.ndarray
    u_xy: np.ndarray
    w_xy: np.ndarray
    hessian: str


_THREADS_LOCK = threading.Lock()
_THREADS_HELD = [0, 0]  # [callers inside `one_thread`, the thread count to restore when the last leaves]


@contextlib.contextmanager
def one_thread():
    """Torch on one intra-op thread inside the block (the dense Hessian, its eigenvalues and the solve): on a busy
    CPU, OpenMP's threads wait on each other at every barrier — the angle view of the moons MLP took 27 s with two
    threads (16 s of them in the eigenvalues of its 1,185² Hessian), 4 s with one. Concurrent blocks share one save
    and restore of the setting."""
    with _THREADS_LOCK:
        if _THREADS_HELD[0] == 0:
            _THREADS_HELD[1] = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS_HELD[0] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_HELD[0] -= 1
            if _THREADS_HELD[0] == 0:
                torch.set_num_threads(_THREADS_HELD[1])


def plane_coordinates(gu: np.ndarray, gw: np.ndarray, uu: float, uw: float, ww: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates in span(u, w) from the inner products gᵀu, gᵀw and the Gram entries uᵀu, uᵀw, wᵀw.

    With e1 = u/‖u‖ and e2 = (w − (wᵀe1)e1)/‖·‖: gᵀe1 = gᵀu/‖u‖, gᵀe2 = (gᵀw − (wᵀe1)·gᵀe1)/‖w⊥‖.
    Returns (coords N×2, u_xy, w_xy).
    """
    nu = np.sqrt(uu)
    if nu == 0:
        raise InfluenceError("the impact gradient is zero: the model is at a stationary point of f, nothing to rank")
    w1 = uw / nu
    w_perp = np.sqrt(max(ww - w1 * w1, 0.0))
    a = gu / nu
    b = (gw - w1 * a) / w_perp if w_perp > 1e-12 * max(np.sqrt(ww), 1e-30) else np.zeros_like(a)
    return np.stack([a, b], axis=1), np.array([nu, 0.0]), np.array([w1, w_perp])


def angle_geometry(dataset: Dataset, fitted: FittedModel, impact: str = "utility", params: str = "all",
                   damping: float | None = None, hessian: str = "auto", lissa_settings: dict | None = None,
                   progress: Progress | None = None, impact_settings: dict | None = None, cache=None) -> AngleGeometry:
    """gᵀu and gᵀw for every training sample by two JVP passes.

    ``hessian``: "exact" (explicit Hessian, models up to the explicit-Hessian size, computed on one thread, see
    `one_thread`), "lissa" (the LiSSA estimate of (H + λI)⁻¹∇f; λ = max(damping, 0.01) unless ``lissa_settings``
    say otherwise) or "auto" (exact when small enough, else LiSSA). ``damping`` None = exact influence's automatic
    λ (the smallest that makes H + λI positive definite): w is then the direction exact influence scores along; an
    undamped indefinite Hessian turns w towards its near-zero eigenvalues (moons MLP: 89.7° from u, 56° damped).
    ``cache``: the workspace's array cache (the explicit Hessian is shared with exact influence).
    """
    ctx = ScoringContext(fitted, dataset, make_impact(impact, **(impact_settings or {})), params=params, progress=progress,
                         cache=cache)
    count = num_params(ctx.selected_params(ctx.module()))
    if hessian not in ("auto", "exact", "lissa"):
        raise InfluenceError(f"unknown Hessian '{hessian}'; choose auto, exact or lissa")
    if hessian == "exact" or (hessian == "auto" and count <= MAX_EXACT_PARAMS):
        details: dict = {}
        with one_thread():
            module, sel, w, _ = inverse_hvp_target(ctx, damping, span=0.5, details=details)
        u = ctx.target_gradient(module, sel)
        how = "exact Hessian" + (f" + {details['damping']:.3g}·I" if details["damping"] else "") + (
            " (automatic damping)" if damping is None else "")
    else:
        from .methods.lissa import LiSSASettings, lissa_inverse_hvp, resolve_settings

        settings = LiSSASettings(**{"damping": damping, **(lissa_settings or {})})  # None: automatic, as exact's
        module = ctx.module()
        sel = ctx.selected_params(module)
        settings, scale = resolve_settings(ctx, module, sel, settings)
        u = ctx.target_gradient(module, sel)
        solved = lissa_inverse_hvp(ctx, module, sel, {k: v.unsqueeze(0) for k, v in u.items()}, settings, scale, span=(0.0, 0.5))
        w = {k: v[0] for k, v in solved.items()}
        how = f"LiSSA (depth {settings.depth}, damping {settings.damping:g})"
    gu = stream_inner_products(ctx, module, sel, u, span=(0.5, 0.75), message="gradient · u").numpy()
    gw = stream_inner_products(ctx, module, sel, w, span=(0.75, 1.0), message="gradient · w").numpy()
    dot = lambda a, b: float(sum((a[k].double() * b[k].double()).sum() for k in a))  # noqa: E731
    coords, u_xy, w_xy = plane_coordinates(gu, gw, dot(u, u), dot(u, w), dot(w, w))
    return AngleGeometry(gu, gw, coords, u_xy, w_xy, how)


def gradient_similarity(dataset: Dataset, fitted: FittedModel, sample: int, params: str = "all") -> np.ndarray:
    """grad ℓ_jᵀ grad ℓ_i for every training sample j against training sample ``sample`` = i.

    One JVP pass along i's own gradient. Positive: a gradient step on j also lowers ℓ_i (j supports i's given
    label); negative: training on j pushes against i.
    """
    if not 0 <= sample < len(dataset.train):
        raise InfluenceError(f"sample {sample} is not in the training split (0..{len(dataset.train) - 1})")
    ctx = ScoringContext(fitted, dataset, make_impact("utility"), params=params)
    module = ctx.module()
    sel = ctx.selected_params(module)
    x, y = dataset.train.x[sample : sample + 1], dataset.train.y[sample : sample + 1]
    g = grad(lambda p: per_sample_losses(module, p, x, y).sum())(sel)
    return stream_inner_products(ctx, module, sel, g).numpy()


@torch.no_grad()
def predict(fitted: FittedModel, split: Split, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(predicted labels, class probabilities N×C) of the fitted model on ``split``."""
    module = fitted.module.eval()
    labels, probs = [], []
    for x, _ in split.batches(batch_size):
        logits = module(x)
        labels.append(predict_labels(logits))
        if logits.shape[-1] == 1:
            p1 = torch.sigmoid(logits[:, 0])
            probs.append(torch.stack([1 - p1, p1], dim=1))
        else:
            probs.append(torch.softmax(logits, dim=-1))
    if not labels:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0))
    return torch.cat(labels).numpy(), torch.cat(probs).double().numpy()


@torch.no_grad()
def penultimate_features(fitted: FittedModel, split: Split, batch_size: int = 512) -> np.ndarray:
    """The input of the classifier head for every row (the model's learned features); raw inputs when no head."""
    module = fitted.module.eval()
    head = dict(module.named_modules()).get(fitted.head_prefix) if fitted.head_prefix else None
    if not isinstance(head, nn.Module):
        return split.x.flatten(1).numpy()
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda m, inp, out: captured.append(inp[0].flatten(1).detach()))
    try:
        for x, _ in split.batches(batch_size):
            module(x)
    finally:
        hook.remove()
    return torch.cat(captured).double().numpy()


# Up to this many points the feature map is a t-SNE (scikit-learn, no compilation): on this project's 2-core CPU a
# t-SNE of 250 points takes ~3 s and of 1,700 ~25 s, while UMAP's numba code compiles on first use in every server
# process — 35-60 s before the first epoch whatever the size (250 points: import 6 s + first fit 33-51 s, second
# fit 1 s). Above it UMAP wins: its compile is paid once and t-SNE grows ~N log N (10,000 points: 300 s).
TSNE_MAX_POINTS = 2500


def embedding_method(n: int) -> str:
    """The 2-D layout `embed_2d` uses for ``n`` points: "t-SNE" up to `TSNE_MAX_POINTS`, else "UMAP"."""
    return "t-SNE" if n <= TSNE_MAX_POINTS else "UMAP"


class _EpochSink:
    """A file for UMAP's tqdm bar: turns "n/total" of the epoch loop into progress reports (no console output)."""

    def __init__(self, report: Progress) -> None:
        self.report, self.last = report, -1

    def write(self, text: str) -> None:
        import re

        found = re.findall(r"(\d+)/(\d+)", text)
        if found:
            done, total = map(int, found[-1])
            if total and done != self.last:
                self.last = done
                self.report(done / total, f"UMAP layout: epoch {done} of {total}")

    def flush(self) -> None:
        pass


def embed_2d(features: np.ndarray, seed: int = 0, n_neighbors: int = 15, progress: Progress | None = None) -> np.ndarray:
    """A 2-D map of ``features`` (N×D) where near rows stay near: t-SNE up to `TSNE_MAX_POINTS` rows, UMAP above
    (see `embedding_method`); features already 2-D are returned as they are. ``progress`` gets stage messages
    and, for UMAP, the epochs."""
    report = progress or (lambda f, m: None)
    features = np.asarray(features, dtype=np.float64)
    n = len(features)
    if features.shape[1] <= 2 or n < 3:
        return np.pad(features, ((0, 0), (0, max(0, 2 - features.shape[1]))))[:, :2]
    if embedding_method(n) == "t-SNE":
        from sklearn.manifold import TSNE

        report(0.0, f"t-SNE layout of {n:,} points")
        perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
        out = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, n_jobs=1).fit_transform(features)
        report(1.0, "t-SNE layout done")
        return out
    report(0.0, f"UMAP of {n:,} points: importing and compiling UMAP (about a minute the first time in a server)")
    import umap  # slow import (numba); only when asked

    reducer = umap.UMAP(n_neighbors=min(n_neighbors, max(2, n - 1)), random_state=seed, n_jobs=1,
                        tqdm_kwds={"disable": False, "file": _EpochSink(lambda f, m: report(0.2 + 0.8 * f, m)),
                                   "mininterval": 0.5})
    report(0.05, f"UMAP of {n:,} points: neighbour graph")
    return reducer.fit_transform(features)


@torch.no_grad()
def decision_grid(fitted: FittedModel, x: np.ndarray, steps: int = 120, margin: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xs, ys, P(class 1) on the grid) around 2-D points ``x`` — the model's decision surface."""
    if x.shape[1] != 2:
        raise InfluenceError("the decision boundary is drawn only for data sets with two features")
    lo, hi = x.min(0) - margin, x.max(0) + margin
    xs, ys = np.linspace(lo[0], hi[0], steps), np.linspace(lo[1], hi[1], steps)
    gx, gy = np.meshgrid(xs, ys)
    grid = torch.tensor(np.stack([gx.ravel(), gy.ravel()], axis=1), dtype=torch.float32)
    _, probs = predict(fitted, Split(grid, torch.zeros(len(grid), dtype=torch.int64)))
    return xs, ys, probs[:, 1].reshape(steps, steps)


# ------------------------------------------------------------------------------------------ cost estimates
@dataclass
class CostUnits:
    """What one model costs here, in seconds: ``step`` = forward + backward on one batch of 64 training rows,
    ``train_pass`` / ``val_pass`` = the same over every training / validation row in batches of 256 (``batches`` /
    ``val_batches`` of them), timed on this machine by `cost_units`."""

    step: float
    train_pass: float
    val_pass: float
    batches: int
    val_batches: int
    n_train: int
    n_params: int
    n_classes: int
    layer_dims: tuple[int, ...]


def cost_units(dataset: Dataset, fitted: FittedModel, params: str = "all", repeats: int = 3,
               device: str | None = None) -> CostUnits:
    """Time forward + backward of the current model on a batch of 64 and one of 256 training rows (best of
    ``repeats`` after a warm-up; a fraction of a second) on the device scoring uses (CUDA when there is one) and
    scale to the split sizes: what `estimate_seconds` counts in."""
    import copy
    import math
    import time

    from .models.train import resolve_device

    dev = resolve_device(device)
    module = fitted.module.eval() if dev.type == "cpu" else copy.deepcopy(fitted.module).to(dev).eval()
    sel = select_params(module, params, fitted.head_prefix)
    n, n_val = len(dataset.train), len(dataset.val)

    def seconds(rows: int) -> float:
        x, y = next(iter(dataset.train.batches(max(1, min(rows, n)))))
        x, y = x.to(dev, next(iter(sel.values())).dtype), y.to(dev)

        def once() -> None:
            p = {k: v.detach().requires_grad_(True) for k, v in sel.items()}
            torch.autograd.grad(per_sample_losses(module, p, x, y).sum(), list(p.values()))
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)

        once()
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            once()
            best = min(best, time.perf_counter() - t0)
        return best

    big = seconds(256)
    batches, val_batches = math.ceil(n / 256), math.ceil(max(n_val, 1) / 256)
    dims = tuple(int(d) for v in sel.values() if v.dim() >= 2 for d in (v.shape[0], int(np.prod(v.shape[1:]))))
    return CostUnits(step=seconds(64), train_pass=big * batches, val_pass=big * val_batches, batches=batches,
                     val_batches=val_batches, n_train=n, n_params=num_params(sel),
                     n_classes=max(int(dataset.num_classes), 2), layer_dims=dims)


# The fixed cost of one torch.func call (a JVP over a batch, an HVP, an SGD step) beyond its arithmetic: it dominates
# small models (a LiSSA step on the moons MLP takes ~7 ms where a plain forward + backward takes 0.7 ms; IP on Adult's
# logistic regression ~11 ms per batch of 256 where forward + backward takes 0.3 ms).
_FUNC_CALL = 0.01


def estimate_seconds(method: str, units: CostUnits, settings: dict | None = None, folds: int = 0,
                     checkpoints: int = 0) -> float:
    """A rough estimate of the seconds ``method`` (with ``settings``) takes on this model, from `cost_units`.

    Each method is counted as a fixed part (its target gradient, LiSSA recursion with its 20-step power iteration,
    Hessian or factor fit; repeated by each of ``folds`` fold models) plus a part per training row: a forward-mode
    (JVP) pass ≈ 0.8 training passes, per-sample gradients ≈ 2.7, an HVP ≈ 2 steps, each batch-level torch.func call
    + 10 ms, the explicit Hessian ≈ 1.6 training passes per parameter plus its P³ eigen-solve, EKFAC's factors an
    expectation over every class. Fitted to timings of every method on this project's busy 2-core CPU (moons MLP,
    CIFAR-10N CNN on 900 images, Adult logistic regression with 26,049 rows): within a factor of two there, often
    better. On a GPU the units are timed on the GPU, but the per-call cost is this CPU's (not calibrated there).
    """
    from .methods import METHODS

    cls = METHODS.get(method)
    s = {**({} if cls is None else {f.name: getattr(cls.Settings(), f.name) for f in fields(cls.Settings)}),
         **(settings or {})}
    u, overhead, func = units, 0.05, _FUNC_CALL
    jvp = 0.8 * u.train_pass + u.batches * func  # a forward-mode pass streams no backward graph
    target = 0.8 * u.val_pass + u.val_batches * func
    forward = 0.25 * u.train_pass
    per_sample = 2.7 * u.train_pass + u.batches * func  # vmapped per-sample gradients
    hvp = 2.0 * u.step + func  # one HVP on a mini-batch
    full_hvp = 2.0 * u.train_pass + u.batches * func  # one HVP over the whole training set
    chunk = max(int(s.get("sample_chunk", 64)), 1)
    chunk_hvp = func + 0.3 * chunk * u.step  # Self-LiSSA: one HVP vmapped over a chunk of sample gradients
    factors = (3 + 2 * u.n_classes) * (u.train_pass + u.batches * func)  # EKFAC's factor passes
    eig = sum(d ** 3 for d in u.layer_dims) * 2e-9  # EKFAC: eigendecompositions of the Kronecker factors
    k = max(int(s.get("ensemble_size", 1) or 1), 1)
    t = max(int(checkpoints), 1)
    c = u.n_classes
    # Class targets (ip_classwise): one validation target per class, together one pass over validation; their JVPs
    # are one vmapped torch.func call per batch, not one per class.
    class_targets = 0.8 * u.val_pass + max(c, u.val_batches) * func
    class_rows = c * 0.8 * u.train_pass + u.batches * func
    # IP + loss: class targets on multiclass data, plain IP on binary data (its "auto" variant), plus the loss.
    combined = (class_targets, class_rows + forward) if c > 2 else (target, jvp + forward)
    depth = int(s.get("depth", 1000)) * int(s.get("repeats", 1))
    scale = 0 if float(s.get("scale", 0.0) or 0.0) > 0 else 20 * full_hvp  # automatic scale: power iteration
    fixed, rows = {
        "loss": (0.0, forward), "margin": (0.0, forward), "confident_learning": (0.0, forward),
        "ip": (target, jvp),
        "ip_classwise": (class_targets, class_rows),
        "ip_combined": combined,
        "ip_ensemble": (k * target, 0.4 * k * (jvp - u.batches * func) + k * u.batches * func),
        "tracin": (t * target, t * jvp),
        "self_tracin": (0.0, per_sample),
        "gex": (k * (int(s.get("steps", 10)) * (u.step + func) + target), k * jvp),
        "lissa": (depth * hvp + scale + target, jvp),
        "self_lissa": (scale, per_sample + np.ceil(u.n_train / chunk) * depth * chunk_hvp),
        "exact": (1.6 * u.n_params * u.train_pass + u.n_params ** 3 * 1e-9 + target, jvp),
        "ekfac": (factors + eig + target, jvp),
        "datainf": (5 * per_sample + target, jvp),
        "tda": (t * (factors + eig + target), t * jvp),
    }.get(method, (3 * target, 3 * jvp))
    if folds and folds >= 2:
        fixed *= folds
    return overhead + fixed + rows


def angle_view_seconds(units: CostUnits) -> float:
    """A rough estimate of `angle_geometry`'s seconds on this model, from `cost_units`: the w of exact influence (the
    explicit Hessian up to `MAX_EXACT_PARAMS` parameters, else LiSSA at its defaults) plus one more pass of IP (the
    view scores gᵀu and gᵀw). An upper end: a cached Hessian is not built again."""
    solver = "exact" if units.n_params <= MAX_EXACT_PARAMS else "lissa"
    return estimate_seconds(solver, units) + estimate_seconds("ip", units)

