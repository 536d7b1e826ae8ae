"""`python -m influence_core export --project P --format F --out F.zip` (issue 20 §7): the project's export through
the facade, written as the zip; an unknown project or format is one line."""

from __future__ import annotations

import io
import zipfile

import pytest

from influence_core.cli import main
from influence_core.project import Project, ScoreRun

datasets = pytest.importorskip("datasets")


@pytest.fixture
def project(tmp_path) -> Project:
    proj = Project.open("audit", tmp_path / "ws")
    proj.use_dataset("moons", n_samples=120, seed=0)
    proj.train("logreg")
    proj.score(ScoreRun("loss"))
    proj.record([2], "remove")
    proj.record([3], "relabel", 1 - int(proj.dataset().train.y[3]))
    return proj


def test_export_writes_the_projects_zip(project, tmp_path, capsys):
    out = tmp_path / "out" / "audit.zip"
    assert main(["export", "--project", "audit", "--workspace", str(tmp_path / "ws"), "--format", "hugging_face",
                 "--out", str(out), "--all-rows"]) == 0
    assert "wrote the hugging_face export" in capsys.readouterr().err
    facade = zipfile.ZipFile(io.BytesIO(project.export_as("hugging_face", all_rows=True)))
    assert zipfile.ZipFile(out).namelist() == facade.namelist()  # what the facade writes
    with zipfile.ZipFile(out) as z:
        z.extractall(tmp_path / "x")
    train = datasets.load_from_disk(str(tmp_path / "x" / "moons-hugging_face"))["train"]
    assert len(train) == len(project.dataset().train) and train["review"][2:4] == ["removed", "relabelled"]


@pytest.mark.parametrize("args, message", [
    (["--project", "nobody", "--format", "hugging_face"], "no project 'nobody'"),
    (["--project", "audit", "--format", "coco"], "unknown export format 'coco'"),
    (["--project", "audit", "--format", "fiftyone"], "FiftyOne dataset export holds image data sets"),
])
def test_export_refusals_are_one_line(project, tmp_path, capsys, args, message):
    assert main(["export", *args, "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "o.zip")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "o.zip").exists()
