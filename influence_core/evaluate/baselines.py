"""The arms a practitioner would pick instead of influence (issue 17), run beside ``full``, ``random`` and the
methods: each retrains (or post-processes) the same model on the same data and is evaluated like them.

reweighing     Kamiran & Calders (2012): weight each group × label cell by P(g)P(y)/P(g,y) (raised to ``strength``)
eg_dp / eg_eo  fairlearn's ExponentiatedGradient (Agarwal et al. 2018) with DemographicParity / EqualizedOdds, the
               product's own trainer as the estimator; ``bound`` = the constraint's difference bound
threshold_dp / threshold_eo
               fairlearn's ThresholdOptimizer (Hardt et al. 2016) on the base model's probabilities, fit on the
               validation split; ``tol`` = the constraint's allowed violation
adversarial    adversarial training: the training split plus attacked copies of a ``share`` of it (same attacker as
               the evaluation, `impacts.attack`, against the base model), labels kept
within_cell    influence inside the Kamiran–Calders cells: an over-represented cell (weight w < 1) loses the
               n·(1 − w^strength) samples the first method scores most detrimental, an under-represented cell is
               weighted up by w^strength — the counts pick the cells, influence picks the samples

An arm's row is named ``family@setting`` (e.g. ``reweighing@1``); a family name alone stands for its sweep, so the
Pareto chart shows each family's front.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from ..data.base import Dataset, Split
from ..errors import InfluenceError
from ..grads import positive_probability, select_params
from ..impacts import attack
from ..models.train import FittedModel, TrainConfig, train_model
from .retrain import AttackSettings, Crafted, evaluate_module


def kamiran_calders_weights(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Per-sample weight P(s=g)·P(y=c) / P(s=g, y=c) of its group × label cell (Kamiran & Calders 2012, Alg. 3):
    with these weights label and group are independent in the training distribution."""
    y, s = np.asarray(y), np.asarray(s)
    w = np.ones(len(y), dtype=np.float64)
    for g in np.unique(s):
        for c in np.unique(y):
            cell = (s == g) & (y == c)
            if cell.any():
                w[cell] = (s == g).mean() * (y == c).mean() / cell.mean()
    return w


WHOLE_CELL_SHARE = 0.8  # the flagged samples come "from one cell" when that cell holds at least this share of them


def flagged_cells(y: np.ndarray, s: np.ndarray, flagged: np.ndarray, classes: list[str],
                  group_name: str = "group") -> tuple[pd.DataFrame, str]:
    """Which group × label cells the ``flagged`` training rows come from, beside each cell's size and its
    Kamiran–Calders weight (< 1: the cell is over-represented for its group, what reweighing would down-weight), and
    one sentence saying whether the ranking found individual samples or a whole cell (then reweighing, or influence
    within the cells, is what a user wants: Evaluate's baselines)."""
    y, s = np.asarray(y), np.asarray(s)
    chosen = np.zeros(len(y), dtype=bool)
    chosen[np.asarray(flagged, dtype=np.int64)] = True
    weights = kamiran_calders_weights(y, s)
    rows = []
    for g in (0, 1):
        for c in range(len(classes)):
            cell = (s == g) & (y == c)
            if cell.any():
                rows.append({"cell": f"{group_name} = {g}, label {classes[c]}", "samples": int(cell.sum()),
                             "flagged": int(chosen[cell].sum()), "share of flagged": chosen[cell].sum() / max(chosen.sum(), 1),
                             "share of the cell flagged": chosen[cell].mean(), "reweighing weight": float(weights[cell][0])})
    frame = pd.DataFrame(rows).sort_values("flagged", ascending=False, ignore_index=True)
    if not chosen.any():
        return frame, "No sample is flagged."
    top = frame.iloc[0]
    if top["share of flagged"] >= WHOLE_CELL_SHARE:
        sentence = (f"{top['share of flagged']:.0%} of the flagged samples come from one cell ({top['cell']}): the "
                    "ranking picks a cell rather than individual samples, which reweighing does without removing "
                    "anything — compare it and influence within the cells on Evaluate.")
    else:
        sentence = (f"The flagged samples are spread over {int((frame['flagged'] > 0).sum())} cells (at most "
                    f"{top['share of flagged']:.0%} in one): the ranking singles out individual samples, not a cell.")
    return frame, sentence


def reweighing_weights(y: np.ndarray, s: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Kamiran–Calders weights raised to ``strength`` (0 = uniform, 1 = the published method, > 1 = stronger),
    scaled to mean 1 so the trainer's weighted mean loss keeps its scale."""
    w = kamiran_calders_weights(y, s) ** strength
    return w / w.mean()


def positive_rate_metrics(p: np.ndarray, y: np.ndarray, s: np.ndarray) -> dict:
    """Expected accuracy, demographic-parity gap |E[p|s=0] − E[p|s=1]| and equalised-odds gap
    |ΔTPR| + |ΔFPR| (the `EqualizedOddsImpact`'s) of a classifier that says "positive" with probability ``p``."""
    eo = sum(abs(p[(s == 0) & (y == c)].mean() - p[(s == 1) & (y == c)].mean()) for c in (0, 1))
    return {"accuracy": float(np.mean(np.where(y == 1, p, 1.0 - p))),
            "fairness_gap": float(abs(p[s == 0].mean() - p[s == 1].mean())), "equalized_odds_gap": float(eo)}


class TrainerEstimator(ClassifierMixin, BaseEstimator):
    """The product's trainer as a scikit-learn classifier, so fairlearn's reductions retrain the same model (same
    architecture, L2 and optimiser) that every other arm retrains."""

    def __init__(self, arch: str = "logreg", config: TrainConfig | None = None, num_classes: int = 2):
        self.arch, self.config, self.num_classes = arch, config, num_classes

    def fit(self, X, y, sample_weight=None):
        x, y = torch.as_tensor(np.asarray(X), dtype=torch.float32), np.asarray(y).astype(np.int64)
        one = Split(x[:1], y[:1])  # train_model reports validation / test accuracy: a token split suffices
        data = Dataset("fit", Split(x, y), one, one, [str(c) for c in range(self.num_classes)])
        w = None if sample_weight is None else np.array(sample_weight, dtype=np.float64)  # fairlearn's may be read-only
        self.module_ = train_model(data, self.arch, self.config, sample_weight=w).module
        self.classes_ = np.arange(self.num_classes)
        return self

    def predict_proba(self, X):
        return _module_proba(self.module_, X)

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)


class FittedEstimator(ClassifierMixin, BaseEstimator):
    """A model already trained (the base model) as a prefit scikit-learn classifier for ThresholdOptimizer."""

    def __init__(self, module=None):
        self.module = module

    def fit(self, X, y, sample_weight=None):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        return _module_proba(self.module, X)

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)


@torch.no_grad()
def _module_proba(module, X) -> np.ndarray:
    module = module.cpu().eval()
    p1 = positive_probability(module(torch.as_tensor(np.asarray(X), dtype=torch.float32))).double().numpy()
    return np.stack([1.0 - p1, p1], axis=1)


def exponentiated_gradient(dataset: Dataset, arch: str, config: TrainConfig, constraint: str, bound: float,
                           max_iter: int = 50):
    """fairlearn's ExponentiatedGradient with DemographicParity or EqualizedOdds (difference bound ``bound``) around
    the product's trainer, fit on the training split."""
    from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient

    moment = {"dp": DemographicParity, "eo": EqualizedOdds}[constraint](difference_bound=bound)
    eg = ExponentiatedGradient(TrainerEstimator(arch, config, dataset.num_classes), moment, max_iter=max_iter)
    train = dataset.train
    eg.fit(train.x.numpy(), train.y.numpy(), sensitive_features=train.sensitive.numpy())
    return eg


def threshold_optimizer(dataset: Dataset, base: FittedModel, constraint: str, tol: float):
    """fairlearn's ThresholdOptimizer on the base model's probabilities, fit on the validation split (held out from
    the base model's training), with the constraint allowed to be violated by ``tol``."""
    from fairlearn.postprocessing import ThresholdOptimizer

    constraints = {"dp": "demographic_parity", "eo": "equalized_odds"}[constraint]
    if tol > 0 and constraint == "eo":
        raise InfluenceError("fairlearn's ThresholdOptimizer takes no tolerance for equalised odds: use threshold_eo@0")
    to = ThresholdOptimizer(estimator=FittedEstimator(base.module).fit(None, None), constraints=constraints, prefit=True,
                            predict_method="predict_proba", tol=tol if tol > 0 else None)
    val = dataset.val
    to.fit(val.x.numpy(), val.y.numpy(), sensitive_features=val.sensitive.numpy())
    return to


def adversarial_training_set(dataset: Dataset, base: FittedModel, share: float,
                             attacks: AttackSettings = AttackSettings()) -> Dataset:
    """The training split plus attacked copies (`impacts.attack` against the base model, labels kept) of a random
    ``share`` of it (at most all of it, drawn with the attacks' seed: the same rows whatever the training seed)."""
    train = dataset.train
    n_adv = min(len(train), max(1, int(round(share * len(train)))))
    rows = torch.as_tensor(np.sort(np.random.default_rng(20_000 + attacks.seed).choice(len(train), n_adv, replace=False)))
    module = base.module.cpu().eval()
    x_adv = attack(module, select_params(module), train.x[rows], train.y[rows], c=attacks.c, epsilon=attacks.epsilon)
    s = None if train.sensitive is None else torch.cat([train.sensitive, train.sensitive[rows]])
    return dataset.with_train(Split(torch.cat([train.x, x_adv]), torch.cat([train.y, train.y[rows]]), s))


def within_cell_selection(y: np.ndarray, s: np.ndarray, scores: np.ndarray, strength: float = 1.0
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(rows kept, their weights): each cell whose Kamiran–Calders weight w = P(g)P(y)/P(g,y) is below 1 keeps its
    n·w^strength highest-scored samples (lower score = more detrimental, removed first), weight 1; each cell above
    1 keeps every sample at weight w^strength. Weights are scaled to mean 1 over the kept rows."""
    y, s, scores = np.asarray(y), np.asarray(s), np.asarray(scores, dtype=np.float64)
    target = kamiran_calders_weights(y, s) ** strength
    keep = np.ones(len(y), dtype=bool)
    weight = np.ones(len(y))
    for g in np.unique(s):
        for c in np.unique(y):
            cell = np.flatnonzero((s == g) & (y == c))
            if len(cell) == 0:
                continue
            w = target[cell[0]]
            if w < 1.0:
                n_out = min(len(cell) - 1, int(round(len(cell) * (1.0 - w))))
                keep[cell[np.argsort(scores[cell], kind="stable")[:n_out]]] = False
            else:
                weight[cell] = w
    rows = np.flatnonzero(keep)
    return rows, weight[rows] / weight[rows].mean()


@dataclass(frozen=True)
class ArmFamily:
    """One baseline family: its label, the setting its sweep varies, the sweep, and whether it needs scores."""

    label: str
    setting: str
    sweep: tuple[float, ...]
    bounds: tuple[float, float] = (0.0, 1.0)  # the setting's allowed range (inclusive)
    needs_sensitive: bool = True
    needs_scores: bool = False


ARMS: dict[str, ArmFamily] = {
    "reweighing": ArmFamily("Reweighing (Kamiran–Calders)", "strength", (0.5, 1.0, 1.25, 1.5, 2.0), (0.0, 10.0)),
    "eg_dp": ArmFamily("ExponentiatedGradient (DP)", "bound", (0.1, 0.05, 0.02, 0.01)),
    "eg_eo": ArmFamily("ExponentiatedGradient (EO)", "bound", (0.1, 0.05, 0.02, 0.01)),
    "threshold_dp": ArmFamily("ThresholdOptimizer (DP)", "tol", (0.1, 0.05, 0.02, 0.0)),
    "threshold_eo": ArmFamily("ThresholdOptimizer (EO)", "tol", (0.0,)),  # fairlearn relaxes only DP-like constraints
    "adversarial": ArmFamily("Adversarial training", "share", (0.1, 0.25, 0.5, 1.0), needs_sensitive=False),
    "within_cell": ArmFamily("Influence within cells", "strength", (0.5, 1.0, 1.25, 1.5, 2.0), (0.0, 10.0),
                              needs_scores=True),
}


def split_arm(name: str) -> tuple[str, float | None]:
    """``family@value`` -> (family, value); a bare family name -> (family, None)."""
    family, _, value = name.partition("@")
    if family not in ARMS:
        raise InfluenceError(f"unknown baseline '{family}'; choose from: {', '.join(ARMS)}")
    if not value:
        return family, None
    try:
        number = float(value)
    except ValueError:
        raise InfluenceError(f"baseline '{name}': the {ARMS[family].setting} after @ must be a number") from None
    lo, hi = ARMS[family].bounds
    if not lo <= number <= hi:
        raise InfluenceError(f"baseline '{name}': the {ARMS[family].setting} must be between {lo:g} and {hi:g}")
    return family, number


def is_arm(name: str) -> bool:
    return name.partition("@")[0] in ARMS


def expand_arms(names: tuple[str, ...] | list[str]) -> list[str]:
    """The rows the baselines give: a family name stands for its whole sweep, ``family@value`` for one point."""
    out: list[str] = []
    for name in names:
        family, value = split_arm(name)
        for v in (value,) if value is not None else ARMS[family].sweep:
            row = f"{family}@{v:g}"
            if row not in out:
                out.append(row)
    return out


def arm_label(name: str) -> str:
    family, value = split_arm(name)
    spec = ARMS[family]
    return spec.label if value is None else f"{spec.label}, {spec.setting} {value:g}"


@dataclass
class FittedArm:
    """One arm, fitted: ``module`` when it retrained a model (None for fairlearn's randomised classifiers), and
    ``positive(split)``, the probability with which it says "positive" on each row of a split."""

    module: torch.nn.Module | None
    positive: Callable[[Split], np.ndarray]
    n_train: int


def fit_arm(name: str, dataset: Dataset, base: FittedModel, config: TrainConfig, seed: int,
            attacks: AttackSettings = AttackSettings(), scores: np.ndarray | None = None, device: str | None = None,
            should_stop: Callable[[], bool] | None = None) -> FittedArm:
    """Fit one arm (``family@value``) on ``dataset`` with training seed ``seed``; ``scores`` (lower = more
    detrimental) are the influence scores ``within_cell`` ranks by."""
    family, value = split_arm(name)
    spec = ARMS[family]
    if value is None:
        raise InfluenceError(f"run one point of baseline '{family}' (e.g. {family}@{spec.sweep[0]:g})")
    train = dataset.train
    if spec.needs_sensitive and (train.sensitive is None or dataset.test.sensitive is None):
        raise InfluenceError(f"baseline '{family}' needs a sensitive attribute; data set '{dataset.name}' has none")
    config = replace(config, seed=seed, checkpoint_every=0)
    if family.startswith("eg_"):
        eg = exponentiated_gradient(dataset, base.arch, config, family[3:], value)
        return FittedArm(None, lambda split: eg._pmf_predict(split.x.numpy())[:, 1], len(train))
    if family.startswith("threshold_"):
        to = threshold_optimizer(dataset, base, family[10:], value)
        return FittedArm(None, lambda split: to._pmf_predict(split.x.numpy(), sensitive_features=split.sensitive.numpy())[:, 1],
                         len(train))
    weight = None
    if family == "reweighing":
        weight = reweighing_weights(train.y.numpy(), train.sensitive.numpy(), value)
    elif family == "adversarial":
        dataset = adversarial_training_set(dataset, base, value, attacks)
    elif family == "within_cell":
        if scores is None:
            raise InfluenceError("baseline 'within_cell' needs the scores of a method (give at least one method that ran)")
        rows, weight = within_cell_selection(train.y.numpy(), train.sensitive.numpy(), scores, value)
        dataset = dataset.with_train(train.subset(rows))
    module = train_model(dataset, base.arch, config, sample_weight=weight, device=device, should_stop=should_stop).module
    return FittedArm(module, lambda split: _module_proba(module, split.x)[:, 1], len(dataset.train))


def run_arm(name: str, dataset: Dataset, base: FittedModel, config: TrainConfig, seed: int,
            attacks: AttackSettings = AttackSettings(), crafted: Crafted | None = None,
            scores: np.ndarray | None = None, device: str | None = None,
            should_stop: Callable[[], bool] | None = None) -> dict:
    """Fit one arm (`fit_arm`) and evaluate it like a retrained method: test accuracy, demographic-parity gap (of
    the positive-class probability; for a randomised fairlearn classifier, its probability of saying positive),
    and, for the arms that retrain a model, its attacked accuracies."""
    arm = fit_arm(name, dataset, base, config, seed, attacks, scores, device, should_stop)
    if arm.module is not None:
        out = evaluate_module(arm.module, dataset, attacks, crafted)
    else:
        test = dataset.test
        out = {**positive_rate_metrics(arm.positive(test), test.y.numpy(), test.sensitive.numpy()),
               "attacked_accuracy": None, "attack_accuracies": []}
    out["n_train"] = arm.n_train
    return out


# --- which arm is best at which accuracy (the sentence on Evaluate)
LOWER_IS_BETTER = {"fairness_gap": True, "equalized_odds_gap": True, "attacked_accuracy": False}
METRIC_WORDS = {"fairness_gap": "fairness gap", "equalized_odds_gap": "equalised-odds gap",
                "attacked_accuracy": "attacked accuracy"}


def _family(name: str, row: dict) -> tuple[str, str]:
    """(family key, family label) of a row: baselines by family, anything else by itself."""
    if is_arm(name):
        family = name.partition("@")[0]
        return family, ARMS[family].label
    return name, row.get("label", name)


def best_arm_sentence(rows: dict[str, dict], metric: str = "fairness_gap", levels: list[float] | None = None) -> str | None:
    """A plain sentence naming, for each accuracy level (%), the arm with the best ``metric`` (lowest gap, highest
    attacked accuracy) among the arms whose mean test accuracy reaches it, e.g. "At ≥ 84% test accuracy,
    Reweighing (Kamiran–Calders) has the lowest fairness gap (8.15); at ≥ 83%, …". Default levels: the full-data
    accuracy rounded down to a whole percent and the two below. None when no arm has both numbers."""
    points = []
    for name, row in rows.items():
        acc, val = (row or {}).get("accuracy"), (row or {}).get(metric)
        if acc and val and acc.get("mean") is not None and val.get("mean") is not None:
            points.append((100 * acc["mean"], 100 * val["mean"], *_family(name, row)))
    if not points:
        return None
    lower = LOWER_IS_BETTER[metric]
    if levels is None:
        full = (rows.get("full") or {}).get("accuracy")
        top = math.floor(100 * full["mean"]) if full else math.floor(max(p[0] for p in points))
        levels = [top, top - 1, top - 2]
    parts, previous = [], None
    for level in levels:
        reach = [p for p in points if p[0] >= level - 1e-9]
        if not reach:
            continue
        point = min(reach, key=lambda p: p[1] if lower else -p[1])
        if point is previous:  # the same arm as at the level above: nothing new to say
            continue
        previous, (_, val, _, label) = point, point
        best = "lowest" if lower else "highest"
        parts.append(f"{label} has the {best} {METRIC_WORDS[metric]} ({val:.2f})" if not parts
                     else f"at ≥ {level:g}%, {label} ({val:.2f})")
        if len(parts) == 1:
            parts[0] = f"At ≥ {level:g}% test accuracy, " + parts[0]
    return ("; ".join(parts) + ".") if parts else None
