"""The store's in-memory layer (influence_core/memo.py): one policy, least recently used, bounded per kind; and the
facade's calls the Scores page used to wrap in st.cache_data are served from it."""

from __future__ import annotations

from influence_core.memo import Memo


def test_least_recently_used_is_dropped_beyond_the_bound_of_its_kind():
    memo, made = Memo({"a": 2, "b": 1}), []

    def make(value):
        return lambda: (made.append(value), value)[1]

    assert memo.get("a", "x", make(1)) == 1 and memo.get("a", "y", make(2)) == 2
    assert memo.get("a", "x", make(99)) == 1  # kept: not made again, and now the most recently used
    memo.get("a", "z", make(3))  # beyond 2: y (least recently used) goes
    assert memo.keys("a") == ["x", "z"] and made == [1, 2, 3]
    memo.get("b", "x", make(4))  # kinds are bounded apart: a's values stay
    assert memo.keys("a") == ["x", "z"] and memo.keys("b") == ["x"]
    memo.get("a", "w", make(5), size=1)  # a new bound (the server's cap) applies from now on
    assert memo.keys("a") == ["w"]
    memo.clear("a")
    assert memo.keys("a") == [] and memo.keys("b") == ["x"]
    memo.clear()
    assert memo.keys("b") == []


def test_the_scores_page_calls_are_memoised_per_data_and_model(tmp_path, monkeypatch):
    import influence_core.api as api
    from influence_core.project import Project

    calls = []
    real_target, real_issues = api.describe_target, api.estimate_label_issues
    monkeypatch.setattr(api, "describe_target", lambda *a, **k: (calls.append("target"), real_target(*a, **k))[1])
    monkeypatch.setattr(api, "estimate_label_issues",
                        lambda *a, **k: (calls.append("issues"), real_issues(*a, **k))[1])
    proj = Project.open("memo", tmp_path)
    proj.use_dataset("moons", seed=0, n_train=120)
    proj.train("logreg")
    first = proj.describe_target("utility", {})
    first["left_out"] = "changed by a caller"  # a caller's change does not reach the kept value
    again = proj.describe_target("utility", {})
    assert again["left_out"] != "changed by a caller" and again == real_target(proj.dataset(), proj.model())
    assert proj.label_issues(0)["count"] == proj.label_issues(0)["count"]
    assert calls == ["target", "issues"]
    proj.use_dataset("moons", seed=1, n_train=120)  # other data: computed again
    proj.train("logreg")
    proj.describe_target("utility", {})
    assert calls == ["target", "issues", "target"]


def test_a_weights_files_checksum_is_read_once_per_file_version_through_the_memory_layer(tmp_path, monkeypatch):
    """No cache of its own (issue 19): the weights' SHA-256 that keys a backbone's models is kept in `MEMORY` by the
    file's path, size and time, and read again once the file changes."""
    import hashlib
    import os

    from influence_core.memo import MEMORY
    from influence_core.models import backbones

    read = []
    real = backbones._file_sha256
    monkeypatch.setattr(backbones, "_file_sha256", lambda path: (read.append(path), real(path))[1])
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"first")
    MEMORY.clear("file_hashes")
    assert backbones._weights_token(weights) == hashlib.sha256(b"first").hexdigest()
    assert backbones._weights_token(weights) == hashlib.sha256(b"first").hexdigest() and len(read) == 1
    assert len(MEMORY.keys("file_hashes")) == 1
    weights.write_bytes(b"second!")
    os.utime(weights, ns=(1, 10**18))  # another size and time: another file version
    assert backbones._weights_token(weights) == hashlib.sha256(b"second!").hexdigest() and len(read) == 2
