"""The CLI checks what it can before it trains (method and impact settings), its usage hints name the command as it
is typed, and `--model` follows the data kind (in-process: `cli.main`, the facade's training replaced by a probe: the
CLI trains only through `Project.train`, with --no-cache too)."""

from __future__ import annotations

import pytest

from influence_core import cli
from influence_core.project import Project


class _Trained(Exception):
    pass


@pytest.fixture
def no_training(monkeypatch):
    """Training raises `_Trained` with the architecture it was asked for: what the command did before training."""

    def probe(project, arch, *args, **kwargs):
        raise _Trained(arch)

    monkeypatch.setattr(Project, "train", probe)


@pytest.mark.parametrize("extra, message", [
    (["--method", "ip_ensemble", "--ensemble-size", "0"], "IP Ensemble needs ensemble_size ≥ 1"),
    (["--method", "ip_ensemble", "--dropout", "1.5"], "0 ≤ dropout < 1"),
    (["--method", "ip_combined", "--set", "loss_weight=2"], "loss_weight must be in [0, 1]"),
    (["--method", "ip", "--impact-set", "val_trim=2"], "val_trim"),
    (["--device", "tpu9"], "unknown device 'tpu9'; choose cpu, cuda or auto"),
])
def test_settings_out_of_range_fail_before_training(extra, message, no_training, capsys):
    code = cli.main(["score", "--dataset", "moons", "--no-cache", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err  # not _Trained: no model was trained
    assert "target" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, hint", [
    (["score", "--dataset", "moons", "--seed", "x"], "(see: python -m influence_core score --help)"),
    (["nonsense"], "(see: python -m influence_core --help)"),
])
def test_usage_hints_name_the_command_as_typed(argv, hint, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert hint in err and "influence_core influence_core" not in err, err


def test_the_default_model_follows_the_data_kind(tiny_image_zip, no_training):
    with pytest.raises(_Trained, match="^cnn$"):
        cli.main(["score", "--dataset", tiny_image_zip, "--no-cache", "--quiet"])
    with pytest.raises(_Trained, match="^mlp$"):
        cli.main(["score", "--dataset", "moons", "--no-cache", "--quiet"])
    with pytest.raises(_Trained, match="^logreg$"):  # a model asked for is the model trained
        cli.main(["score", "--dataset", tiny_image_zip, "--model", "logreg", "--no-cache", "--quiet"])


def test_a_missing_gpu_is_named_even_when_the_model_and_scores_are_cached(tmp_path, capsys, monkeypatch):
    """The first run caches everything; the second asks for CUDA on a machine without it (here: made to say so)."""
    import torch

    args = ["score", "--dataset", "moons", "--method", "loss", "--quiet", "--workspace", str(tmp_path), "--out",
            str(tmp_path / "s.csv")]
    assert cli.main(args) == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main([*args, "--device", "cuda"]) == 2
    assert "--device cuda was asked for but no CUDA GPU is available" in capsys.readouterr().err


def test_data_options_the_data_set_does_not_take_are_named_not_silently_dropped(tiny_image_zip, no_training, capsys):
    with pytest.raises(_Trained):
        cli.main(["score", "--dataset", "moons", "--backbone", "resnet18", "--image-size", "64",
                  "--text-column", "t", "--no-cache", "--quiet"])
    err = capsys.readouterr().err
    assert "warning: --backbone, --image-size, --text-column do not apply to data set 'moons': ignored" in err, err
    with pytest.raises(_Trained):  # an image zip takes them: no warning
        cli.main(["score", "--dataset", tiny_image_zip, "--image-size", "16", "--no-cache", "--quiet"])
    assert "warning" not in capsys.readouterr().err
