"""LiSSA converges to exact influence (explicit Hessian) on logistic regression; divergence is a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from influence_core.api import compute_scores
from influence_core.errors import InfluenceError

from tests.methods.helpers import loop_grads, module_at, objective_hessian, rel_err, val_loss_gradient


def test_converges_to_exact_influence_on_logistic_regression(blobs_logreg):
    ds, fm = blobs_logreg
    damping = 0.01
    module = module_at(fm)
    direction = np.linalg.solve(objective_hessian(fm, ds, damping), val_loss_gradient(module, ds))
    exact = loop_grads(module, ds.train.x, ds.train.y) @ direction
    # Full-batch HVPs with scale above the largest eigenvalue (0.13 here): the Neumann series converges geometrically.
    lissa = compute_scores(ds, fm, "lissa", damping=damping, depth=150, scale=0.2, hvp_batch_size=len(ds.train))
    assert np.corrcoef(lissa, exact)[0, 1] >= 0.99
    assert rel_err(lissa, exact) < 0.02
    # Stochastic mini-batch HVPs with the automatic scale still rank like exact influence.
    stochastic = compute_scores(ds, fm, "lissa", damping=damping, depth=300, repeats=2)
    assert np.corrcoef(stochastic, exact)[0, 1] >= 0.99


def test_shallow_recursion_is_not_yet_exact(blobs_logreg):
    ds, fm = blobs_logreg
    deep = compute_scores(ds, fm, "lissa", depth=150, scale=0.2, hvp_batch_size=len(ds.train))
    shallow = compute_scores(ds, fm, "lissa", depth=2, scale=2.0, hvp_batch_size=len(ds.train))
    assert rel_err(shallow, deep) > 0.1


def test_tiny_scale_diverges_with_a_one_line_error(moons_mlp):
    ds, fm = moons_mlp
    with pytest.raises(InfluenceError, match="LiSSA diverged .* larger scale") as err:
        compute_scores(ds, fm, "lissa", scale=1e-3, depth=500)
    assert "\n" not in str(err.value)


def test_bad_settings_are_one_line_errors(blobs_logreg):
    ds, fm = blobs_logreg
    with pytest.raises(InfluenceError, match="depth ≥ 1"):
        compute_scores(ds, fm, "lissa", depth=0)


def test_the_hessians_extreme_eigenvalues_and_the_automatic_damping_follow_the_explicit_hessian(moons_mlp):
    """Lanczos' λ_min and λ_max equal the explicit Hessian's (eigvalsh), the automatic λ is exact influence's rule
    on them, and a λ that leaves H + λI indefinite is refused in one line, naming the λ that would do."""
    from influence_core.methods.exact import automatic_damping

    ds, fm = moons_mlp
    eigenvalues = np.linalg.eigvalsh(objective_hessian(fm, ds))
    smallest, largest = eigenvalues[0], eigenvalues[-1]
    details: dict = {}
    compute_scores(ds, fm, "lissa", depth=50, details=details)
    # 40 Lanczos steps on a few hundred parameters, float32 HVPs: a few float32 ulps of |λ_max| off
    tol = 1e-4 * abs(largest)
    assert details["hessian_max_eigenvalue"] == pytest.approx(largest, abs=tol)
    assert details["hessian_min_eigenvalue"] == pytest.approx(smallest, abs=tol)
    if smallest < 0:  # a short-trained MLP: indefinite
        assert details["damping"] == pytest.approx(automatic_damping(smallest, largest), abs=2 * tol)
        with pytest.raises(InfluenceError, match=r"^LiSSA needs H \+ λI positive definite") as err:
            compute_scores(ds, fm, "lissa", damping=-smallest / 2, depth=5)
        assert "\n" not in str(err.value)
    else:
        assert details["damping"] == 0.01


def test_automatic_damping_ranks_like_exact_influence_where_the_hessian_is_indefinite():
    """The moons MLP of the README's example (λ_min ≈ −0.1): at λ = 0.01 the recursion had no meaning (Spearman
    0.05 with exact influence); with the automatic λ LiSSA agrees with exact influence's automatic damping."""
    from scipy.stats import spearmanr

    from influence_core.data import load_dataset
    from influence_core.models import train_model

    ds = load_dataset("moons", seed=0)
    fm = train_model(ds, "mlp")
    exact_details: dict = {}
    exact = compute_scores(ds, fm, "exact", details=exact_details)
    assert exact_details["hessian_min_eigenvalue"] < -0.01  # the case this guards
    lissa = compute_scores(ds, fm, "lissa")
    assert spearmanr(lissa, exact)[0] >= 0.95
