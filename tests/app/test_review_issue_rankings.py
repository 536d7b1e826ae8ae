"""Review page (issue 20): a data issue type found by Datalab is a ranking to order by, like a computed run, and the
choice is kept."""

from __future__ import annotations

import numpy as np

from .conftest import no_errors, open_page, project_of
from .test_review_page import _ordered_by, _rows


def test_order_by_an_issue_type_lists_the_likeliest_first_and_is_kept(scored):
    proj = project_of(scored)
    proj.find_data_issues()
    outlier = proj.issue_rankings()["issue: outlier"]
    at = open_page("5_Review.py")
    no_errors(at)
    assert "issue: outlier" in at.selectbox[0].options
    at.selectbox[0].set_value("issue: outlier").run()
    no_errors(at)
    assert _ordered_by(at) == ["Ordered by: issue: outlier"]
    rows = _rows(at)
    assert rows == np.argsort(outlier, kind="stable")[: len(rows)].tolist()
    assert sorted(proj.flagged("issue: outlier").tolist()) == sorted(
        np.argsort(outlier, kind="stable")[: len(proj.flagged("issue: outlier"))].tolist())
    again = open_page("5_Review.py")  # a fresh session keeps the choice
    assert again.selectbox[0].value == "issue: outlier" and _rows(again) == rows
