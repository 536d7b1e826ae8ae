"""Gradient geometry, gradient similarity, features and the decision grid against hand-written references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from influence_core.analysis import (TSNE_MAX_POINTS, _EpochSink, angle_geometry, cost_units, decision_grid,
                                     embed_2d, embedding_method, estimate_seconds, gradient_similarity,
                                     penultimate_features, plane_coordinates, predict)

from tests.reference import per_sample_grad_loop, validation_loss_grad


def test_plane_coordinates_match_a_qr_basis():
    rng = np.random.default_rng(0)
    u, w = rng.normal(size=7), rng.normal(size=7)
    g = rng.normal(size=(40, 7))
    coords, u_xy, w_xy = plane_coordinates(g @ u, g @ w, u @ u, u @ w, w @ w)
    q, r = np.linalg.qr(np.stack([u, w], axis=1))
    q = q * np.sign(np.diag(r))  # first axis along +u, second with w on its positive side
    assert np.allclose(coords, g @ q)
    assert np.allclose(u_xy, q.T @ u) and np.allclose(w_xy, q.T @ w)
    assert np.allclose(coords @ u_xy, g @ u) and np.allclose(coords @ w_xy, g @ w)


def test_angle_geometry_on_logistic_regression(blobs, blobs_logreg_fit):
    geo = angle_geometry(blobs, blobs_logreg_fit, impact_settings={"val_trim": 0.0})
    module = blobs_logreg_fit.module.double()
    try:
        x, y = blobs.train.x.double(), blobs.train.y
        grads = per_sample_grad_loop(module, x, y)
        u = validation_loss_grad(module, blobs.val.x.double(), blobs.val.y)
        # Hessian of the L2-regularised mean logistic loss, by hand: (1/n) Σ σ(1−σ) x̃x̃ᵀ + λI, x̃ = [x, 1].
        xt = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
        p = torch.sigmoid(module(x)[:, 0]).detach()
        hessian = (xt * (p * (1 - p))[:, None]).T @ xt / len(x) + blobs_logreg_fit.l2 * torch.eye(3, dtype=x.dtype)
        w = torch.linalg.solve(hessian, u)
    finally:
        blobs_logreg_fit.module.float()
    np.testing.assert_allclose(geo.ip, (grads @ u).numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(geo.influence, (grads @ w).numpy(), rtol=1e-5, atol=1e-8)
    assert geo.coords.shape == (len(blobs.train), 2)


def test_angle_geometry_lissa_path_agrees_with_exact(blobs, blobs_logreg_fit):
    exact = angle_geometry(blobs, blobs_logreg_fit, damping=0.01)
    # full-batch LiSSA is the deterministic Neumann series: it converges to the exact damped solve
    lissa = angle_geometry(blobs, blobs_logreg_fit, damping=0.01, hessian="lissa",
                           lissa_settings={"depth": 3000, "hvp_batch_size": len(blobs.train)})
    assert lissa.hessian.startswith("LiSSA")
    np.testing.assert_allclose(lissa.ip, exact.ip, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(lissa.influence, exact.influence, rtol=1e-3, atol=1e-5)


def test_gradient_similarity_equals_per_sample_dot_products(moons, moons_mlp_fit):
    row = 7
    sim = gradient_similarity(moons, moons_mlp_fit, row)
    grads = per_sample_grad_loop(moons_mlp_fit.module, moons.train.x, moons.train.y).double()
    np.testing.assert_allclose(sim, (grads @ grads[row]).numpy(), rtol=1e-4, atol=1e-6)
    assert sim[row] == pytest.approx(float(grads[row] @ grads[row]), rel=1e-4)


def test_features_predictions_and_grid(moons, moons_mlp_fit):
    module = moons_mlp_fit.module
    feats = penultimate_features(moons_mlp_fit, moons.train)
    with torch.no_grad():
        np.testing.assert_allclose(feats, module.body(moons.train.x).double().numpy(), rtol=1e-6, atol=1e-6)
        logits = module(moons.train.x)[:, 0]
    labels, probs = predict(moons_mlp_fit, moons.train)
    assert np.array_equal(labels, (logits > 0).long().numpy())
    np.testing.assert_allclose(probs[:, 1], torch.sigmoid(logits).numpy(), rtol=1e-6)
    xs, ys, grid = decision_grid(moons_mlp_fit, moons.train.x.numpy(), steps=9)
    with torch.no_grad():
        corner = torch.sigmoid(module(torch.tensor([[xs[3], ys[5]]], dtype=torch.float32)))[0, 0].item()
    assert grid[5, 3] == pytest.approx(corner, rel=1e-5)


def test_small_feature_maps_are_a_t_sne_that_keeps_neighbours_together():
    """Up to TSNE_MAX_POINTS the map is scikit-learn's t-SNE (no numba compile); two far clusters stay apart."""
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(0, 1, (40, 10)), rng.normal(8, 1, (40, 10))])
    seen = []
    xy = embed_2d(feats, seed=0, progress=lambda f, m: seen.append((f, m)))
    assert xy.shape == (80, 2) and np.isfinite(xy).all()
    dist = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1) + np.eye(80) * 1e9
    nearest = dist.argmin(1)
    assert ((nearest < 40) == (np.arange(80) < 40)).all()  # every point's 2-D neighbour is from its own cluster
    assert seen[0] == (0.0, "t-SNE layout of 80 points") and seen[-1][0] == 1.0
    np.testing.assert_array_equal(embed_2d(feats, seed=0), xy)  # seeded: the cached map is reproducible
    assert embedding_method(TSNE_MAX_POINTS) == "t-SNE" and embedding_method(TSNE_MAX_POINTS + 1) == "UMAP"
    flat = rng.normal(size=(5, 2))
    np.testing.assert_array_equal(embed_2d(flat), flat)  # already 2-D: as it is


def test_umap_epochs_reach_the_progress_callback():
    """UMAP's tqdm bar (its only progress hook) is parsed into fractions; nothing goes to the console."""
    seen = []
    sink = _EpochSink(lambda f, m: seen.append((f, m)))
    for text in ("\rEpochs completed:   0%|  0/200 [00:00]", "\rEpochs completed:  50%| 100/200 [00:01]",
                 "\rEpochs completed:  50%| 100/200 [00:01]", "\rEpochs completed: 100%| 200/200 [00:02]", "\n"):
        sink.write(text)
    assert seen == [(0.0, "UMAP layout: epoch 0 of 200"), (0.5, "UMAP layout: epoch 100 of 200"),
                    (1.0, "UMAP layout: epoch 200 of 200")]


def test_cost_estimates_follow_each_methods_cost_class(moons, moons_mlp_fit):
    units = cost_units(moons, moons_mlp_fit)
    assert units.n_train == len(moons.train) and units.n_params == sum(p.numel() for p in moons_mlp_fit.module.parameters())
    assert 0 < units.step and 0 < units.train_pass and 0 < units.val_pass
    est = {m: estimate_seconds(m, units) for m in ("loss", "ip", "ip_ensemble", "lissa", "self_lissa", "exact")}
    assert all(np.isfinite(v) and v > 0 for v in est.values())
    assert est["loss"] <= est["ip"] < est["ip_ensemble"] < est["lissa"] < est["self_lissa"]
    # settings that multiply the work multiply the estimate
    assert estimate_seconds("ip_ensemble", units, {"ensemble_size": 10}) > est["ip_ensemble"]
    assert estimate_seconds("lissa", units, {"depth": 2000}) == pytest.approx(2 * est["lissa"], rel=0.1)
    # out of fold: each fold model repeats the fixed part (LiSSA's recursion), not the per-row part
    assert estimate_seconds("lissa", units, folds=5) == pytest.approx(5 * est["lissa"], rel=0.1)
    assert estimate_seconds("loss", units, folds=5) == pytest.approx(est["loss"])
    assert estimate_seconds("tracin", units, checkpoints=4) > estimate_seconds("tracin", units, checkpoints=1)
    head = cost_units(moons, moons_mlp_fit, "head")
    assert head.n_params < units.n_params and estimate_seconds("exact", head) < est["exact"]


def test_angle_geometry_uses_exact_influences_damping_on_an_indefinite_hessian(moons, moons_mlp_fit):
    """Issue 21: the angle view used w = H⁻¹∇f undamped, while exact influence damps an indefinite Hessian
    automatically; w then leaned towards the near-zero eigenvalues (moons: 89.7° from u). gᵀw is exact influence."""
    from influence_core.figures import vector_angle
    from influence_core.impacts import make_impact
    from influence_core.methods.base import ScoringContext
    from influence_core.methods.exact import inverse_hvp_target

    geo = angle_geometry(moons, moons_mlp_fit)
    details = {}
    ctx = ScoringContext(moons_mlp_fit, moons, make_impact("utility"))
    module, sel, w, _ = inverse_hvp_target(ctx, None, details=details)
    u = ctx.target_gradient(module, sel)
    assert details["hessian_min_eigenvalue"] < 0 < details["damping"]  # indefinite: the damping matters here
    flat = lambda d: torch.cat([v.reshape(-1) for v in d.values()]).double().numpy()  # noqa: E731
    assert vector_angle(geo.u_xy, geo.w_xy) == pytest.approx(vector_angle(flat(u), flat(w)), abs=1e-6)
    assert "automatic damping" in geo.hessian


def test_the_angle_views_dense_linear_algebra_runs_on_one_thread(blobs, blobs_logreg_fit, monkeypatch):
    """Issue 21: on a busy 2-core CPU the eigenvalues of the moons MLP's Hessian took 16 s on torch's two OpenMP
    threads and 0.8 s on one. The Hessian's steps run on one thread; the setting is restored afterwards."""
    import influence_core.methods.exact as exact

    seen = []
    real = exact.spectrum_ends
    monkeypatch.setattr(exact, "spectrum_ends", lambda h: (seen.append(torch.get_num_threads()), real(h))[1])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        angle_geometry(blobs, blobs_logreg_fit)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_angle_views_estimate_counts_the_solver_it_will_use():
    """Issue 21: the angle view (70.8 s on CIFAR) started without an estimate; it is exact influence's w plus one
    more IP pass, with the explicit Hessian only for models it fits."""
    from influence_core.analysis import CostUnits, angle_view_seconds, estimate_seconds
    from influence_core.grads import MAX_EXACT_PARAMS

    small = CostUnits(step=0.001, train_pass=0.01, val_pass=0.005, batches=2, val_batches=1, n_train=400,
                      n_params=1185, n_classes=2, layer_dims=(2, 32, 32, 1))
    big = CostUnits(**{**small.__dict__, "n_params": MAX_EXACT_PARAMS + 1})
    assert angle_view_seconds(small) == pytest.approx(estimate_seconds("exact", small) + estimate_seconds("ip", small))
    assert angle_view_seconds(big) == pytest.approx(estimate_seconds("lissa", big) + estimate_seconds("ip", big))


def test_ip_combined_is_costed_as_it_runs():
    """Binary data: IP + loss is IP against the validation target plus a forward pass, not one JVP pass per class;
    multiclass: the class targets share one validation pass and their JVPs are one vmapped call per batch, so the
    10 ms per torch.func call counts once per batch (the Scores page said 15 s for ≈7 s)."""
    from influence_core.analysis import _FUNC_CALL, CostUnits

    binary = CostUnits(step=0.01, train_pass=0.4, val_pass=0.1, batches=8, val_batches=2, n_train=2000, n_params=100,
                       n_classes=2, layer_dims=(10, 10))
    calls_only = CostUnits(step=0.0, train_pass=0.0, val_pass=0.0, batches=8, val_batches=2, n_train=2000,
                           n_params=100, n_classes=10, layer_dims=(10, 10))  # no arithmetic: only the calls count
    overhead = estimate_seconds("loss", calls_only)  # what every run costs besides its passes
    loss_rows = estimate_seconds("loss", binary) - overhead
    assert estimate_seconds("ip_combined", binary) == pytest.approx(estimate_seconds("ip", binary) + loss_rows)
    assert estimate_seconds("ip_classwise", calls_only) == pytest.approx(overhead + (10 + 8) * _FUNC_CALL)


def test_the_feature_map_of_a_text_linear_model_is_over_its_tfidf_features():
    """Issue 18: text-linear's head is the whole model, so Explore's map uses the TF-IDF features themselves."""
    from influence_core.analysis import penultimate_features
    from influence_core.data.text import TfidfSettings, generated_text_frame, text_dataset
    from influence_core.models import TrainConfig, train_model

    ds = text_dataset(generated_text_frame(80, num_classes=2, seed=0), text_columns=["text"], label_column="label",
                      tfidf=TfidfSettings(max_features=30))
    fitted = train_model(ds, "text-linear", TrainConfig(seed=0))
    np.testing.assert_allclose(penultimate_features(fitted, ds.train), ds.train.x.numpy(), rtol=1e-6)
