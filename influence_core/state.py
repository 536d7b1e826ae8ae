"""The types of a project's state: which data set, model and score runs are current (`Selection`, kept by
`project.Project` as ``state.json`` in the project's folder, so a refresh or a restart loses nothing) and one score
column (`ScoreRun`). Front ends keep only keys; the project on disk holds the truth.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .data.base import Dataset
from .locations import workspace_root  # noqa: F401  (the project modules' import of it)
from .models.train import TrainConfig


@dataclass
class ScoreRun:
    """One computed score column: method, impact, parameter group, the method's settings, the impact's settings
    (e.g. ``{"val_trim": 0.0}``) and the number of folds (0 = in-sample, K ≥ 2 = out of fold with K fold models)."""

    method: str
    impact: str = "utility"
    params: str = "all"
    settings: dict = field(default_factory=dict)
    folds: int = 0
    impact_settings: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """A short unique column name, e.g. ``ip_ensemble[K=5,p=0.01]·fairness``, ``loss·oof5``, ``ip·trim=0``."""
        short = {"ensemble_size": "K", "dropout": "p"}
        parts = ",".join(f"{short.get(k, k)}={v}" for k, v in sorted(self.settings.items()))
        name = self.method + (f"[{parts}]" if parts else "")
        if self.impact != "utility":
            name += f"·{self.impact}"
        if self.params != "all":
            name += f"·{self.params}"
        for k, v in sorted((self.impact_settings or {}).items()):
            name += f"·{'trim' if k == 'val_trim' else k}={v:g}" if isinstance(v, float) else f"·{k}={v}"
        if self.folds:
            name += f"·oof{self.folds}"
        return name

    def score_kwargs(self) -> dict:
        """The keyword arguments of `Engine.scores` that this run fixes (beyond data set and model)."""
        return {"method": self.method, "impact": self.impact, "params": self.params, "settings": dict(self.settings),
                "impact_settings": dict(self.impact_settings or {}) or None, "folds": int(self.folds or 0)}


@dataclass
class Selection:
    """What the user has chosen: data set (+ loader arguments), model (trained or uploaded), score runs."""

    dataset: str = "moons"
    dataset_kwargs: dict = field(default_factory=lambda: {"seed": 0})
    arch: str | None = None
    train: dict | None = None  # TrainConfig fields; None = no model yet
    weights: str | None = None  # uploaded weights (a path inside the workspace)
    model_hash: str | None = None
    runs: list[ScoreRun] = field(default_factory=list)
    primary: str | None = None  # the run whose score orders the review
    flag_share: float = 0.1  # share of training samples flagged for review (most detrimental first)

    @property
    def dataset_key(self) -> str:
        return self.dataset + json.dumps(self.dataset_kwargs, sort_keys=True)

    @property
    def has_model(self) -> bool:
        return self.arch is not None and (self.train is not None or self.weights is not None)

    def train_config(self) -> TrainConfig:
        known = {f.name for f in fields(TrainConfig)}
        return TrainConfig(**{k: v for k, v in (self.train or {}).items() if k in known})

    def primary_run(self) -> ScoreRun | None:
        for run in self.runs:
            if run.label == self.primary:
                return run
        return self.runs[0] if self.runs else None

    def set_dataset(self, name: str, kwargs: dict) -> None:
        """A new data set: the model and score runs belonged to the old one."""
        if name != self.dataset or kwargs != self.dataset_kwargs:
            self.dataset, self.dataset_kwargs = name, dict(kwargs)
            self.clear_model()

    def use_model(self, arch: str, model_hash: str, *, train: dict | None = None, weights: str | None = None) -> None:
        """Make a model current; the score runs stay only when it is the very same model (architecture, settings,
        weights file and weights), as when the cache returns the model already current."""
        if (arch, train, weights, model_hash) != (self.arch, self.train, self.weights, self.model_hash):
            self.clear_model()
        self.arch, self.train, self.weights, self.model_hash = arch, train, weights, model_hash

    def clear_model(self) -> None:
        self.arch = self.train = self.weights = self.model_hash = None
        self.runs, self.primary = [], None

    def add_run(self, run: ScoreRun) -> None:
        self.runs = [r for r in self.runs if r.label != run.label] + [run]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Selection":
        known = {f.name for f in fields(cls)}
        sel = cls(**{k: v for k, v in data.items() if k in known})
        run_fields = {f.name for f in fields(ScoreRun)}  # older files lack folds / impact_settings: defaults
        sel.runs = [ScoreRun(**{k: v for k, v in r.items() if k in run_fields}) if isinstance(r, dict) else r
                    for r in sel.runs]
        return sel


def decision_scope(dataset: Dataset) -> str:
    """Decisions belong to the data (name + content hash), not to a model: retraining keeps them."""
    return f"{dataset.name}:{dataset.fingerprint()}"


def flagged_rows(scores: np.ndarray, share: float) -> np.ndarray:
    """Rows of the ``share`` most detrimental samples (lowest scores first), at least one."""
    k = max(1, int(round(share * len(scores))))
    return np.argsort(scores, kind="stable")[:k]
