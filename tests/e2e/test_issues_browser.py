"""Issue 20 in a real browser: Review opened filtered by a data issue type and a class pair (the view in the URL), a
bulk fix previewed and applied (one batch), undone in one step after a reload, applied again, and two versions of the
cleaned data set saved on Export (their diff checked through the facade, not the page).

The project (moons, a small MLP, loss scores, Datalab's findings) is built up-front through the facade. Skipped
without Chromium / Playwright (see test_browser.py, whose launch helpers this reuses).
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from influence_core.project import Project, ReviewView, ScoreRun
from tests.e2e.test_browser import served_page, _goto, _idle, _shot, _step

THRESHOLD = 0.9


def _project(workspace) -> Project:
    proj = Project.open("default", workspace)
    proj.use_dataset("moons", seed=0)
    proj.train("mlp", {"epochs": 40, "lr": 0.01, "l2": 0.001, "seed": 0, "checkpoint_every": 0})
    proj.score(ScoreRun("loss"))
    proj.find_data_issues()
    return proj


def _bulk_relabel(page, within_view: bool) -> int:
    """Open Bulk fixes, preview the relabel fix at the default threshold (on the view's samples only, or on every
    flagged one), apply it; returns its sample count."""
    _idle(page)  # the last click's rerun has drawn the expander (open or closed) before it is looked at
    preview = page.get_by_role("button", name="Preview", exact=True)
    if not preview.is_visible():  # the expander is closed (it opens by itself while a bulk fix can be undone)
        page.get_by_text("Bulk fixes", exact=True).click()
    within = page.get_by_role("checkbox", name=re.compile("samples this view lists"))
    for _ in range(3):  # a click on a loaded machine can land while the expander is still being drawn: look again
        if within.is_checked() == within_view:
            break
        page.get_by_text(re.compile("samples this view lists")).click()  # Streamlit's checkbox: its label
        _idle(page)
    assert within.is_checked() == within_view
    preview.click()
    # the preview states its scope: proof that the server computed it with the box as ticked here
    page.get_by_text(re.compile(r"Preview \(only the \d+ samples this view lists\)" if within_view
                                else r"Preview \(every flagged sample\)")).wait_for()
    apply = page.get_by_role("button", name=re.compile(r"^Apply to \d+ samples$"))
    apply.wait_for()
    count = int(re.search(r"\d+", apply.inner_text()).group())
    page.get_by_text(f"relabel {count} flagged sample(s)").wait_for()
    apply.click()
    page.get_by_role("button", name=f"Undo bulk fix ({count} samples)").wait_for()
    return count


def _save_version(page, name: str) -> None:
    box = page.get_by_role("textbox", name="Save as version…")
    box.fill(name)
    box.press("Enter")
    _idle(page)
    page.get_by_role("button", name="Save version").click()
    page.get_by_text(f"Saved version {name}.").wait_for()


def test_filter_bulk_fix_undo_and_two_versions(tmp_path):
    workspace = tmp_path / "workspace"
    _step("issues: build the project through the facade")
    proj = _project(workspace)
    listed = proj.review_rows(ReviewView(issue="label", given=0, suggested=1))  # Datalab's label issues, 0 → 1
    expected = proj.bulk_relabel_preview(THRESHOLD, rows=listed)
    everywhere = proj.bulk_relabel_preview(THRESHOLD)
    assert 0 < expected.count < everywhere.count
    classes = proj.dataset().classes
    view = {"project": "default", "issue": "label", "given": classes[0], "suggested": classes[1]}
    with served_page(workspace, width=1280, height=900, timeout_ms=90_000) as (server, page):
        _step("review, filtered by an issue type and a class pair")
        page.goto(f"{server.url}/Review?{urlencode(view)}")
        page.get_by_role("heading", name="Review", exact=True).wait_for()
        cards = page.get_by_test_id("review-card")
        cards.nth(len(listed) - 1).wait_for()
        _idle(page)
        assert [int(cards.nth(i).get_attribute("data-row")) for i in range(cards.count())] == listed.tolist()

        _step("bulk fix on the view's samples: preview, apply")
        count = _bulk_relabel(page, within_view=True)
        assert count == expected.count
        decided = proj.current_decisions()
        assert sorted(decided) == sorted(expected.rows)
        assert {r: d.new_label for r, d in decided.items()} == dict(zip(expected.rows, expected.new_labels))
        _shot(page, "9-review-bulk-fix")

        _step("reload, then undo the bulk fix in one step")
        page.reload()
        page.get_by_role("heading", name="Review", exact=True).wait_for()
        page.get_by_role("button", name=f"Undo bulk fix ({count} samples)").click()
        page.get_by_text("decisions so far: 0 keep, 0 remove, 0 relabel").wait_for()
        assert proj.current_decisions() == {}
        page.get_by_role("button", name=re.compile("^Undo bulk fix")).wait_for(state="detached")  # nothing to undo

        _step("apply to every flagged sample, save version one")
        assert _bulk_relabel(page, within_view=False) == everywhere.count
        _goto(page, "Export")
        _save_version(page, "one")

        _step("one more decision, save version two")
        _goto(page, "Review")
        cards.first.wait_for()
        removed = int(cards.first.get_attribute("data-row"))
        cards.first.get_by_role("button", name="Remove", exact=True).click()
        page.get_by_text(re.compile(r"decisions so far: 0 keep, 1 remove")).wait_for()
        _goto(page, "Export")
        _save_version(page, "two")
        page.get_by_text("two against version one:").wait_for()
        _shot(page, "10-export-versions")

    assert [v.name for v in proj.versions()] == ["one", "two"]
    one, two = proj.version("one"), proj.version("two")
    assert two.parent == "one" and sorted(one.relabelled) == sorted(everywhere.rows) and one.removed == []
    diff = proj.version_diff("one", "two")
    assert removed in diff.removed or removed in {r for r, _, _ in diff.relabelled}
