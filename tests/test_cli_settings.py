"""CLI (issue 10): --impact-set for `score` and `experiment`, one data-set-arguments helper, and `experiment`
honouring --workspace and --no-cache. Run in-process through `influence_core.cli.main` on tiny settings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from influence_core.cli import build_parser, dataset_arguments, impact_settings_from_args, main

TINY = ["--model", "logreg", "--quiet"]


def _score_metas(root) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / "scores").glob("*.json"))]


def test_impact_set_and_the_named_flags_feed_the_same_settings(tmp_path):
    ws = tmp_path / "ws"
    base = ["score", "--dataset", "blobs", *TINY, "--impact", "robustness", "--workspace", str(ws)]
    assert main([*base, "--impact-set", "c=2", "--impact-set", "val_trim=0", "--out", str(tmp_path / "a.csv")]) == 0
    (meta,) = _score_metas(ws)
    assert meta["impact_settings"] == {"c": 2, "val_trim": 0}
    # the same settings through the older flags: the same cache entry, the same scores
    assert main([*base, "--c", "2.0", "--trust-val", "--out", str(tmp_path / "b.csv")]) == 0
    assert len(_score_metas(ws)) == 1
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    np.testing.assert_array_equal(a["score"], b["score"])
    # a different setting is a different entry with different scores
    assert main([*base, "--impact-set", "c=3", "--impact-set", "val_trim=0", "--out", str(tmp_path / "c.csv")]) == 0
    assert len(_score_metas(ws)) == 2
    assert not np.allclose(a["score"], pd.read_csv(tmp_path / "c.csv")["score"])


def test_named_flags_for_another_impact_are_ignored_impact_set_keys_are_not(capsys):
    parser = build_parser()
    args = parser.parse_args(["score", "--dataset", "blobs", "--c", "1.5", "--epsilon", "0.2", "--positive-class", "0",
                              "--val-trim", "0.2"])
    assert impact_settings_from_args(args, "utility") == {"val_trim": 0.2}
    assert impact_settings_from_args(args, "fairness") == {"positive_class": 0}
    assert impact_settings_from_args(args, "robustness") == {"c": 1.5, "epsilon": 0.2, "val_trim": 0.2}
    args = parser.parse_args(["score", "--dataset", "blobs", "--val-trim", "0.2", "--impact-set", "val_trim=0.3",
                              "--impact-set", "positive_class=null"])
    assert impact_settings_from_args(args, "utility") == {"val_trim": 0.3}  # --impact-set wins; null = default


@pytest.mark.parametrize("command", ["score", "experiment"])
@pytest.mark.parametrize("extra, expected", [
    (["--impact-set", "epsilon=0.2"], "error: impact 'utility' has no setting epsilon; it takes: val_trim"),
    (["--impact", "fairness", "--impact-set", "bogus=1"], "error: impact 'fairness' has no setting bogus; it takes: positive_class"),
    (["--impact-set", "val_trim"], "error: --impact-set expects key=value, got 'val_trim'"),
    (["--impact-set", "val_trim=\"a\""], "error: impact 'utility': setting val_trim must be a float, got 'a'"),
])
def test_a_bad_impact_setting_is_a_one_line_error(command, extra, expected, tmp_path, capsys):
    extra_args = ["--methods", "ip"] if command == "experiment" else []
    assert main([command, "--dataset", "blobs", *TINY, "--workspace", str(tmp_path), *extra_args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err == expected
    assert not (tmp_path / "models").exists()  # refused before any training


def test_one_data_set_helper_for_score_and_experiment():
    parser = build_parser()
    data = ["--dataset", "cifar10n", "--max-train", "100", "--images", "imgs", "--download", "--missing", "refuse",
            "--label-set", "worst", "--val-fraction", "0.3"]
    expected = {"max_train": 100, "images": "imgs", "download": True, "missing": "refuse", "label_set": "worst",
                "val_fraction": 0.3}
    assert dataset_arguments(parser.parse_args(["score", *data])) == expected
    from influence_core.evaluate.cli import settings_from_args

    assert settings_from_args(parser.parse_args(["experiment", *data])).dataset_kwargs == expected
    assert dataset_arguments(parser.parse_args(["score", "--dataset", "blobs"])) == {}


@pytest.mark.parametrize("command", ["score", "experiment"])
def test_missing_reaches_the_loader_in_both_commands(command, tmp_path, capsys):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60), "label": rng.integers(0, 2, 60)})
    frame.loc[3, "a"] = np.nan
    path = tmp_path / "holes.csv"
    frame.to_csv(path, index=False)
    extra = ["--methods", "ip", "--seeds", "1", "--attacks", "0"] if command == "experiment" else []
    assert main([command, "--dataset", str(path), *TINY, "--no-cache", "--missing", "refuse", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "missing" in err


def _experiment(*extra: str) -> list[str]:
    return ["experiment", "--dataset", "blobs", *TINY, "--methods", "ip", "--seeds", "1", "--attacks", "0", *extra]


def test_experiment_keeps_its_model_and_scores_in_the_workspace(tmp_path, capsys):
    ws = tmp_path / "ws"
    assert main(_experiment("--workspace", str(ws), "--impact", "robustness", "--impact-set", "val_trim=0")) == 0
    assert len(list((ws / "models").glob("*/meta.json"))) == 1
    (meta,) = _score_metas(ws)
    assert meta["method"] == "ip" and meta["impact"] == "robustness"
    assert meta["impact_settings"] == {"c": 1.3, "epsilon": 0.1, "val_trim": 0}
    # `score` with the same data, model and settings finds the experiment's entry
    assert main(["score", "--dataset", "blobs", *TINY, "--workspace", str(ws), "--impact", "robustness", "--trust-val",
                 "--out", str(tmp_path / "s.csv")]) == 0
    assert len(_score_metas(ws)) == 1 and len(list((ws / "models").glob("*/meta.json"))) == 1
    np.testing.assert_allclose(pd.read_csv(tmp_path / "s.csv")["score"], np.load(ws / "scores" / f"{meta['key']}.npy"))


def test_experiment_with_no_cache_reads_and_writes_no_workspace(tmp_path, monkeypatch, capsys):
    env_ws = tmp_path / "env"
    monkeypatch.setenv("INFLUENCE_WORKSPACE", str(env_ws))
    assert main(_experiment("--workspace", str(tmp_path / "ws"), "--no-cache")) == 0
    assert main(_experiment("--no-cache")) == 0
    assert not (tmp_path / "ws").exists() and not env_ws.exists()
    # without --workspace the default workspace ($INFLUENCE_WORKSPACE) is used, as by `score`
    assert main(_experiment()) == 0
    assert len(_score_metas(env_ws)) == 1


def test_score_with_no_cache_is_the_same_pipeline_in_a_temporary_workspace(tmp_path, monkeypatch, capsys):
    import tempfile

    import influence_core as ic

    env_ws, temp = tmp_path / "env", tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("INFLUENCE_WORKSPACE", str(env_ws))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    out = tmp_path / "s.csv"
    assert main(["score", "--dataset", "blobs", *TINY, "--workspace", str(tmp_path / "ws"), "--no-cache",
                 "--out", str(out)]) == 0
    assert not env_ws.exists() and not (tmp_path / "ws").exists()
    assert list(temp.iterdir()) == []  # the temporary workspace is gone
    ds = ic.load_dataset("blobs", seed=0)
    expected = ic.compute_scores(ds, ic.train_model(ds, "logreg", ic.TrainConfig(seed=0)), "ip")
    table = pd.read_csv(out)
    np.testing.assert_allclose(table["score"], expected, rtol=1e-6)
    np.testing.assert_array_equal(table["rank"], np.argsort(np.argsort(expected, kind="stable")) + 1)
    np.testing.assert_array_equal(table["label"], ds.train.y.numpy())


def test_experiment_with_no_cache_keeps_its_runs_next_to_out_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INFLUENCE_WORKSPACE", str(tmp_path / "env"))
    out = tmp_path / "results.json"
    assert main(_experiment("--no-cache", "--out", str(out))) == 0
    journal = tmp_path / "results.runs.jsonl"
    lines = journal.read_text().splitlines()
    assert "finished runs: results.runs.jsonl" in capsys.readouterr().err
    runs = [json.loads(line) for line in lines]
    assert {r["method"] for r in runs if r["type"] == "run"} == {"full", "random", "ip"}
    assert main(_experiment("--no-cache", "--out", str(out))) == 0
    assert journal.read_text().splitlines() == lines  # resumed: nothing ran again
    assert json.loads(out.read_text())["results"].keys() == {"full", "random", "ip"}
    assert not (tmp_path / "env").exists()


def test_the_equalized_odds_label_has_a_flag_that_reaches_the_impact(tmp_path):
    """Issue 17: --odds-label restricts the equalised-odds gap to one label (1: TPR gap, 0: FPR gap), as the library's
    ``make_impact("equalized_odds", label=...)`` does; other impacts ignore it."""
    from influence_core.api import compute_scores
    from influence_core.project import InfluenceError, Project

    parser = build_parser()
    args = parser.parse_args(["score", "--dataset", "blobs", "--odds-label", "0", "--positive-class", "1"])
    assert impact_settings_from_args(args, "equalized_odds") == {"label": 0, "positive_class": 1}
    assert impact_settings_from_args(args, "utility+equalized_odds") == {"label": 0, "positive_class": 1}
    assert impact_settings_from_args(args, "fairness") == {"positive_class": 1}  # not an impact that takes it
    assert "label" not in impact_settings_from_args(parser.parse_args(["score", "--dataset", "blobs"]), "equalized_odds")
    with pytest.raises(InfluenceError, match=r"^argument --odds-label: invalid choice: 2 \(choose from 0, 1\)"):
        parser.parse_args(["score", "--dataset", "blobs", "--odds-label", "2"])
    ws = tmp_path / "ws"
    base = ["score", "--dataset", "blobs", *TINY, "--method", "ip", "--impact", "equalized_odds", "--workspace", str(ws),
            "--project", "eo"]
    assert main([*base, "--odds-label", "1", "--out", str(tmp_path / "tpr.csv")]) == 0
    assert main([*base, "--out", str(tmp_path / "both.csv")]) == 0
    proj = Project.open("eo", ws)
    ds, fitted = proj.dataset(), proj.model()
    expected = compute_scores(ds, fitted, "ip", "equalized_odds", impact_settings={"label": 1})
    np.testing.assert_allclose(pd.read_csv(tmp_path / "tpr.csv")["score"], expected, rtol=1e-6, atol=1e-9)
    assert not np.allclose(pd.read_csv(tmp_path / "both.csv")["score"], expected)
