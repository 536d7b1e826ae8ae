"""Baseline arms (issue 17): Kamiran–Calders weights by hand, fairlearn arms as fairlearn gives them, adversarial
training on attacked copies, the equalised-odds impact against a hand computation and autograd, and the
"best arm at accuracy" sentence on a hand-made front."""

import json

import numpy as np
import pytest
import torch

import influence_core as ic
from influence_core.data.base import Dataset, Split
from influence_core.errors import InfluenceError
from influence_core.evaluate.baselines import (ARMS, FittedEstimator, TrainerEstimator, adversarial_training_set,
                                               arm_label, best_arm_sentence, expand_arms, kamiran_calders_weights,
                                               reweighing_weights, run_arm, within_cell_selection)
from influence_core.evaluate.retrain import AttackSettings
from influence_core.evaluate.runner import ExperimentSettings, run_experiment
from influence_core.impacts import make_impact
from influence_core.models.architectures import LogisticRegression
from influence_core.models.train import TrainConfig, train_model

NO_ATTACKS = AttackSettings(n_attacks=0)
# Cells (s, y): (0,0) ×2, (0,1) ×1, (1,0) ×1, (1,1) ×4 — n = 8.
S = np.array([0, 0, 0, 1, 1, 1, 1, 1])
Y = np.array([0, 0, 1, 0, 1, 1, 1, 1])


def test_kamiran_calders_weights_are_p_group_times_p_label_over_p_cell():
    # P(s=0)=3/8, P(s=1)=5/8, P(y=0)=3/8, P(y=1)=5/8; P(cell) = count/8.
    hand = {(0, 0): (3 / 8) * (3 / 8) / (2 / 8), (0, 1): (3 / 8) * (5 / 8) / (1 / 8),
            (1, 0): (5 / 8) * (3 / 8) / (1 / 8), (1, 1): (5 / 8) * (5 / 8) / (4 / 8)}
    expected = np.array([hand[(s, y)] for s, y in zip(S, Y)])
    np.testing.assert_allclose(kamiran_calders_weights(Y, S), expected, rtol=1e-12)
    np.testing.assert_allclose(reweighing_weights(Y, S, 0.0), np.ones(8))
    np.testing.assert_allclose(reweighing_weights(Y, S, 2.0), expected**2 / np.mean(expected**2), rtol=1e-12)


def test_within_cell_trims_the_lowest_scored_of_over_represented_cells():
    scores = np.array([5.0, -1.0, 0.0, 0.0, 3.0, -2.0, 4.0, 1.0])
    rows, weights = within_cell_selection(Y, S, scores, 1.0)
    # Cell (0,0) has weight 9/16 < 1: round(2·7/16) = 1 sample goes, its lowest-scored (row 1); cell (1,1) has
    # 25/32: round(4·7/32) = 1 goes (row 5). Cells (0,1) and (1,0) have 15/8 > 1: kept, weighted up.
    np.testing.assert_array_equal(rows, [0, 2, 3, 4, 6, 7])
    raw = np.array([1, 15 / 8, 15 / 8, 1, 1, 1])
    np.testing.assert_allclose(weights, raw / raw.mean(), rtol=1e-12)


@pytest.fixture(scope="module")
def fair_data():
    return ic.load_dataset("blobs", seed=0)


@pytest.fixture(scope="module")
def base(fair_data):
    return train_model(fair_data, "logreg", TrainConfig(seed=0))


def _config():
    return TrainConfig().resolved("logreg")


def _expected(p, split):
    y, s = split.y.numpy(), split.sensitive.numpy()
    return np.mean(np.where(y == 1, p, 1 - p)), abs(p[s == 0].mean() - p[s == 1].mean())


def test_reweighing_arm_retrains_with_the_hand_weights(fair_data, base):
    got = run_arm("reweighing@1", fair_data, base, _config(), 0, NO_ATTACKS)
    w = kamiran_calders_weights(fair_data.train.y.numpy(), fair_data.train.sensitive.numpy())
    ref = train_model(fair_data, "logreg", _config(), sample_weight=w / w.mean()).module
    with torch.no_grad():
        p = torch.sigmoid(ref(fair_data.test.x)[:, 0]).double().numpy()
    acc = np.mean((p > 0.5) == (fair_data.test.y.numpy() == 1))
    assert got["accuracy"] == pytest.approx(acc)
    assert got["fairness_gap"] == pytest.approx(_expected(p, fair_data.test)[1], abs=1e-6)


def test_trainer_estimator_is_the_products_weighted_training(fair_data):
    w = np.random.default_rng(0).uniform(0.1, 2.0, len(fair_data.train))
    est = TrainerEstimator("logreg", _config()).fit(fair_data.train.x.numpy(), fair_data.train.y.numpy(), w)
    ref = train_model(fair_data, "logreg", _config(), sample_weight=w).module
    with torch.no_grad():
        p = torch.sigmoid(ref(fair_data.test.x)[:, 0]).double().numpy()
    np.testing.assert_allclose(est.predict_proba(fair_data.test.x.numpy())[:, 1], p, atol=1e-6)


def test_fairlearn_arms_match_fairlearn_called_directly(fair_data, base):
    from fairlearn.postprocessing import ThresholdOptimizer
    from fairlearn.reductions import DemographicParity, ExponentiatedGradient

    tr, va, te = fair_data.train, fair_data.val, fair_data.test
    eg = ExponentiatedGradient(TrainerEstimator("logreg", _config()), DemographicParity(difference_bound=0.05))
    eg.fit(tr.x.numpy(), tr.y.numpy(), sensitive_features=tr.sensitive.numpy())
    acc, gap = _expected(eg._pmf_predict(te.x.numpy())[:, 1], te)
    got = run_arm("eg_dp@0.05", fair_data, base, _config(), 0, NO_ATTACKS)
    assert (got["accuracy"], got["fairness_gap"]) == pytest.approx((acc, gap), abs=1e-9)

    to = ThresholdOptimizer(estimator=FittedEstimator(base.module).fit(None, None), constraints="demographic_parity",
                            prefit=True, predict_method="predict_proba")
    to.fit(va.x.numpy(), va.y.numpy(), sensitive_features=va.sensitive.numpy())
    acc, gap = _expected(to._pmf_predict(te.x.numpy(), sensitive_features=te.sensitive.numpy())[:, 1], te)
    got = run_arm("threshold_dp@0", fair_data, base, _config(), 0, NO_ATTACKS)
    assert (got["accuracy"], got["fairness_gap"]) == pytest.approx((acc, gap), abs=1e-9)
    full_gap = _expected(torch.sigmoid(base.module(te.x)[:, 0]).detach().double().numpy(), te)[1]
    assert got["fairness_gap"] < full_gap  # the strict constraint closes some of the gap


def test_adversarial_training_sees_attacked_copies(fair_data, base):
    attacks = AttackSettings(c=1.3)
    out = adversarial_training_set(fair_data, base, 0.5, attacks)
    n = len(fair_data.train)
    assert len(out.train) == n + round(0.5 * n)
    np.testing.assert_array_equal(out.train.x[:n].numpy(), fair_data.train.x.numpy())  # the clean ones, unchanged
    w, b = base.module.linear.weight.detach()[0].double(), base.module.linear.bias.detach()[0].double()
    x_adv, y_adv = out.train.x[n:].double(), out.train.y[n:]
    # Each copy is a training row x moved along w past the boundary, x' = x − c·(wᵀx + b)/‖w‖²·w (impacts.attack),
    # so wᵀx' + b = (1 − c)(wᵀx + b): solve for x and find it among the training rows, with its label.
    originals = x_adv + 1.3 * ((x_adv @ w + b) / (-0.3 * (w @ w)))[:, None] * w[None, :]
    dist = torch.cdist(originals, fair_data.train.x.double())
    assert dist.min(dim=1).values.max() < 1e-5  # float32 copies: the inversion amplifies their rounding by c/(c−1)
    np.testing.assert_array_equal(y_adv.numpy(), fair_data.train.y[dist.argmin(dim=1)].numpy())
    assert ((x_adv @ w + b > 0) != (originals @ w + b > 0)).all()  # every copy crossed the boundary
    run = run_arm("adversarial@0.5", fair_data, base, _config(), 0, AttackSettings(n_attacks=2))
    assert run["n_train"] == len(out.train) and len(run["attack_accuracies"]) == 2


def _eo_by_hand(p, y, s, labels=(0, 1)):
    return sum(abs(p[(s == 0) & (y == c)].mean() - p[(s == 1) & (y == c)].mean()) for c in labels)


def test_equalized_odds_impact_value_and_gradient():
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.normal(size=(40, 3)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 2, 40))
    s = torch.tensor(rng.integers(0, 2, 40))
    split = Split(x, y, s)
    data = Dataset("eo", split, split, split, ["0", "1"])
    module = LogisticRegression((3,), 2)
    with torch.no_grad():
        module.linear.weight.copy_(torch.tensor([[0.7, -0.4, 0.2]]))
        module.linear.bias.fill_(0.1)
        p = torch.sigmoid(x @ module.linear.weight[0] + 0.1).double().numpy()
    yn, sn = y.numpy(), s.numpy()
    for label, labels in ((None, (0, 1)), (1, (1,)), (0, (0,))):
        impact = make_impact("equalized_odds", label=label)
        assert impact.value(module, data) == pytest.approx(_eo_by_hand(p, yn, sn, labels), abs=1e-6)

    # The gradient against autograd of the same gap written independently (float64, one pass).
    impact = make_impact("equalized_odds")
    params = {k: v.detach().double().clone() for k, v in module.named_parameters()}
    got = impact.target_gradient(module.double(), params, data, dtype=torch.float64)
    w = params["linear.weight"].clone().requires_grad_(True)
    b = params["linear.bias"].clone().requires_grad_(True)
    q = torch.sigmoid(x.double() @ w[0] + b[0])
    gap = sum(torch.abs(q[(s == 0) & (y == c)].mean() - q[(s == 1) & (y == c)].mean()) for c in (0, 1))
    gap.backward()
    torch.testing.assert_close(got["linear.weight"], w.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(got["linear.bias"], b.grad, rtol=1e-9, atol=1e-12)


def test_equalized_odds_impact_refuses_bad_settings():
    with pytest.raises(InfluenceError, match="label must be"):
        make_impact("equalized_odds", label=2)


def _row(acc, gap):
    return {"accuracy": {"mean": acc / 100}, "fairness_gap": {"mean": gap / 100}}


def test_best_arm_sentence_on_a_hand_made_front():
    rows = {"full": {**_row(84.55, 18.22), "label": "full"},
            "ip": {**_row(84.02, 12.23), "label": "IP"},
            "reweighing@1": _row(84.16, 8.15), "reweighing@2": _row(82.0, 3.8),
            "eg_dp@0.05": _row(83.91, 6.59), "eg_dp@0.01": _row(83.00, 1.30),
            "threshold_dp@0": _row(82.65, 0.45)}
    assert best_arm_sentence(rows) == (
        "At ≥ 84% test accuracy, Reweighing (Kamiran–Calders) has the lowest fairness gap (8.15); "
        "at ≥ 83%, ExponentiatedGradient (DP) (1.30); at ≥ 82%, ThresholdOptimizer (DP) (0.45).")
    assert best_arm_sentence(rows, levels=[85]) is None
    attacked = {"full": {"accuracy": {"mean": 0.9}, "attacked_accuracy": {"mean": 0.7}},
                "adversarial@1": {"accuracy": {"mean": 0.895}, "attacked_accuracy": {"mean": 0.8}}}
    assert best_arm_sentence(attacked, "attacked_accuracy", levels=[89]) == (
        "At ≥ 89% test accuracy, Adversarial training has the highest attacked accuracy (80.00).")


def test_arm_names_expand_to_sweeps_and_refuse_unknowns():
    assert expand_arms(["reweighing@1", "threshold_dp"]) == ["reweighing@1"] + [f"threshold_dp@{v:g}" for v in ARMS["threshold_dp"].sweep]
    assert arm_label("eg_dp@0.05") == "ExponentiatedGradient (DP), bound 0.05"
    with pytest.raises(InfluenceError, match="unknown baseline"):
        expand_arms(["nope"])
    with pytest.raises(InfluenceError, match="must be a number"):
        expand_arms(["reweighing@x"])
    with pytest.raises(InfluenceError, match="between 0 and 1"):  # a browser's or a user's share is capped
        expand_arms(["adversarial@5"])


def test_runner_runs_baseline_arms_beside_the_methods(tmp_path, fair_data):
    settings = ExperimentSettings(dataset="blobs", methods=("ip",), impact="fairness", seeds=1, attacks=NO_ATTACKS,
                                  baselines=("reweighing@1", "within_cell@1", "eg_eo@0.05"))
    out = tmp_path / "exp.json"
    result = run_experiment(settings, out)
    for name in ("reweighing@1", "within_cell@1", "eg_eo@0.05"):
        assert result.rows[name]["accuracy"] is not None and not result.rows[name]["error"], name
    assert result.rows["reweighing@1"]["label"] == "Reweighing (Kamiran–Calders), strength 1"
    ref = run_arm("reweighing@1", fair_data, result.base, _config(), 0, NO_ATTACKS)
    assert result.rows["reweighing@1"]["accuracy"]["mean"] == pytest.approx(ref["accuracy"])
    saved = json.loads(out.read_text())
    assert saved["settings"]["baselines"] == list(settings.baselines) and "eg_eo@0.05" in saved["results"]
    assert ExperimentSettings.from_json(saved["settings"]) == settings
    assert "baselines" not in ExperimentSettings(dataset="blobs").as_dict()  # earlier runs keep their resume keys


def test_pareto_chart_draws_each_baseline_family_as_one_front():
    from influence_core.evaluate.figures import pareto_figure

    rows = {"full": _row(84.5, 18.0), "ip": {**_row(84.0, 12.0), "label": "IP"},
            "reweighing@2": {**_row(82.0, 4.0), "label": "R 2"}, "reweighing@1": {**_row(84.2, 8.0), "label": "R 1"}}
    fig = pareto_figure(rows)
    front = next(t for t in fig.data if t.name == ARMS["reweighing"].label)
    assert front.mode == "lines+markers" and list(front.x) == pytest.approx([82.0, 84.2])  # sorted by accuracy
    assert list(front.y) == pytest.approx([4.0, 8.0]) and list(front.text) == ["R 2", "R 1"]
    assert [t.name for t in fig.data] == ["full data", ARMS["reweighing"].label, "IP"]


def test_experiment_command_takes_baselines(tmp_path, capsys):
    from influence_core.cli import main

    out = tmp_path / "results.json"
    assert main(["experiment", "--dataset", "blobs", "--model", "logreg", "--methods", "ip", "--seeds", "1",
                 "--attacks", "0", "--impact", "fairness", "--baselines", "reweighing@1,threshold_dp@0", "--out",
                 str(out), "--quiet", "--workspace", str(tmp_path / "ws")]) == 0
    assert "| Reweighing (Kamiran–Calders), strength 1 |" in capsys.readouterr().out
    assert {"reweighing@1", "threshold_dp@0"} <= set(json.loads(out.read_text())["results"])
    assert main(["experiment", "--dataset", "blobs", "--methods", "ip", "--baselines", "nope", "--quiet"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: unknown baseline 'nope'")


def test_evaluate_page_runs_the_chosen_baselines_and_says_which_arm_is_best(tmp_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from influence_core import jobs
    from influence_core.project import Project

    monkeypatch.setenv("INFLUENCE_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setattr(jobs, "_JOBS", {})
    proj = Project.open("default", tmp_path / "ws")
    proj.use_dataset("blobs", seed=0)
    proj.train("logreg", {"seed": 0})
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app.py"), default_timeout=90)
    at.switch_page("app_pages/7_Evaluate.py")
    at.run()
    next(m for m in at.multiselect if m.label == "Methods").set_value(["ip"])
    next(m for m in at.multiselect if m.label.startswith("Baselines")).set_value(["reweighing", "threshold_dp"])
    next(n for n in at.number_input if n.label == "Retraining seeds").set_value(1)
    next(s for s in at.selectbox if s.label.startswith("Impact")).set_value("fairness")
    next(b for b in at.button if b.label == "Run experiment").click()
    at.run()
    jobs.wait_all(120)
    assert proj.job("experiment").state == "done", proj.job("experiment").error
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    pareto = json.loads(at.get("plotly_chart")[1].proto.spec)
    names = [trace.get("name") for trace in pareto["data"]]
    assert ARMS["reweighing"].label in names and ARMS["threshold_dp"].label in names
    result = proj.job("experiment").result["results"]
    assert set(expand_arms(["reweighing", "threshold_dp"])) <= set(result)
    expected = best_arm_sentence(result)
    assert expected and any(expected in i.value.replace("\\", "") for i in at.info)
    assert next(m for m in at.multiselect if m.label.startswith("Baselines")).value == ["reweighing", "threshold_dp"]
