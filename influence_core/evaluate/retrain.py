"""Retrain from scratch on a (cleaned) training set and measure what the paper reports: test accuracy, the
demographic-parity gap on the test split, and accuracy when an attacker perturbs a random 5–25% of the test
samples (paper Sec. 7). By default the attacks are crafted once, white-box, against the base (full-data) model
the scores were computed on — the deployed model — and the same perturbed test sets then evaluate every retrained
model: the defence is to retrain on data cleaned against that attack (paper Table 2, where cleaned models beat
even the pre-attack accuracy). ``against="each"`` instead attacks every evaluated model itself."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..data.base import Dataset, Split
from ..grads import predict_labels, select_params
from ..impacts import CounterfactualImpact, FairnessImpact, attack
from ..models.train import TrainConfig, evaluate_split, train_model


@dataclass(frozen=True)
class AttackSettings:
    """The evasion attacks each retrained model faces: ``n_attacks`` random subsets of the test split, each a
    uniformly drawn share in [min_fraction, max_fraction]; the subsets depend only on ``seed`` and the attack
    number, so every method faces the same attacked samples. ``c`` / ``epsilon`` as in `impacts.attack`."""

    n_attacks: int = 5
    min_fraction: float = 0.05
    max_fraction: float = 0.25
    c: float = 1.3
    epsilon: float = 0.1
    seed: int = 0
    against: str = "base"  # "base": crafted against the full-data base model; "each": against each evaluated model


def attack_subsets(n_test: int, settings: AttackSettings) -> list[np.ndarray]:
    """The test rows each attack perturbs (seeded; independent of the model)."""
    rng = np.random.default_rng(settings.seed + 7919)
    out = []
    for _ in range(settings.n_attacks):
        share = rng.uniform(settings.min_fraction, settings.max_fraction)
        k = max(1, int(round(share * n_test)))
        out.append(np.sort(rng.choice(n_test, size=k, replace=False)))
    return out


@torch.no_grad()
def _correct(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return (predict_labels(module(x)) == y).numpy()


Crafted = list[tuple[np.ndarray, torch.Tensor]]  # per attack: (attacked rows, their perturbed inputs)


def craft_attacks(module: nn.Module, split: Split, settings: AttackSettings) -> Crafted:
    """Perturb each attack's subset of ``split`` white-box against ``module`` (`impacts.attack`)."""
    module = module.cpu().eval()
    params = select_params(module)
    out = []
    for rows in attack_subsets(len(split), settings):
        idx = torch.as_tensor(rows)
        out.append((rows, attack(module, params, split.x[idx], split.y[idx], c=settings.c, epsilon=settings.epsilon)))
    return out


def attacked_accuracies(module: nn.Module, split: Split, settings: AttackSettings,
                        crafted: Crafted | None = None) -> list[float]:
    """Accuracy of ``module`` on the whole split after each attack replaced its subset by perturbed inputs
    (``crafted``, or crafted against ``module`` itself when None); one value per attack."""
    module = module.cpu().eval()
    clean = np.concatenate([_correct(module, x, y) for x, y in split.batches(1024)]) if len(split) else np.zeros(0, bool)
    out = []
    for rows, x_adv in crafted if crafted is not None else craft_attacks(module, split, settings):
        correct = clean.copy()
        correct[rows] = _correct(module, x_adv, split.y[torch.as_tensor(rows)])
        out.append(float(correct.mean()))
    return out


def fairness_gap(module: nn.Module, dataset: Dataset, split: Split | None = None) -> float | None:
    """Demographic-parity gap |E[p̂|s=0] − E[p̂|s=1]| on ``split`` (default: test); None without both groups."""
    split = dataset.test if split is None else split
    if split.sensitive is None or dataset.val.sensitive is None:
        return None
    counts = torch.bincount(split.sensitive, minlength=2)
    if counts.numel() != 2 or int(counts.min()) == 0:
        return None
    return FairnessImpact().value(module, dataset, split=split)


def fair_score(module: nn.Module, dataset: Dataset, split: Split | None = None) -> float | None:
    """The paper's Section 6 fair score on ``split`` (default: test): mean ½‖p(x) − p(x̃)‖₁ over each text and its
    demographic twin (lower = fairer); None without twins."""
    split = dataset.test if split is None else split
    if split.twin is None or len(split) == 0:
        return None
    return CounterfactualImpact().value(module, dataset, split=split)


def evaluate_module(module: nn.Module, dataset: Dataset, attacks: AttackSettings = AttackSettings(),
                    crafted: Crafted | None = None) -> dict:
    """Test accuracy, fairness gap (None without a sensitive attribute), fair score (None without twins) and
    per-attack accuracies of ``module``
    (on the pre-crafted perturbed test sets ``crafted`` when given)."""
    per_attack = attacked_accuracies(module, dataset.test, attacks, crafted) if attacks.n_attacks > 0 else []
    return {
        "accuracy": evaluate_split(module, dataset.test)["accuracy"],
        "fairness_gap": fairness_gap(module, dataset),
        "fair_score": fair_score(module, dataset),
        "attacked_accuracy": float(np.mean(per_attack)) if per_attack else None,
        "attack_accuracies": per_attack,
    }


def retrain_and_evaluate(dataset: Dataset, arch: str, config: TrainConfig, seed: int,
                         sample_weight: np.ndarray | None = None, attacks: AttackSettings = AttackSettings(),
                         device: str | None = None, should_stop: Callable[[], bool] | None = None,
                         crafted: Crafted | None = None) -> dict:
    """Train ``arch`` from scratch with training seed ``seed`` on ``dataset.train`` (optionally weighted) and
    evaluate it on the test split (see `evaluate_module`; ``crafted``: fixed attacked test sets)."""
    fitted = train_model(dataset, arch, replace(config, seed=seed, checkpoint_every=0), sample_weight=sample_weight,
                         device=device, should_stop=should_stop)
    out = evaluate_module(fitted.module, dataset, attacks, crafted)
    out["n_train"] = len(dataset.train)
    out["train_seconds"] = fitted.metrics.get("train_seconds")
    return out
