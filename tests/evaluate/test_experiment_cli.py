"""`python -m influence_core experiment`: prints the table, writes JSON, one-line errors."""

import json

import numpy as np

from influence_core.cli import main


def test_experiment_command_writes_json_and_prints_table(tmp_path, capsys):
    out = tmp_path / "results.json"
    args = ["experiment", "--dataset", "blobs", "--model", "logreg", "--methods", "ip,ip_ensemble", "--seeds", "1",
            "--attacks", "1", "--action", "reweight", "--temperature", "2", "--out", str(out), "--quiet",
            "--workspace", str(tmp_path / "ws"), "--project", "exp"]
    rc = main(args)
    assert rc == 0
    text = capsys.readouterr().out
    assert "| full |" in text and "| IP Ensemble |" in text
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"full", "random", "ip", "ip_ensemble"}
    assert data["settings"]["action"] == "reweight" and data["settings"]["temperature"] == 2.0
    # Finished runs are journaled in the project, the base model and scores in the workspace cache: a rerun resumes.
    journal = tmp_path / "ws" / "projects" / "exp" / "experiments" / "journal.jsonl"
    lines = journal.read_text().splitlines()
    assert lines and list((tmp_path / "ws" / "scores").glob("*.npy"))
    assert main(args) == 0 and journal.read_text().splitlines() == lines
    assert "| full |" in capsys.readouterr().out


def test_experiment_errors_are_one_line(capsys):
    assert main(["experiment", "--dataset", "blobs", "--methods", "ip,nosuch", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown method nosuch") and "\n" not in err
    assert main(["experiment", "--dataset", "blobs", "--set", "ip_ensemble.bogus=1", "--methods", "ip_ensemble"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_experiment_on_images_defaults_to_the_cnn_like_score_does(tmp_path, capsys, monkeypatch):
    """Issue 21: without --model, `experiment` trained an MLP on images while `score` and the Model page use the CNN."""
    import io
    import zipfile

    from PIL import Image

    from influence_core.errors import InfluenceError
    from influence_core.project import Project

    path = tmp_path / "tints.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as z:
        for c, name in enumerate(("red", "green")):
            for i in range(8):
                px = rng.integers(0, 90, size=(8, 8, 3))
                px[..., c] += 140
                buf = io.BytesIO()
                Image.fromarray(px.astype(np.uint8)).save(buf, format="PNG")
                z.writestr(f"{name}/{i}.png", buf.getvalue())

    def experiment(self, settings, *args, **kwargs):
        raise InfluenceError(f"stopped before training: model={settings.model}")

    monkeypatch.setattr(Project, "experiment", experiment)
    assert main(["experiment", "--dataset", str(path), "--methods", "ip", "--quiet", "--no-cache"]) == 2
    assert "model=cnn" in capsys.readouterr().err
