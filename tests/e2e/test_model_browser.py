"""The Model page in a real browser while training runs (issue 12): the estimate sits next to Train; during the run
'No model yet' and Train are hidden; a page refresh shows the running job with its progress; Stop is reported once.

Skipped like tests/e2e/test_browser.py when Chromium or Playwright is missing."""

from __future__ import annotations

from influence_core.project import Project
from tests.e2e.test_browser import served_page, _idle, _shot, _step


def _running(page) -> None:
    """The running job's panel (progress with an epoch line), and neither 'No model yet' nor the Train button."""
    page.get_by_test_id("stProgress").filter(has_text="Training mlp: epoch").wait_for(timeout=60_000)
    page.get_by_text("Training is running").wait_for()  # the form, drawn below the job panel
    _idle(page)
    assert page.get_by_text("No model yet").count() == 0
    assert page.get_by_role("button", name="Train", exact=True).count() == 0


def test_refresh_during_training_shows_the_job_and_stop_is_reported_once(tmp_path):
    Project.open("refresh", tmp_path / "workspace")  # a URL opens a project, never makes one (issue 21)
    with served_page(tmp_path / "workspace") as (server, page):
        page.goto(f"{server.url}/Model?project=refresh")  # a bookmark, first thing on a fresh server
        page.get_by_role("heading", name="Model", exact=True).wait_for()
        page.get_by_text("No model yet").wait_for()
        page.get_by_text("Estimated training time: at most about").wait_for()
        for label, value in (("Epochs", "5000"), ("Early stopping patience", "0")):
            box = page.get_by_role("spinbutton", name=label, exact=True)
            box.fill(value)
            box.press("Enter")  # a form (issue 19): typing and Enter send nothing …
            _idle(page)
        assert page.get_by_text("5000 epochs × 4 batches of 64").count() == 0
        page.get_by_role("button", name="Update the estimate").click()  # … its button sends every setting
        page.get_by_text("5000 epochs × 4 batches of 64").wait_for()  # the estimate follows the form
        _step("train")
        page.get_by_role("button", name="Train", exact=True).click()
        _running(page)
        _step("refresh")
        page.reload()
        page.get_by_role("heading", name="Model", exact=True).wait_for()
        _running(page)
        page.get_by_text("CURRENT WORK").wait_for()  # the whole app (its sidebar too), not the page file alone
        _shot(page, "model-training-after-refresh")
        _step("stop")
        page.get_by_role("button", name="Stop", exact=True).click()
        page.get_by_text("Training was stopped").wait_for(timeout=120_000)
        page.get_by_role("button", name="Train", exact=True).wait_for()
        page.reload()  # reported once: gone after a refresh
        page.get_by_text("No model yet").wait_for()
        _idle(page)
        assert page.get_by_text("Training was stopped").count() == 0
