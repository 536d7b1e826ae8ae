"""Every method from the paper runs with every impact on blobs and moons; impossible settings are one-line errors."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import numpy as np
import pytest

from influence_core.api import compute_scores
from influence_core.cli import main
from influence_core.errors import InfluenceError
from influence_core.methods import METHODS
from influence_core.models import MLP
from influence_core.models.train import fitted_from_module

BASELINES = ["tracin", "self_tracin", "gex", "lissa", "self_lissa", "ekfac", "datainf", "tda"]
IMPACTS = ["utility", "fairness", "robustness"]
# Shallower stochastic solvers keep this smoke test fast; their accuracy is tested in test_lissa / test_self_lissa.
FAST = {"lissa": {"depth": 100}, "self_lissa": {"depth": 30}}


def test_every_baseline_is_registered_with_its_paper_type():
    kinds = {"tracin": "hessian-free", "gex": "hessian-free", "self_tracin": "self-influence", "self_lissa": "self-influence",
             "lissa": "hessian-based", "ekfac": "hessian-based", "datainf": "hessian-based", "tda": "hessian-based"}
    assert {m: METHODS[m].kind for m in BASELINES} == kinds
    assert not METHODS["self_tracin"].uses_impact and not METHODS["self_lissa"].uses_impact
    assert METHODS["tracin"].needs_checkpoints and METHODS["tda"].needs_checkpoints


def test_cli_lists_each_method_with_type_cost_and_parameters():
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["methods"]) == 0
    lines = {line.split()[0]: line for line in out.getvalue().splitlines() if line.strip()}
    for name in BASELINES:
        cls = METHODS[name]
        assert cls.kind in lines[name] and cls.cost in lines[name]
        for field in cls.describe()["parameters"]:
            assert f"{field}=" in lines[name]


@pytest.mark.parametrize("case", ["blobs_logreg", "moons_mlp"])
@pytest.mark.parametrize("method", BASELINES)
def test_runs_with_every_impact(method, case, request):
    ds, fm = request.getfixturevalue(case)
    results = {}
    for impact in IMPACTS:
        scores = compute_scores(ds, fm, method, impact, **FAST.get(method, {}))
        assert scores.shape == (len(ds.train),) and np.isfinite(scores).all()
        assert np.abs(scores).max() > 0
        results[impact] = scores
    if METHODS[method].uses_impact:  # the impact reaches the scores
        assert not np.allclose(results["utility"], results["fairness"])
    else:
        assert np.array_equal(results["utility"], results["fairness"])


def test_flipped_labels_rank_as_detrimental(blobs_logreg):
    """On blobs every method puts the flipped labels in the lowest (most detrimental) scores."""
    ds, fm = blobs_logreg
    noisy = ds.noise_mask.numpy()
    for method in BASELINES:
        scores = compute_scores(ds, fm, method, **FAST.get(method, {}))
        ranks = scores.argsort().argsort()
        assert np.mean(ranks[noisy]) < 0.25 * len(scores), method


def test_exact_refuses_a_too_large_selection(blobs_logreg):
    ds, _ = blobs_logreg
    big = fitted_from_module(MLP((2,), 2, hidden=150), "mlp", ds, l2=1e-3)  # 23k parameters
    with pytest.raises(InfluenceError, match="at most 20,000 parameters") as err:
        compute_scores(ds, big, "exact")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("method, settings, message", [
    ("lissa", {"scale": 1e-4, "depth": 300}, "LiSSA diverged"),
    ("self_lissa", {"scale": 1e-4, "depth": 300}, "LiSSA diverged"),
    ("gex", {"ensemble_size": 0}, "ensemble_size ≥ 1"),
    ("datainf", {"lambda_scale": 0.0}, "lambda_scale > 0"),
    ("ekfac", {"damping": -1.0}, "damping ≥ 0"),
    ("tracin", {"depth": 3}, "has no setting depth"),
])
def test_impossible_settings_are_one_line_errors(method, settings, message, moons_mlp):
    ds, fm = moons_mlp
    with pytest.raises(InfluenceError, match=message) as err:
        compute_scores(ds, fm, method, **settings)
    assert "\n" not in str(err.value)


def test_registry_refuses_a_taken_or_reserved_name():
    from influence_core.errors import InfluenceError
    from influence_core.methods.base import METHODS, InfluenceMethod

    before = dict(METHODS)
    with pytest.raises(InfluenceError, match="'random' is reserved"):
        type("RandomArm", (InfluenceMethod,), {"name": "random", "compute": lambda self, ctx: None, "__module__": __name__})
    with pytest.raises(InfluenceError, match="'ip' is taken by influence_core.methods.ip"):
        type("MyIP", (InfluenceMethod,), {"name": "ip", "compute": lambda self, ctx: None, "__module__": __name__})
    assert METHODS == before  # nothing was overwritten or added
