"""Scores page, "Data issues" (issue 20): Datalab runs as the project's job; its summary, the issue rankings on the
leaderboard, and each duplicate group's summed influence score."""

import numpy as np

from influence_core.project import Project

from .conftest import no_errors, open_page, settle


def _table_with(at, column):
    return next(t.value for t in at.dataframe if column in t.value.columns)


def test_find_data_issues_runs_as_a_job_and_shows_what_datalab_found(scored):
    at = open_page("3_Scores.py")
    assert any("Not run yet" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Find data issues").click().run()
    at = settle(at)
    no_errors(at)
    found = Project.open("default").data_issues()
    assert found is not None and not found.out_of_fold
    summary = _table_with(at, "count").set_index("issue")
    flagged = found.table.groupby("issue")["is_issue"].sum()
    assert summary["count"].to_dict() == {k: int(v) for k, v in flagged.items()}

    # the issue types are rankings beside the runs on the leaderboard (moons knows its wrong labels)
    from sklearn.metrics import roc_auc_score

    project = Project.open("default")
    board = _table_with(at, "AUROC").set_index("method")
    noisy = project.dataset().noise_mask.numpy().astype(bool)
    for label, scores in project.issue_rankings().items():
        assert np.isclose(board.loc[label, "AUROC"], roc_auc_score(noisy, -scores))
    assert "ip" in board.index

    # what influence adds: each duplicate group's summed IP score, by hand
    assert found.duplicate_sets  # moons has near duplicates relative to its median neighbour distance
    groups = _table_with(at, "summed score").set_index("samples")
    ip, index = project.scores()["ip"], project.source_index()
    by_hand = {", ".join(str(int(index[r])) for r in g): float(ip[g].sum()) for g in found.duplicate_sets}
    assert set(groups.index) <= set(by_hand) and len(groups) == min(50, len(by_hand))
    for samples, row in groups.iterrows():
        assert np.isclose(row["summed score"], by_hand[samples])
        assert ("pulls the validation loss up" in row["effect"]) == (by_hand[samples] < 0)
