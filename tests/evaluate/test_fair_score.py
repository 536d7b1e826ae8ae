"""The experiment's fair score (paper Sec. 6): per arm beside accuracy, on text with twins; its Pareto chart."""

import json

import numpy as np
import pytest
import torch

from influence_core.data import load_dataset
from influence_core.errors import InfluenceError
from influence_core.evaluate.figures import pareto_figure
from influence_core.evaluate.retrain import AttackSettings, fair_score
from influence_core.evaluate.runner import ExperimentSettings, format_table, run_experiment
from influence_core.models import TrainConfig, train_model


@pytest.fixture(scope="module")
def shortcut():
    return load_dataset("text-shortcut", seed=0, n_train=300, n_val=100, n_test=100)


def _fair_by_hand(module, split):
    """mean |σ(z(x)) − σ(z(x̃))| over the test pairs, written out for a one-logit model."""
    with torch.no_grad():
        p, q = torch.sigmoid(module(split.x)[:, 0]), torch.sigmoid(module(split.twin.x)[:, 0])
    return float((p - q).abs().mean())


def test_fair_score_is_the_mean_prediction_change_and_none_without_twins(shortcut):
    fitted = train_model(shortcut, "text-linear", TrainConfig(seed=0))
    assert fair_score(fitted.module, shortcut) == pytest.approx(_fair_by_hand(fitted.module, shortcut.test), abs=1e-6)
    blobs = load_dataset("blobs", seed=0)
    assert fair_score(train_model(blobs, "logreg", TrainConfig(seed=0)).module, blobs) is None


def test_experiment_reports_fair_score_per_arm(shortcut, tmp_path):
    settings = ExperimentSettings(dataset="text-shortcut", model="text-linear", methods=("ip",), seeds=2,
                                  impact="utility+counterfactual", attacks=AttackSettings(n_attacks=0),
                                  dataset_kwargs={"n_train": 300, "n_val": 100, "n_test": 100})
    result = run_experiment(settings, tmp_path / "out.json", dataset=shortcut)
    data = json.loads((tmp_path / "out.json").read_text())
    assert set(data["results"]) == {"full", "random", "ip"}
    for name, row in data["results"].items():
        assert row["fair_score"]["n"] == 2 and 0 < row["fair_score"]["mean"] < 1, name
    full_runs = [r for r in data["runs"] if r["method"] == "full"]
    base = train_model(shortcut, "text-linear", TrainConfig(seed=0))
    assert full_runs[0]["fair_score"] == pytest.approx(_fair_by_hand(base.module, shortcut.test), abs=1e-4)
    assert "fair score" in format_table(result)
    fig = pareto_figure(result, metric="fair_score")
    assert "fair score" in fig.layout.yaxis.title.text
    np.testing.assert_allclose(fig.data[0].y, [100 * data["results"]["full"]["fair_score"]["mean"]])


def test_pareto_fair_score_needs_twins():
    with pytest.raises(InfluenceError, match="fair score"):
        pareto_figure({"full": {"accuracy": {"mean": 0.9}}}, metric="fair_score")
