"""Projects in a real browser: two people (two browser contexts) on one server, on projects ``a`` and ``b``. ``a``
switches to blobs and ``b`` still shows its own data set; ``a`` reloads and is still on blobs; an Undo in ``b`` takes
back ``b``'s own decision and leaves ``a``'s decisions untouched.

Both projects (moons, logistic regression, IP scores) are built up-front through the facade. Skipped without
Chromium / Playwright (see test_browser.py, whose launch helpers this reuses).
"""

from __future__ import annotations

from influence_core.project import Project, ScoreRun
from influence_core.review import DecisionLog
from tests.e2e.test_browser import CHROMIUM, Server, _goto, _idle, _step, playwright_api


def _build(workspace) -> tuple[Project, Project]:
    projects = []
    for name in ("a", "b"):
        proj = Project.open(name, workspace)
        proj.use_dataset("moons", seed=0)
        proj.train("logreg")
        proj.score(ScoreRun("ip"))
        projects.append(proj)
    return projects[0], projects[1]


def _data_set_shown(page) -> str:
    """The data set the Data page says is current (its subheader, 'moons · tabular')."""
    page.get_by_role("heading", name="Data", exact=True).wait_for()
    _idle(page)
    return page.locator("h3").filter(has_text="·").first.inner_text().split("·")[0].strip()


def test_two_sessions_on_two_projects_never_mix(tmp_path):
    workspace = tmp_path / "workspace"
    a, b = _build(workspace)
    a_scope = a.decision_scope()
    a.record([0, 1], "remove", session="earlier")  # a's decisions, made before today's sessions
    server = Server(workspace)
    try:
        with playwright_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            ctx_a, ctx_b = browser.new_context(), browser.new_context()
            page_a, page_b = ctx_a.new_page(), ctx_b.new_page()
            for page in (page_a, page_b):
                page.set_default_timeout(90_000)
            page_a.goto(f"{server.url}/?project=a")
            page_b.goto(f"{server.url}/?project=b")
            assert _data_set_shown(page_a) == "moons" and _data_set_shown(page_b) == "moons"

            _step("a switches to blobs")
            page_a.get_by_test_id("stMain").get_by_test_id("stSelectbox").filter(has_text="Data set").click()
            page_a.get_by_role("option").filter(has_text="blobs —").click()
            page_a.get_by_role("button", name="Use this data set").click()
            page_a.locator("h3").filter(has_text="blobs").first.wait_for()
            page_b.reload()
            assert _data_set_shown(page_b) == "moons"
            page_a.reload()
            assert _data_set_shown(page_a) == "blobs" and "project=a" in page_a.url
            # A bookmark of a page that stops early (blobs has no model yet): the app's sidebar with a's current work.
            page_a.goto(f"{server.url}/Review?project=a")
            page_a.get_by_text("No model yet").wait_for()
            sidebar = page_a.get_by_test_id("stSidebar")
            sidebar.get_by_text("CURRENT WORK").wait_for()
            assert "blobs" in sidebar.inner_text()

            _step("b decides one sample by keyboard, then undoes it")
            _goto(page_b, "Review")
            assert "project=b" in page_b.url
            cards = page_b.get_by_test_id("review-card")
            cards.first.wait_for()
            _idle(page_b)
            cards.first.locator(".rg-title").click()
            page_b.keyboard.press("r")
            page_b.locator('[data-testid="review-card"][data-state="saved"]').first.wait_for()
            page_b.get_by_test_id("review-sync").filter(has_text="every decision saved").wait_for()
            assert len(b.current_decisions()) == 1
            page_b.get_by_role("button", name="Undo").click()
            page_b.get_by_text("Undid your last decision").first.wait_for()
            browser.close()
    finally:
        server.stop()
    assert b.current_decisions() == {}
    assert set(DecisionLog(a.folder / "decisions.sqlite").current(a_scope)) == {0, 1}  # a's decisions untouched
    assert Project.open("a", workspace).dataset().name == "blobs" and b.dataset().name == "moons"
