"""Sharded scoring on Dask (influence_core/distributed.py): every sharded result equals the single-process scores of
`compute_scores` (to 1e-6 relative), on a LocalCluster of 2 single-thread worker processes; a rerun after a killed
worker or an interrupted client scores only the shards not yet written."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
import torch

from influence_core.api import compute_scores
from influence_core.data import load_dataset
from influence_core.data.base import Dataset, Split
from influence_core.data.prepare import normalise_images
from influence_core.data.storage import StoredFeatures, save_array
from influence_core.cluster import ENV_SCHEDULER, ClusterSpec, parse_cluster
from influence_core.distributed import read_shard, score_sharded, shard_status, shardable_methods
from influence_core.errors import InfluenceError
from influence_core.folds import FoldSettings, train_fold_models
from influence_core.models import TrainConfig, train_model


FORK_METHOD = "forkserver"  # see `client`


@pytest.fixture(scope="module")
def client():
    """One LocalCluster of 2 worker processes × 1 thread for the whole module, closed at its end. The workers come
    from a fork server (a clean process started once, forked per worker): forking this test process itself hung in
    the full suite once earlier tests had left threads running (a lock held at the fork), and spawned workers (Dask's
    default, which the library keeps) each import torch again."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.worker.multiprocessing-method": FORK_METHOD}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.CRITICAL)
    dask_client = Client(cluster)
    dask_client.wait_for_workers(2)
    yield dask_client
    dask_client.close()
    cluster.close()


@pytest.fixture(scope="module")
def moons_model():
    ds = load_dataset("moons", seed=0, n_train=250, n_val=80, n_test=40)
    return ds, train_model(ds, "mlp", TrainConfig(epochs=40, checkpoint_every=20, seed=0))


def assert_same_scores(got: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


# --------------------------------------------------------------------------------------------------- parsing
def test_parse_cluster_and_scheduler():
    assert parse_cluster("local:3", environ={}) == ClusterSpec("local", workers=3)
    assert parse_cluster("local:2", threads=2, environ={}) == ClusterSpec("local", workers=2, threads=2)
    assert parse_cluster("local-cuda", environ={}).kind == "local-cuda"
    assert parse_cluster("local-cuda:2", environ={}).workers == 2
    assert parse_cluster(None, environ={}).kind == "process"
    assert parse_cluster("none", environ={ENV_SCHEDULER: "tcp://h:1"}).kind == "process"  # asked for explicitly
    assert parse_cluster(scheduler="tcp://10.0.0.5:8786", environ={}).address == "tcp://10.0.0.5:8786"
    assert parse_cluster(scheduler="head-node:8786", environ={}).address == "tcp://head-node:8786"
    env = parse_cluster(environ={ENV_SCHEDULER: "tcp://sched:8786"})
    assert env == ClusterSpec("scheduler", address="tcp://sched:8786")
    for bad, kwargs in [("local:0", {}), ("lokal:2", {}), ("local:x", {})]:
        with pytest.raises(InfluenceError, match="local"):
            parse_cluster(bad, environ={}, **kwargs)
    with pytest.raises(InfluenceError, match="tcp://HOST:PORT"):
        parse_cluster(scheduler="tcp://no-port", environ={})
    with pytest.raises(InfluenceError, match="not both"):
        parse_cluster("local:2", "tcp://h:1", environ={})


def test_methods_that_cannot_be_sharded_say_which_can(moons_model, tmp_path):
    ds, fitted = moons_model
    assert {"ip", "ip_ensemble", "tracin", "loss", "self_tracin", "self_lissa", "exact"} <= set(shardable_methods())
    for method in ("confident_learning", "ip_combined"):
        with pytest.raises(InfluenceError, match="cannot be sharded; sharded scoring runs: .*ip_ensemble"):
            score_sharded(ds, fitted, method, out_dir=tmp_path, cluster="none")


# ------------------------------------------------------------------------------------ equal to one process
# (method, settings, parameter group): the stochastic Hessian methods on the head, where their solve is quick.
METHOD_CASES = [
    ("ip", {}, "all"), ("ip_ensemble", {"ensemble_size": 3, "dropout": 0.1}, "all"), ("tracin", {}, "all"),
    ("loss", {}, "all"), ("margin", {}, "all"), ("self_tracin", {}, "all"),
    ("self_lissa", {"depth": 10, "sample_chunk": 32}, "head"), ("exact", {}, "all"), ("lissa", {"depth": 20}, "head"),
]


@pytest.mark.parametrize("method,settings,params", METHOD_CASES, ids=[m for m, _, _ in METHOD_CASES])
def test_sharded_on_two_workers_equals_single_process(client, moons_model, tmp_path, method, settings, params):
    ds, fitted = moons_model
    expected = compute_scores(ds, fitted, method, batch_size=32, params=params, **settings)
    messages, details = [], {}
    got = score_sharded(ds, fitted, method, out_dir=tmp_path, client=client, settings=settings, params=params,
                        shard_size=64, batch_size=32, progress=lambda f, m: messages.append((f, m)), details=details)
    assert_same_scores(got, expected)
    run = details["sharding"]
    assert run["shards"] == 4 and run["computed"] == 4 and run["skipped"] == 0
    assert len(run["peak_rss"]) == 2, "both workers scored"
    assert len({m for _, m in messages if "written" in m}) == 4 and messages[-1][0] == 1.0  # (told again while busy)
    # Each shard on disk holds its rows and their scores.
    status = shard_status(tmp_path)
    assert status["total"] == 4 and status["done"] == [f"shard-{i:05d}.parquet" for i in range(4)]
    np.testing.assert_array_equal(read_shard(tmp_path / "shard-00001.parquet", np.arange(64, 128)), got[64:128])


def test_in_process_shards_equal_single_process(moons_model, tmp_path):
    ds, fitted = moons_model
    expected = compute_scores(ds, fitted, "ip_ensemble", batch_size=32, ensemble_size=2)
    got = score_sharded(ds, fitted, "ip_ensemble", out_dir=tmp_path, cluster="none", settings={"ensemble_size": 2},
                        batch_size=32, shard_size=100)  # rounded up to whole batches: 128
    assert_same_scores(got, expected)
    assert shard_status(tmp_path)["manifest"]["shard_size"] == 128


def test_stored_images_are_read_by_the_workers(client, tmp_path):
    """Images on disk as uint8: the workers open the file by path; scores equal the in-memory set's."""
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (200, 8, 8, 3), dtype=np.uint8)
    y = torch.from_numpy(u8.reshape(200, -1, 3).mean(1).argmax(1))
    tr, va, te = np.arange(140), np.arange(140, 170), np.arange(170, 200)
    (x_tr, x_va, x_te), mean, std = normalise_images(u8[tr], u8[va], u8[te])
    memory = Dataset("tiny", Split(x_tr, y[tr]), Split(x_va, y[va]), Split(x_te, y[te]), ["r", "g", "b"], kind="image")
    array = save_array(tmp_path / "pixels.npy", u8)
    norm = dict(layout="nhwc", mean=tuple(mean), std=tuple(std))
    disk = Dataset("tiny", *(Split(StoredFeatures(array, rows, **norm), y[rows]) for rows in (tr, va, te)),
                   ["r", "g", "b"], kind="image")
    fitted = train_model(memory, "cnn", TrainConfig(epochs=2, batch_size=16, patience=0))
    for method in ("ip", "self_tracin"):
        expected = compute_scores(memory, fitted, method, batch_size=32)
        got = score_sharded(disk, fitted, method, out_dir=tmp_path / method, client=client, shard_size=32, batch_size=32)
        assert_same_scores(got, expected)
    assert disk.train._x is None


def test_out_of_fold_one_task_per_fold_and_shard(client, tmp_path, monkeypatch):
    ds = load_dataset("moons", seed=1, n_train=150, n_val=60, n_test=30)
    fitted = train_model(ds, "mlp", TrainConfig(epochs=30, seed=0))
    settings = FoldSettings(3)
    models = train_fold_models(ds, "mlp", fitted.config, settings)
    for method in ("ip", "loss"):
        expected = compute_scores(ds, fitted, method, folds=settings, fold_models=models, batch_size=16)
        details = {}
        got = score_sharded(ds, fitted, method, out_dir=tmp_path / method, client=client, folds=3, fold_models=models,
                            shard_size=16, batch_size=16, details=details)
        assert_same_scores(got, expected)
        assert details["sharding"]["shards"] == 3 * 4  # 50 held-out rows per fold, 16 per shard
        assert (tmp_path / method / "fold-02-shard-00003.parquet").exists()
    # Without fold models, the cluster (a client, or one started from a spec, as the CLI's --no-cache does) trains
    # them on its workers, one task each — none in this process: the same models, the same scores.
    import contextlib

    import influence_core.distributed as distributed
    import influence_core.folds as folds_module

    monkeypatch.setattr(folds_module, "train_model", lambda *a, **k: pytest.fail("a fold model was trained here"))
    monkeypatch.setattr(distributed, "dask_client", lambda spec, progress=None: contextlib.nullcontext(client))
    expected = compute_scores(ds, fitted, "ip", folds=settings, fold_models=models, batch_size=16)
    for name, where in (("client", {"client": client}), ("spec", {"cluster": "local:2"})):
        got = score_sharded(ds, fitted, "ip", out_dir=tmp_path / name, folds=3, shard_size=16, batch_size=16, **where)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------------------------------------------- resuming
def test_interrupted_client_resumes_with_the_missing_shards_only(moons_model, tmp_path):
    ds, fitted = moons_model
    expected = compute_scores(ds, fitted, "ip", batch_size=16)

    def stop_after_three(fraction, message):
        if message.count("written") and int(message.split(": ")[-1].split("/")[0]) >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_sharded(ds, fitted, "ip", out_dir=tmp_path, cluster="none", shard_size=32, batch_size=16,
                      progress=stop_after_three)
    assert len(shard_status(tmp_path)["done"]) == 3
    details = {}
    got = score_sharded(ds, fitted, "ip", out_dir=tmp_path, cluster="none", batch_size=16, details=details)
    assert details["sharding"]["skipped"] == 3 and details["sharding"]["computed"] == 8 - 3
    assert_same_scores(got, expected)
    # A third run finds every shard: nothing is computed, no cluster is needed.
    details = {}
    assert_same_scores(score_sharded(ds, fitted, "ip", out_dir=tmp_path, cluster="local:64", batch_size=16,
                                     details=details), expected)
    assert details["sharding"]["computed"] == 0 and details["sharding"]["where"] == "none needed"


def test_a_changed_or_truncated_shard_fails_its_checksum_is_removed_with_one_line_and_scored_again(moons_model, tmp_path,
                                                                                                   caplog):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ds, fitted = moons_model
    expected = compute_scores(ds, fitted, "ip", batch_size=16)
    score_sharded(ds, fitted, "ip", out_dir=tmp_path, cluster="none", shard_size=32, batch_size=16)
    changed, truncated = tmp_path / "shard-00002.parquet", tmp_path / "shard-00005.parquet"
    table = pq.read_table(changed)  # a valid Parquet file whose score is not the one written: only the checksum tells
    scores = table.column("score").to_numpy().copy()
    scores[3] += 0.5
    pq.write_table(table.set_column(1, "score", pa.array(scores)), changed)
    assert pq.read_table(changed).schema.metadata == table.schema.metadata  # the old checksum came along
    truncated.write_bytes(truncated.read_bytes()[:-40])
    details = {}
    with caplog.at_level("WARNING", logger="influence_core.distributed"):
        got = score_sharded(ds, fitted, "ip", out_dir=tmp_path, cluster="none", batch_size=16, details=details)
    assert_same_scores(got, expected)
    assert details["sharding"]["computed"] == 2 and details["sharding"]["skipped"] == 8 - 2
    lines = sorted(r.getMessage() for r in caplog.records)
    assert len(lines) == 2 and "shard-00002.parquet was bad (its checksum does not match" in lines[0]
    assert "shard-00005.parquet was bad (unreadable" in lines[1]
    np.testing.assert_array_equal(read_shard(changed, np.arange(64, 96)), got[64:96])  # rewritten, and it verifies


def test_a_shard_written_before_checksums_is_still_read(moons_model, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, scores = np.arange(10, 20), np.linspace(-1.0, 1.0, 10)
    pq.write_table(pa.table({"row": pa.array(rows), "score": pa.array(scores)}), tmp_path / "shard-00000.parquet")
    np.testing.assert_array_equal(read_shard(tmp_path / "shard-00000.parquet", rows), scores)
    assert read_shard(tmp_path / "shard-00000.parquet", rows + 1) is None  # other rows: dropped
    assert not (tmp_path / "shard-00000.parquet").exists()


def test_killed_worker_leaves_the_rerun_only_the_missing_shards(client, moons_model, tmp_path):
    """A worker killed mid-run (SIGKILL; with no retries allowed the run stops): the shards already written stay,
    and the rerun scores exactly the others."""
    ds, fitted = moons_model
    expected = compute_scores(ds, fitted, "ip_ensemble", batch_size=8, ensemble_size=4)
    scheduler = client.cluster.scheduler
    pids = client.run(os.getpid)
    killed = []

    def kill_a_busy_worker(fraction, message):
        if killed or "written" not in message:
            return
        busy = [addr for addr, keys in client.processing().items() if keys]
        if busy:
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])

    scheduler.allowed_failures, before = 0, scheduler.allowed_failures
    try:
        with pytest.raises(InfluenceError, match="failed on a Dask worker.*rerun"):
            score_sharded(ds, fitted, "ip_ensemble", out_dir=tmp_path, client=client, settings={"ensemble_size": 4},
                          shard_size=8, batch_size=8, progress=kill_a_busy_worker)
    finally:
        scheduler.allowed_failures = before
    assert killed
    _wait_until_idle(client)  # the other worker's shard in flight still lands (a cancelled task runs to its end)
    written = len(shard_status(tmp_path)["done"])
    assert 1 <= written < 32
    details = {}
    got = score_sharded(ds, fitted, "ip_ensemble", out_dir=tmp_path, client=client, settings={"ensemble_size": 4},
                        batch_size=8, details=details)
    assert details["sharding"]["skipped"] == written and details["sharding"]["computed"] == 32 - written
    assert_same_scores(got, expected)


def _wait_until_idle(client, timeout: float = 60.0) -> None:
    """Until no worker has run a task for three polls in a row (a restarted worker counts as idle)."""
    deadline, quiet = time.time() + timeout, 0
    while quiet < 3 and time.time() < deadline:
        busy = client.run(lambda dask_worker: len(dask_worker.state.executing), on_error="ignore")
        quiet = quiet + 1 if not any(busy.values()) else 0
        time.sleep(0.2)


def test_shards_of_another_run_are_never_mixed_in(moons_model, tmp_path):
    ds, fitted = moons_model
    score_sharded(ds, fitted, "loss", out_dir=tmp_path, cluster="none", batch_size=64)
    with pytest.raises(InfluenceError, match="shards of another run .*method"):
        score_sharded(ds, fitted, "margin", out_dir=tmp_path, cluster="none", batch_size=64)
    with pytest.raises(InfluenceError, match="shards of 1024 rows"):
        score_sharded(ds, fitted, "loss", out_dir=tmp_path, cluster="none", batch_size=64, shard_size=64)
    # A damaged shard file is scored again, not trusted.
    (tmp_path / "shard-00000.parquet").write_bytes(b"garbage")
    details = {}
    got = score_sharded(ds, fitted, "loss", out_dir=tmp_path, cluster="none", batch_size=64, details=details)
    assert details["sharding"]["computed"] == 1
    assert_same_scores(got, compute_scores(ds, fitted, "loss"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here: the LocalCUDACluster test needs one")
def test_local_cuda_cluster_equals_single_process(moons_model, tmp_path):
    pytest.importorskip("dask_cuda", reason="dask-cuda is not installed")
    ds, fitted = moons_model
    expected = compute_scores(ds, fitted, "ip", batch_size=32, device="cuda")
    got = score_sharded(ds, fitted, "ip", out_dir=tmp_path, cluster="local-cuda", batch_size=32, device="cuda")
    assert_same_scores(got, expected)


def test_the_project_and_the_cli_shard_on_a_scheduler_and_share_the_cache_entry(client, tmp_path, capsys, monkeypatch):
    """The app's path (Project.score with a scheduler, or $INFLUENCE_DASK_SCHEDULER) and the CLI's --scheduler give
    the single-process scores; the entry is the same cache entry, so scoring again in-process computes nothing."""
    import pandas as pd

    import influence_core.engine as engine
    from influence_core.cli import main
    from influence_core.project import Project, ScoreRun

    address = client.scheduler.address
    proj = Project.open("dask", tmp_path)
    proj.use_dataset("moons", seed=0)
    proj.train("logreg")
    messages = []
    sharded = proj.score(ScoreRun("ip"), lambda f, m: messages.append(m), scheduler=address)
    assert any("shards" in m for m in messages)  # per-shard progress
    expected = compute_scores(proj.dataset(), proj.model(), "ip")
    assert_same_scores(sharded, expected)
    assert list((tmp_path / "shards").glob("*/shard-*.parquet"))
    monkeypatch.setattr(engine, "compute_scores", lambda *a, **k: pytest.fail("recomputed"))
    assert_same_scores(proj.score(ScoreRun("ip")), expected)

    monkeypatch.setenv("INFLUENCE_DASK_SCHEDULER", address)  # the app's setting by environment
    assert "default (from the environment)" in proj.dask_clusters()  # offered by name
    out = tmp_path / "cli.csv"
    assert main(["score", "--dataset", "moons", "--model", "logreg", "--method", "loss", "--workspace", str(tmp_path),
                 "--out", str(out), "--quiet"]) == 0
    loss = compute_scores(proj.dataset(), proj.model(), "loss")
    assert_same_scores(pd.read_csv(out)["score"].to_numpy(), loss)
    assert main(["score", "--dataset", "moons", "--method", "ip", "--scheduler", "nonsense", "--quiet"]) == 2
    assert "tcp://HOST:PORT" in capsys.readouterr().err


def test_fold_models_are_trained_on_the_workers_one_task_each_and_cached(client, tmp_path, monkeypatch):
    """Out-of-fold scoring on a scheduler trains the missing fold models on the workers (none in this process),
    caches them like any model, and gives the in-process out-of-fold scores."""
    import influence_core.folds as folds_module
    import influence_core.engine as engine
    from influence_core.project import Project, ScoreRun

    proj = Project.open("dask-folds", tmp_path)
    proj.use_dataset("moons", seed=0, n_train=200)
    proj.train("logreg")
    ds, fitted = proj.dataset(), proj.model()
    expected_models = train_fold_models(ds, "logreg", fitted.config, FoldSettings(3))
    expected = compute_scores(ds, fitted, "ip", folds=FoldSettings(3), fold_models=expected_models)

    def no_training(*args, **kwargs):
        pytest.fail("a fold model was trained in the client")

    monkeypatch.setattr(engine, "train_model", no_training)
    monkeypatch.setattr(folds_module, "train_model", no_training)
    messages = []
    got = proj.score(ScoreRun("ip", folds=3), lambda f, m: messages.append(m), scheduler=client.scheduler.address)
    assert "3 of 3 models trained on the cluster" in " ".join(messages)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    cached = proj.fold_models(3)  # from the cache: training is still impossible here
    for model, reference in zip(cached, expected_models):
        for (name, a), b in zip(model.module.state_dict().items(), reference.module.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert_same_scores(proj.score(ScoreRun("loss", folds=3), scheduler=client.scheduler.address),
                       compute_scores(ds, fitted, "loss", folds=FoldSettings(3), fold_models=expected_models))


# ----------------------------------------------------------------------- clusters the administrator names
def _small_project(root, name="dask-choice"):
    from influence_core.project import Project

    proj = Project.open(name, root)
    proj.use_dataset("moons", seed=0, n_train=120)
    proj.train("logreg")
    return proj


def _configure(root, monkeypatch, text: str) -> None:
    """``text`` as the administrator's ``<workspace>/server.toml`` (no $INFLUENCE_CONFIG elsewhere)."""
    monkeypatch.delenv("INFLUENCE_CONFIG", raising=False)
    monkeypatch.delenv(ENV_SCHEDULER, raising=False)
    (root / "server.toml").write_text(text)


def test_the_clusters_offered_are_names_the_administrator_configured():
    from influence_core.cluster import FROM_THE_ENVIRONMENT, THIS_PROCESS, cluster_choices, resolve_cluster
    from influence_core.server_config import ServerConfig

    config = ServerConfig.from_mapping({"clusters": {"gpu-box": "tls://10.0.0.5:8786", "cpu": "tcp://cpu:8786"},
                                        "max_local_workers": 3, "dask_connect_timeout_s": 4,
                                        "dask_tls_ca_file": "/etc/ca.pem", "dask_tls_cert_file": "/etc/c.pem",
                                        "dask_tls_key_file": "/etc/k.pem"})
    choices = cluster_choices(config, environ={ENV_SCHEDULER: "tcp://sched:8786"})
    assert list(choices) == [THIS_PROCESS, "local:1", "local:2", "local:3", FROM_THE_ENVIRONMENT, "gpu-box", "cpu"]
    assert choices["local:3"] == ClusterSpec("local", workers=3)
    assert choices["gpu-box"] == ClusterSpec("scheduler", address="tls://10.0.0.5:8786", name="gpu-box",
                                             connect_timeout_s=4.0, tls=("/etc/ca.pem", "/etc/c.pem", "/etc/k.pem"))
    assert choices["cpu"].tls is None and choices[FROM_THE_ENVIRONMENT].address == "tcp://sched:8786"
    assert "tcp://" not in choices["cpu"].describe()  # the app names a cluster, it does not show its address
    assert resolve_cluster(None, config, environ={}) == ClusterSpec("process")
    for typed in ("tcp://127.0.0.1:8786", "cpu:8786", "local:4", "local:2\nx"):
        with pytest.raises(InfluenceError, match="is not a Dask cluster this server offers; choose one of") as err:
            resolve_cluster(typed, config, environ={})
        assert "\n" not in str(err.value)
    with pytest.raises(InfluenceError, match="server config: Dask cluster 'bad'"):
        cluster_choices(ServerConfig.from_mapping({"clusters": {"bad": "http://x"}}), environ={})


def _attackers_run_shard(*args, **kwargs):
    """What the attacker's workers return instead of a shard's scores: an object whose unpickling runs code."""
    return _WritesAMarker(os.environ["ATTACK_MARKER"])


class _WritesAMarker:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('code ran in the app server')",))


def _arm(marker: str) -> None:
    import influence_core.distributed as module

    os.environ["ATTACK_MARKER"] = marker
    module.run_shard, module._honest_run_shard = _attackers_run_shard, module.run_shard


def _disarm() -> None:
    import influence_core.distributed as module

    module.run_shard = getattr(module, "_honest_run_shard", module.run_shard)


def test_an_address_from_the_browser_is_refused_before_any_connection(client, tmp_path, monkeypatch):
    """The attacker runs a Dask cluster whose workers return a pickle that runs code, and gives its address where
    the Scores page's value goes: refused with one line, the attacker's scheduler sees no client, no code runs."""
    from influence_core.project import ScoreRun

    _configure(tmp_path, monkeypatch, "[server]\n")
    proj = _small_project(tmp_path)
    marker = tmp_path / "marker"
    client.run(_arm, str(marker))
    scheduler = client.cluster.scheduler
    clients_before = set(scheduler.clients)
    try:
        with pytest.raises(InfluenceError, match="not a Dask cluster this server offers"):
            job = proj.score_in_background([ScoreRun("ip")], client.scheduler.address)
            job.wait(120)
    finally:
        client.run(_disarm)
    assert set(scheduler.clients) == clients_before
    assert not marker.exists()


class _SilentPort:
    """A TCP server on 127.0.0.1 that accepts connections and never says a word (not a Dask scheduler)."""

    def __enter__(self):
        import socket

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.accepted = []
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self):
        try:
            while True:
                self.accepted.append(self.sock.accept()[0])
        except OSError:  # closed
            pass

    def __exit__(self, *exc):
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def test_a_named_cluster_that_never_answers_fails_in_one_line_and_stop_ends_the_job(tmp_path, monkeypatch):
    """Dask's connect timeout does not cover its handshake: a port that accepts and stays silent hung scoring for
    good (Stop did nothing). Now the job fails with one line once the administrator's timeout has passed, and a
    Stop while connecting ends it."""
    from influence_core.project import ScoreRun

    with _SilentPort() as silent:
        silent_for = f'[server.clusters]\nsilent = "{silent.address}"\n'
        _configure(tmp_path, monkeypatch, f"[server]\ndask_connect_timeout_s = 1\n{silent_for}")
        proj = _small_project(tmp_path)
        job = proj.score_in_background([ScoreRun("ip")], "silent").wait(120)  # a guard: the job must have ended
        assert silent.accepted  # the connection was made, and the handshake never came
        assert job.state == "failed" and not job.running
        assert "Dask cluster 'silent' did not answer as a Dask scheduler within 1 s" in job.error
        assert "\n" not in job.error

        _configure(tmp_path, monkeypatch, f"[server]\ndask_connect_timeout_s = 600\n{silent_for}")
        job = proj.score_in_background([ScoreRun("loss")], "silent")
        for _ in range(600):
            if "connecting to Dask cluster 'silent'" in job.message:
                break
            time.sleep(0.1)
        assert "connecting to Dask cluster 'silent'" in job.message
        job.cancel()
        job.wait(120)
        assert not job.running and job.state == "cancelled"
        for _ in range(300):  # the connection attempt ends with the job, not when its 600 s are up
            if not [t for t in threading.enumerate() if t.name == "dask-connect"]:
                break
            time.sleep(0.1)
        assert not [t for t in threading.enumerate() if t.name == "dask-connect"]


def test_a_tls_cluster_is_reached_with_the_administrators_files(tmp_path):
    """A tls:// cluster is reached through Dask's Security built from the configured CA, certificate and key files;
    without them the connection fails with one line."""
    import logging

    from distributed import LocalCluster
    from distributed.security import Security

    from influence_core.cluster import cluster_choices, dask_client, security
    from influence_core.server_config import ServerConfig

    sec = Security.temporary()
    files = []
    for name, pem in [("ca", sec.tls_ca_file), ("cert", sec.tls_client_cert), ("key", sec.tls_client_key)]:
        (tmp_path / f"{name}.pem").write_text(pem)
        files.append(str(tmp_path / f"{name}.pem"))
    with LocalCluster(n_workers=0, processes=False, protocol="tls://", host="127.0.0.1", security=sec,
                      dashboard_address=None, silence_logs=logging.CRITICAL) as cluster:
        clusters = {"secure": cluster.scheduler_address}
        settings = {"clusters": clusters, "dask_connect_timeout_s": 5}
        tls_files = dict(zip(["dask_tls_ca_file", "dask_tls_cert_file", "dask_tls_key_file"], files))
        spec = cluster_choices(ServerConfig.from_mapping({**settings, **tls_files}), environ={})["secure"]
        built = security(spec)
        assert (built.tls_ca_file, built.tls_client_cert, built.tls_client_key) == tuple(files)
        assert built.require_encryption
        with dask_client(spec) as opened:
            assert opened.security.tls_ca_file == files[0]
            assert opened.scheduler_info()["address"] == cluster.scheduler_address
        plain = cluster_choices(ServerConfig.from_mapping(settings), environ={})["secure"]
        with pytest.raises(InfluenceError, match="Dask cluster 'secure'.*needs dask_tls_ca_file") as err:
            with dask_client(plain):
                pass
        assert "\n" not in str(err.value) and cluster.scheduler_address.split("://")[1] not in str(err.value)


class _KillsTheWorker:
    """Scattered in place of a shard job: unpickling it ends the worker process (a worker killed during scatter)."""

    def __reduce__(self):
        return (os._exit, (3,))


def test_a_worker_killed_during_scatter_is_one_line(tmp_path):
    import logging

    import dask
    from distributed import Client, LocalCluster

    from influence_core.distributed import Shard, _run_on_dask

    with dask.config.set({"distributed.worker.multiprocessing-method": FORK_METHOD}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.CRITICAL)
    try:
        with Client(cluster) as one:
            one.wait_for_workers(1)
            shard = Shard(0, 0, 0, 4, np.arange(4), "shard-00000.parquet")
            with pytest.raises(InfluenceError, match="sending the model and data to the Dask workers failed: .*rerun") \
                    as err:
                _run_on_dask(one, {0: _KillsTheWorker()}, [shard], lambda s, r: None)
            assert "\n" not in str(err.value)
    finally:
        cluster.close()


class _Stuck:
    """Scattered in place of a shard job: its task never finishes (a hung worker)."""

    def context(self):
        time.sleep(3600)


class _Stop(Exception):
    pass


def test_stop_ends_the_wait_for_a_worker_that_never_finishes(tmp_path):
    """Stop takes effect at a progress report; while no shard finishes, the wait still reports (the same progress)
    twice a second, so a Stop ends the run instead of waiting for a hung worker."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    from influence_core.distributed import Shard, _run_on_dask

    with dask.config.set({"distributed.worker.multiprocessing-method": FORK_METHOD}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.CRITICAL)
    heard = []

    def stop_when_asked_twice():
        heard.append(1)
        if len(heard) >= 2:
            raise _Stop()

    try:
        with Client(cluster) as one:
            one.wait_for_workers(1)
            shard = Shard(0, 0, 0, 4, np.arange(4), "shard-00000.parquet")
            outcome = []

            def run():
                try:
                    _run_on_dask(one, {0: _Stuck()}, [shard], lambda s, r: None, waiting=stop_when_asked_twice)
                except _Stop:
                    outcome.append("stopped")

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            thread.join(120)  # a guard, not a measurement
            assert outcome == ["stopped"]
    finally:
        cluster.close()


def test_the_clis_scheduler_gets_the_administrators_timeout_and_tls_files(tmp_path, monkeypatch):
    """Issue 21: `--scheduler` and $INFLUENCE_DASK_SCHEDULER (CLI, library) connect with server.toml's connect
    timeout and, for tls://, its TLS files, as the app's named clusters do."""
    from influence_core.cluster import ENV_SCHEDULER, parse_cluster

    config = tmp_path / "server.toml"
    config.write_text('[server]\ndask_connect_timeout_s = 3.5\ndask_tls_ca_file = "/srv/ca.pem"\n'
                      'dask_tls_cert_file = "/srv/cert.pem"\ndask_tls_key_file = "/srv/key.pem"\n')
    monkeypatch.setenv("INFLUENCE_CONFIG", str(config))
    spec = parse_cluster(scheduler="tls://10.0.0.5:8786")
    assert spec.connect_timeout_s == 3.5 and spec.tls == ("/srv/ca.pem", "/srv/cert.pem", "/srv/key.pem")
    from_env = parse_cluster(environ={ENV_SCHEDULER: "tcp://10.0.0.5:8786"})
    assert from_env.connect_timeout_s == 3.5 and from_env.tls is None  # tcp:// carries no TLS
