"""The selection on disk, upload storage, flagged rows and the local model / score cache."""


import numpy as np

from influence_core.session import ScoreRun, Selection, flagged_rows, load_selection, save_selection


def test_selection_round_trip_and_fallback(tmp_path):
    sel = Selection()
    sel.arch, sel.train, sel.model_hash = "mlp", {"epochs": 5}, "abc"
    sel.add_run(ScoreRun("ip_ensemble", settings={"ensemble_size": 3}))
    save_selection(sel, tmp_path)
    back = load_selection(tmp_path)
    assert back == sel and back.runs[0].label == "ip_ensemble[K=3]" and back.primary == "ip_ensemble[K=3]"
    assert back.train_config().epochs == 5
    back.set_dataset("blobs", {"seed": 1})
    assert back.arch is None and back.runs == []
    (tmp_path / "selection.json").write_text("{not json")
    assert load_selection(tmp_path) == Selection()  # a broken file falls back to the default (moons)


def test_flagged_rows_are_the_lowest_scores():
    s = np.array([0.3, -2.0, 1.0, -0.5, 0.0, -1.0, 2.0, 0.1, -0.1, 0.2])
    assert flagged_rows(s, 0.3).tolist() == [1, 5, 3]
    assert flagged_rows(s, 0.0).tolist() == [1]
