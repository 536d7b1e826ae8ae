"""The experiment runner: results match independent retraining, failures become rows, runs resume."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from influence_core.api import compute_scores
from influence_core.data import load_dataset
from influence_core import engine as engine_mod
from influence_core.errors import InfluenceError
from influence_core.evaluate import runner as runner_mod
from influence_core.evaluate.retrain import AttackSettings
from influence_core.evaluate.runner import (ExperimentSettings, cleaned_split_table, format_table, journal_path,
                                            run_experiment)
from influence_core.methods.base import METHODS, InfluenceMethod
from influence_core.models import TrainConfig, train_model
from influence_core.models.train import evaluate_split

SMALL = dict(dataset="blobs", model="logreg", seeds=2, attacks=AttackSettings(n_attacks=2), convex_shortcut=False)


class _Broken(InfluenceMethod):
    """A method that cannot run (for the failure-row test)."""

    name = "_test_broken"

    def compute(self, ctx):
        raise RuntimeError("needs something this model does not have\nsecond line")


class _NeedsCheckpoints(InfluenceMethod):
    """Scores from the checkpoints (fails without them)."""

    name = "_test_checkpoints"
    needs_checkpoints = True

    def compute(self, ctx):
        if not ctx.fitted.checkpoints:
            raise InfluenceError("no checkpoints")
        return -torch.arange(ctx.n_train, dtype=torch.float64)


# Defining a method registers it: take these two out again, so that only this module's tests see them (the
# Scores page lists every registered method).
for _cls in (_Broken, _NeedsCheckpoints):
    METHODS.pop(_cls.name, None)


@pytest.fixture(autouse=True, scope="module")
def _test_methods():
    METHODS.update({_Broken.name: _Broken, _NeedsCheckpoints.name: _NeedsCheckpoints})
    yield
    METHODS.pop("_test_broken", None)
    METHODS.pop("_test_checkpoints", None)


def test_results_match_independent_retraining(tmp_path):
    settings = ExperimentSettings(methods=("ip",), **SMALL)
    out = tmp_path / "res.json"
    result = run_experiment(settings, out)
    data = json.loads(out.read_text())
    for name in ("full", "random", "ip"):
        for metric in ("accuracy", "fairness_gap", "attacked_accuracy"):
            assert set(data["results"][name][metric]) >= {"mean", "std"}
    ds = load_dataset("blobs", seed=0)
    full = train_model(ds, "logreg", TrainConfig(seed=0))
    assert data["results"]["full"]["accuracy"]["mean"] == pytest.approx(evaluate_split(full.module, ds.test)["accuracy"])
    scores = compute_scores(ds, full, "ip", "utility")
    keep = np.sort(np.argsort(scores)[round(0.05 * len(scores)):])
    trimmed = train_model(ds.with_train(ds.train.subset(keep)), "logreg", TrainConfig(seed=0))
    assert data["results"]["ip"]["accuracy"]["mean"] == pytest.approx(evaluate_split(trimmed.module, ds.test)["accuracy"])
    assert data["results"]["random"]["changed"] == data["results"]["ip"]["changed"] == len(scores) - len(keep)
    seeds = [r["accuracy"] for r in data["runs"] if r["method"] == "random"]
    assert data["results"]["random"]["accuracy"]["std"] == pytest.approx(np.std(seeds, ddof=1))
    assert "| IP |" in format_table(result)


def test_failing_method_is_a_row_and_checkpoints_are_made(tmp_path):
    settings = ExperimentSettings(methods=("_test_broken", "_test_checkpoints"), **SMALL)
    result = run_experiment(settings, tmp_path / "r.json")
    assert result.rows["_test_broken"]["error"] == "RuntimeError: needs something this model does not have"
    assert result.rows["_test_broken"]["runs"] == 0
    assert result.rows["_test_checkpoints"]["error"] is None and result.rows["_test_checkpoints"]["runs"] == 2
    assert result.base.checkpoints  # trained with checkpoint_every because a method needs them
    assert "failed: RuntimeError" in format_table(result)


def test_unknown_method_is_a_one_line_error():
    with pytest.raises(InfluenceError, match="unknown method"):
        run_experiment(ExperimentSettings(methods=("nope",), **SMALL))


def test_interrupted_run_resumes_without_recomputing(tmp_path, monkeypatch):
    calls = {"retrain": 0, "score": 0}
    real_retrain, real_score = runner_mod.retrain_and_evaluate, engine_mod.compute_scores

    def counting_retrain(*a, **k):
        calls["retrain"] += 1
        return real_retrain(*a, **k)

    def counting_score(*a, **k):
        calls["score"] += 1
        return real_score(*a, **k)

    monkeypatch.setattr(runner_mod, "retrain_and_evaluate", counting_retrain)
    monkeypatch.setattr(engine_mod, "compute_scores", counting_score)
    settings = ExperimentSettings(methods=("ip", "ip_ensemble"), **SMALL)
    out = tmp_path / "res.json"

    class Interrupt(Exception):
        pass

    def interrupt_after_three(rec):
        if calls["retrain"] == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_experiment(settings, out, on_run=interrupt_after_three)
    assert calls == {"retrain": 3, "score": 2}
    assert not out.exists() and journal_path(out).exists()
    first = run_experiment(settings, out)
    total = 4 * settings.seeds - 1  # full, random, ip, ip_ensemble; full seed 0 is the base model itself
    assert calls == {"retrain": total, "score": 2}  # only the missing runs, no rescoring
    again = run_experiment(settings, out)
    assert calls["retrain"] == total
    assert again.rows == first.rows
    # other settings do not reuse these runs
    run_experiment(ExperimentSettings(methods=("ip",), fraction=0.1, **SMALL), out)
    assert calls["retrain"] == total + 3 * settings.seeds - 1


def test_stop_keeps_only_finished_runs(tmp_path):
    n = {"runs": 0}

    def count(rec):
        n["runs"] += 1

    result = run_experiment(ExperimentSettings(methods=("ip",), **SMALL), tmp_path / "r.json", on_run=count,
                            should_stop=lambda: n["runs"] >= 2)
    assert result.stopped and len(result.runs) == 2


@pytest.mark.parametrize("action", ["trim", "relabel", "reweight"])
def test_cleaned_split_table(action):
    result = run_experiment(ExperimentSettings(methods=("ip",), action=action, seeds=1, dataset="blobs",
                                               model="logreg", attacks=AttackSettings(n_attacks=1)))
    table = cleaned_split_table(result, "ip")
    ds = result.dataset
    chosen = set(np.argsort(result.scores["ip"])[: round(0.05 * len(ds.train))].tolist())
    assert list(table.columns[:5]) == ["index", "given_label", "final_label", "action", "weight"]
    assert (table["given_label"].to_numpy() == ds.train.y.numpy()).all()
    if action == "trim":
        assert set(np.flatnonzero(table["action"] == "remove").tolist()) == chosen
        assert set(np.flatnonzero(table["weight"] == 0).tolist()) == chosen
    elif action == "relabel":
        assert set(np.flatnonzero(table["final_label"] != table["given_label"]).tolist()) == chosen
    else:
        assert table["weight"].sum() == pytest.approx(len(ds.train))
        assert np.argmin(table["weight"]) in chosen


def test_convex_shortcut_retrains_once_per_row_with_the_same_results(tmp_path, monkeypatch):
    slow = run_experiment(ExperimentSettings(methods=("ip",), **SMALL))
    calls = {"n": 0}
    real = runner_mod.retrain_and_evaluate

    def counting(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(runner_mod, "retrain_and_evaluate", counting)
    fast = run_experiment(ExperimentSettings(methods=("ip",), **{**SMALL, "convex_shortcut": True}))
    assert calls["n"] == SMALL["seeds"] + 1  # full: the base model; random per seed; ip once
    for name in ("full", "random", "ip"):
        for metric in ("accuracy", "fairness_gap", "attacked_accuracy"):
            assert fast.rows[name][metric]["mean"] == pytest.approx(slow.rows[name][metric]["mean"], abs=1e-3)


def test_experiments_sharing_a_journal_share_scores(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = engine_mod.compute_scores

    def counting(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(engine_mod, "compute_scores", counting)
    journal = tmp_path / "shared.jsonl"
    for action in ("trim", "relabel"):
        run_experiment(ExperimentSettings(methods=("ip",), action=action, **SMALL), journal=journal)
    assert calls["n"] == 1  # the relabel experiment reused the trim experiment's IP scores
    run_experiment(ExperimentSettings(methods=("ip",), impact="fairness", **SMALL), journal=journal)
    assert calls["n"] == 2  # another impact: new scores
    run_experiment(ExperimentSettings(methods=("ip",), params="linear.weight", **SMALL), journal=journal)
    assert calls["n"] == 3  # another parameter group: the journal's key (keys.score_key) holds params
    run_experiment(ExperimentSettings(methods=("ip",), action="relabel", params="linear.weight", **SMALL),
                   journal=journal)
    assert calls["n"] == 3
