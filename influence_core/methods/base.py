"""The common interface of all influence methods, and the registry they join by subclassing.

Sign convention (one for the whole project): a score is, up to a positive factor, the change in the impact
f when the sample is removed from training. **Lower = more detrimental**: a negative score means that
removing the sample would lower f (validation loss, fairness gap, loss under attack). IP is
grad f(θ)ᵀ grad ℓ(z; θ) and exact influence grad f(θ)ᵀ (H + λI)⁻¹ grad ℓ(z; θ) (paper Eqs. 1-2); both are
negative for a mislabelled sample. Self-influence methods return −‖·‖² so a suspicious sample also ranks low.
"""

from __future__ import annotations

import copy
import inspect
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields, replace
from typing import Callable, ClassVar, Iterator

import numpy as np
import torch
from torch import nn

from ..data.base import Dataset
from ..errors import InfluenceError
from ..grads import Params, Progress, directional_derivatives, per_sample_loss, select_params
from ..impacts import Impact, JointImpact, coerce_setting, rank_average
from ..models.train import FittedModel, resolve_device


@dataclass(frozen=True)
class NoSettings:
    """A method without parameters."""


@dataclass
class ScoringContext:
    """Everything a method needs: the fitted model, the data, the impact, where and how to compute."""

    fitted: FittedModel
    dataset: Dataset
    impact: Impact
    params: str = "all"
    device: torch.device | str | None = None
    batch_size: int = 256
    progress: Progress | None = None
    # The workspace cache (`Workspace.get_or_compute_arrays`) for what a method may reuse across runs, e.g. the explicit
    # Hessian (it does not depend on the impact); None = compute every time.
    cache: Callable[[str, dict, Callable[[], dict]], dict] | None = None
    _modules: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.device = resolve_device(self.device)
        n_out = _output_features(self.fitted.module)
        expected = 1 if self.dataset.num_classes == 2 else self.dataset.num_classes
        if n_out is not None and n_out != expected:
            raise InfluenceError(
                f"the model has {n_out} outputs but '{self.dataset.name}' has {self.dataset.num_classes} classes (expects {expected})"
            )

    @property
    def n_train(self) -> int:
        return len(self.dataset.train)

    def module(self, dtype: torch.dtype = torch.float32) -> nn.Module:
        """The model on the context's device and in ``dtype``, in eval mode (a copy; the fitted model is untouched)."""
        key = (str(self.device), dtype)
        if key not in self._modules:
            self._modules[key] = copy.deepcopy(self.fitted.module).to(device=self.device, dtype=dtype).eval()
        return self._modules[key]

    def cached_arrays(self, what: str, settings: dict, compute: Callable[[], dict]) -> dict:
        """``compute()`` (a dict of arrays) at the fitted model on the training data, from the cache when there is one;
        the key holds the data, the weights, the parameter group and ``settings``."""
        if self.cache is None:
            return compute()
        key = {"what": what, "dataset": self.dataset.fingerprint(), "model": self.fitted.fingerprint(),
               "params": self.params, "l2": self.fitted.l2, **settings}
        return self.cache("curvature", key, compute)

    def selected_params(self, module: nn.Module) -> Params:
        return select_params(module, self.params, self.fitted.head_prefix)

    def train_batches(self, dtype: torch.dtype = torch.float32, start: int = 0,
                      stop: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Training rows start..stop in batches on the context's device: the only way scoring reads the training
        data, so a split on disk is read a batch at a time and memory does not grow with N."""
        for x, y in self.dataset.train.batches(self.batch_size, self.device, start, stop):
            yield x.to(dtype), y

    def train_rows(self, index: torch.Tensor | slice, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of the training rows at ``index`` (e.g. a random mini-batch) on the context's device."""
        train = self.dataset.train
        y = train.y[index]
        return train.rows(index).to(self.device, dtype), y.to(self.device)

    def term_module(self, state: dict | None, dtype: torch.dtype = torch.float32) -> nn.Module:
        """The model with the parameters ``state`` (a training checkpoint; None = the fitted model), on the context's
        device in eval mode; kept, so the shards of one worker share it."""
        if state is None:
            return self.module(dtype)
        key = ("state", id(state), str(self.device), dtype)
        if key not in self._modules:
            module = copy.deepcopy(self.fitted.module)
            module.load_state_dict(state)
            self._modules[key] = module.to(device=self.device, dtype=dtype).eval()
        return self._modules[key]

    def target_gradient(self, module: nn.Module, params: Params) -> Params:
        dtype = next(iter(params.values())).dtype
        return self.impact.target_gradient(module, params, self.dataset, self.batch_size, self.device, dtype)

    def report(self, fraction: float, message: str) -> None:
        if self.progress is not None:
            self.progress(float(min(max(fraction, 0.0), 1.0)), message)


def _output_features(module: nn.Module) -> int | None:
    last = None
    for m in module.modules():
        if isinstance(m, nn.Linear):
            last = m
    return None if last is None else last.out_features


def stream_inner_products(ctx: ScoringContext, module: nn.Module, params: Params, direction: Params,
                          span: tuple[float, float] = (0.0, 1.0), message: str = "scoring", start: int = 0,
                          stop: int | None = None) -> torch.Tensor:
    """``grad ℓ(z_i; θ)ᵀ direction`` for training samples start..stop (default: all), streamed in batches by
    forward-mode JVP."""
    stop = ctx.n_train if stop is None else stop
    out = torch.empty(stop - start, dtype=torch.float64)
    dtype = next(iter(params.values())).dtype
    direction = {k: v.to(ctx.device) for k, v in direction.items()}
    done = 0
    for x, y in ctx.train_batches(dtype, start, stop):
        out[done : done + len(y)] = directional_derivatives(module, params, direction, x, y).detach().double().cpu()
        done += len(y)
        ctx.report(span[0] + (span[1] - span[0]) * done / max(stop - start, 1), message)
    return out


@dataclass
class Term:
    """One part of a linear score: ``weight · grad ℓ(z_i; θ)ᵀ direction``, θ the model ``state`` (None = the fitted
    model) with the selected parameters replaced by ``params`` (None = the model's own), in ``dtype``."""

    direction: Params
    weight: float = 1.0
    params: Params | None = None
    state: dict | None = None
    dtype: torch.dtype = torch.float32
    message: str = "scoring"


@dataclass
class LinearPlan:
    """What a linear method computes once for all samples: its terms; score_i = Σ_t weight_t · (term t)_i / divide_by.
    ``start`` is where, in the method's progress, the per-sample part begins."""

    terms: list[Term]
    divide_by: float = 1.0
    start: float = 0.0


def plan_scores(ctx: ScoringContext, plan: LinearPlan, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """Scores of training rows start..stop under ``plan`` (one JVP pass per term over those rows)."""
    stop = ctx.n_train if stop is None else stop
    total = torch.zeros(stop - start, dtype=torch.float64)
    count = len(plan.terms)
    for t, term in enumerate(plan.terms):
        module = ctx.term_module(term.state, term.dtype)
        params = ctx.selected_params(module) if term.params is None else {k: v.to(ctx.device) for k, v in term.params.items()}
        lo = plan.start + (1 - plan.start) * t / count
        hi = plan.start + (1 - plan.start) * (t + 1) / count
        part = stream_inner_products(ctx, module, params, term.direction, span=(lo, hi), message=term.message,
                                     start=start, stop=stop)
        total += part if term.weight == 1.0 else term.weight * part
    return total if plan.divide_by == 1.0 else total / plan.divide_by


class InfluenceMethod(ABC):
    """One influence method. Subclasses set the class attributes and implement `compute`.

    Defining a subclass with a ``name`` registers it: adding a method means adding one module to this package.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    kind: ClassVar[str] = "hessian-free"  # "hessian-free", "hessian-based" or "self-influence"
    cost: ClassVar[str] = ""  # e.g. "1 JVP pass", "K JVP passes", "P×P Hessian"
    uses_impact: ClassVar[bool] = True
    needs_checkpoints: ClassVar[bool] = False
    impacts: ClassVar[tuple[str, ...] | None] = None  # the impacts the method is meant for (None = every impact)
    Settings: ClassVar[type] = NoSettings

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name and not inspect.isabstract(cls):
            register_method(cls)

    def __init__(self, settings=None, **overrides) -> None:
        base = settings if settings is not None else self.Settings()
        known = {f.name for f in fields(self.Settings)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InfluenceError(f"method '{self.name}' has no setting {', '.join(unknown)}; it takes: {', '.join(sorted(known)) or 'none'}")
        checked = {k: _coerce_setting(self.name, k, v, getattr(base, k)) for k, v in overrides.items() if v is not None}
        self.settings = replace(base, **checked)
        self.check_settings()
        self.details: dict = {}  # what a run found that its user should see (e.g. the Hessian's spectrum)

    def check_settings(self) -> None:
        """Refuse settings out of range in one line, when the method is made: before any data or model is touched
        (the CLI makes it before training)."""

    # True when the method splits into `prepare` (once) and `score_rows` (any range of rows): sharded scoring.
    shardable: ClassVar[bool] = False

    @abstractmethod
    def compute(self, ctx: ScoringContext) -> torch.Tensor:
        """Per-training-sample scores, shape (n_train,); lower = more detrimental."""

    def prepare(self, ctx: ScoringContext):
        """What a `shardable` method computes once for all samples (its target direction, the solved (H + λI)⁻¹∇f,
        a scale…); `score_rows` then scores any range of rows from it, on this process or on a Dask worker."""
        raise InfluenceError(f"method '{self.name}' scores all training samples at once and cannot be sharded")

    def score_rows(self, ctx: ScoringContext, prepared, start: int, stop: int) -> torch.Tensor:
        """Scores of training rows start..stop given `prepare`'s result; lower = more detrimental."""
        raise InfluenceError(f"method '{self.name}' scores all training samples at once and cannot be sharded")

    def check(self, ctx: ScoringContext) -> None:
        """Refuse, in one line, an impact this method is not meant for or one the data cannot support."""
        if self.uses_impact:
            if self.impacts is not None and ctx.impact.name not in self.impacts:
                raise InfluenceError(f"method '{self.name}' is meant for the {' or '.join(self.impacts)} impact, not "
                                     f"{ctx.impact.name}; use ip (or another influence method) for {ctx.impact.name}")
            ctx.impact.check(ctx.dataset)

    def scores(self, ctx: ScoringContext) -> np.ndarray:
        """Run the method and check its output: a finite float64 array of length n_train, lower = more detrimental."""
        if self.uses_impact and isinstance(ctx.impact, JointImpact) and ctx.impact.combine == "rank":
            # A joint ranking (issue 18): score against each part, then average the rankings.
            return rank_average([self.scores(replace(ctx, impact=part)) for part in ctx.impact.parts])
        self.check(ctx)
        t0 = time.perf_counter()
        out = self.compute(ctx)
        out = np.asarray(out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else out, dtype=np.float64)
        if out.shape != (ctx.n_train,):
            raise InfluenceError(f"method '{self.name}' returned {out.shape} scores for {ctx.n_train} training samples")
        if not np.isfinite(out).all():
            raise InfluenceError(f"method '{self.name}' produced non-finite scores; try more damping or a smaller step")
        self.seconds = time.perf_counter() - t0
        ctx.report(1.0, "done")
        return out

    @classmethod
    def describe(cls) -> dict:
        """Name, type, cost class and parameters with defaults (for `methods` listings and the app)."""
        defaults = {f.name: getattr(cls.Settings(), f.name) for f in fields(cls.Settings)}
        return {"name": cls.name, "label": cls.label or cls.name, "kind": cls.kind, "cost": cls.cost,
                "uses_impact": cls.uses_impact, "needs_checkpoints": cls.needs_checkpoints, "impacts": cls.impacts,
                "parameters": defaults,
                "doc": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""}


METHODS: dict[str, type[InfluenceMethod]] = {}
# Names the product already uses for something else: the experiment's control arms.
RESERVED_METHOD_NAMES = frozenset({"full", "random"})


def register_method(cls: type[InfluenceMethod]) -> None:
    """Add ``cls`` to the registry under ``cls.name``; a reserved name or one another class holds is refused with one
    line (a silent overwrite would compute one method and show it under another's name). The same class defined again
    (its module re-imported) replaces itself."""
    if cls.name in RESERVED_METHOD_NAMES:
        raise InfluenceError(f"method name '{cls.name}' is reserved (used for: {', '.join(sorted(RESERVED_METHOD_NAMES))}); "
                             "choose another")
    held = METHODS.get(cls.name)
    if held is not None and (held.__module__, held.__qualname__) != (cls.__module__, cls.__qualname__):
        raise InfluenceError(f"method name '{cls.name}' is taken by {held.__module__}.{held.__qualname__}; choose another")
    METHODS[cls.name] = cls


class LinearMethod(InfluenceMethod):
    """A method whose score is a weighted sum of inner products grad ℓ(z_i; θ_t)ᵀ d_t (IP, IP Ensemble, TracIn, and
    the Hessian methods once their direction is solved): `prepare` returns the `LinearPlan`, computed once; the
    per-sample part streams over any range of rows, so it shards."""

    shardable: ClassVar[bool] = True

    @abstractmethod
    def prepare(self, ctx: ScoringContext) -> LinearPlan:
        """The terms (directions, weights, models), computed once for every training sample."""

    def score_rows(self, ctx: ScoringContext, prepared: LinearPlan, start: int, stop: int) -> torch.Tensor:
        return plan_scores(ctx, prepared, start, stop)

    def compute(self, ctx: ScoringContext) -> torch.Tensor:
        """Per-training-sample scores, lower = more detrimental: the plan, then one pass per term over the rows."""
        return self.score_rows(ctx, self.prepare(ctx), 0, ctx.n_train)


class PredictionMethod(InfluenceMethod):
    """A detector computed from the model's outputs on each training sample alone — no gradients, no impact
    target: the rankings users otherwise reach for (loss, margin, confident learning), offered side by side with
    influence so a user can see which ranking to trust. Lower = more suspect, like every score here."""

    kind: ClassVar[str] = "detector"
    cost: ClassVar[str] = "1 forward pass"
    uses_impact: ClassVar[bool] = False

    # A score of one sample depends on its own logits only (loss, margin), so any range of rows can be scored
    # alone; confident learning, which calibrates on every sample's probabilities, sets this False.
    shardable: ClassVar[bool] = True

    @abstractmethod
    def from_logits(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scores from the training set's logits (N×outputs) and given labels; lower = more suspect."""

    def compute(self, ctx: ScoringContext) -> torch.Tensor:
        return self.from_logits(training_logits(ctx), ctx.dataset.train.y)

    def prepare(self, ctx: ScoringContext) -> None:
        return None

    def score_rows(self, ctx: ScoringContext, prepared, start: int, stop: int) -> torch.Tensor:
        return self.from_logits(training_logits(ctx, start, stop), ctx.dataset.train.y[start:stop])


@torch.no_grad()
def training_logits(ctx: ScoringContext, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """The model's logits on training samples start..stop (default: all; float64, on the CPU), streamed in batches."""
    module = ctx.module()
    stop = ctx.n_train if stop is None else stop
    out, done = [], 0
    for x, _ in ctx.train_batches(start=start, stop=stop):
        out.append(module(x).double().cpu())
        done += len(x)
        ctx.report(done / max(stop - start, 1), "predicting")
    return torch.cat(out) if out else torch.empty(0, 1, dtype=torch.float64)


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """N×C class probabilities; a one-logit binary model gives the two columns (1 − p, p)."""
    if logits.shape[-1] == 1:
        p1 = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - p1, p1], dim=1)
    return torch.softmax(logits, dim=-1)


def negative_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """−ℓ(z_i; θ), the per-sample training loss negated (lower = more suspect)."""
    return -per_sample_loss(logits, labels)


def _coerce_setting(method: str, key: str, value, default):
    """``value`` as the type of the setting's default (ints accepted for floats); a one-line error otherwise."""
    if default is None:
        return value
    return coerce_setting(f"method '{method}'", key, value, type(default))


def get_method(name: str, **settings) -> InfluenceMethod:
    """An instance of the registered method ``name`` with ``settings`` overriding its defaults."""
    if name not in METHODS:
        raise InfluenceError(f"unknown method '{name}'; choose one of: {', '.join(sorted(METHODS))}")
    return METHODS[name](**settings)
