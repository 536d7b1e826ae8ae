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
