"""The command line (influence_core/cli.py), run as a user runs it: a subprocess."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

import influence_core as ic


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "influence_core", *args], capture_output=True, text=True, timeout=timeout)


def test_score_writes_a_well_formed_csv(tmp_path):
    out = tmp_path / "scores.csv"
    res = _run("score", "--dataset", "moons", "--model", "mlp", "--method", "ip", "--impact", "utility",
               "--seed", "0", "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out)
    assert list(table.columns[:4]) == ["index", "label", "class", "score"]
    classes = ic.load_dataset("moons", seed=0).classes  # the names, beside the codes
    assert (table["class"] == [classes[v] for v in table["label"]]).all()
    assert (table["clean_class"] == [classes[v] for v in table["clean_label"]]).all()
    assert (table["label"] != table["clean_label"]).sum() == 20
    assert len(table) == 250 and table["index"].is_unique
    assert table["is_noisy"].sum() == 20
    assert sorted(table["rank"]) == list(range(1, 251))
    assert table.loc[table["score"].idxmin(), "rank"] == 1
    assert table["label"].isin([0, 1]).all() and table["score"].notna().all()


@pytest.mark.parametrize("extra", [["--method", "ip_ensemble", "--ensemble-size", "2", "--dropout", "0.05"],
                                   ["--method", "exact", "--impact", "fairness"],
                                   ["--method", "ip", "--impact", "robustness", "--c", "1.5"]])
def test_score_variants(extra):
    res = _run("score", "--dataset", "blobs", "--model", "logreg", "--quiet", *extra)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].startswith("index,label,class,score,rank")
    assert len(res.stdout.splitlines()) == 151


@pytest.mark.parametrize("args,message", [
    (["score", "--dataset", "moons", "--method", "magic"], "error: unknown method 'magic'; choose one of:"),
    (["score", "--dataset", "nowhere"], "error: unknown data set 'nowhere'"),
    (["score", "--dataset", "moons", "--model", "transformer"], "error: unknown model 'transformer'"),
    (["score", "--dataset", "moons", "--impact", "speed"], "error: unknown impact 'speed'"),
    (["score", "--dataset", "moons", "--seed", "x"], "error: argument --seed: a whole number is needed, not 'x'"),
    (["score", "--dataset", "moons", "--method", "ip_ensemble", "--set", "depth=3"], "has no setting depth"),
])
def test_bad_arguments_fail_with_one_line(args, message):
    res = _run(*args, "--quiet")
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_listings():
    methods = _run("methods")
    assert methods.returncode == 0
    for name in ("ip", "ip_ensemble", "exact"):
        assert any(line.split()[0] == name for line in methods.stdout.splitlines() if line.strip())
    assert "ensemble_size=5" in methods.stdout and "dropout=0.01" in methods.stdout
    datasets = _run("datasets")
    assert "blobs" in datasets.stdout and "moons" in datasets.stdout


def test_score_out_of_fold_with_training_flags_matches_the_library(tmp_path):
    import numpy as np

    import influence_core as ic
    from influence_core.models import TrainConfig

    out = tmp_path / "oof.csv"
    res = _run("score", "--dataset", "moons", "--model", "mlp", "--method", "ip_combined", "--folds", "2", "--epochs", "40",
               "--patience", "5", "--weight-decay", "0.002", "--val-trim", "0.2", "--no-cache", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "target (utility): 80 of 100 validation samples; 20 left out as least plausible" in res.stderr
    assert "fold 2/2" in res.stderr  # progress over folds
    ds = ic.load_dataset("moons", seed=0)
    fitted = ic.train_model(ds, "mlp", TrainConfig(epochs=40, patience=5, l2=0.002))
    expected = ic.compute_scores(ds, fitted, "ip_combined", folds=2, impact_settings={"val_trim": 0.2})
    np.testing.assert_allclose(pd.read_csv(out)["score"].to_numpy(), expected, atol=1e-9)


def test_score_warns_when_the_model_memorises(tmp_path):
    import numpy as np

    # Random labels on 150 random features: a logistic regression fits any 100 training labels, learns nothing.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 150)), columns=[f"f{i}" for i in range(150)])
    frame["label"] = rng.integers(0, 2, 200)
    frame.to_csv(tmp_path / "random.csv", index=False)
    res = _run("score", "--dataset", str(tmp_path / "random.csv"), "--model", "logreg", "--l2", "1e-6",
               "--val-fraction", "0.4", "--method", "loss", "--no-cache", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "warning: training accuracy 100%" in res.stderr and "use out-of-fold scoring" in res.stderr
    blobs = _run("score", "--dataset", "blobs", "--model", "logreg", "--method", "loss", "--no-cache", "--quiet")
    assert blobs.returncode == 0 and "warning" not in blobs.stderr
    res = _run("score", "--dataset", "blobs", "--model", "logreg", "--folds", "1", "--quiet")
    assert res.returncode == 2 and "--folds takes 0" in res.stderr


def test_score_says_when_the_hessian_is_not_positive_definite_and_trains_checkpoints_for_tracin(tmp_path):
    res = _run("score", "--dataset", "moons", "--model", "mlp", "--method", "exact", "--damping", "0", "--no-cache",
               "--quiet")
    assert res.returncode == 0, res.stderr
    assert "warning: the Hessian is not positive definite (smallest eigenvalue -" in res.stderr
    res = _run("score", "--dataset", "moons", "--model", "mlp", "--method", "tracin", "--epochs", "50", "--no-cache",
               "--out", str(tmp_path / "t.csv"))
    assert res.returncode == 0, res.stderr
    assert "note: tracin needs training checkpoints: training with --checkpoint-every 10" in res.stderr
    assert len(pd.read_csv(tmp_path / "t.csv")) == 250


def test_a_file_the_machine_refuses_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    from influence_core import cli

    monkeypatch.setenv("INFLUENCE_WORKSPACE", str(tmp_path / "ws"))
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "a-file" / "scores.csv"  # its folder is a file: no write can succeed
    code = cli.main(["score", "--dataset", "moons", "--model", "logreg", "--method", "loss", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "a-file" in err and "Traceback" not in err


def test_score_with_annotator_columns_adds_cleanlabs_consensus(tmp_path):
    """Issue 20 §4: --annotator-column (repeatable) reads further label columns; the consensus joins the scores."""
    import numpy as np
    from cleanlab.multiannotator import get_label_quality_multiannotator

    from influence_core.project import Project

    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 2))
    y = (x[:, 0] > 0).astype(int)
    coin = rng.integers(0, 2, 150)
    pd.DataFrame({"f1": x[:, 0], "f2": x[:, 1], "a": y, "b": coin, "label": y}).to_csv(tmp_path / "c.csv", index=False)
    out, ws = tmp_path / "s.csv", tmp_path / "ws"
    res = _run("score", "--dataset", str(tmp_path / "c.csv"), "--model", "logreg", "--method", "loss", "--quiet",
               "--annotator-column", "a", "--annotator-column", "b", "--workspace", str(ws), "--out", str(out))
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out)
    proj = Project.open("cli", ws)
    direct = get_label_quality_multiannotator(proj.dataset().annotators, proj.predictions()[1], verbose=False)
    assert table["consensus_label"].tolist() == direct["label_quality"]["consensus_label"].tolist()
    # the report renormalises predictions()' float32 probabilities in float64: equal to float32 precision
    np.testing.assert_allclose(table["consensus_quality"], direct["label_quality"]["consensus_quality_score"], rtol=1e-6)
    res = _run("score", "--dataset", str(tmp_path / "c.csv"), "--annotator-column", "nope", "--no-cache")
    assert res.returncode == 2 and res.stderr.strip().startswith("error: no annotator column 'nope' in 'c.csv'")
    assert len(res.stderr.strip().splitlines()) == 1


def _layers_on_the_stack(frame) -> list[str]:
    """The package's modules on the call stack, outermost first, one entry per stretch of frames in one module; the
    CLI's modules (`cli`, `cli_args`: its commands and their dispatcher) are one front end, and a nested function (a
    closure a layer hands down: the store's ``compute``, the fold walker's scorer) counts as its caller's, not as a
    return to the module that wrote it."""
    import influence_core

    names = []
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith(influence_core.__name__) and "<locals>" not in frame.f_code.co_qualname:
            names.append("influence_core.cli" if module == "influence_core.cli_args" else module)
        frame = frame.f_back
    names.reverse()
    return [m for i, m in enumerate(names) if i == 0 or names[i - 1] != m]


def test_a_score_parameter_passes_cli_facade_engine_method_without_coming_back(tmp_path, monkeypatch):
    """Issue 19: `score --damping` reaches exact influence through the CLI, the facade and the engine (out of fold:
    the fold walker), each module left once and for good — no layer calls back into one it left."""
    import sys as _sys

    from influence_core import cli
    from influence_core.methods.exact import ExactInfluence

    seen = []
    real = ExactInfluence.prepare

    def spy(self, ctx):
        seen.append((self.settings.damping, _layers_on_the_stack(_sys._getframe(1))))
        return real(self, ctx)

    monkeypatch.setattr(ExactInfluence, "prepare", spy)
    out = tmp_path / "s.csv"
    code = cli.main(["score", "--dataset", "moons", "--model", "logreg", "--epochs", "30", "--method", "exact",
                     "--damping", "0.37", "--folds", "2", "--no-cache", "--quiet", "--out", str(out)])
    assert code == 0 and len(pd.read_csv(out)) == 250
    assert len(seen) == 2  # one fold model scores each half
    for damping, chain in seen:
        assert damping == 0.37
        assert len(chain) == len(set(chain)), chain  # no module entered twice
        layers = ["influence_core.cli", "influence_core.project", "influence_core.engine", "influence_core.methods"]
        at = [next(i for i, m in enumerate(chain) if m.startswith(layer)) for layer in layers]
        assert at == sorted(at), chain  # front end → facade → engine → method, in that order
