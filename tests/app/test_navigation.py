"""The router: every page file present is reachable, including Evaluate when it exists, and none errors."""

from pathlib import Path

import pytest

from .conftest import APP, no_errors, open_page

PAGES = sorted(p.name for p in (Path(APP).parent / "pages").glob("[0-9]_*.py"))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_on_a_scored_workspace(scored, page):
    at = open_page(page)
    no_errors(at)
    if page != "7_Evaluate.py":  # Evaluate belongs to another part of the project; it only has to open cleanly
        assert at.title[0].value == page.split("_", 1)[1].removesuffix(".py")


@pytest.mark.parametrize("page, next_page", [("1_Data.py", "Model"), ("2_Model.py", "Scores"),
                                             ("3_Scores.py", "Explore"), ("4_Explore.py", "Review")])
def test_each_step_done_links_to_the_next_page(scored, page, next_page):
    at = open_page(page)
    no_errors(at)
    assert [link.proto.page for link in at.get("page_link") if link.proto.label.startswith("Next:")] == [next_page]
