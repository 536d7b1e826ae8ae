"""Versions of the cleaned data set: immutable (a name is never saved twice, the file is read-only), the diff is the
hand-made one, and a version's stored decisions rebuild the cleaned table exactly as it was when saved."""

from __future__ import annotations


import pandas as pd
import pytest

from influence_core.errors import InfluenceError
from influence_core.project import Project
from influence_core.versions import valid_version_name


@pytest.fixture
def proj(scored_blobs) -> Project:
    return scored_blobs


def test_a_version_is_immutable_and_names_are_checked(proj):
    proj.record([1, 2], "remove", session="s")
    v1 = proj.save_version("v1")
    path = proj.folder / "versions" / "v1.json"
    text = path.read_text()
    proj.record([3], "remove", session="s")
    with pytest.raises(InfluenceError, match="exists already"):
        proj.save_version("v1")
    assert path.read_text() == text
    assert oct(path.stat().st_mode & 0o777) == "0o444"
    assert [p.name for p in (proj.folder / "versions").iterdir()] == ["v1.json"]  # no temporary file left
    assert proj.version("v1") == v1 and v1.removed == [1, 2] and v1.created_by == "alice"
    assert v1.rankings == ("loss",) and v1.primary == "loss" and v1.parent is None
    for bad in ("../x", "a/b", "", ".hidden", "x" * 65, "v1.json"):
        with pytest.raises(InfluenceError, match="cannot name a version"):
            valid_version_name(bad)
    with pytest.raises(InfluenceError, match="no version named"):
        proj.version("nope")


def test_diff_between_two_versions_by_hand(proj):
    given = proj.dataset().train.y.numpy()
    proj.record([1, 2], "remove", session="s")
    proj.record([5], "relabel", 1 - int(given[5]), session="s")
    proj.record([6], "relabel", 1 - int(given[6]), session="s")
    proj.save_version("v1")
    proj.record([1], "keep", session="s")  # restored
    proj.record([3], "remove", session="s")  # newly removed
    proj.record([5], "keep", session="s")  # its label back to the given one
    proj.record([7], "relabel", 1 - int(given[7]), session="s")  # newly relabelled
    v2 = proj.save_version("v2")
    assert v2.parent == "v1"
    diff = proj.version_diff("v1", "v2")
    assert diff.removed == (3,) and diff.restored == (1,)
    assert diff.relabelled == ((5, 1 - int(given[5]), int(given[5])), (7, int(given[7]), 1 - int(given[7])))
    table = diff.table()
    assert table["change"].tolist() == ["removed", "restored", "relabelled", "relabelled"]
    assert table["row"].tolist() == [3, 1, 5, 7]
    first = proj.version_diff(None, "v1")  # against the data as loaded
    assert first.removed == (1, 2) and first.restored == () and [r for r, _, _ in first.relabelled] == [5, 6]
    assert [v.name for v in proj.versions()] == ["v1", "v2"]


def test_a_version_rebuilds_its_cleaned_table_exactly(proj):
    given = proj.dataset().train.y.numpy()
    proj.record([0, 4], "remove", session="s")
    proj.record([9], "relabel", 1 - int(given[9]), session="s")
    at_save = proj.cleaned_table(with_splits=True)
    proj.save_version("v1")
    proj.undo(session="s")
    proj.record([10, 11], "remove", session="s")  # the live decisions move on
    rebuilt = proj.version_cleaned_table("v1", with_splits=True)
    pd.testing.assert_frame_equal(rebuilt, at_save)
    train = rebuilt[rebuilt["split"] == "train"]
    assert len(train) == len(given) - 2 and 0 not in train["original_index"].tolist()
    assert len(proj.version_cleaned_table("v1", with_splits=False)) == len(given) - 2
    proj.use_dataset("moons", seed=0)  # other data: the version is not offered, and refused by name
    assert proj.versions() == []
    with pytest.raises(InfluenceError, match="other data"):
        proj.version_cleaned_table("v1")


def test_the_cli_lists_saves_and_diffs_versions(proj, capsys):
    from influence_core.cli import main

    root = str(proj.root)
    proj.record([1, 2], "remove", session="s")
    assert main(["versions", "save", "v1", "--project", proj.name, "--workspace", root, "--user", "carol"]) == 0
    proj.record([2], "keep", session="s")
    proj.record([4], "remove", session="s")
    proj.save_version("v2")
    capsys.readouterr()
    assert main(["versions", "list", "--project", proj.name, "--workspace", root]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == ["v1", "v2"] and "carol" in listed[0]
    assert main(["versions", "diff", "v2", "--project", proj.name, "--workspace", root]) == 0  # against its parent
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "change,row,original_index,label_before,label_after"
    assert [line.split(",")[:2] for line in out[1:]] == [["removed", "4"], ["restored", "2"]]
    assert main(["versions", "save", "v1", "--project", proj.name, "--workspace", root]) == 2
    assert "exists already" in capsys.readouterr().err
    for action in (["list"], ["diff", "a"]):  # a project that does not exist is named, and not made
        assert main(["versions", *action, "--project", "ghost", "--workspace", root]) == 2
        assert capsys.readouterr().err.startswith("error: no project 'ghost' in the workspace")
        assert not (proj.root / "projects" / "ghost").exists()
    assert main(["versions", "list", "extra", "--project", proj.name, "--workspace", root]) == 2
    assert "versions list takes no name" in capsys.readouterr().err


def test_an_image_version_rebuilds_its_zip_as_it_was(tmp_path, tiny_image_zip):
    import io
    import zipfile

    images = Project.open("pets", tmp_path, user="alice")
    images.upload_dataset(open(tiny_image_zip, "rb").read(), "pets.zip")
    images.record([0], "remove", session="s")
    images.record([1], "relabel", 1 - int(images.dataset().train.y[1]), session="s")
    at_save = images.image_zip()
    images.save_version("v1")
    images.record([2, 3], "remove", session="s")  # the live decisions move on
    rebuilt, now = images.version_image_zip("v1"), images.image_zip()

    def contents(data: bytes) -> dict[str, bytes]:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return {n: z.read(n) for n in z.namelist()}

    assert contents(rebuilt) == contents(at_save) and contents(now) != contents(at_save)


def test_versions_saved_within_one_second_keep_their_order_and_parents(proj):
    for name in ("z", "y", "x"):  # names against the alphabet: the order is the time they were saved
        proj.save_version(name)
    assert [(v.name, v.parent) for v in proj.versions()] == [("z", None), ("y", "z"), ("x", "y")]


# --------------------------------------------------------------------------------- attacks (the audit, issue 20)
def test_device_names_trailing_dots_and_names_differing_in_case_are_refused(proj):
    for bad in ("CON", "con", "nul", "LPT1", "com9", "COM1.txt", "aux.v1", "x.", "x.."):
        with pytest.raises(InfluenceError, match="cannot name a version"):
            valid_version_name(bad)
    for good in ("console", "v1.2", "CONx", "lpt10", "v-1_b"):
        assert valid_version_name(good) == good
    proj.save_version("v1")
    with pytest.raises(InfluenceError, match="'v1' exists already"):
        proj.save_version("V1")  # one file on a case-insensitive disk (or a copy of the project there)
    assert [p.name for p in (proj.folder / "versions").glob("*.json")] == ["v1.json"]


@pytest.mark.parametrize("failure", [PermissionError(1, "Operation not permitted"), OSError(95, "Not supported")])
def test_without_hard_links_a_version_is_saved_by_a_rename_and_still_never_overwritten(proj, monkeypatch, failure):
    import os

    def no_links(*args, **kwargs):
        raise failure

    monkeypatch.setattr(os, "link", no_links)  # a file system without hard links (FAT, some network shares)
    proj.record([1, 2], "remove", session="s")
    v1 = proj.save_version("v1")
    path = proj.folder / "versions" / "v1.json"
    assert proj.version("v1") == v1 and v1.removed == [1, 2]
    assert oct(path.stat().st_mode & 0o777) == "0o444"
    text = path.read_text()
    proj.record([3], "remove", session="s")
    for name in ("v1", "V1"):
        with pytest.raises(InfluenceError, match="exists already"):
            proj.save_version(name)
    assert path.read_text() == text
    assert sorted(p.name for p in (proj.folder / "versions").iterdir() if not p.name.startswith(".lock")) == ["v1.json"]
    assert proj.save_version("v2").parent == "v1"


def test_two_threads_saving_one_name_without_hard_links_leave_one_whole_version(proj, monkeypatch):
    import os
    import threading

    monkeypatch.setattr(os, "link", lambda *a, **k: (_ for _ in ()).throw(OSError(95, "Not supported")))
    proj.record([4], "remove", session="s")
    outcomes, barrier = [], threading.Barrier(4)

    def save():
        barrier.wait()
        try:
            outcomes.append(proj.save_version("same").name)
        except InfluenceError as err:
            outcomes.append(str(err))

    threads = [threading.Thread(target=save) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes)[-1] == "same" and sum(o == "same" for o in outcomes) == 1, outcomes
    assert proj.version("same").removed == [4]


_KILLED_SAVE = """
import os, sys, time
from influence_core.project import Project
proj = Project.open("p", sys.argv[1], user="alice")
def stuck(src, dst):  # the temporary file is written whole; the process dies before it gets its name
    open(sys.argv[2], "w").close()
    time.sleep(60)
os.link = stuck
proj.save_version("v1")
"""


def kill_at_marker(script: str, *args: str, marker) -> None:
    """Run ``script`` in a child Python (this checkout on its path) with ``args`` and ``marker``; SIGKILL it (kill -9)
    as soon as it creates the file ``marker``: a process dying midway, not an exception it could handle."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", script, *args, str(marker)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the child never reached the point where it is killed"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


def test_a_save_killed_midway_leaves_no_version_and_its_leftover_is_swept(proj):
    import os
    import time

    proj.record([1], "remove", session="s")
    kill_at_marker(_KILLED_SAVE, str(proj.root), marker=proj.root / "linking")
    folder = proj.folder / "versions"
    leftovers = [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and not (folder / "v1.json").exists() and proj.versions() == []
    old = time.time() - 3600
    os.utime(leftovers[0], (old, old))  # a leftover from an hour ago: a killed save, no save running
    fresh = folder / ".v9.json.1.2.tmp"  # one of a save running now is left alone
    fresh.write_text("{}")
    assert proj.save_version("v1").removed == [1]  # the name is still free
    assert sorted(p.name for p in folder.iterdir()) == [".v9.json.1.2.tmp", "v1.json"]


def test_a_version_file_edited_or_copied_by_hand_is_left_out_with_one_line(proj):
    import json

    given = proj.dataset().train.y.numpy()
    proj.record([1], "remove", session="s")
    proj.record([2], "relabel", 1 - int(given[2]), session="s")
    proj.save_version("good")
    folder = proj.folder / "versions"
    data = json.loads((folder / "good.json").read_text())
    edits = {"copied": data,  # a copy under another file name: opening "copied" gave the version "good"
             "text-row": {**data, "rows": [{**data["rows"][0], "row": "x"}]},
             "bad-action": {**data, "rows": [{**data["rows"][0], "action": "delete"}]},
             "no-label": {**data, "rows": [{**data["rows"][1], "label": None}]},
             "outside": {**data, "rows": [{**data["rows"][0], "row": 10**6}]}}
    for name, body in edits.items():
        (folder / f"{name}.json").write_text(json.dumps(body))
        with pytest.raises(InfluenceError, match=f"the version '{name}' cannot be read") as err:
            proj.version(name)
        assert "\n" not in str(err.value)
    assert [v.name for v in proj.versions()] == ["good"]


def test_a_project_keeps_at_most_max_versions(proj, monkeypatch):
    import influence_core.versions as versions

    monkeypatch.setattr(versions, "MAX_VERSIONS", 2)
    proj.save_version("a")
    proj.save_version("b")
    with pytest.raises(InfluenceError, match="holds 2 versions, the most it keeps"):
        proj.save_version("c")  # before: no limit, a script clicking Save filled the disk
    assert [v.name for v in proj.versions()] == ["a", "b"]


def test_a_versions_csv_neutralises_formulas_and_keeps_odd_labels(tmp_path):
    import io

    import numpy as np

    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({'=HYPERLINK("http://x","y")': rng.normal(size=n).round(3),
                          "note": rng.choice(["=cmd|' /C calc'!A0", "line1\nline2", 'q"uote'], n),
                          "y": rng.choice(["cat\ndog", 'say "hi"', "=1+1"], n)})
    proj = Project.open("odd", tmp_path, user="alice")
    proj.upload_dataset(frame.to_csv(index=False).encode(), "odd.csv", label_column="y")
    proj.train("logreg")
    proj.record([0], "remove", session="s")
    proj.record([1], "relabel", 1, session="s")
    proj.save_version("v1")
    back = pd.read_csv(io.BytesIO(proj.table_bytes(proj.version_cleaned_table("v1"), "csv")), keep_default_na=False)
    assert back.columns[1] == "'" + frame.columns[0]  # a header a spreadsheet would run, neutralised
    assert set(back["note"]) == {"'=cmd|' /C calc'!A0", "line1\nline2", 'q"uote'}
    classes = proj.dataset().classes
    assert set(back["y"]) <= {"cat\ndog", 'say "hi"', "'=1+1"}  # a label with a newline or quotes comes back whole
    train = back[back["split"] == "train"]
    assert len(train) == len(proj.dataset().train) - 1
    relabelled = train[train["original_index"] == int(proj.source_index()[1])]["y"].item()
    assert relabelled.lstrip("'") == classes[1]


def test_a_refused_version_name_is_echoed_without_characters_that_reorder_or_hide_text():
    """The message quoted the name as typed: U+202E turned the rest of the line around on the page, U+200B hid."""
    with pytest.raises(InfluenceError) as err:
        valid_version_name("v\u202e1\u200bx")
    assert str(err.value).startswith("'v\\u202e1\\u200bx' cannot name a version")
