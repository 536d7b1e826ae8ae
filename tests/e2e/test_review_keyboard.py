"""Keyboard review in a real browser: on the offline CIFAR-10N subset, 20 flagged images reviewed with one key each,
150 ms apart (keep, remove, and relabel to a class that is neither the given nor the predicted one, by digit). Every
decision must reach the log (checked through the facade, not the page) and the export must list them by their
original index. Then four clicks on the next cards (Keep, Remove, a class button, the prediction), 150 ms apart:
every one recorded too. Prints the seconds and key presses per image. And Undo after a reload: the reviewer id the
browser keeps for the project makes `u` take back the decision made before the reload.

The project (data, a small CNN trained for 2 epochs, loss scores) is built up-front through the facade. Skipped
without Chromium / Playwright (see test_browser.py, whose launch helpers this reuses) or the offline data.
"""

from __future__ import annotations

import time

import pytest

from influence_core.export import corrections_table
from influence_core.project import InfluenceError, Project, ScoreRun
from tests.e2e.test_browser import served_page, _goto, _idle, _shot, _step

IMAGES = 20
GAP_MS = 150


def _project(workspace) -> Project:
    proj = Project.open("default", workspace)
    try:
        proj.use_dataset("cifar10n", max_train=400, seed=0)
    except InfluenceError as err:
        pytest.skip(f"the offline CIFAR-10N subset is not here: {err}")
    proj.train("cnn", {"epochs": 2, "seed": 0, "patience": 0, "augment": False})
    proj.score(ScoreRun("loss"))
    return proj


def _plan(cards) -> list[tuple[int, int, str, int | None, str]]:
    """(row, original index, action, new label, key) for the first IMAGES cards: keep, remove, relabel by digit."""
    plan = []
    for i in range(IMAGES):
        card = cards.nth(i)
        row, sid, given, pred = (int(card.get_attribute(a)) for a in ("data-row", "data-id", "data-given", "data-pred"))
        action = ("keep", "remove", "relabel")[i % 3]
        if action == "relabel":
            label = next(c for c in ((given + 1 + i + k) % 10 for k in range(10)) if c not in (given, pred))
            plan.append((row, sid, action, label, str(label)))
        else:
            plan.append((row, sid, action, None, "a" if action == "keep" else "r"))
    return plan


def test_twenty_images_by_keyboard_150_ms_apart(tmp_path):
    workspace = tmp_path / "workspace"
    _step("building the project through the facade")
    _project(workspace)
    with served_page(workspace, width=1280, height=900, timeout_ms=120_000) as (server, page):
        page.goto(server.url)
        page.get_by_role("heading", name="Data", exact=True).wait_for()
        _goto(page, "Review")
        cards = page.get_by_test_id("review-card")
        cards.nth(IMAGES - 1).wait_for()
        _idle(page)
        plan = _plan(cards)
        cards.first.locator(".rg-title").click()  # focus the first card: the only click
        _step(f"{IMAGES} keys, {GAP_MS} ms apart")
        start = time.time()
        for *_, key in plan:
            page.keyboard.press(key)
            page.wait_for_timeout(GAP_MS)
        typed = time.time() - start
        saved = page.locator('[data-testid="review-card"][data-state="saved"]')
        while saved.count() < IMAGES:
            if time.time() - start > 180:
                states = [cards.nth(i).get_attribute("data-state") for i in range(IMAGES)]
                raise AssertionError(f"after 180 s the cards say {states}")
            page.wait_for_timeout(100)
        confirmed = time.time() - start
        _step("4 clicks, 150 ms apart")
        clicks = []
        for i, (act, how) in enumerate((("keep", "Keep"), ("remove", "Remove"), ("class", None), ("pred", None))):
            card = cards.nth(IMAGES + i)
            row, given, pred = (int(card.get_attribute(a)) for a in ("data-row", "data-given", "data-pred"))
            if act == "class":
                label = next(c for c in range(10) if c not in (given, pred))
                card.locator(f'[data-act="class"][data-label="{label}"]').click()
                clicks.append((row, "relabel", label))
            elif act == "pred":
                card.locator('[data-act="pred"]').click()
                clicks.append((row, "relabel", pred) if pred != given else (row, "keep", None))
            else:
                card.get_by_role("button", name=how, exact=True).click()
                clicks.append((row, act, None))
            page.wait_for_timeout(GAP_MS)
        saved.nth(IMAGES + len(clicks) - 1).wait_for()
        page.get_by_test_id("review-sync").filter(has_text="every decision saved").wait_for()
        _shot(page, "5-review-keyboard")

    print(f"\n[review keyboard] {IMAGES} images: keys typed in {typed:.1f} s, every card confirmed saved after "
          f"{confirmed:.1f} s = {confirmed / IMAGES:.2f} s per image; {(IMAGES + 1) / IMAGES:.2f} key presses or "
          f"clicks per image ({IMAGES} keys + 1 click to focus the first card)", flush=True)

    # The log, read through the facade (not the page): exactly these 20 decisions.
    proj = Project.open("default", workspace)
    current = proj.current_decisions()
    assert {r: (d.action, d.new_label) for r, d in current.items()} == {
        **{row: (action, label) for row, _, action, label, _ in plan}, **{row: (a, label) for row, a, label in clicks}}
    current = {r: d for r, d in current.items() if r not in {row for row, *_ in clicks}}  # the 20 keyed ones
    # The export names each sample by its original index: the number the card showed.
    dataset = proj.dataset()
    table = corrections_table(dataset, current, proj.scores()).set_index("index")
    assert sorted(table.index) == sorted(sid for _, sid, *_ in plan)
    assert any(sid != row for row, sid, *_ in plan)  # the original index is not the training row here
    given = dataset.train.y.numpy()
    for row, sid, action, label, _ in plan:
        line = table.loc[sid]
        assert (line["row"], line["action"]) == (row, action)
        assert line["final_label"] == {"keep": given[row], "remove": -1, "relabel": label}[action]


def _moons(workspace, name: str = "default") -> Project:
    proj = Project.open(name, workspace)
    proj.use_dataset("moons", seed=0)
    proj.train("logreg")
    proj.score(ScoreRun("ip"))
    return proj


def _first_card(page):
    cards = page.get_by_test_id("review-card")
    cards.first.wait_for()
    _idle(page)
    return cards.first


def _open_review(page, server) -> None:
    """Open the app (the Data page first, as a user does) and go to Review through the navigation."""
    page.goto(server.url)
    page.get_by_role("heading", name="Data", exact=True).wait_for()
    _goto(page, "Review")


def test_undo_after_a_reload_takes_back_the_decision(tmp_path):
    workspace = tmp_path / "workspace"
    proj = _moons(workspace)
    with served_page(workspace) as (server, page):
        _open_review(page, server)
        cards = page.get_by_test_id("review-card")
        cards.first.wait_for()
        _idle(page)
        row = int(cards.first.get_attribute("data-row"))
        cards.first.locator(".rg-title").click()
        page.keyboard.press("a")
        page.locator('[data-testid="review-card"][data-state="saved"]').first.wait_for()
        page.get_by_test_id("review-sync").filter(has_text="every decision saved").wait_for()
        assert {r: d.action for r, d in proj.current_decisions().items()} == {row: "keep"}
        _step("reload, then u")
        page.reload()
        page.get_by_role("heading", name="Review", exact=True).wait_for()
        cards.first.wait_for()
        _idle(page)
        cards.first.locator(".rg-title").click()
        page.keyboard.press("u")
        page.get_by_text("Undid your last decision (1 sample)").first.wait_for(timeout=30_000)
        page.get_by_test_id("review-sync").filter(has_text="every decision saved").wait_for()
    assert proj.current_decisions() == {}


def test_a_key_press_reruns_only_the_grid_and_backspace_removes_nothing(tmp_path):
    """The grid lives in a fragment: a decision by key reruns the grid (its counts change) but not the sidebar, which
    still says what it said before (until the next full run). Backspace is no removal key (`r` is). One tab stop (the
    focused card), one live region that says what was saved, page buttons named in words."""
    workspace = tmp_path / "workspace"
    proj = _moons(workspace)
    with served_page(workspace) as (server, page):
        _open_review(page, server)
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_text("0 made").wait_for()
        card = _first_card(page)
        row = int(card.get_attribute("data-row"))
        card.locator(".rg-title").click()
        cards = page.get_by_test_id("review-card")
        assert [cards.nth(i).get_attribute("tabindex") for i in range(cards.count())].count("0") == 1
        assert card.get_attribute("tabindex") == "0"
        tab_stops = "g => [...g.querySelectorAll('*')].filter(n => n.tabIndex >= 0).length"
        assert page.get_by_test_id("review-grid").evaluate(tab_stops) == 1  # no button, input or link of its own
        assert page.get_by_role("button", name="Next page").count() == 1
        assert page.get_by_role("button", name="Previous page").count() == 1
        _step("Backspace: nothing")
        page.keyboard.press("Backspace")
        page.wait_for_timeout(1500)
        _idle(page)
        assert card.get_attribute("data-state") == "none" and proj.current_decisions() == {}
        _step("r: removed, by the grid's fragment alone")
        page.keyboard.press("r")
        page.locator(f'[data-testid="review-card"][data-row="{row}"][data-state="saved"]').wait_for()
        page.get_by_test_id("review-sync").filter(has_text="every decision saved").wait_for()
        page.get_by_text("decisions so far: 0 keep, 1 remove").wait_for()  # the grid's own counts were redrawn …
        _idle(page)
        assert sidebar.get_by_text("0 made").count() == 1  # … the sidebar was not rerun
        assert sidebar.get_by_text("1 made").count() == 0
        live = page.get_by_test_id("review-live")
        assert live.count() == 1 and "remove saved" in live.inner_text()
        assert page.locator('[data-testid="review-grid"] [aria-live]').count() == 1
        assert {r: d.action for r, d in proj.current_decisions().items()} == {row: "remove"}
        _step("a full run (reload) brings the sidebar up to date")
        page.reload()
        page.get_by_role("heading", name="Review", exact=True).wait_for()
        sidebar.get_by_text("1 made").wait_for()


def _switch(page, name: str) -> None:
    """Pick project ``name`` in the sidebar's switcher (the page stays on Review)."""
    _step(f"switch to project {name}")
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Project").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_url(f"**project={name}*")


def test_a_queued_event_of_another_project_is_recorded_in_its_own_only(tmp_path):
    """An event of project a found in b's queue (a switch while it was unconfirmed) is refused by b with one line, and
    recorded once a's Review page is open again; a decision made in b stays b's."""
    workspace = tmp_path / "workspace"
    a, b = _moons(workspace, "a"), _moons(workspace, "b")
    errors = []
    with served_page(workspace) as (server, page):
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{server.url}/?project=a")
        page.get_by_role("heading", name="Data", exact=True).wait_for()
        _goto(page, "Review")
        row = int(_first_card(page).get_attribute("data-row"))
        stale = {"id": "0123456789abcdef0123456789abcdef-x-1", "action": "remove", "rows": [row], "label": None,
                 "project": "a", "reviewer": "0123456789abcdef0123456789abcdef"}
        page.evaluate("ev => sessionStorage.setItem('influence-review-queue:b', JSON.stringify([ev]))", stale)
        _switch(page, "b")
        page.get_by_text("not recorded in 'b'").first.wait_for()
        card = _first_card(page)
        card.locator(".rg-title").click()
        page.keyboard.press("a")
        page.get_by_test_id("review-sync").filter(has_text="every decision saved").wait_for()
        assert {r: d.action for r, d in b.current_decisions().items()} == {int(card.get_attribute("data-row")): "keep"}
        assert a.current_decisions() == {}
        _switch(page, "a")
        # a's grid, not b's still on screen while the switch loads (b's card for the same row was saved too)
        grid_a = page.locator('[data-testid="review-grid"][data-project="a"]')
        grid_a.locator(f'[data-testid="review-card"][data-row="{row}"][data-state="saved"]').wait_for()
        grid_a.get_by_test_id("review-sync").filter(has_text="every decision saved").wait_for()
    assert {r: d.action for r, d in a.current_decisions().items()} == {row: "remove"}
    assert len(b.current_decisions()) == 1 and errors == []


def _address_project(page) -> str | None:
    return page.evaluate("() => new URLSearchParams(window.location.search).get('project')")


def _review_by_keys(page, project: str, keys: str) -> list[int]:
    """In ``project``'s grid (not another's still on screen): focus the first card, press ``keys`` 150 ms apart, wait
    until every decision is saved; returns the rows of the first four cards as they were listed."""
    grid = page.locator(f'[data-testid="review-grid"][data-project="{project}"]')
    cards = grid.get_by_test_id("review-card")
    cards.first.wait_for()
    _idle(page)
    assert _address_project(page) == project
    rows = [int(cards.nth(i).get_attribute("data-row")) for i in range(4)]
    cards.first.locator(".rg-title").click()
    for key in keys:
        page.keyboard.press(key)
        page.wait_for_timeout(150)
    grid.get_by_test_id("review-sync").filter(has_text="every decision saved").wait_for()
    return rows


def test_switching_to_b_and_back_keeps_the_address_and_the_decisions_with_a(tmp_path):
    """The grid is a fragment: a key press reruns only the grid. Review in a, switch to b and review there, switch
    back to a and press keys: the address stays on a (no late rerun of b's grid, no switcher value left from the
    first visit, brings b back) and every decision lands in the project whose grid it was made in."""
    workspace = tmp_path / "workspace"
    a, b = _moons(workspace, "a"), _moons(workspace, "b")
    with served_page(workspace) as (server, page):
        page.goto(f"{server.url}/?project=a")
        page.get_by_role("heading", name="Data", exact=True).wait_for()
        _goto(page, "Review")
        rows_a = _review_by_keys(page, "a", "a")
        _switch(page, "b")
        rows_b = _review_by_keys(page, "b", "rr")
        _switch(page, "a")
        # a's list again, without the sample decided there before (the view lists the samples still to review)
        assert _review_by_keys(page, "a", "rar")[:3] == rows_a[1:]
        for _ in range(10):  # a late rerun of b's grid would bring b back within a few seconds
            _idle(page)
            assert _address_project(page) == "a"
            page.wait_for_timeout(300)
        assert page.locator('[data-testid="review-grid"]').get_attribute("data-project") == "a"
    assert {r: d.action for r, d in a.current_decisions().items()} == {
        rows_a[0]: "keep", rows_a[1]: "remove", rows_a[2]: "keep", rows_a[3]: "remove"}
    assert {r: d.action for r, d in b.current_decisions().items()} == {rows_b[0]: "remove", rows_b[1]: "remove"}
