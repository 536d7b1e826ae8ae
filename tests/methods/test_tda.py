"""TDA: EKFAC at a single converged checkpoint, and the mean of per-checkpoint EKFAC influences otherwise."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from influence_core.api import compute_scores
from influence_core.errors import InfluenceError
from influence_core.models.train import fitted_from_module

from tests.methods.helpers import rel_err


def test_one_checkpoint_is_ekfac(blobs_logreg):
    ds, fm = blobs_logreg
    for impact in ("utility", "fairness", "robustness"):
        np.testing.assert_allclose(compute_scores(ds, fm, "tda", impact, damping=0.01),
                                   compute_scores(ds, fm, "ekfac", impact, damping=0.01), rtol=1e-8, atol=0)


def test_mean_of_ekfac_at_each_checkpoint(moons_mlp):
    ds, fm = moons_mlp
    per_checkpoint = [compute_scores(ds, fitted_from_module(_at(fm, c), fm.arch, ds, l2=fm.l2), "ekfac") for c in fm.checkpoints]
    assert len(per_checkpoint) == 3
    assert rel_err(compute_scores(ds, fm, "tda"), np.mean(per_checkpoint, axis=0)) < 1e-6


def _at(fm, ckpt):
    module = copy.deepcopy(fm.module)
    module.load_state_dict(ckpt.state)
    return module


def test_without_checkpoints_is_a_one_line_error(blobs_logreg):
    ds, fm = blobs_logreg
    with pytest.raises(InfluenceError, match="checkpoint_every > 0"):
        compute_scores(ds, fitted_from_module(fm.module, "logreg", ds, l2=fm.l2), "tda")
