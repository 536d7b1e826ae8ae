"""The one place cache keys are built: every setting that changes a result, defaults resolved, hashed.

Two requests that give the same result get the same key (``settings={}`` and the method's defaults written out),
two that differ in anything that changes it (data, weights, method settings, impact settings, parameter group,
folds, training recipe for fold models) get different keys. The store (`workspace.Workspace`), the engine
(`engine.Engine`), the facade and the experiment runner's journal all use these functions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, fields, is_dataclass

from .data.base import Dataset
from .errors import InfluenceError
from .folds import FoldSettings
from .impacts import Impact, make_impact
from .methods import get_method
from .models.registry import get_model_spec
from .models.train import FittedModel, TrainConfig

# "w" of the angle view: w = (H + λI)⁻¹∇f with exact influence's automatic λ (views cached with λ = 0 are not reused)
VIEW_DEFAULTS = {"angles": {"impact": "utility", "params": "all", "w": "auto-damped"}, "umap": {"seed": 0}}


def hash_key(payload: dict) -> str:
    """A short stable hash of a JSON-able dict (sorted keys): the file name of a cache entry."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def model_key(dataset: Dataset, arch: str, config: TrainConfig | None = None) -> str:
    """A model's key: equal data, architecture and (resolved) training settings give the same key."""
    config = (config or TrainConfig()).resolved(arch)
    payload = {"dataset": dataset.fingerprint(), "arch": arch, "config": config.key()}
    weights = get_model_spec(arch).weights_token
    if weights is not None:  # pretrained weights training starts from: their content, not their name
        payload["weights"] = weights()
    return hash_key(payload)


def score_key(dataset: Dataset, fitted: FittedModel, method: str, impact: str | Impact = "utility",
              params: str = "all", settings: dict | None = None, impact_settings: dict | None = None,
              folds: int = 0) -> str:
    """A score vector's key; the method's and the impact's settings are resolved to their full values first."""
    scorer = get_method(method, **(settings or {}))
    imp = make_impact(impact, **(impact_settings or {}))
    imp_fields = {f.name: getattr(imp, f.name) for f in fields(imp)} if is_dataclass(imp) else {}
    payload = {"dataset": dataset.fingerprint(), "model": fitted.fingerprint(), "method": method,
               "settings": asdict(scorer.settings) if is_dataclass(scorer.settings) else {}, "impact": imp.name,
               "impact_settings": imp_fields, "params": params}
    if scorer.needs_checkpoints:  # TracIn-like scores depend on the training trajectory, not only on θ
        payload["checkpoints"] = fitted.checkpoints_fingerprint()
    if folds:  # out of fold: the fold models follow from the data, the folds and fitted's training settings
        payload["folds"] = asdict(FoldSettings(folds))
        payload["train_config"] = asdict(fitted.config)
    return hash_key(payload)


def view_key(name: str, dataset: Dataset, fitted: FittedModel, **settings) -> dict:
    """A view's key ("angles", "umap"): every setting that changes it, defaults filled in."""
    if name not in VIEW_DEFAULTS:
        raise InfluenceError(f"unknown view '{name}'; choose one of: {', '.join(VIEW_DEFAULTS)}")
    return {"view": name, "dataset": dataset.fingerprint(), "model": fitted.fingerprint(),
            **{**VIEW_DEFAULTS[name], **settings}}


def data_issues_key(dataset: Dataset, fitted: FittedModel, settings, folds: int = 0) -> dict:
    """Datalab's findings' key (issue 20): the data, the model, the checks (`data_issues.DataIssueSettings`) and,
    out of fold, the folds and the fold models' training settings."""
    payload = {"artifact": "data_issues", "dataset": dataset.fingerprint(), "model": fitted.fingerprint(),
               "settings": asdict(settings)}
    if folds:
        payload["folds"] = asdict(FoldSettings(folds))
        payload["train_config"] = asdict(fitted.config)
    return payload


def annotator_key(dataset: Dataset, fitted: FittedModel, folds: int = 0, settings: object | None = None) -> dict:
    """The key of a multi-annotator report (issue 20 §4): the data (its annotators are in the fingerprint), the model,
    the folds its probabilities come from (with the fold models' training settings), cleanlab's options."""
    payload = {"report": "annotators", "dataset": dataset.fingerprint(), "model": fitted.fingerprint(),
               "settings": asdict(settings) if is_dataclass(settings) else {}}
    if folds:
        payload.update(folds=asdict(FoldSettings(folds)), train_config=asdict(fitted.config))
    return payload
