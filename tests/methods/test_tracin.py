"""TracIn against IP, a brute-force autograd sum over checkpoints, and captum's TracInCP."""

from __future__ import annotations

import numpy as np
import pytest

from influence_core.api import compute_scores
from influence_core.errors import InfluenceError
from influence_core.models.train import fitted_from_module

from tests.methods.helpers import loop_grads, module_at, rel_err, val_loss_gradient


def test_one_checkpoint_with_unit_lr_equals_ip(blobs_logreg):
    ds, fm = blobs_logreg
    assert len(fm.checkpoints) == 1 and fm.checkpoints[0].lr == 1.0
    for impact in ("utility", "fairness", "robustness"):
        np.testing.assert_allclose(compute_scores(ds, fm, "tracin", impact), compute_scores(ds, fm, "ip", impact), rtol=1e-10, atol=0)


def test_sum_over_checkpoints_equals_brute_force(moons_mlp):
    ds, fm = moons_mlp
    assert len(fm.checkpoints) == 3
    expected = np.zeros(len(ds.train))
    for ckpt in fm.checkpoints:
        module = module_at(fm, ckpt.state)
        expected += ckpt.lr * loop_grads(module, ds.train.x, ds.train.y) @ val_loss_gradient(module, ds)
    assert rel_err(compute_scores(ds, fm, "tracin"), expected) < 1e-4


@pytest.mark.parametrize("case", ["blobs_logreg", "moons_mlp"])
def test_agrees_with_captum_tracincp(case, request):
    from tests.methods.captum_peer import captum_tracin_scores

    ds, fm = request.getfixturevalue(case)
    ours = compute_scores(ds, fm, "tracin", "utility")
    theirs = captum_tracin_scores(ds, fm, fm.checkpoints).numpy()
    assert rel_err(ours, theirs) < 1e-4


def test_without_checkpoints_is_a_one_line_error(blobs_logreg):
    ds, fm = blobs_logreg
    bare = fitted_from_module(fm.module, "logreg", ds, l2=fm.l2)
    with pytest.raises(InfluenceError, match="checkpoint_every > 0") as err:
        compute_scores(ds, bare, "tracin")
    assert "\n" not in str(err.value)


def test_cli_trains_with_checkpoints_for_tracin(tmp_path):
    from influence_core.cli import main

    out = tmp_path / "tracin.csv"
    assert main(["score", "--dataset", "blobs", "--model", "logreg", "--method", "tracin", "--checkpoint-every", "1",
                 "--quiet", "--out", str(out)]) == 0
    import pandas as pd

    frame = pd.read_csv(out)
    assert len(frame) == 150 and np.isfinite(frame["score"]).all()
    # Without --checkpoint-every the CLI trains with checkpoints itself (L-BFGS: the final model) and scores the same.
    again = tmp_path / "again.csv"
    assert main(["score", "--dataset", "blobs", "--model", "logreg", "--method", "tracin", "--quiet", "--out", str(again)]) == 0
    np.testing.assert_allclose(pd.read_csv(again)["score"], frame["score"], rtol=1e-6)
