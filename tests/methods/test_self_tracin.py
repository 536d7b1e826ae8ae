"""Self-TracIn against a brute-force autograd loop and captum's TracInCP self-influence."""

from __future__ import annotations

import numpy as np
import pytest

from influence_core.api import compute_scores
from influence_core.models.train import Checkpoint

from tests.methods.helpers import loop_grads, module_at, rel_err


@pytest.mark.parametrize("case", ["blobs_logreg", "moons_mlp"])
def test_equals_minus_squared_gradient_norm(case, request):
    ds, fm = request.getfixturevalue(case)
    grads = loop_grads(module_at(fm), ds.train.x, ds.train.y)
    expected = -(grads**2).sum(1)
    ours = compute_scores(ds, fm, "self_tracin", batch_size=37)  # a batch size that does not divide N
    assert rel_err(ours, expected) < 1e-5
    assert (ours <= 0).all()


def test_head_selection_uses_only_head_gradients(moons_mlp):
    ds, fm = moons_mlp
    module = module_at(fm)
    grads = loop_grads(module, ds.train.x, ds.train.y)
    names = [n for n, _ in module.named_parameters()]
    sizes = [p.numel() for p in module.parameters()]
    cols = np.concatenate([np.full(s, n.startswith("head")) for n, s in zip(names, sizes)])
    expected = -(grads[:, cols] ** 2).sum(1)
    assert rel_err(compute_scores(ds, fm, "self_tracin", params="head"), expected) < 1e-5


@pytest.mark.parametrize("case", ["blobs_logreg", "moons_mlp"])
def test_agrees_with_captum_self_influence(case, request):
    from tests.methods.captum_peer import captum_self_influence

    ds, fm = request.getfixturevalue(case)
    converged = Checkpoint(0, 1.0, fm.module.state_dict())  # the converged model only, unit weight
    theirs = -captum_self_influence(ds, fm, [converged]).numpy()
    assert rel_err(compute_scores(ds, fm, "self_tracin"), theirs) < 1e-4
