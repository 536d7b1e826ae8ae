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
