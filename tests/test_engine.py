"""The engine (influence_core/engine.py) decides how a result is obtained: a second request is a store hit (the
trainer / scorer is not called again, counted), a different setting misses; in-process or Dask; fold models
trained once, each sample scored by the fold model that did not see it (checked by hand)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import influence_core as ic
from influence_core import cli
from influence_core.api import compute_scores
from influence_core.engine import Engine, sharded
from influence_core.errors import InfluenceError
from influence_core.folds import FoldSettings, fold_assignment
from influence_core.keys import score_key
from influence_core.models import TrainConfig, train_model
from influence_core.workspace import Workspace


def test_second_train_is_a_cache_hit_with_the_same_model(tmp_path, blobs, counted):
    config = TrainConfig(epochs=4, checkpoint_every=2)
    first = Engine(Workspace(tmp_path)).model(blobs, "mlp", config)
    again = Engine(Workspace(tmp_path)).model(blobs, "mlp", config)  # a fresh object: the disk holds the truth
    assert counted["train"] == 1
    with torch.no_grad():
        assert torch.equal(again.module(blobs.test.x), first.module(blobs.test.x))
    assert again.fingerprint() == first.fingerprint() and again.history == first.history
    assert [c.epoch for c in again.checkpoints] == [c.epoch for c in first.checkpoints] == [2, 4]
    assert all(torch.equal(a.state[k], b.state[k]) for a, b in zip(again.checkpoints, first.checkpoints) for k in a.state)
    assert again.config == first.config and again.metrics == first.metrics
    assert not list(tmp_path.rglob(".*"))  # no temporary files left behind


def test_different_config_misses_and_resolved_defaults_hit(tmp_path, blobs, counted):
    ws = Workspace(tmp_path)
    Engine(ws).model(blobs, "logreg", TrainConfig())
    Engine(ws).model(blobs, "logreg", TrainConfig(l2=1e-2))  # logreg's default l2: the same run
    assert counted["train"] == 1
    Engine(ws).model(blobs, "logreg", TrainConfig(l2=1e-1))
    Engine(ws).model(blobs, "logreg", TrainConfig(seed=1))
    assert counted["train"] == 3
    assert len(ws.models()) == 3


def test_cancelled_training_is_not_cached(tmp_path, blobs, counted):
    ws = Workspace(tmp_path)
    Engine(ws).model(blobs, "mlp", TrainConfig(epochs=5), should_stop=lambda: True)
    Engine(ws).model(blobs, "mlp", TrainConfig(epochs=5), should_stop=lambda: True)
    assert counted["train"] == 2 and ws.models() == []


def test_second_score_is_a_cache_hit(tmp_path, blobs, counted):
    ws = Workspace(tmp_path)
    fitted = Engine(ws).model(blobs, "logreg")
    first = Engine(ws).scores(blobs, fitted, "ip_ensemble", "utility", settings={"ensemble_size": 3})
    messages = []
    again = Engine(ws).scores(blobs, fitted, "ip_ensemble", "utility", settings={"ensemble_size": 3, "dropout": 0.01},
                            progress=lambda f, m: messages.append(m))  # dropout 0.01 is the default: same key
    assert counted["score"] == 1 and np.array_equal(first, again) and messages == ["loaded from the workspace cache"]
    Engine(ws).scores(blobs, fitted, "ip_ensemble", "utility", settings={"ensemble_size": 4})
    Engine(ws).scores(blobs, fitted, "ip_ensemble", "fairness", settings={"ensemble_size": 3})
    Engine(ws).scores(blobs, fitted, "ip_ensemble", "utility", params="linear.weight", settings={"ensemble_size": 3})
    assert counted["score"] == 4
    other = Engine(ws).model(blobs, "logreg", TrainConfig(l2=1e-1))
    Engine(ws).scores(blobs, other, "ip_ensemble", "utility", settings={"ensemble_size": 3})  # other weights: miss
    assert counted["score"] == 5


def test_impact_settings_are_part_of_the_score_key(tmp_path, blobs, counted):
    ws = Workspace(tmp_path)
    fitted = Engine(ws).model(blobs, "mlp", TrainConfig(epochs=20))  # FGSM: epsilon matters (binary logreg uses c)
    key = lambda **imp: score_key(blobs, fitted, "ip", "robustness", impact_settings=imp or None)  # noqa: E731
    assert key(epsilon=0.05) != key(epsilon=0.3)
    assert key() == key(epsilon=0.1)  # 0.1 is the default: settings are resolved before hashing
    small = Engine(ws).scores(blobs, fitted, "ip", "robustness", impact_settings={"epsilon": 0.05})
    large = Engine(ws).scores(blobs, fitted, "ip", "robustness", impact_settings={"epsilon": 0.3})
    assert counted["score"] == 2 and not np.allclose(small, large)
    again = Engine(ws).scores(blobs, fitted, "ip", "robustness", impact_settings={"epsilon": 0.05})
    assert counted["score"] == 2 and np.array_equal(again, small)


def test_cli_score_uses_the_workspace_cache(tmp_path, counted, capsys):
    args = ["score", "--dataset", "moons", "--model", "logreg", "--method", "ip", "--quiet",
            "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "scores.csv")]
    assert cli.main(args) == 0 and cli.main(args) == 0
    assert counted == {"train": 1, "score": 1}
    assert len(list((tmp_path / "ws" / "scores").glob("*.npy"))) == 1
    assert cli.main(args[:-2] + ["--no-cache", "--out", str(tmp_path / "again.csv")]) == 0
    # --no-cache: a temporary workspace running the same pipeline, so everything is computed again there
    assert counted == {"train": 2, "score": 2}
    assert len(list((tmp_path / "ws" / "scores").glob("*.npy"))) == 1
    assert (tmp_path / "scores.csv").read_text() == (tmp_path / "again.csv").read_text()


def test_checkpoint_methods_key_on_the_trajectory(tmp_path, blobs, counted):
    """Same final weights, different checkpoints: TracIn must not reuse scores computed from other checkpoints."""
    ws = Workspace(tmp_path)
    with_ckpt = Engine(ws).model(blobs, "logreg", TrainConfig(checkpoint_every=1))
    without = Engine(ws).model(blobs, "logreg", TrainConfig())
    assert with_ckpt.fingerprint() == without.fingerprint() and not without.checkpoints  # L-BFGS: identical θ
    Engine(ws).scores(blobs, with_ckpt, "tracin")
    with pytest.raises(InfluenceError):
        Engine(ws).scores(blobs, without, "tracin")
    Engine(ws).scores(blobs, with_ckpt, "ip")
    Engine(ws).scores(blobs, without, "ip")  # IP depends on θ only: a hit
    assert counted["score"] == 3




# ------------------------------------------------------------------------------------------- out of fold
@pytest.fixture(scope="module")
def moons_small():
    ds = ic.load_dataset("moons", seed=1, n_train=90, n_val=40, n_test=40, flipped_per_class=4)
    return ds, train_model(ds, "mlp", TrainConfig(epochs=40))


def test_fold_models_are_trained_once_and_each_sample_is_scored_by_the_model_that_did_not_see_it(
        moons_small, tmp_path, counted):
    ds, fitted = moons_small
    engine = Engine(Workspace(tmp_path))
    calls = []
    first = engine.scores(ds, fitted, "loss", folds=3, progress=lambda f, m: calls.append(m))
    assert any("fold 3/3" in m for m in calls)  # progress over folds
    assert counted == {"train": 3, "score": 1} and len(list((tmp_path / "models").iterdir())) == 3
    again = engine.scores(ds, fitted, "ip", folds=3)  # another method: the 3 stored fold models, no training
    assert counted == {"train": 3, "score": 2}
    np.testing.assert_allclose(again, compute_scores(ds, fitted, "ip", folds=3), rtol=1e-6)
    assert score_key(ds, fitted, "loss", folds=3) != score_key(ds, fitted, "loss")
    np.testing.assert_array_equal(first, engine.scores(ds, fitted, "loss", folds=3))
    assert counted == {"train": 3, "score": 2}
    # By hand: fold k's model is the one trained on the rows outside fold k (the same weights as a model trained
    # here on exactly those rows); a sample's score is minus its cross-entropy under that model, not any other.
    models = engine.fold_models(ds, fitted, 3)
    assert counted["train"] == 3
    fold = fold_assignment(ds.train.y.numpy(), FoldSettings(3))
    x, y = ds.train.x, ds.train.y
    for k, model in enumerate(models):
        kept, held = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        reference = train_model(ds.with_train(ds.train.subset(kept)), "mlp", fitted.config)
        assert model.fingerprint() == reference.fingerprint()
        with torch.no_grad():
            z = model.module.eval()(x[held]).double()
        p1 = torch.sigmoid(z[:, 0]) if z.shape[1] == 1 else torch.softmax(z, 1)[:, 1]
        by_hand = torch.where(y[held] == 1, torch.log(p1), torch.log1p(-p1)).numpy()  # −ℓ = log p(y)
        np.testing.assert_allclose(first[held], by_hand, rtol=1e-5, atol=1e-6)
        other = models[(k + 1) % 3]
        with torch.no_grad():
            zo = other.module.eval()(x[held]).double()
        po = torch.sigmoid(zo[:, 0]) if zo.shape[1] == 1 else torch.softmax(zo, 1)[:, 1]
        assert not np.allclose(first[held], torch.where(y[held] == 1, torch.log(po), torch.log1p(-po)).numpy())


# ------------------------------------------------------------------------------------ stored or computed
def test_without_a_store_every_request_is_computed_and_nothing_kept(tmp_path, blobs, counted):
    engine = Engine(None)
    fitted = engine.model(blobs, "logreg")
    engine.model(blobs, "logreg")
    first = engine.scores(blobs, fitted, "loss")
    details = {}
    again = engine.scores(blobs, fitted, "loss", details=details)
    assert counted == {"train": 2, "score": 2} and np.array_equal(first, again)
    assert not engine.has_scores(blobs, fitted, "loss")
    assert not list(tmp_path.iterdir())


def test_has_scores_says_whether_the_store_holds_them_without_computing(tmp_path, blobs, counted):
    engine = Engine(Workspace(tmp_path))
    fitted = engine.model(blobs, "logreg")
    assert not engine.has_scores(blobs, fitted, "ip")
    engine.scores(blobs, fitted, "ip")
    assert engine.has_scores(blobs, fitted, "ip") and counted["score"] == 1


# -------------------------------------------------------------------------------------- in process or Dask
def test_sharded_only_when_a_cluster_is_asked_for_and_the_method_can_be_sharded(monkeypatch):
    from influence_core.cluster import ENV_SCHEDULER, ClusterSpec, parse_cluster

    monkeypatch.delenv(ENV_SCHEDULER, raising=False)
    assert not sharded("ip") and not sharded("ip", "none") and not sharded("ip", "process")
    assert sharded("ip", "local:2") and sharded("ip", scheduler="tcp://127.0.0.1:8786")
    assert not sharded("confident_learning", "local:2")  # scores all samples at once
    assert not sharded("ip", parse_cluster("none")) and isinstance(parse_cluster("local:2"), ClusterSpec)
    assert sharded("ip", parse_cluster("local:2"))
    monkeypatch.setenv(ENV_SCHEDULER, "tcp://127.0.0.1:8786")
    assert sharded("ip") and not sharded("confident_learning")


@pytest.mark.parametrize("method, on_dask", [("loss", True), ("confident_learning", False)])
def test_a_cluster_sends_shardable_methods_to_dask_and_keeps_others_here(tmp_path, blobs, monkeypatch, method,
                                                                        on_dask):
    """The engine's fork, observed: `score_sharded` (shards under shards/<key>/) or `compute_scores`, never both;
    the result is stored under the same key either way."""
    import contextlib

    import influence_core.cluster as cluster
    import influence_core.distributed as distributed
    import influence_core.engine as engine_module

    calls = []

    def fake_sharded(dataset, fitted, method, impact, *, out_dir, **kwargs):
        calls.append(("dask", str(out_dir)))
        return np.zeros(len(dataset.train))

    def fake_local(dataset, fitted, method, impact, **kwargs):
        calls.append(("here", None))
        return np.ones(len(dataset.train))

    monkeypatch.setattr(distributed, "score_sharded", fake_sharded)
    monkeypatch.setattr(cluster, "dask_client", lambda spec, progress=None: contextlib.nullcontext("client"))
    monkeypatch.setattr(engine_module, "compute_scores", fake_local)
    engine = Engine(Workspace(tmp_path))
    fitted = engine.model(blobs, "logreg")
    got = engine.scores(blobs, fitted, method, cluster="local:2")
    key = score_key(blobs, fitted, method)
    assert calls == ([("dask", str(tmp_path / "shards" / key))] if on_dask else [("here", None)])
    assert np.array_equal(got, np.zeros(len(blobs.train)) if on_dask else np.ones(len(blobs.train)))
    assert engine.has_scores(blobs, fitted, method)


def test_a_stored_model_is_read_never_trained(tmp_path, blobs, counted):
    from influence_core.keys import model_key

    engine = Engine(Workspace(tmp_path))
    config = TrainConfig(seed=0).resolved("logreg")
    key = model_key(blobs, "logreg", config)
    with pytest.raises(InfluenceError, match=r"^the current model \(logreg\) is no longer in the workspace cache"):
        engine.stored_model(key, blobs, "logreg")
    fitted = engine.model(blobs, "logreg", config)
    assert engine.stored_model(key, blobs, "logreg").fingerprint() == fitted.fingerprint()
    assert counted["train"] == 1  # only engine.model trained
    (tmp_path / "models" / key / "meta.json").write_text("{broken")
    with pytest.raises(InfluenceError, match=r"was damaged in the workspace cache and removed"):
        engine.stored_model(key, blobs, "logreg")
    assert not (tmp_path / "models" / key).exists()
