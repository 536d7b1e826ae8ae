"""The state's types: score-run labels and flagged rows (the state file itself: tests/test_project.py)."""

import numpy as np

from influence_core.state import ScoreRun, Selection, flagged_rows


def test_switching_data_set_clears_model_and_runs():
    sel = Selection()
    sel.arch, sel.train, sel.model_hash = "mlp", {"epochs": 5}, "abc"
    sel.add_run(ScoreRun("ip_ensemble", settings={"ensemble_size": 3}))
    sel.primary = "ip_ensemble[K=3]"  # chosen on Review (adding a run chooses nothing: Project.primary_run)
    sel.set_dataset("moons", {"seed": 0})  # the same data set: nothing changes
    assert sel.arch == "mlp" and sel.primary == "ip_ensemble[K=3]"
    sel.set_dataset("blobs", {"seed": 1})
    assert sel.arch is None and sel.runs == [] and sel.primary is None


def test_run_labels_name_every_setting_that_changes_the_scores():
    assert ScoreRun("ip").label == "ip"
    assert ScoreRun("loss", folds=5).label == "loss·oof5"
    assert ScoreRun("ip", "robustness", impact_settings={"epsilon": 0.2}).label == "ip·robustness·epsilon=0.2"
    assert ScoreRun("ip", impact_settings={"val_trim": 0.0}).label == "ip·trim=0"


def test_flagged_rows_are_the_lowest_scores():
    s = np.array([0.3, -2.0, 1.0, -0.5, 0.0, -1.0, 2.0, 0.1, -0.1, 0.2])
    assert flagged_rows(s, 0.3).tolist() == [1, 5, 3]
    assert flagged_rows(s, 0.0).tolist() == [1]
