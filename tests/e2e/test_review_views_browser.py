"""Review's views in a real browser (issue 20): an address naming a class pair opens Review on exactly those
samples, a button under the class-pair map opens Review on its pair (the address changes with it, the project stays),
reloading that address (a bookmark) shows the same cards, a click on a cell of the map opens its pair (on the diagonal
it says there is nothing to review), and `m` on a card shows it and its nearest neighbours.

Data: moons, a small MLP and IP scores computed through the facade before the server starts."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import numpy as np
from playwright.sync_api import expect

from influence_core.project import Project, ScoreRun
from tests.e2e.test_browser import _idle, _shot, _step, served_page


def _card_rows(page) -> list[int]:
    cards = page.get_by_test_id("review-card")
    cards.first.wait_for()
    _idle(page)
    return [int(cards.nth(i).get_attribute("data-row")) for i in range(cards.count())]


def _click_point(page, point) -> None:
    """Click a Plotly marker where it is drawn (Plotly takes clicks on its drag layer, at the point's position)."""
    point.scroll_into_view_if_needed()
    _idle(page)
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_a_class_pair_from_the_address_and_from_the_map(tmp_path):
    workspace = tmp_path / "workspace"
    proj = Project.open("default", workspace)
    ds = proj.use_dataset("moons", seed=0)
    proj.train("mlp", {"seed": 0, "epochs": 40})
    proj.score(ScoreRun("ip"))
    y, (preds, _) = ds.train.y.numpy(), proj.predictions()
    flagged = proj.flagged()
    a, b = ds.classes

    with served_page(workspace) as (server, page):
        _step("review: a class pair in the address")
        page.goto(f"{server.url}/Review?project=default&given={a}&suggested={b}&scope=all&status=any")
        page.get_by_role("heading", name="Review", exact=True).wait_for()
        expected = np.flatnonzero((y == 0) & (preds == 1)).tolist()
        assert sorted(_card_rows(page)) == expected

        _step("the class-pair map's top pair")
        page.get_by_text("Class-pair map: given → suggested class").click()
        page.get_by_text("flagged samples", exact=True).click()  # the map counts the confident joint by default
        top = proj.class_pairs("flagged").top(1)[0]
        label = f"{ds.classes[top[0]]} → {ds.classes[top[1]]} · {top[2]}"
        page.get_by_role("button", name=label).click()
        wanted = {"project": ["default"], "status": ["any"], "given": [str(ds.classes[top[0]])],
                  "suggested": [str(ds.classes[top[1]])]}  # the flagged share: the default, not in the address
        page.wait_for_url(lambda url: parse_qs(urlparse(url).query) == wanted)  # the parameters change one by one
        pair = sorted(int(r) for r in flagged if y[r] == top[0] and preds[r] == top[1])
        assert len(pair) == top[2]
        expect(page.get_by_test_id("review-card")).to_have_count(len(pair), timeout=60_000)  # in a shadow root
        assert sorted(_card_rows(page)) == pair
        _shot(page, "review-views-1-pair")

        _step("reload: the bookmark shows the same view")
        page.reload()
        page.get_by_role("heading", name="Review", exact=True).wait_for()
        assert sorted(_card_rows(page)) == pair

        _step("more like this: the m key on a card")
        cards = page.get_by_test_id("review-card")
        row = int(cards.first.get_attribute("data-row"))
        cards.first.locator(".rg-title").click()  # focus the card
        page.keyboard.press("m")
        near = sorted(proj.nearest_samples(row, 12).tolist())
        expect(cards).to_have_count(len(near), timeout=60_000)
        assert sorted(_card_rows(page)) == near
        assert parse_qs(urlparse(page.url).query)["like"] == [str(int(proj.source_index()[row]))]

        _step("a click on a cell of the map")
        page.get_by_text("Class-pair map: given → suggested class").click()  # after the reload: the confident joint
        n = len(ds.classes)
        cells = page.locator(".js-plotly-plot .scatterlayer .trace").first.locator(".point")
        expect(cells).to_have_count(n * (n - 1))  # one clickable point per off-diagonal cell
        diagonal = page.locator(".js-plotly-plot .scatterlayer .trace").nth(1).locator(".point").first
        _click_point(page, diagonal)  # the diagonal opens nothing, and says so
        page.get_by_text("where the model agrees: nothing to review").wait_for()
        _idle(page)
        expect(page.get_by_test_id("review-card")).to_have_count(len(near))  # the view stays
        assert parse_qs(urlparse(page.url).query)["like"] == [str(int(proj.source_index()[row]))]
        i, j, count = proj.class_pairs("confident_joint").top(1)[0]
        _click_point(page, cells.nth(i * (n - 1) + j - (j > i)))  # row-major, the diagonal left out
        wanted = {"project": ["default"], "scope": ["all"], "status": ["any"], "given": [str(ds.classes[i])],
                  "suggested": [str(ds.classes[j])]}  # the confident joint's pair: every sample given i, predicted j
        page.wait_for_url(lambda url: parse_qs(urlparse(url).query) == wanted)
        clicked = np.flatnonzero((y == i) & (preds == j)).tolist()
        assert count > 0 and clicked  # the confident joint's cell: samples cleanlab is sure of, not argmax
        expect(page.get_by_test_id("review-card")).to_have_count(min(len(clicked), 24), timeout=60_000)
        assert set(_card_rows(page)) <= set(clicked)
        _shot(page, "review-views-2-map-click")
