"""The administrator's settings: read from TOML, checked key by key, defaults where there is no file."""

import pytest

from influence_core.errors import InfluenceError
from influence_core.server_config import ServerConfig, server_config


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.delenv("INFLUENCE_CONFIG", raising=False)
    assert server_config(tmp_path) == ServerConfig()
    assert dict(ServerConfig().clusters) == {}


def test_file_overrides_and_is_reread_when_changed(tmp_path, monkeypatch):
    path = tmp_path / "server.toml"
    monkeypatch.setenv("INFLUENCE_CONFIG", str(path))
    path.write_text('[server]\nmax_generated_samples = 500\n[server.clusters]\nbox = "tls://10.0.0.5:8786"\n')
    cfg = server_config()
    assert cfg.max_generated_samples == 500 and dict(cfg.clusters) == {"box": "tls://10.0.0.5:8786"}
    path.write_text('[server]\nmax_generated_samples = 7000\n')
    assert server_config().max_generated_samples == 7000 and dict(server_config().clusters) == {}


@pytest.mark.parametrize("table, message", [
    ({"bogus": 1}, "unknown setting 'bogus'"),
    ({"max_local_workers": True}, "must be int"),
    ({"max_local_workers": "4"}, "must be int"),
    ({"clusters": {"a": 1}}, "table of names to strings"),
    ({"admins": "me"}, "list of strings"),
])
def test_bad_settings_are_one_line_errors(table, message):
    with pytest.raises(InfluenceError, match=message):
        ServerConfig.from_mapping(table)


def test_unreadable_file_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "server.toml"
    path.write_text("[server\n")
    monkeypatch.setenv("INFLUENCE_CONFIG", str(path))
    with pytest.raises(InfluenceError, match="cannot be read"):
        server_config()
