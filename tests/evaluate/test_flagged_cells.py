"""`evaluate.baselines.flagged_cells`: the flagged samples by group × label cell, against hand counts."""

import numpy as np
import pytest

from influence_core.evaluate.baselines import flagged_cells


def test_counts_shares_and_weights_by_hand():
    y = np.array([0, 0, 1, 1, 1, 0, 1, 0])
    s = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    frame, sentence = flagged_cells(y, s, np.array([2, 3, 6]), ["no", "yes"], "sex")
    rows = frame.set_index("cell")
    assert rows.loc["sex = 0, label yes", "flagged"] == 2 and rows.loc["sex = 0, label yes", "samples"] == 2
    assert rows.loc["sex = 1, label yes", "flagged"] == 1 and rows.loc["sex = 1, label no", "flagged"] == 0
    assert rows.loc["sex = 0, label yes", "share of flagged"] == pytest.approx(2 / 3)
    assert rows.loc["sex = 1, label yes", "share of the cell flagged"] == pytest.approx(1 / 2)
    # Kamiran–Calders: P(s=0)·P(y=1) / P(s=0, y=1) = 0.5 · 0.5 / 0.25
    assert rows.loc["sex = 0, label yes", "reweighing weight"] == pytest.approx(1.0)
    assert "spread over 2 cells" in sentence


def test_a_ranking_that_picks_one_cell_is_called_out():
    y = np.array([1] * 10 + [0] * 10)
    s = np.array([0] * 5 + [1] * 5 + [0] * 10)
    frame, sentence = flagged_cells(y, s, np.arange(5), ["0", "1"])
    assert frame.iloc[0]["cell"] == "group = 0, label 1" and frame.iloc[0]["flagged"] == 5
    assert sentence.startswith("100% of the flagged samples come from one cell (group = 0, label 1)")
    assert flagged_cells(y, s, np.array([], dtype=np.int64), ["0", "1"])[1] == "No sample is flagged."
