"""`score --dataset file.csv --text-column NAME` (issue 18 §1): sentence pairs load as one text, the text-linear
model is the default, and the scores are the library's."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

from influence_core.api import compute_scores
from influence_core.data import load_dataset
from influence_core.data.text import TEXT_SEPARATOR, generated_text_frame
from influence_core.models import TrainConfig, train_model


def test_score_a_csv_of_sentence_pairs(tmp_path):
    frame = generated_text_frame(150, num_classes=2, seed=5, topic_rate=0.5)
    words = frame["text"].str.split()
    pairs = pd.DataFrame({"premise": words.str[:4].str.join(" "), "hypothesis": words.str[4:].str.join(" "),
                          "label": frame["label"]})
    path = tmp_path / "pairs.csv"
    pairs.to_csv(path, index=False)
    out = tmp_path / "scores.csv"
    res = subprocess.run([sys.executable, "-m", "influence_core", "score", "--dataset", str(path), "--text-column",
                          "premise", "--text-column", "hypothesis", "--method", "ip", "--no-cache", "--quiet",
                          "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out).sort_values("index")

    ds = load_dataset(str(path), text_columns=["premise", "hypothesis"])
    rows = ds.source_index.numpy()
    assert ds.texts["train"][0] == pairs["premise"][rows[0]] + TEXT_SEPARATOR + pairs["hypothesis"][rows[0]]
    expected = compute_scores(ds, train_model(ds, "text-linear", TrainConfig(seed=0)), "ip")
    np.testing.assert_allclose(table["score"].to_numpy(), expected[np.argsort(rows)], rtol=1e-4, atol=1e-7)


def test_tfidf_flags_reach_the_features_through_the_project(tmp_path, capsys):
    """--ngram-max / --min-df / --max-features become the project's data-set settings and the vectorizer's own
    (checked against scikit-learn fitted on the training texts); a value over its cap is one line, status 2."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from influence_core.cli import main
    from influence_core.project import Project

    path = tmp_path / "docs.csv"
    generated_text_frame(150, num_classes=2, seed=5, topic_rate=0.5).to_csv(path, index=False)
    out, ws = tmp_path / "scores.csv", tmp_path / "ws"
    common = ["score", "--dataset", str(path), "--text-column", "text", "--workspace", str(ws), "--quiet"]
    assert main([*common, "--ngram-max", "1", "--min-df", "3", "--max-features", "40", "--method", "ip",
                 "--out", str(out)]) == 0
    proj = Project.open("cli", str(ws))
    assert {"ngram_max": 1, "min_df": 3, "max_features": 40}.items() <= proj.state().dataset_kwargs.items()
    ds = proj.dataset()
    vec = TfidfVectorizer(min_df=3, max_features=40, sublinear_tf=True).fit(ds.texts["train"])
    assert ds.input_shape == (40,) and ds.meta["tfidf"]["ngram_max"] == 1
    np.testing.assert_allclose(ds.train.x.numpy(), vec.transform(ds.texts["train"]).toarray(), rtol=1e-5, atol=1e-6)
    table = pd.read_csv(out).sort_values("index")
    expected = compute_scores(ds, train_model(ds, "text-linear", TrainConfig(seed=0)), "ip")
    np.testing.assert_allclose(table["score"].to_numpy(), expected[np.argsort(ds.source_index.numpy())],
                               rtol=1e-4, atol=1e-7)
    capsys.readouterr()
    assert main([*common, "--max-features", "1000000", "--method", "ip", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: TF-IDF setting max_features must be a whole number from 1 to 65,536, not '1000000'"


def test_perturbed_column_gives_the_counterfactual_twins(tmp_path):
    """`--perturbed-column NAME`: each row's twin comes from that column (not the built-in word swaps, and the column
    is not a second text column); the counterfactual scores equal the library's on the same data set."""
    frame = generated_text_frame(150, num_classes=2, seed=5, topic_rate=0.5)
    common = frame["text"].str.split().explode().value_counts().index[0]  # a word every vocabulary knows
    frame["swapped"] = [f"{common} {t}" if i % 3 == 0 else t for i, t in enumerate(frame["text"])]
    path = tmp_path / "twins.csv"
    frame[["text", "swapped", "label"]].to_csv(path, index=False)
    out = tmp_path / "scores.csv"
    res = subprocess.run([sys.executable, "-m", "influence_core", "score", "--dataset", str(path), "--text-column",
                          "text", "--perturbed-column", "swapped", "--impact", "counterfactual", "--method", "ip",
                          "--no-cache", "--quiet", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    ds = load_dataset(str(path), text_columns=["text"], perturbed_column="swapped")
    assert ds.meta["text_columns"] == ["text"] and ds.meta["perturbed_column"] == "swapped"
    rows = ds.meta["val_source_index"]
    assert ds.texts["val"] == frame["text"].iloc[rows].tolist()
    expected = compute_scores(ds, train_model(ds, "text-linear", TrainConfig(seed=0)), "ip", "counterfactual")
    table = pd.read_csv(out).sort_values("index")
    np.testing.assert_allclose(table["score"].to_numpy(), expected[np.argsort(ds.source_index.numpy())],
                               rtol=1e-4, atol=1e-7)


def test_training_settings_out_of_range_are_one_line_before_anything_runs(tmp_path):
    """Negative or zero epochs, learning rate, weight decay, seed, batch size: exit 2 and one `error:` line each."""
    for flags, said in [(["--lr", "-1"], "training setting lr must be a number above 0"),
                        (["--l2", "-5"], "training setting l2 must be a number at least 0"),
                        (["--epochs", "0"], "argument --epochs: must be at least 1, not 0"),
                        (["--seed", "-1"], "argument --seed: must be at least 0, not -1"),
                        (["--batch-size", "0"], "argument --batch-size: must be at least 1, not 0")]:
        res = subprocess.run([sys.executable, "-m", "influence_core", "score", "--dataset", "moons", "--method",
                              "loss", "--no-cache", "--quiet", "--out", str(tmp_path / "x.csv"), *flags],
                             capture_output=True, text=True, timeout=300)
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert res.returncode == 2 and len(lines) == 1 and said in lines[0], (flags, res.stderr)
        assert "Traceback" not in res.stderr and not (tmp_path / "x.csv").exists()
