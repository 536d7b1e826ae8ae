"""Text cards in a real browser (issue 18): a text upload's Review cards show each sample's text (long ones
shortened, the rest behind a <details> that opens), and the same keys decide: `r` removes the focused card's sample,
recorded through the facade. Skipped without Chromium / Playwright (see test_browser.py)."""

from __future__ import annotations

from influence_core.data.text import generated_text_frame
from influence_core.project import Project, ScoreRun
from tests.e2e.test_browser import served_page, _goto, _step


def test_text_cards_show_their_text_and_take_the_keys(tmp_path):
    workspace = tmp_path / "workspace"
    _step("building a text project through the facade")
    frame = generated_text_frame(150, num_classes=2, seed=0, topic_rate=0.5)
    frame.loc[::2, "text"] = frame["text"][::2] + " " + " ".join(["filler"] * 80)  # every other text is long
    proj = Project.open("default", workspace)
    proj.upload_dataset(frame.to_csv(index=False).encode(), "reviews.csv")
    proj.train("text-linear", {"seed": 0})
    proj.score(ScoreRun("loss"))
    with served_page(workspace, width=1280, height=900, timeout_ms=120_000) as (server, page):
        page.goto(server.url)
        page.get_by_role("heading", name="Data", exact=True).wait_for()
        _goto(page, "Review")
        cards = page.get_by_test_id("review-card")
        cards.first.wait_for()
        first = cards.first
        sid = int(first.get_attribute("data-id"))
        text = frame["text"][sid]
        shown = first.locator(".rg-text")
        if len(text) > 280:
            assert shown.locator("summary").inner_text().rstrip("…").rstrip() == text[:280].rstrip()
            shown.locator("summary").click()
            assert shown.evaluate("d => d.open")
        else:
            assert shown.inner_text() == text
        row = int(first.get_attribute("data-row"))
        first.locator(".rg-title").click()  # focus the card, as a reviewer does
        tab_stops = "g => [...g.querySelectorAll('*')].filter(n => n.tabIndex >= 0).map(n => n.tagName)"
        assert page.get_by_test_id("review-grid").evaluate(tab_stops) == ["DIV"]  # the focused card, no <summary>
        page.keyboard.press("r")
        page.locator('[data-testid="review-card"][data-state="saved"]').first.wait_for(timeout=60_000)
    decisions = Project.open("default", workspace).current_decisions()
    assert decisions[row].action == "remove"
