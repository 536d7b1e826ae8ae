"""Where data files are found, and downloads (with the network replaced by a stub: tests never go online)."""

from __future__ import annotations

import io
import urllib.error

import pytest

from influence_core.data import paths
from influence_core.data.uploads import save_upload
from influence_core.errors import InfluenceError


def test_shared_data_dir_follows_environment(shared_data, tmp_path, monkeypatch):
    assert paths.shared_data_dir() == shared_data
    assert paths.find_data_file(["adult/adult.data"]) == shared_data / "adult" / "adult.data"
    monkeypatch.setenv("INFLUENCE_SHARED_DATA", str(tmp_path))
    assert paths.find_data_file(["adult/adult.data"]) is None


def test_missing_file_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("INFLUENCE_SHARED_DATA", str(tmp_path))
    with pytest.raises(InfluenceError, match=r"^data file 'adult/adult.data' not found in .*; pass download=True "
                                             r"\(CLI: --download\) to fetch https://archive.ics.uci.edu/.*adult.data, or give a local path$"):
        paths.require_data_file(["adult/adult.data"], f"{paths.UCI}/adult/adult.data")
    with pytest.raises(InfluenceError, match="^no such file: "):
        paths.find_data_file(["x"], tmp_path / "nope.csv")


def test_download_goes_to_the_cache_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("INFLUENCE_SHARED_DATA", str(tmp_path / "shared"))
    monkeypatch.setenv("INFLUENCE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(paths.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"hello"))
    got = paths.require_data_file(["adult/adult.data"], "https://example.org/adult.data", download=True)
    assert got == tmp_path / "cache" / "adult" / "adult.data" and got.read_bytes() == b"hello"
    assert [p.name for p in got.parent.iterdir()] == ["adult.data"]  # no temporary file left
    assert paths.require_data_file(["adult/adult.data"], "unused") == got  # found in the cache next time

    def offline(url, timeout):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(paths.urllib.request, "urlopen", offline)
    with pytest.raises(InfluenceError, match="^could not download https://example.org/b.csv: <urlopen error no route to host>"):
        paths.require_data_file(["bank/b.csv"], "https://example.org/b.csv", download=True)
    assert list((tmp_path / "cache" / "bank").iterdir()) == []


def test_save_upload_keeps_only_a_safe_base_name(tmp_path):
    stored = save_upload(b"a,y\n1,0\n", "../../.evil\tname.csv", "data", tmp_path)
    assert stored.path.name == "evil_name.csv" and stored.path.read_bytes() == b"a,y\n1,0\n"
    assert stored.path.resolve().is_relative_to((tmp_path / "uploads" / "data").resolve())
