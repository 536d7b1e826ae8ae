"""The experiment runner (paper Tables 1–2, Figs. 5–6 at laptop scale): score the training set with each
method on one base model, act on the most detrimental fraction (scores: lower = more detrimental), retrain
from scratch with several seeds, and compare with the uncleaned set (``full``) and a random action of the
same size (``random``, the control).

Resumable: every finished piece (a method's scores, one (method, seed) retraining) is appended to a JSONL
journal next to the output, keyed by a hash of the settings and the data; a rerun skips what is there.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..data.base import Dataset
from ..data.registry import load_dataset
from ..engine import Engine
from ..errors import InfluenceError
from ..impacts import impact_settings_for, make_impact
from ..keys import score_key
from ..methods.base import METHODS, get_method
from ..models.architectures import LogisticRegression
from ..models.train import FittedModel, TrainConfig
from .actions import ACTIONS, ActionResult, ActionSettings, apply_action
from .baselines import arm_label, expand_arms, is_arm, run_arm
from .retrain import AttackSettings, craft_attacks, evaluate_module, retrain_and_evaluate

CONTROLS = ("full", "random")
METRICS = ("accuracy", "fairness_gap", "attacked_accuracy", "fair_score")
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class ExperimentSettings:
    """One experiment: which data, model, methods and action; everything here goes into the resume key."""

    dataset: str
    model: str = "logreg"
    methods: tuple[str, ...] = ("ip", "ip_ensemble")
    action: str = "trim"
    fraction: float = 0.05
    seeds: int = 3
    impact: str = "utility"
    data_seed: int = 0
    dataset_kwargs: dict = field(default_factory=dict)
    train: TrainConfig = TrainConfig()
    temperature: float = 1.0
    standardize: bool = True
    relabel_class: int | None = None
    upweight: bool = True
    attacks: AttackSettings = AttackSettings()
    method_settings: dict = field(default_factory=dict)  # method name -> {setting: value}
    params: str = "all"
    # A convex model trained to its optimum (logistic regression by L-BFGS) does not depend on the training seed:
    # retrain it once per row and reuse that run for the other seeds (``random`` still draws a new subset per seed).
    convex_shortcut: bool = True
    # Settings of the impact the methods score against (see `impacts`); the robustness impact's c and epsilon
    # default to the evaluation's attack settings (``attacks``) unless set here.
    impact_settings: dict = field(default_factory=dict)
    # Baseline arms (evaluate/baselines.py, issue 17): a family name (its whole sweep) or ``family@value``.
    baselines: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict) -> "ExperimentSettings":
        """Settings read back from `as_dict` (unknown keys from other versions are dropped)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["methods"] = tuple(values.get("methods") or ())
        values["baselines"] = tuple(values.get("baselines") or ())
        train_fields = {f.name for f in fields(TrainConfig)}
        values["train"] = TrainConfig(**{k: v for k, v in (values.get("train") or {}).items() if k in train_fields})
        values["attacks"] = AttackSettings(**(values.get("attacks") or {}))
        return cls(**values)

    def validate(self) -> None:
        """Raise a one-line `InfluenceError` for settings that cannot run."""
        if self.action not in ACTIONS:
            raise InfluenceError(f"unknown action '{self.action}'; choose one of: {', '.join(ACTIONS)}")
        if not self.methods:
            raise InfluenceError("give at least one method (see: python -m influence_core methods)")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise InfluenceError(f"unknown method {', '.join(unknown)}; choose from: {', '.join(sorted(METHODS))}")
        if self.seeds < 1:
            raise InfluenceError("--seeds must be at least 1")
        if self.attacks.against not in ("base", "each"):
            raise InfluenceError(f"attacks are crafted against 'base' or 'each', not '{self.attacks.against}'")
        if not 0.0 < self.fraction < 1.0:
            raise InfluenceError(f"the fraction must be between 0 and 1 (exclusive), got {self.fraction}")
        for name, s in self.method_settings.items():
            get_method(name, **s)  # raises for a setting the method does not take
        make_impact(self.impact, **self.resolved_impact_settings())  # an unknown impact or setting: one line
        expand_arms(self.baselines)  # an unknown baseline or setting: one line

    def resolved_impact_settings(self) -> dict:
        """What the impact is built with: the attack's c and epsilon where the impact takes them, then
        ``impact_settings``."""
        return {**impact_settings_for(self.impact, c=self.attacks.c, epsilon=self.attacks.epsilon),
                **{k: v for k, v in self.impact_settings.items() if v is not None}}

    def action_settings(self) -> ActionSettings:
        return ActionSettings(self.fraction, self.temperature, self.standardize, self.relabel_class, self.upweight)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["methods"] = list(self.methods)
        if not out["impact_settings"]:  # as before impact settings existed: earlier runs keep their resume keys
            del out["impact_settings"]
        out["baselines"] = list(self.baselines)
        if not out["baselines"]:  # likewise for runs without baselines
            del out["baselines"]
        return out


@dataclass
class ExperimentResult:
    """What a run produced: per-row summaries (methods plus ``full`` and ``random``), every single run, and —
    in memory only — the data, base model, scores and the action each method led to (for export)."""

    settings: ExperimentSettings
    key: str
    rows: dict[str, dict]
    runs: list[dict]
    dataset: Dataset | None = None
    base: FittedModel | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    actions: dict[str, ActionResult] = field(default_factory=dict)
    stopped: bool = False

    def to_json(self) -> dict:
        return {"settings": self.settings.as_dict(), "key": self.key, "stopped": self.stopped,
                "results": self.rows, "runs": self.runs}

    @classmethod
    def from_json(cls, data: dict) -> "ExperimentResult":
        """A result read back from `to_json` (a finished job's record): settings, table rows and runs."""
        return cls(ExperimentSettings.from_json(data["settings"]), data.get("key", ""), data.get("results") or {},
                   list(data.get("runs") or []), stopped=bool(data.get("stopped")))

    def table(self) -> pd.DataFrame:
        """One row per method (``full`` and ``random`` first): mean and std of each metric, and any failure."""
        recs = []
        for name, row in self.rows.items():
            rec = {"method": name, "label": row.get("label", name), "runs": row.get("runs", 0),
                   "changed": row.get("changed"), "error": row.get("error")}
            for m in METRICS:
                stat = row.get(m) or {}
                rec[f"{m}_mean"], rec[f"{m}_std"] = stat.get("mean"), stat.get("std")
            recs.append(rec)
        return pd.DataFrame(recs)


def run_key(settings: ExperimentSettings, dataset: Dataset, base: FittedModel | None = None) -> str:
    """The resume key: settings + data content (+ the given base model's weights when one was passed in)."""
    blob = json.dumps(settings.as_dict(), sort_keys=True, default=str) + dataset.fingerprint()
    if base is not None:
        blob += base.fingerprint()
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def journal_path(out: str | Path) -> Path:
    """The JSONL of finished pieces next to ``out`` (results.json -> results.runs.jsonl)."""
    out = Path(out)
    return out.with_name(out.stem + ".runs.jsonl")


def _read_journal(path: Path | None) -> list[dict]:
    if path is None or not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by an interruption
            continue
    return out


def _append(path: Path | None, rec: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(rec, default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text and not isinstance(err, InfluenceError) else (text[0] if text else type(err).__name__)


def is_convex(module) -> bool:
    """Whether training ``module`` with L2 is a strictly convex problem (one optimum whatever the seed)."""
    return isinstance(module, LogisticRegression)


def base_config(settings: ExperimentSettings) -> TrainConfig:
    """The base model's training config: checkpoints when a requested method needs them (TracIn, TDA)."""
    config = settings.train.resolved(settings.model)
    needs = any(METHODS[m].needs_checkpoints for m in settings.methods)
    every = max(1, (config.epochs or 1) // 5) if needs else 0
    return replace(config, seed=settings.data_seed, checkpoint_every=every)


def run_experiment(settings: ExperimentSettings, out: str | Path | None = None, *, dataset: Dataset | None = None,
                   base: FittedModel | None = None, progress: Progress | None = None,
                   should_stop: Callable[[], bool] | None = None, on_run: Callable[[dict], None] | None = None,
                   device: str | None = None, journal: str | Path | None = None, workspace=None) -> ExperimentResult:
    """Run (or resume) an experiment and, when ``out`` is given, write its JSON there.

    ``journal``: the JSONL of finished pieces (default: next to ``out``); experiments sharing one journal also
    share scores that do not depend on the action (same data, model, method, impact).
    ``dataset`` / ``base``: use these instead of loading the named data set / training the base model (the app).
    ``workspace``: a `Workspace` whose cache holds the base model and the methods' scores (read and written
    there; the same entries the CLI's `score` and the app use); None: no cache beyond the journal.
    ``on_run`` is called with each finished run's record after it is journaled. ``should_stop`` returning True
    ends the run early with what is finished (``stopped=True``); nothing half-done is kept.
    """
    settings.validate()
    report = progress or (lambda f, m: None)
    stop = should_stop or (lambda: False)
    dataset = dataset if dataset is not None else load_dataset(settings.dataset, seed=settings.data_seed, **settings.dataset_kwargs)
    key = run_key(settings, dataset, base)
    journal = Path(journal) if journal is not None else (journal_path(out) if out is not None else None)
    done = _read_journal(journal)
    by_score_key = {r.get("score_key"): r for r in done if r.get("type") == "scores"}
    scored: dict[str, dict] = {}
    finished = {(r["method"], r["seed"]): r for r in done if r.get("type") == "run" and r.get("key") == key}

    names = [*CONTROLS, *settings.methods, *expand_arms(settings.baselines)]
    total = len(settings.methods) + len(names) * settings.seeds + 1
    unit = 0

    def tick(message: str) -> None:
        report(unit / total, message)

    result = ExperimentResult(settings, key, {}, [], dataset=dataset)
    engine = Engine(workspace)  # no workspace: computed, nothing stored beyond the journal
    base_is_full_run = base is None  # trained here with the retraining config: it *is* the `full` run of its seed
    if base is None:
        tick("training the base model")
        config = base_config(settings)
        base = engine.model(dataset, settings.model, config, device=device)
    result.base = base
    unit += 1
    config = replace(base.config, checkpoint_every=0) if base.config.optimizer else base_config(settings)
    seed_free = settings.convex_shortcut and config.optimizer == "lbfgs" and is_convex(base.module)
    act = settings.action_settings()
    crafted = None
    if settings.attacks.against == "base" and settings.attacks.n_attacks > 0:
        crafted = craft_attacks(base.module, dataset.test, settings.attacks)
    errors: dict[str, str] = {}

    for method in settings.methods:
        if stop():
            result.stopped = True
            break
        tick(f"scoring with {method}")
        rec = {"key": key, "type": "scores", "method": method}
        args = {"method": method, "impact": settings.impact, "params": settings.params,
                "settings": settings.method_settings.get(method, {}),
                "impact_settings": settings.resolved_impact_settings()}
        try:  # the journal's key is the store's score key: scores shared by experiments that differ in the action
            rec["score_key"] = score_key(dataset, base, **args)
            if rec["score_key"] not in by_score_key:
                rec["scores"] = engine.scores(dataset, base, device=device, **args)
        except Exception as err:  # a method that cannot run here is a table row, not the end of the run
            rec["error"] = _one_line(err)
        if rec.get("score_key") in by_score_key:
            rec = by_score_key[rec["score_key"]]
        else:
            _append(journal, rec)
        scored[method] = rec
        if "error" in scored[method]:
            errors[method] = scored[method]["error"]
        else:
            result.scores[method] = np.asarray(scored[method]["scores"], dtype=np.float64)
            result.actions[method] = apply_action(settings.action, dataset, result.scores[method], act, base.module)
        unit += 1

    for name in names if not result.stopped else []:
        for seed in range(settings.seeds):
            if stop():
                result.stopped = True
                break
            tick(f"retraining: {name}, seed {seed}")
            unit += 1
            if name in errors:
                continue
            if (name, seed) in finished:
                result.runs.append(finished[(name, seed)])
                continue
            if seed_free and name != "random" and (name, 0) in finished:
                rec = {**finished[(name, 0)], "seed": seed, "reused_from_seed": 0}  # same convex optimum
                finished[(name, seed)] = rec
                result.runs.append(rec)
                continue
            action = None if is_arm(name) else _action_for(name, seed, dataset, result, act, base)
            if is_arm(name):
                try:
                    metrics = run_arm(name, dataset, base, config, seed, settings.attacks, crafted,
                                      scores=next(iter(result.scores.values()), None), device=device, should_stop=stop)
                except Exception as err:  # a baseline that cannot run here is a table row, not the end of the run
                    errors[name] = _one_line(err)
                    continue
            elif name == "full" and base_is_full_run and seed == settings.data_seed:
                metrics = {**evaluate_module(base.module, dataset, settings.attacks, crafted),
                           "n_train": len(dataset.train), "train_seconds": base.metrics.get("train_seconds")}
            else:
                metrics = retrain_and_evaluate(action.dataset if action else dataset, settings.model, config, seed,
                                               sample_weight=action.sample_weight if action else None,
                                               attacks=settings.attacks, device=device, should_stop=stop,
                                               crafted=crafted)
            if stop():  # a cancelled training is not a result
                result.stopped = True
                break
            rec = {"key": key, "type": "run", "method": name, "seed": seed,
                   "changed": int(len(action.changed)) if action else 0, **metrics}
            _append(journal, rec)
            finished[(name, seed)] = rec
            result.runs.append(rec)
            if on_run is not None:
                on_run(rec)
        if result.stopped:
            break

    result.rows = summarize(names, result.runs, errors)
    report(1.0 if not result.stopped else unit / total, "stopped" if result.stopped else "done")
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result.to_json(), indent=2, default=_json_default))
    return result


def _action_for(name: str, seed: int, dataset: Dataset, result: ExperimentResult, act: ActionSettings,
                base: FittedModel) -> ActionResult | None:
    """``full``: nothing; ``random``: the same action on random scores (seeded by ``seed``); a method: its action."""
    if name == "full":
        return None
    if name == "random":
        scores = np.random.default_rng(10_000 + seed).standard_normal(len(dataset.train))
        return apply_action(result.settings.action, dataset, scores, act, base.module)
    return result.actions[name]


def _stat(values: list[float]) -> dict | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    return {"mean": float(np.mean(vals)), "std": std, "n": len(vals)}


def summarize(names: list[str], runs: list[dict], errors: dict[str, str] | None = None) -> dict[str, dict]:
    """Mean and sample std over seeds for accuracy and fairness gap; attacked accuracy pools every
    (seed, attack) pair, so its std is the spread over attacks (paper Fig. 6 / Table 2)."""
    errors = errors or {}
    rows = {}
    for name in names:
        mine = [r for r in runs if r["method"] == name]
        cls = METHODS.get(name)
        row = {"label": (cls.label or name) if cls else arm_label(name) if is_arm(name) else name, "runs": len(mine), "error": errors.get(name)}
        row["accuracy"] = _stat([r["accuracy"] for r in mine])
        row["fairness_gap"] = _stat([r.get("fairness_gap") for r in mine])
        row["attacked_accuracy"] = _stat([a for r in mine for a in r.get("attack_accuracies", [])])
        row["fair_score"] = _stat([r.get("fair_score") for r in mine])  # counterfactual fairness (text twins)
        row["changed"] = mine[0].get("changed") if mine else None
        rows[name] = row
    return rows


def format_table(result: ExperimentResult) -> str:
    """A markdown table like the paper's Tables 1–2: accuracy and attacked accuracy in %, fairness gap ×100."""
    def cell(stat: dict | None, scale: float = 100.0) -> str:
        return "–" if not stat else f"{stat['mean'] * scale:.2f} ± {stat['std'] * scale:.2f}"

    s = result.settings
    lines = [f"{s.dataset} / {s.model} / {s.action} {s.fraction:.0%} by {s.impact} impact, {s.seeds} seed(s)", "",
             "| method | test accuracy (%) | fairness gap (×100) | attacked accuracy (%) | changed |",
             "|---|---|---|---|---|"]
    for name, row in result.rows.items():
        if row.get("error"):
            lines.append(f"| {row['label']} | failed: {row['error']} | | | |")
            continue
        lines.append(f"| {row['label']} | {cell(row['accuracy'])} | {cell(row['fairness_gap'])} | "
                     f"{cell(row['attacked_accuracy'])} | {row.get('changed') if row.get('changed') is not None else ''} |")
    if any(row.get("fair_score") for row in result.rows.values()):  # text with twins: the paper's Sec. 6 fair score
        lines += ["", "| method | fair score (×100, lower = fairer) |", "|---|---|"]
        lines += [f"| {row['label']} | {cell(row.get('fair_score'))} |" for row in result.rows.values() if not row.get("error")]
    if result.stopped:
        lines.append("\n(stopped early: the rows above use the runs finished so far)")
    return "\n".join(lines)


def cleaned_split_table(run: ExperimentResult, method: str | None = None) -> pd.DataFrame:
    """The cleaned training split a method's action produced, one row per original training sample:
    index (position in the original data), given label, final label, action (keep / remove / relabel /
    reweight) and weight (0 for a removed row). ``method`` defaults to the first method that ran."""
    if not run.actions or run.dataset is None:
        raise InfluenceError("this run has no finished method to export (it failed, was stopped, or was loaded from JSON)")
    method = method or next(iter(run.actions))
    if method not in run.actions:
        raise InfluenceError(f"no cleaned split for '{method}' in this run; choose one of: {', '.join(run.actions)}")
    act = run.actions[method]
    n = len(act.given_labels)
    src = run.dataset.source_index
    index = src.numpy() if src is not None else np.arange(n)
    what = np.array(["keep"] * n, dtype=object)
    if act.action == "trim":
        what[act.selected] = "remove"
    elif act.action == "relabel":
        what[act.changed] = "relabel"
    else:
        what[:] = "reweight"
    frame = pd.DataFrame({"index": index, "given_label": act.given_labels, "final_label": act.final_labels,
                          "action": what, "weight": act.weights})
    if method in run.scores:
        frame["score"] = run.scores[method]
    return frame


def cleaned_split_again(result: ExperimentResult, method: str, dataset: Dataset, base: FittedModel,
                        engine: Engine) -> pd.DataFrame:
    """`cleaned_split_table` of ``method`` in ``result`` (also one read back from JSON, without scores or actions):
    its action applied again to its scores from ``engine``'s store, on ``dataset`` and ``base`` (the current ones);
    a one-line error when ``result`` is of another data set or model, or the scores are no longer stored."""
    s = result.settings
    if run_key(s, dataset, base) != result.key:
        raise InfluenceError("this result was computed on another data set or model than the current one")
    if method not in s.methods:
        raise InfluenceError(f"'{method}' is not a method of this result; choose one of: {', '.join(s.methods)}")
    args = {"method": method, "impact": s.impact, "params": s.params, "settings": s.method_settings.get(method, {}),
            "impact_settings": s.resolved_impact_settings()}
    if not engine.has_scores(dataset, base, **args):
        raise InfluenceError(f"the scores of '{method}' are not in the cache (any more): run the experiment again")
    scores = engine.scores(dataset, base, **args)
    action = apply_action(s.action, dataset, scores, s.action_settings(), base.module)
    return cleaned_split_table(replace(result, dataset=dataset, base=base, scores={method: scores},
                                       actions={method: action}), method)
