"""Scores and Explore in a real browser: the method checkboxes, then the feature map — filled markers, a click on a
point selects that sample (shown below the map), the toolbar's lasso around the whole map selects every sample,
and "Review these samples" opens Review with them.

Data: moons, a small MLP, IP and loss scores and the feature map computed through the facade before the server
starts (the page's job path is covered by the AppTest page tests). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

from influence_core.project import Project, ScoreRun
from tests.e2e.test_browser import served_page, _idle, _shot, _step


def test_feature_map_click_lasso_and_review(tmp_path):
    workspace = tmp_path / "workspace"
    proj = Project.open("default", workspace)
    proj.use_dataset("moons", seed=0)
    proj.train("mlp", {"seed": 0, "epochs": 40})
    proj.score(ScoreRun("ip"))
    proj.score(ScoreRun("loss"))
    proj.feature_map()
    ids = proj.source_index()

    with served_page(workspace) as (server, page):
        _step("scores page")
        page.goto(f"{server.url}/Scores?project=default")
        page.get_by_role("heading", name="Scores", exact=True).wait_for()
        page.get_by_text("Scores of all 250 training samples").wait_for()
        _idle(page)
        boxes = page.get_by_test_id("stCheckbox")
        assert boxes.filter(has_text="Self-LiSSA").count() == 1
        assert "≈" in boxes.filter(has_text="Self-LiSSA").inner_text()  # its estimated time here
        _shot(page, "explore-0-scores")

        _step("explore: feature map")
        page.goto(f"{server.url}/Explore?project=default")
        page.get_by_role("heading", name="Explore", exact=True).wait_for()
        _idle(page)
        page.get_by_test_id("stButtonGroup").get_by_text("Feature map", exact=True).click()
        page.locator(".gtitle", has_text="t-SNE map of the model").wait_for()
        _idle(page)
        points = page.locator(".js-plotly-plot .scatterlayer .point")
        assert points.count() == 250
        # filled markers: a visible fill on every point, not white
        fills = points.evaluate_all("els => els.map(e => getComputedStyle(e).fill)")
        assert all(f.startswith("rgb(") and f != "rgb(255, 255, 255)" for f in fills), fills[:5]
        _shot(page, "explore-1-map")

        _step("click one point")
        box = points.nth(17).bounding_box()  # plotly takes clicks on its drag layer, at the point's position
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.get_by_text("1 sample selected").wait_for()
        table = page.get_by_test_id("stDataFrame").last
        table.wait_for()
        _shot(page, "explore-2-clicked")

        _step("lasso around the whole map")
        page.locator(".modebar-btn[data-title='Lasso Select']").click()
        plot = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
        x0, y0, x1, y1 = plot["x"] + 2, plot["y"] + 2, plot["x"] + plot["width"] - 2, plot["y"] + plot["height"] - 2
        page.mouse.move(x0, y0)
        page.mouse.down()
        for x, y in ((x1, y0), (x1, y1), (x0, y1), (x0, y0 + 5)):
            page.mouse.move(x, y, steps=8)
        page.mouse.up()
        page.get_by_text("250 samples selected").wait_for()
        _shot(page, "explore-3-lasso")

        _step("hand the selection to Review")
        page.get_by_role("button", name="Review these samples").click()
        page.get_by_role("heading", name="Review", exact=True).wait_for()
        page.get_by_text("250 samples selected on the Explore map").wait_for()
        _shot(page, "explore-4-review")
    assert len(ids) == 250
