"""Evaluate in a real browser: start an experiment, reload the page while it runs (the run and its progress are
still there), and after it finishes restart the server and reload (the result table and the Pareto chart are
still there).

Data: moons (it has a sensitive attribute, so the Pareto chart exists) with a small MLP trained through the facade
before the server starts; one method (IP), 4 seeds, 1 attack. An MLP rather than a logistic regression, so that
the run lasts long enough (twelve retrainings, about 16 s on an idle machine) to be seen while it runs; a logistic regression
finishes in well under a second.
"""

from __future__ import annotations

from influence_core.project import Project
from tests.e2e.test_browser import served_page, _idle, _shot, _step, _until_finished

RUNNING = "Running: trim the lowest 5% by IP · utility impact · 4 seed(s) · 1 attack(s)"


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_role("spinbutton", name=label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    _idle(page)


def _result_shown(page) -> None:
    """The result table and the Pareto chart are on the page, with the settings that produced them."""
    page.get_by_text("Results of:").wait_for()
    page.get_by_text("trim the lowest 5% by IP · utility impact · 4 seed(s) · 1 attack(s)").first.wait_for()
    table = page.get_by_test_id("stMarkdown").get_by_role("table")
    assert table.count() == 1
    cells = table.locator("td:first-child").all_inner_texts()
    assert cells == ["full", "random", "IP"], cells
    page.locator(".gtitle", has_text="Utility vs fairness after cleaning").wait_for()


def test_evaluate_run_survives_a_reload_and_a_restart(tmp_path):
    _step("evaluate: train the model")
    workspace = tmp_path / "workspace"
    proj = Project.open("default", workspace)
    proj.use_dataset("moons", seed=0)
    proj.train("mlp", {"seed": 0, "epochs": 60})

    _step("model trained; start the server")
    with served_page(workspace) as (server, page):
        page.goto(f"{server.url}/Evaluate?project=default")
        page.get_by_role("heading", name="Evaluate", exact=True).wait_for()
        _step("page open")
        _set_number(page, "Retraining seeds", 4)
        _set_number(page, "Random attacks (5–25% of test)", 1)
        methods = page.get_by_role("combobox", name="Methods", exact=True)  # not the Baselines multiselect
        methods.click()
        methods.press("Backspace")  # drop the last of the default methods (IP Ensemble): IP alone
        methods.press("Escape")
        _idle(page)
        _step("form set")
        page.get_by_role("button", name="Run experiment").click()
        page.get_by_test_id("stProgress").wait_for()

        _step("reload while the experiment runs")
        page.reload()
        page.get_by_role("heading", name="Evaluate", exact=True).wait_for()
        page.get_by_test_id("stProgress").wait_for()
        page.get_by_text(RUNNING).wait_for()
        assert page.get_by_role("button", name="Stop").count() == 1
        assert page.get_by_role("button", name="Run experiment").count() == 0

        _until_finished(page, "Results of:", quiet_s=30, limit_s=300)
        _step("finished")
        _result_shown(page)

    _step("restart the server")
    with served_page(workspace) as (server, page):
        page.goto(f"{server.url}/Evaluate?project=default")
        page.get_by_role("heading", name="Evaluate", exact=True).wait_for()
        _step("page open after the restart")
        _result_shown(page)
        # The form shows the settings of the result on screen.
        assert page.get_by_role("spinbutton", name="Retraining seeds", exact=True).input_value() == "4"
        _shot(page, "8-evaluate-after-restart")
