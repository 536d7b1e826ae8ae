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
