"""Impact functions f(θ) on the validation set and their gradients (the "target" every method scores against).

utility    f = mean validation loss
fairness   f = |E[p̂ | s=0] − E[p̂ | s=1]| over the whole validation set (demographic parity gap)
robustness f = mean loss on an adversarially perturbed validation set; the attack is computed at θ and then
           held fixed (x' does not move when θ is differentiated): white-box along w for a binary linear
           model, x' = x − c·(wᵀx + b)/‖w‖²·w; one FGSM step of size ε on the input otherwise.
counterfactual f = mean over validation pairs (x, x̃) of ½‖p_θ(·|x) − p_θ(·|x̃)‖₁, x̃ = the demographic twin
           (paper Sec. 6; for two classes this is |p_θ(y=1|x) − p_θ(y=1|x̃)|).
a+b        a joint ranking (e.g. ``utility+counterfactual``): the rank average of the two impacts' rankings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import ClassVar, Iterator

import numpy as np
import torch
from torch import nn
from torch.func import grad

from .data.base import Dataset, Split
from .errors import InfluenceError
from .memo import MEMORY
from .grads import Params, forward, per_sample_loss, positive_probability, select_params
from .models.architectures import LogisticRegression

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


class Impact(ABC):
    """An impact function f(θ) written as a sum of per-batch terms, so value and gradient stream over batches.

    Each impact is a frozen dataclass whose fields are its settings (like a method's ``Settings``): a setting is
    checked against its declared type when the impact is built, and an equal impact hashes and compares equal."""

    name: ClassVar[str]
    description: ClassVar[str]

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            object.__setattr__(self, f.name, coerce_setting(f"impact '{self.name}'", f.name, value, _declared_kind(f.type)))
        self.validate()

    def validate(self) -> None:
        """Raise a one-line `InfluenceError` for a setting out of range."""

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls)) if is_dataclass(cls) else ()

    def check(self, dataset: Dataset) -> None:
        """Raise `InfluenceError` when ``dataset`` lacks what this impact needs."""
        if len(dataset.val) == 0:
            raise InfluenceError("the validation split is empty; the impact function is measured on it")

    def prepare(self, module: nn.Module, params: Params, split: Split, batch_size: int, device) -> dict:
        """A first pass over the split for whatever the batch terms need (group sizes, signs)."""
        return {}

    @abstractmethod
    def batch_term(self, module: nn.Module, params: Params, batch: Batch, state: dict) -> torch.Tensor:
        """This batch's share of f; f(θ) = Σ over batches."""

    def batches(self, module: nn.Module, params: Params, split: Split, batch_size: int, device) -> Iterator[Batch]:
        for start in range(0, len(split), batch_size):
            sl = slice(start, start + batch_size)
            s = None if split.sensitive is None else split.sensitive[sl].to(device)
            yield split.rows(sl).to(device), split.y[sl].to(device), s

    def val_trim_for(self, dataset: Dataset) -> float:
        """The share of validation samples the target leaves out (0 for impacts that do not use labels)."""
        return 0.0

    def target_rows(self, module: nn.Module, params: Params, dataset: Dataset, batch_size: int = 512,
                    device: torch.device | str = "cpu") -> np.ndarray:
        """Validation rows the target f is measured on: all of them, or all but the `val_trim_for` share the model
        at ``params`` finds least plausible (highest loss): a noisy validation label would otherwise steer the
        target — the mean validation loss is dominated by exactly the wrong labels (issue 9, §4)."""
        n = len(dataset.val)
        trim = self.val_trim_for(dataset)
        n_out = int(np.floor(trim * n))
        if n_out <= 0 or n - n_out < 1:
            return np.arange(n)
        with torch.no_grad():
            dtype = next(iter(params.values())).dtype
            losses = torch.cat([per_sample_loss(forward(module, params, x.to(device, dtype)), y.to(device)).cpu()
                                for x, y in dataset.val.batches(batch_size)])
        return np.sort(np.argsort(losses.double().numpy(), kind="stable")[: n - n_out])

    def target_gradient(self, module: nn.Module, params: Params, dataset: Dataset, batch_size: int = 512,
                        device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> Params:
        """∇_θ f at ``params`` (a dict like ``params``), accumulated batch by batch over the `target_rows`."""
        self.check(dataset)
        rows = self.target_rows(module, params, dataset, batch_size, device)
        split = _cast(dataset.val if len(rows) == len(dataset.val) else dataset.val.subset(rows), dtype)
        state = self.prepare(module, params, split, batch_size, device)
        total = {k: torch.zeros_like(v) for k, v in params.items()}
        for batch in self.batches(module, params, split, batch_size, device):
            g = grad(lambda p: self.batch_term(module, p, batch, state))(params)
            for k in total:
                total[k] += g[k]
        return total

    @torch.no_grad()
    def value(self, module: nn.Module, dataset: Dataset, split: Split | None = None, batch_size: int = 512,
              device: torch.device | str = "cpu") -> float:
        """f evaluated for ``module`` as it is (on the validation split unless another is given)."""
        self.check(dataset)
        split = dataset.val if split is None else split
        module = module.to(device).eval()
        params = select_params(module)
        state = self.prepare(module, params, split, batch_size, device)
        return float(sum(self.batch_term(module, params, b, state) for b in self.batches(module, params, split, batch_size, device)))


DEFAULT_VAL_TRIM = 0.1


def _check_val_trim(val_trim: float | None) -> None:
    if val_trim is not None and not 0.0 <= val_trim < 1.0:
        raise InfluenceError(f"val_trim must be in [0, 1), got {val_trim}")


def resolve_val_trim(val_trim: float | None, dataset: Dataset) -> float:
    """``val_trim`` as set (0 = every validation sample: a split the user trusts), else `DEFAULT_VAL_TRIM`.

    The default trims even a validation split known to be clean (``meta["trusted_val"]``, e.g. CIFAR-N's): on the
    detection leaderboard (bench/results/detect.md) leaving out the 10% least plausible validation samples raised
    IP's AUROC on all three CIFAR-10N label sets and on moons, clean validation splits all (worst 0.645 → 0.676,
    random1 0.546 → 0.613, moons 0.945 → 0.992), and its top-5% precision on Adult with a noisy split (0.72 → 0.81).
    Marking a split trusted means ``val_trim=0``."""
    if val_trim is None:
        return DEFAULT_VAL_TRIM
    _check_val_trim(val_trim)
    return float(val_trim)


@dataclass(frozen=True)
class UtilityImpact(Impact):
    """Mean validation loss; ``val_trim`` leaves out the least plausible validation samples (None = automatic)."""

    val_trim: float | None = None
    name: ClassVar[str] = "utility"
    description: ClassVar[str] = "mean validation loss"

    def validate(self) -> None:
        _check_val_trim(self.val_trim)

    def val_trim_for(self, dataset: Dataset) -> float:
        return resolve_val_trim(self.val_trim, dataset)

    def prepare(self, module, params, split, batch_size, device) -> dict:
        return {"n": len(split)}

    def batch_term(self, module, params, batch, state) -> torch.Tensor:
        x, y, _ = batch
        return per_sample_loss(forward(module, params, x), y).sum() / state["n"]


def check_positive_class(impact: str, positive_class: int, dataset: Dataset) -> None:
    """A positive class the data set does not have is one line, never a silent stand-in (on binary data p̂(y≠1) would
    serve for any class but 1)."""
    if positive_class >= dataset.num_classes:
        raise InfluenceError(f"impact '{impact}': positive_class {positive_class} is not a class of data set "
                             f"'{dataset.name}' (classes 0–{dataset.num_classes - 1})")


@dataclass(frozen=True)
class FairnessImpact(Impact):
    """Demographic parity gap |mean p̂(s=0) − mean p̂(s=1)| of the positive-class probability."""

    positive_class: int = 1
    name: ClassVar[str] = "fairness"
    description: ClassVar[str] = "demographic parity gap on the validation set"

    def validate(self) -> None:
        if self.positive_class < 0:
            raise InfluenceError(f"impact 'fairness': positive_class must be a class index (≥ 0), got {self.positive_class}")

    def check(self, dataset: Dataset) -> None:
        super().check(dataset)
        check_positive_class(self.name, self.positive_class, dataset)
        if dataset.val.sensitive is None:
            raise InfluenceError(f"the fairness impact needs a sensitive attribute; data set '{dataset.name}' has none "
                                 f"({SENSITIVE_HINT})")
        counts = torch.bincount(dataset.val.sensitive, minlength=2)
        if counts.numel() != 2 or int(counts.min()) == 0:
            raise InfluenceError("the fairness impact needs both sensitive groups (0 and 1) in the validation split")

    @torch.no_grad()
    def prepare(self, module, params, split, batch_size, device) -> dict:
        s = split.sensitive
        n0, n1 = int((s == 0).sum()), int((s == 1).sum())
        # f = |m0 − m1| = σ·(m0 − m1) with σ the sign at θ, so its gradient is σ·∇(m0 − m1): a sum over batches.
        state = {"n0": n0, "n1": n1, "sign": 1.0}
        diff = sum(self._signed_sum(module, params, b, state) for b in self.batches(module, params, split, batch_size, device))
        state["sign"] = float(torch.sign(diff)) if float(diff) != 0 else 0.0
        return state

    def _signed_sum(self, module, params, batch, state) -> torch.Tensor:
        x, _, s = batch
        p = positive_probability(forward(module, params, x), self.positive_class)
        return (p * (s == 0)).sum() / state["n0"] - (p * (s == 1)).sum() / state["n1"]

    def batch_term(self, module, params, batch, state) -> torch.Tensor:
        return state["sign"] * self._signed_sum(module, params, batch, state)


@dataclass(frozen=True)
class RobustnessImpact(Impact):
    """Validation loss after an evasion attack computed at θ (white-box along w for binary linear models, FGSM otherwise)."""

    c: float = 1.3
    epsilon: float = 0.1
    val_trim: float | None = None
    name: ClassVar[str] = "robustness"
    description: ClassVar[str] = "validation loss under an evasion attack"

    def validate(self) -> None:
        if self.c <= 0:
            raise InfluenceError(f"impact 'robustness': c must be positive, got {self.c}")
        if self.epsilon < 0:
            raise InfluenceError(f"impact 'robustness': epsilon must be ≥ 0, got {self.epsilon}")
        _check_val_trim(self.val_trim)

    def val_trim_for(self, dataset: Dataset) -> float:
        return resolve_val_trim(self.val_trim, dataset)

    def batches(self, module, params, split, batch_size, device) -> Iterator[Batch]:
        for x, y, s in super().batches(module, params, split, batch_size, device):
            yield attack(module, params, x, y, c=self.c, epsilon=self.epsilon), y, s

    def prepare(self, module, params, split, batch_size, device) -> dict:
        return {"n": len(split)}

    def batch_term(self, module, params, batch, state) -> torch.Tensor:
        x, y, _ = batch
        return per_sample_loss(forward(module, params, x), y).sum() / state["n"]


def is_binary_linear(module: nn.Module) -> bool:
    return isinstance(module, LogisticRegression) and module.linear.out_features == 1


TOKEN_IDS_REFUSAL = "the robustness impact perturbs continuous inputs; this model reads token ids"
# Where a user names the sensitive attribute: the Data page's field and the CLI's flag.
SENSITIVE_HINT = "name its column when loading a CSV: 'Sensitive attribute column' on Data, --sensitive-column"


def attack(module: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, c: float = 1.3, epsilon: float = 0.1) -> torch.Tensor:
    """Adversarial copies of ``x`` against the model at ``params`` (detached: the attack is data, not a function of θ)."""
    if getattr(module, "discrete_inputs", False):  # token ids (models/hf.py): no gradient step exists on them
        raise InfluenceError(TOKEN_IDS_REFUSAL)
    if is_binary_linear(module):
        w = params.get("linear.weight", module.linear.weight).detach()[0]
        b = params.get("linear.bias", module.linear.bias).detach()[0]
        flat = x.flatten(1)
        # Move each point along w past the decision boundary: margin (wᵀx+b)/‖w‖² scaled by c > 1.
        margin = (flat @ w + b) / (w @ w).clamp_min(1e-12)
        return (flat - c * margin[:, None] * w[None, :]).view_as(x).detach()
    detached = {k: v.detach() for k, v in params.items()}
    gx = grad(lambda inp: per_sample_loss(forward(module, detached, inp), y).sum())(x.detach())
    return (x + epsilon * gx.sign()).detach()


def _cast(split: Split, dtype: torch.dtype | None) -> Split:
    """``split`` with float features of ``dtype``; a stored or sparse float32 split stays as it is (read by rows)."""
    if dtype is None or (split.store is not None and dtype == torch.float32) or split.x.dtype == dtype:
        return split
    out = Split(split.x, split.y, split.sensitive, split.twin)
    out.x = split.x.to(dtype)
    return out


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """p_θ(·|x) over all classes (N×C): [1 − σ(z), σ(z)] for one logit, softmax for C."""
    if logits.shape[-1] == 1:
        p1 = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - p1, p1], dim=-1)
    return torch.softmax(logits, dim=-1)


def twins_that_differ(dataset: Dataset, split: str = "val") -> int | None:
    """How many of ``split``'s rows have a twin x̃ whose features differ from x's (None without twins): what the
    model sees, so a swapped word outside a TF-IDF vocabulary fitted on the training texts changes nothing. Counted a
    batch at a time, remembered per data set."""
    part = getattr(dataset, split)
    if part.twin is None:
        return None

    def count() -> int:
        differ = 0
        for start in range(0, len(part), 256):
            rows = slice(start, start + 256)
            a, b = part.rows(rows), part.twin.rows(rows)
            differ += int((a.reshape(len(a), -1) != b.reshape(len(b), -1).to(a.dtype)).any(dim=1).sum())
        return differ

    return MEMORY.get("results", f"twins-that-differ:{dataset.fingerprint()}:{split}", count)


@dataclass(frozen=True)
class CounterfactualImpact(Impact):
    """Mean total-variation distance between the predictions on each validation text and its demographic twin."""

    name: ClassVar[str] = "counterfactual"
    description: ClassVar[str] = "prediction change when demographic words swap"

    def check(self, dataset: Dataset) -> None:
        super().check(dataset)
        if dataset.val.twin is None:
            raise InfluenceError(f"the counterfactual impact needs twins (the texts with demographic words swapped); "
                                 f"data set '{dataset.name}' has none: load text data or give a perturbed column")
        if twins_that_differ(dataset) == 0:  # every x̃ = x: f ≡ 0 and every score would be 0
            raise InfluenceError(f"the counterfactual impact has nothing to measure: none of the {len(dataset.val)} "
                                 "validation texts changes for the model when its demographic words swap (no word "
                                 "of the term list, or none the model's vocabulary knows); give a perturbed column "
                                 "or a term list that matches your texts")

    def batches(self, module, params, split, batch_size, device) -> Iterator[Batch]:
        """(x, x̃, y) batches: the twin's features (``split.twin``, a `Split`) ride in the second slot."""
        for start in range(0, len(split), batch_size):
            sl = slice(start, start + batch_size)
            x = split.rows(sl).to(device)
            yield x, split.twin.rows(sl).to(device, x.dtype), split.y[sl].to(device)

    def prepare(self, module, params, split, batch_size, device) -> dict:
        return {"n": len(split)}

    def batch_term(self, module, params, batch, state) -> torch.Tensor:
        x, x_twin, _ = batch
        p, p_twin = class_probabilities(forward(module, params, x)), class_probabilities(forward(module, params, x_twin))
        # ½‖p(x) − p(x̃)‖₁ per pair (= |Δp(y=1)| for two classes), summed here, averaged over all pairs via n.
        return 0.5 * (p - p_twin).abs().sum() / state["n"]


IMPACTS: dict[str, type[Impact]] = {cls.name: cls for cls in (UtilityImpact, FairnessImpact, RobustnessImpact,
                                                              CounterfactualImpact)}


JOINT_SEPARATOR = "+"
JOINT_COMBINES = ("rank", "gradient")


@dataclass(frozen=True)
class JointImpact(Impact):
    """Two or more impacts ranked together (``utility+counterfactual``), for the samples detrimental "in terms of
    utility and fairness" (paper Sec. 6). ``combine="rank"``: a method scores against each part and the rankings
    are averaged (`rank_average`); ``"gradient"``: one target, the sum of the parts' unit-length gradients."""

    parts: tuple = ()
    combine: str = "rank"
    description: ClassVar[str] = "joint ranking of two impacts (rank average)"

    @property
    def name(self) -> str:
        return JOINT_SEPARATOR.join(p.name for p in self.parts)

    def validate(self) -> None:
        names = [getattr(p, "name", None) for p in self.parts]
        if len(self.parts) < 2 or not all(isinstance(p, Impact) and not isinstance(p, JointImpact) for p in self.parts):
            raise InfluenceError("a joint impact needs two or more impacts, e.g. utility+counterfactual")
        if len(set(names)) != len(names):
            raise InfluenceError(f"a joint impact lists an impact twice: {JOINT_SEPARATOR.join(names)}")
        if self.combine not in JOINT_COMBINES:
            raise InfluenceError(f"joint impact: combine must be one of {', '.join(JOINT_COMBINES)}, got {self.combine!r}")

    def check(self, dataset: Dataset) -> None:
        for part in self.parts:
            part.check(dataset)

    def batch_term(self, module, params, batch, state) -> torch.Tensor:
        raise InfluenceError("a joint impact has no single value per batch; score against each part")

    def target_gradient(self, module, params, dataset, batch_size=512, device="cpu", dtype=None) -> Params:
        """Σ_k ∇f_k / ‖∇f_k‖: one direction that weighs the parts equally (``combine="gradient"``); the rank
        average has no single direction, so a caller needing one (sharded scoring) is told in one line."""
        if self.combine != "gradient":
            raise InfluenceError(f"the joint ranking {self.name} averages ranks and has no single target gradient; "
                                 "score without sharding, or set combine=gradient")
        total = {k: torch.zeros_like(v) for k, v in params.items()}
        for part in self.parts:
            g = part.target_gradient(module, params, dataset, batch_size, device, dtype)
            norm = torch.sqrt(sum((v.double() ** 2).sum() for v in g.values())).clamp_min(1e-30)
            for k in total:
                total[k] += g[k] / norm.to(g[k].dtype)
        return total

    def value(self, module, dataset, split=None, batch_size=512, device="cpu") -> float:
        """The parts' values summed (each part's own value is what a user reads; this is for completeness)."""
        return float(sum(p.value(module, dataset, split, batch_size, device) for p in self.parts))


def rank_average(score_lists: list[np.ndarray]) -> np.ndarray:
    """Mean over the lists of each sample's rank (1 = lowest score = most detrimental, ties averaged), divided by
    n: a joint score in (0, 1], lower = more detrimental in all the lists together."""
    from scipy.stats import rankdata

    ranks = np.mean([rankdata(np.asarray(s, dtype=np.float64), method="average") for s in score_lists], axis=0)
    return ranks / max(len(ranks), 1)


# The joint rankings the app offers beside the single impacts (any "a+b" of registered impacts works in the library).
JOINT_RANKINGS = ("utility+counterfactual", "utility+fairness")


def describe_impact(name: str) -> str:
    """One line for a chooser: the impact's description, or what a joint ranking averages."""
    parts = _joint(name)
    if parts is None:
        return _impact_class(name).description
    return "joint ranking: rank average of " + " and ".join(_impact_class(p).name for p in parts)


def _joint(name: str | Impact) -> list[str] | None:
    """The part names of a joint impact's name ("utility+counterfactual"), None for a single impact."""
    if isinstance(name, str) and JOINT_SEPARATOR in name:
        return [part.strip() for part in name.split(JOINT_SEPARATOR)]
    return None


def _impact_class(name: str | Impact) -> type[Impact]:
    if isinstance(name, Impact):
        return type(name)
    if name not in IMPACTS:
        raise InfluenceError(f"unknown impact '{name}'; choose one of: {', '.join(IMPACTS)}")
    return IMPACTS[name]


def make_impact(name: str | Impact, **settings) -> Impact:
    """An impact by name (``utility``, ``fairness``, ``robustness``, ``counterfactual``, or a joint ranking
    ``a+b`` such as ``utility+counterfactual``) with its settings (see `IMPACTS` and each class's fields). A setting the impact does not take is a one-line `InfluenceError`; ``None`` means "the
    default" and is ignored. An `Impact` passed in is returned, with any settings given replaced."""
    parts = _joint(name)
    if parts is not None:
        return _make_joint(parts, settings)
    if isinstance(name, JointImpact):
        return replace(name, **settings) if settings else name
    cls = _impact_class(name)
    given = {k: v for k, v in settings.items() if v is not None}
    known = cls.setting_names()
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InfluenceError(f"impact '{cls.name}' has no setting {', '.join(unknown)}; it takes: {', '.join(known) or 'none'}")
    if isinstance(name, Impact):
        return replace(name, **given) if given else name
    return cls(**given)


def _make_joint(names: list[str], settings: dict) -> JointImpact:
    """A `JointImpact` over ``names``; each setting goes to the parts that take it (``combine`` to the joint)."""
    given = {k: v for k, v in settings.items() if v is not None}
    classes = [_impact_class(n) for n in names]
    known = {"combine"}.union(*(c.setting_names() for c in classes))
    unknown = sorted(set(given) - known)
    if unknown:
        raise InfluenceError(f"impact '{JOINT_SEPARATOR.join(names)}' has no setting {', '.join(unknown)}; "
                             f"it takes: {', '.join(sorted(known))}")
    parts = tuple(c(**{k: v for k, v in given.items() if k in c.setting_names()}) for c in classes)
    return JointImpact(parts, **({"combine": given["combine"]} if "combine" in given else {}))


def impact_settings_for(name: str | Impact, **maybe) -> dict:
    """The settings among ``maybe`` that impact ``name`` takes (None values dropped): for callers holding values
    for every impact (e.g. the CLI's --c / --epsilon / --positive-class / --val-trim) that must pass only these."""
    parts = _joint(name) or ([p.name for p in name.parts] if isinstance(name, JointImpact) else None)
    if parts is not None:
        known = {"combine"}.union(*(_impact_class(n).setting_names() for n in parts))
        return {k: v for k, v in maybe.items() if k in known and v is not None}
    known = set(_impact_class(name).setting_names())
    return {k: v for k, v in maybe.items() if k in known and v is not None}


_KINDS = {"float": float, "int": int, "bool": bool, "str": str}


def _declared_kind(annotation) -> type:
    """The type of a dataclass field as declared (``float | None`` -> float), from the annotation or its string."""
    if isinstance(annotation, type):
        return annotation
    head = str(annotation).split("|")[0].strip()
    return _KINDS.get(head, object)


def coerce_setting(owner: str, key: str, value, kind: type):
    """``value`` as ``kind`` (ints accepted for floats; a bool is never a number); a one-line error otherwise.
    ``owner`` names what the setting belongs to in the message, e.g. "method 'ip'"."""
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        if kind is int and float(value) != int(value):
            raise InfluenceError(f"{owner}: setting {key} must be a whole number, got {value!r}")
        return kind(value)
    elif isinstance(value, kind):
        return value
    raise InfluenceError(f"{owner}: setting {key} must be a {kind.__name__}, got {value!r}")


# --- fairness baselines (issue 17): the equalised-odds impact, registered beside the others.
@dataclass(frozen=True)
class EqualizedOddsImpact(Impact):
    """Equalised-odds gap of the positive-class probability: |TPR₀ − TPR₁| + |FPR₀ − FPR₁| with soft rates
    TPR_g = mean p̂ over {s=g, y=1}, FPR_g = mean p̂ over {s=g, y=0} (Hardt et al. 2016, made differentiable).
    ``label``: 1 = only the true-positive gap, 0 = only the false-positive gap (the gap restricted to one label,
    which reweighting the group × label cells cannot close by itself); None = both."""

    positive_class: int = 1
    label: int | None = None
    name: ClassVar[str] = "equalized_odds"
    description: ClassVar[str] = "equalised-odds gap (TPR and FPR gaps between groups) on the validation set"

    def validate(self) -> None:
        if self.positive_class < 0:
            raise InfluenceError(f"impact '{self.name}': positive_class must be a class index (≥ 0), got {self.positive_class}")
        if self.label not in (None, 0, 1):
            raise InfluenceError(f"impact '{self.name}': label must be 0, 1 or empty (both), got {self.label}")

    def _labels(self) -> tuple[int, ...]:
        return (0, 1) if self.label is None else (self.label,)

    def check(self, dataset: Dataset) -> None:
        Impact.check(self, dataset)
        check_positive_class(self.name, self.positive_class, dataset)
        y, s = dataset.val.y, dataset.val.sensitive
        if s is None:
            raise InfluenceError(f"the equalised-odds impact needs a sensitive attribute; data set '{dataset.name}' has "
                                 f"none ({SENSITIVE_HINT})")
        for label in self._labels():
            positive = y == self.positive_class if label == 1 else y != self.positive_class
            if int((positive & (s == 0)).sum()) == 0 or int((positive & (s == 1)).sum()) == 0:
                raise InfluenceError(f"the equalised-odds impact needs both groups among validation samples with label {label}")

    def _cells(self, y: torch.Tensor, s: torch.Tensor, label: int, group: int) -> torch.Tensor:
        positive = y == self.positive_class
        return (positive if label == 1 else ~positive) & (s == group)

    @torch.no_grad()
    def prepare(self, module, params, split, batch_size, device) -> dict:
        y, s = split.y, split.sensitive
        counts = {(lab, g): int(self._cells(y, s, lab, g).sum()) for lab in self._labels() for g in (0, 1)}
        # f = Σ_label |r(label, 0) − r(label, 1)| = Σ_label σ_label·(r(label, 0) − r(label, 1)), σ the signs at θ.
        state = {"counts": counts, "signs": {lab: 1.0 for lab in self._labels()}}
        diffs = {lab: 0.0 for lab in self._labels()}
        for batch in self.batches(module, params, split, batch_size, device):
            for lab in diffs:
                diffs[lab] += float(self._difference(module, params, batch, state, lab))
        state["signs"] = {lab: (1.0 if d > 0 else -1.0 if d < 0 else 0.0) for lab, d in diffs.items()}
        return state

    def _difference(self, module, params, batch, state, label: int) -> torch.Tensor:
        x, y, s = batch
        p = positive_probability(forward(module, params, x), self.positive_class)
        n = state["counts"]
        return ((p * self._cells(y, s, label, 0)).sum() / n[(label, 0)]
                - (p * self._cells(y, s, label, 1)).sum() / n[(label, 1)])

    def batch_term(self, module, params, batch, state) -> torch.Tensor:
        return sum(state["signs"][lab] * self._difference(module, params, batch, state, lab) for lab in self._labels())


IMPACTS[EqualizedOddsImpact.name] = EqualizedOddsImpact


def impacts_refused(dataset: Dataset, discrete_inputs: bool = False) -> dict[str, str]:
    """The impacts and joint rankings the app offers that cannot be scored on ``dataset`` (by a model reading token
    ids, when ``discrete_inputs``), each with its one-line reason: every impact's own `check`, with its defaults."""
    refused = {}
    for name in (*IMPACTS, *JOINT_RANKINGS):
        if discrete_inputs and "robustness" in name.split(JOINT_SEPARATOR):
            refused[name] = TOKEN_IDS_REFUSAL
            continue
        try:
            make_impact(name).check(dataset)
        except InfluenceError as err:
            refused[name] = str(err)
    return refused
