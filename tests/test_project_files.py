"""A project's folder on disk (`project_files`, issue 19): names, the state file restored from its last good copy, and
a rename that leaves only a forwarding record."""

from __future__ import annotations

import json

import pytest

from influence_core.errors import InfluenceError
from influence_core.jobs import MOVED_FILE, moved_folder
from influence_core.project_files import (NOTICE_FILE, STATE_BACKUP, STATE_FILE, make_project_folder,
                                          move_project_folder, parse_state, project_names, restore_state,
                                          valid_project_name)
from influence_core.state import Selection


def test_names_are_checked_and_listed_default_first(tmp_path):
    assert valid_project_name(" cifar-audit ") == "cifar-audit"
    for bad in ("", "..", "a/b", "-x", "x" * 65):
        with pytest.raises(InfluenceError):
            valid_project_name(bad)
    for name in ("zeta", "default", "alpha"):
        make_project_folder(tmp_path / "projects" / name, "alice")
    assert json.loads((tmp_path / "projects" / "zeta" / "members.json").read_text())["owner"] == "alice"
    assert project_names(tmp_path) == ["default", "alpha", "zeta"]


def test_an_unreadable_state_is_kept_aside_and_the_last_good_copy_restored(tmp_path):
    good = Selection(dataset="moons", flag_share=0.07)
    (tmp_path / STATE_FILE).write_text("{not json")
    (tmp_path / STATE_BACKUP).write_text(json.dumps(good.to_json()))
    saved = []
    restored = restore_state(tmp_path, "p", saved.append)
    assert restored.dataset == "moons" and restored.flag_share == 0.07 and saved == [restored]
    assert [p.read_text() for p in tmp_path.glob(f"{STATE_FILE}.corrupt-*")] == ["{not json"]
    assert "restored the last good state" in (tmp_path / NOTICE_FILE).read_text()
    assert restore_state(tmp_path, "p", saved.append) is None  # moved aside by someone else: read it again
    assert parse_state(b"[1, 2]") is None and parse_state(json.dumps(good.to_json()).encode()).dataset == "moons"


def test_a_moved_folder_leaves_a_forwarding_record(tmp_path):
    source, target = tmp_path / "projects" / "old", tmp_path / "projects" / "new"
    make_project_folder(source, "alice")
    (source / "state.json").write_text("{}")
    move_project_folder(source, target, "old", "new")
    assert (target / "state.json").read_text() == "{}"
    assert [p.name for p in source.iterdir()] == [MOVED_FILE]
    assert moved_folder(source) == target
