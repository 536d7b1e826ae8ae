""".pt2 uploads: a crafted archive never runs its code — from the library, the CLI and (tests/app) the Model page.

Each crafted archive is first shown to be a real attack (plain torch.export.load runs ``touch MARKER``) where torch
alone reaches the payload; the loader must refuse it, or (guards_code) load it without running the guards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from influence_core.errors import InfluenceError
from influence_core.models.loading import load_fitted, load_fitted_bytes
from influence_core.models.pt2_check import check_sym_expr
from tests.models.pt2_exploits import EXPLOITS, MARKER, crafted_pt2, genuine_pt2, moons_mlp, plain_torch_runs_it

# Payloads torch 2.14 itself executes (the others are stopped by torch's own verifier or never reached today,
# and are refused anyway).
RUN_BY_TORCH = {"pickled_weight", "pickled_constant", "opaque_constant", "legacy_weights_file", "pickled_sample_inputs",
                "guards_code", "sympy_eval", "attribute_name_injection"}


@pytest.fixture(scope="module")
def base() -> bytes:
    return genuine_pt2()


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the payloads touch MARKER in the current folder
    return tmp_path


def test_a_genuine_program_loads_and_predicts_like_the_module(moons, base):
    loaded = load_fitted_bytes(base, "mlp.pt2", "ignored", moons)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(moons.test.x), moons_mlp()(moons.test.x))
    assert loaded.arch == "exported"


@pytest.mark.parametrize("kind", sorted(EXPLOITS))
def test_crafted_archive_never_runs_its_code(moons, base, in_tmp, kind):
    data = crafted_pt2(kind, base)
    marker = in_tmp / MARKER
    if kind == "guards_code":  # the guards are dropped, never executed: the program itself is harmless
        loaded = load_fitted_bytes(data, "evil.pt2", "mlp", moons)
        with torch.no_grad():
            assert np.isfinite(loaded.module(moons.test.x).numpy()).all()
    else:
        with pytest.raises(InfluenceError, match=r"^refused to load 'evil\.pt2': "):
            load_fitted_bytes(data, "evil.pt2", "mlp", moons)
    assert not marker.exists()
    if kind in RUN_BY_TORCH:  # the archive is a working attack against an unchecked loader
        plain_torch_runs_it(data)
        assert marker.exists()


def test_cli_refuses_the_issue_repro(in_tmp, capsys):
    from influence_core import cli

    path = in_tmp / "evil.pt2"
    path.write_bytes(crafted_pt2("pickled_weight"))
    assert cli.main(["score", "--dataset", "moons", "--model", "mlp", "--weights", str(path), "--no-cache", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error: refused to load 'evil.pt2': the entry '0.weight' in 'model_weights_config.json' is stored as a pickle" in err
    assert not (in_tmp / MARKER).exists()


def test_load_fitted_from_disk_checks_too(moons, in_tmp):
    path = in_tmp / "evil.pt2"
    path.write_bytes(crafted_pt2("legacy_weights_file"))
    with pytest.raises(InfluenceError, match="'data/weights/model.pt' is a pickle"):
        load_fitted(path, "mlp", moons)
    assert not (in_tmp / MARKER).exists()


@pytest.mark.parametrize("data, message", [
    (b"junk", "^cannot read 'x.pt2' as a torch.export program: it is not a zip archive$"),
])
def test_not_an_archive(moons, data, message):
    with pytest.raises(InfluenceError, match=message):
        load_fitted_bytes(data, "x.pt2", "", moons)


@pytest.mark.parametrize("text, ok", [
    ("Symbol('s31', positive=True, integer=True)", True),
    ("2*s0 + FloorDiv(s1, 3) - 1", True),
    ("Max(s0, 2) <= 64", True),
    ("__import__('os').system('x')", False),
    ("s0.__class__", False),
    ("Symbol('x; y')", False),
    ("(lambda: 1)()", False),
    ("Symbol('s0', evaluate=print)", False),
])
def test_symbolic_shapes_allow_only_plain_expressions(text, ok):
    assert check_sym_expr(text) is ok


def test_a_pt2_torch_cannot_read_says_why_in_the_one_line(moons, base):
    """torch.export.load logs the real error and raises "check the warnings above"; the user sees the reason."""
    import json

    from tests.models.pt2_exploits import _members, _pack

    root, members = _members(base)
    program = json.loads(members["models/model.json"])
    program["schema_version"] = {"major": 99, "minor": 0}
    members["models/model.json"] = json.dumps(program).encode()
    with pytest.raises(InfluenceError) as err:
        load_fitted_bytes(_pack(root, members), "new.pt2", "", moons)
    message = str(err.value)
    assert message.startswith("cannot read 'new.pt2' as a torch.export program: ")
    assert "schema version" in message and "major=99" in message
    assert "warnings above" not in message and "\n" not in message


def test_a_pt2_with_nan_weights_is_refused(moons):
    module = moons_mlp()
    with torch.no_grad():
        module[0].weight[0, 0] = float("nan")
    with pytest.raises(InfluenceError) as err:
        load_fitted_bytes(genuine_pt2(module), "nan.pt2", "", moons)
    assert str(err.value) == ("refused to load 'nan.pt2': entry '0.weight' holds NaN or infinite values; "
                              "the file is damaged or the training diverged")
