"""The store (Workspace): paths stay inside, entries are found by key and survive a fresh object, a bad entry is
dropped with one line and computed again, disk usage and garbage collection. What is computed on a miss is the
engine's (tests/test_engine.py)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import influence_core.workspace as workspace_module
from influence_core import cli
from influence_core.engine import Engine
from influence_core.errors import InfluenceError
from influence_core.keys import model_key, score_key
from influence_core.models import TrainConfig
from influence_core.workspace import Workspace


def test_paths_stay_inside_and_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("INFLUENCE_WORKSPACE", str(tmp_path / "ws"))
    ws = Workspace(project="demo")
    assert ws.root == tmp_path / "ws" / "demo"
    assert ws.path("exports", "a.csv") == (tmp_path / "ws" / "demo" / "exports" / "a.csv").resolve()
    assert (tmp_path / "ws" / "demo" / "exports").is_dir()
    with pytest.raises(InfluenceError, match=r"^'\.\./\.\./etc' points outside the workspace"):
        ws.path("..", "..", "etc")


# ------------------------------------------------------------------------------------ disk usage and gc
def _two_projects_one_data_set_left(root):
    """Projects a and b on moons with a model and loss scores each; b used blobs before (its model and scores are
    left behind), and b's arrays folder holds a stale array; the workspace's arrays folder one more."""
    from influence_core.data.storage import save_array
    from influence_core.project import Project, ScoreRun

    a, b = Project.open("a", root), Project.open("b", root)
    for proj, name in ((a, "moons"), (b, "blobs")):
        proj.use_dataset(name, seed=0)
        proj.train("logreg", {"epochs": 5, "seed": 0})
        proj.score(ScoreRun("loss"))
    blobs = b.dataset()
    b.use_dataset("moons", seed=0)
    save_array(b.folder / "arrays" / "stale.npy", np.zeros((4, 3), np.uint8))
    save_array(root / "arrays" / "library.npy", np.zeros((4, 3), np.uint8))
    for staging, age in (("left", 7200), ("in-progress", 0)):  # a killed upload's staging copy, and a live one
        folder = b.folder / "uploads" / ".staging" / staging
        folder.mkdir(parents=True)
        (folder / "x.csv").write_text("a,b\n")
        os.utime(folder, (time.time() - age, time.time() - age))
    return a, b, model_key(blobs, "logreg", TrainConfig(epochs=5, seed=0))


def test_gc_frees_what_no_project_refers_to_and_a_dry_run_frees_nothing(tmp_path):
    from influence_core.project import Project

    root = tmp_path / "ws"
    a, b, blobs_key = _two_projects_one_data_set_left(root)
    moons_key = model_key(a.dataset(), "logreg", TrainConfig(epochs=5, seed=0))
    finished = sorted((root / "scores").glob("*.npy"))[0].stem
    for run in (finished, "unfinished"):  # a finished sharded run's shards are a copy; an unfinished run resumes
        (root / "shards" / run).mkdir(parents=True)
        (root / "shards" / run / "shard-00000.parquet").write_bytes(b"rows")
    dry = Project.collect_garbage(root, dry_run=True)
    paths = {p for p, _ in dry}
    assert {f"models/{blobs_key}", "projects/b/arrays/stale.npy", "arrays/library.npy", f"shards/{finished}"} <= paths
    assert "shards/unfinished" not in paths and "projects/b/uploads/.staging/left" in paths
    assert "projects/b/uploads/.staging/in-progress" not in paths
    assert sum(p.startswith("scores/") and p.endswith(".npy") for p in paths) == 1  # blobs' loss scores
    assert all(size > 0 for _, size in dry) and (root / "models" / blobs_key).exists()  # nothing deleted yet
    assert Project.collect_garbage(root) == dry
    assert not (root / "models" / blobs_key).exists() and not (b.folder / "arrays" / "stale.npy").exists()
    assert (root / "models" / moons_key).exists() and Project.collect_garbage(root, dry_run=True) == []
    assert set(a.scores()) == {"loss"} and a.model() is not None  # what projects use still loads


def test_gc_keeps_the_arrays_a_projects_data_set_reads(tmp_path):
    from influence_core.project import Project

    root = tmp_path / "ws"
    csv = tmp_path / "t.csv"
    rng = np.random.default_rng(0)
    csv.write_text("f,y\n" + "\n".join(f"{v:.3f},{int(v > 0)}" for v in rng.normal(size=60)) + "\n")
    proj = Project.open("p", root)
    ds = proj.use_dataset(str(csv), on_disk=True)
    Project.collect_garbage(root)
    assert ds.train.store.array.path.exists() and len(proj.dataset().train) == len(ds.train)


def test_usage_per_project_per_cache_kind_and_per_owner(tmp_path):
    import json

    from influence_core.project import Project
    from influence_core.workspace import disk_usage, usage_by_owner

    root = tmp_path / "ws"
    for name, size, owner in (("a", 100, None), ("b", 300, "alice"), ("c", 50, "alice")):
        folder = root / "projects" / name
        (folder / "uploads").mkdir(parents=True)
        (folder / "uploads" / "f.csv").write_bytes(b"x" * size)
        state = {"owner": owner} if owner else {}
        (folder / "state.json").write_text(json.dumps(state))
    (root / "models" / "k").mkdir(parents=True)
    (root / "models" / "k" / "weights.safetensors").write_bytes(b"w" * 70)
    usage = disk_usage(root)
    state_bytes = {n: len((root / "projects" / n / "state.json").read_bytes()) for n in "abc"}
    assert usage["projects"] == {"a": 100 + state_bytes["a"], "b": 300 + state_bytes["b"], "c": 50 + state_bytes["c"]}
    assert usage["kinds"] == {"models": 70} and usage["total"] == sum(usage["projects"].values()) + 70
    assert usage_by_owner(root) == {"local": usage["projects"]["a"], "alice": usage["projects"]["b"] + usage["projects"]["c"]}
    assert Project.storage_usage(root)["project_owners"] == {"a": "local", "b": "alice", "c": "alice"}
    # the member list (what sign-in checks) names the owner first: the quota follows who may open the project
    (root / "projects" / "c" / "members.json").write_text(json.dumps({"owner": "bob@example.com", "members": {}}))
    assert usage_by_owner(root) == {"local": usage["projects"]["a"], "alice": usage["projects"]["b"],
                                    "bob@example.com": usage["projects"]["c"] + len(b'{"owner": "bob@example.com", "members": {}}')}


def test_cli_usage_and_gc(tmp_path, capsys):
    root = tmp_path / "ws"
    _, b, blobs_key = _two_projects_one_data_set_left(root)
    assert cli.main(["usage", "--workspace", str(root)]) == 0
    out = capsys.readouterr().out
    from influence_core.review import default_user

    assert "project  a " in out and "cache    models " in out and out.startswith("project")
    assert f"owner {default_user()}" in out  # the machine's user made it (members.json)
    assert cli.main(["gc", "--dry-run", "--workspace", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"models/{blobs_key}" in out and "would free" in out and (root / "models" / blobs_key).exists()
    assert cli.main(["gc", "--workspace", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"models/{blobs_key}" in out and out.splitlines()[-1].startswith("freed ")
    assert not (root / "models" / blobs_key).exists() and not (b.folder / "arrays" / "stale.npy").exists()


@pytest.mark.parametrize("code, reason", [("ENOSPC", "the disk is full"), ("EROFS", "the disk is read-only")])
def test_a_full_or_read_only_disk_refuses_a_cache_write_in_one_line_and_leaves_nothing(tmp_path, monkeypatch, code, reason):
    import errno
    import os

    def refuse(src, dst):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), str(dst))

    monkeypatch.setattr(workspace_module.os, "replace", refuse)
    ws = Workspace(tmp_path)
    with pytest.raises(InfluenceError) as err:
        ws.get_or_compute("scores", {"k": 1}, lambda: [1, 2], meta=lambda value: {"n": len(value)})
    assert str(err.value) == f"cannot store a result in the workspace cache: {reason} on the server; ask its administrator"
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def _score_entry(ws: Workspace, blobs, fitted) -> tuple:
    """(the .npy path, the .meta.json path) of blobs' loss scores."""
    key = score_key(blobs, fitted, "loss")
    return ws.root / "scores" / f"{key}.npy", ws.root / "scores" / f"{key}.meta.json"


def _without_checksum(meta_path) -> None:
    """Make an entry look like one written before entries carried a checksum."""
    import json

    meta = json.loads(meta_path.read_text())
    meta.pop("checksum", None)
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize("damage", ["truncated", "strings", "wrong length, no checksum", "strings, no checksum",
                                    "other numbers", "meta unreadable"])
def test_a_bad_score_entry_is_dropped_with_one_line_and_recomputed(tmp_path, blobs, counted, damage, caplog):
    ws = Workspace(tmp_path)
    fitted = Engine(ws).model(blobs, "logreg")
    first = Engine(ws).scores(blobs, fitted, "loss")
    npy, meta = _score_entry(ws, blobs, fitted)
    n = len(blobs.train)
    if damage == "truncated":
        npy.write_bytes(npy.read_bytes()[:-40])
    elif damage.startswith("strings"):
        np.save(npy, np.array([f"row {i}" for i in range(n)]))
    elif damage == "wrong length, no checksum":
        np.save(npy, np.zeros(n + 3))
    elif damage == "other numbers":
        np.save(npy, np.arange(n, dtype=first.dtype))  # right shape and dtype; only the checksum tells
    else:
        meta.write_text("{broken")
    if "no checksum" in damage:
        _without_checksum(meta)
    again = Workspace(tmp_path)
    scores = Engine(again).scores(blobs, fitted, "loss")
    assert counted["score"] == 2 and np.array_equal(scores, first)
    assert len(again.notices) == 1 and "\n" not in again.notices[0] and npy.name in again.notices[0]
    assert again.notices[0] in caplog.text
    assert np.array_equal(np.load(npy), first) and Engine(again).scores(blobs, fitted, "loss") is not None
    assert counted["score"] == 2  # the recomputed entry is good: read, not computed again


def test_an_older_entry_without_a_checksum_is_still_read(tmp_path, blobs, counted):
    ws = Workspace(tmp_path)
    fitted = Engine(ws).model(blobs, "logreg")
    first = Engine(ws).scores(blobs, fitted, "loss")
    _without_checksum(_score_entry(ws, blobs, fitted)[1])
    assert np.array_equal(Engine(Workspace(tmp_path)).scores(blobs, fitted, "loss"), first) and counted["score"] == 1


@pytest.mark.parametrize("damage", ["meta.json", "weights", "checkpoint", "weights gone"])
def test_a_bad_model_entry_is_dropped_and_trained_again(tmp_path, blobs, counted, damage):
    config = TrainConfig(epochs=2, checkpoint_every=1)
    ws = Workspace(tmp_path)
    first = Engine(ws).model(blobs, "mlp", config)
    folder = ws.root / "models" / model_key(blobs, "mlp", config)
    if damage == "meta.json":
        (folder / "meta.json").write_text('{"arch": "ml')
    elif damage == "weights":
        weights = folder / "weights.safetensors"
        weights.write_bytes(weights.read_bytes()[:-16] + bytes(16))  # same size, other bytes
    elif damage == "checkpoint":
        next((folder / "checkpoints").glob("*.safetensors")).write_bytes(b"junk")
    else:
        (folder / "weights.safetensors").unlink()
    again = Workspace(tmp_path)
    assert again.load_model(model_key(blobs, "mlp", config), blobs) is None and len(again.notices) == 1
    fitted = Engine(again).model(blobs, "mlp", config)
    assert counted["train"] == 2 and fitted.fingerprint() == first.fingerprint()
    assert Workspace(tmp_path).load_model(model_key(blobs, "mlp", config), blobs) is not None
    assert len(Workspace(tmp_path).models()) == 1


def test_a_bad_array_entry_is_recomputed(tmp_path):
    ws = Workspace(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"xy": np.arange(6.0).reshape(3, 2)}

    ws.get_or_compute_arrays("views", "v", compute)
    (ws.root / "views" / "v.npz").write_bytes(b"PK\x03\x04 not a zip")
    again = Workspace(tmp_path)
    assert np.array_equal(again.get_or_compute_arrays("views", "v", compute)["xy"], np.arange(6.0).reshape(3, 2))
    assert len(calls) == 2 and len(again.notices) == 1
