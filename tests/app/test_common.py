"""What every page shares (app_pages/_common.py): the error guard every page body runs in; a renamed project is followed
from its old name; the project's notice (e.g. a restored state.json) shows in the sidebar until dismissed."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from influence_core.project import Project

from .conftest import APP, no_errors, shown


def _page_that_raises(errno_name: str) -> None:
    import errno
    import os

    from app_pages._common import guarded

    def body():
        code = getattr(errno, errno_name)
        raise OSError(code, os.strerror(code), "/srv/workspace/projects/p/state.json")

    guarded(body)


@pytest.mark.parametrize("code, reason", [("ENOSPC", "the disk is full"), ("EROFS", "the disk is read-only"),
                                          ("EACCES", "no permission to write there")])
def test_a_stray_full_or_read_only_disk_error_is_one_line_without_server_paths(code, reason):
    at = AppTest.from_function(_page_that_raises, args=(code,)).run()
    assert not at.exception
    assert [shown(e.value) for e in at.error] == [f"cannot write to the workspace: {reason} on the server; ask its administrator"]



def _open(project: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params["project"] = project
    return at.run()


def test_a_session_on_a_renamed_projects_old_name_is_told_and_follows(workspace):
    Project.open("old", workspace).use_dataset("blobs", seed=0)
    Project.open("old", workspace).rename("new")
    at = _open("old")
    no_errors(at)
    told = [i.value for i in at.sidebar.info if "renamed" in i.value]
    assert len(told) == 1 and "old" in told[0] and "new" in told[0]
    assert at.query_params["project"] == "new" and at.session_state["project"] == "new"
    assert not (workspace / "projects" / "old" / "state.json").exists()


def test_a_restored_state_file_is_said_in_the_sidebar_until_dismissed(workspace):
    proj = Project.open("p", workspace)
    proj.use_dataset("blobs", seed=0)
    proj.state_path.write_text("{garbage")
    at = _open("p")
    no_errors(at)
    said = [w.value for w in at.sidebar.warning if "state.json was unreadable" in w.value]
    assert len(said) == 1 and "restored the last good state" in said[0]
    next(b for b in at.sidebar.button if b.key == "project-notice-dismiss").click().run()
    assert not [w for w in at.warning if "state.json" in w.value] and proj.notice() is None


# ------------------------------------------------------------------------------------------ page scaffold
@pytest.mark.parametrize("page", ["3_Scores.py", "4_Explore.py", "5_Review.py", "6_Export.py", "7_Evaluate.py"])
def test_a_page_without_a_model_says_so_links_to_the_model_page_and_stops(workspace, page):
    from .conftest import open_page

    at = open_page(page)
    no_errors(at)
    assert at.title[0].value == page.split("_", 1)[1].removesuffix(".py")
    assert [i.value for i in at.info] == ["No model yet: train or upload a model first."]
    assert [(link.proto.label, link.proto.page) for link in at.get("page_link")] == [("Go to Model", "Model")]
    assert not at.main.button and not at.get("segmented_control")  # the page stopped: nothing of its own below


def test_a_page_with_a_model_but_no_scores_links_to_scores(workspace):
    from .conftest import TRAIN, open_page

    Project.open("default", workspace).train("mlp", dict(TRAIN))
    for page in ("4_Explore.py", "5_Review.py"):
        at = open_page(page)
        no_errors(at)
        assert [i.value for i in at.info] == ["No scores yet: compute influence scores first."]
        assert [(link.proto.label, link.proto.page) for link in at.get("page_link")] == [("Go to Scores", "Scores")]
        assert not at.main.button


def _page_with_an_ended_job(state: str) -> None:
    import streamlit as st

    from app_pages._common import job_section

    class Ended:  # a job that has ended: its outcome is said once, then it is forgotten
        running, error, title = False, "the disk is full", "Scoring"

    Ended.state = state

    class Stub:
        forgotten = st.session_state.setdefault("forgotten", [])

        def job(self, kind):
            return None if kind in self.forgotten else Ended()

        def forget_job(self, kind):
            self.forgotten.append(kind)

    live = job_section(Stub(), "score", "Scoring")
    st.write(f"running: {live is not None}")


@pytest.mark.parametrize("state, said", [("failed", "Scoring failed: the disk is full"),
                                         ("interrupted", "Scoring was interrupted")])
def test_the_job_section_says_how_an_ended_job_went_once_and_forgets_it(state, said):
    at = AppTest.from_function(_page_with_an_ended_job, args=(state,)).run()
    assert not at.exception
    messages = [m.value for m in [*at.error, *at.warning]]
    assert len(messages) == 1 and messages[0].startswith(said)
    assert at.session_state["forgotten"] == ["score"] and at.markdown[-1].value == "running: False"
    at.run()  # forgotten: nothing is said again
    assert not at.error and not at.warning and at.session_state["forgotten"] == ["score"]


# ---------------------------------------------------------------------------------------- setting inputs
def test_a_settings_declared_kind_names_its_widget():
    from typing import Optional

    from app_pages._common import kind_of

    assert [kind_of(t) for t in (bool, int, float, str, Optional[float], "int | None", "float|None")] == \
        ["bool", "int", "float", "str", "float | None", "int | None", "float | None"]
    import inspect

    assert kind_of(inspect.Parameter.empty) == ""


def _inputs_of_each_kind() -> None:
    import streamlit as st

    from app_pages._common import setting_input
    from influence_core.project import InfluenceError

    got = {kind: setting_input(kind, kind, value, key=f"k-{kind}") for kind, value in
           [("bool", True), ("int", 3), ("float", 0.5), ("str", "x"), ("float | None", None), ("int | None", 7)]}
    st.session_state["got"] = got
    try:
        setting_input("list", "a list", [], key="k-list")
    except InfluenceError as err:
        st.session_state["refused"] = str(err)


def test_each_setting_kind_gets_its_own_widget_and_value_type():
    at = AppTest.from_function(_inputs_of_each_kind).run()
    assert not at.exception
    assert [c.label for c in at.checkbox] == ["bool"] and [t.label for t in at.text_input] == ["str"]
    assert [n.label for n in at.number_input] == ["int", "float", "float | None", "int | None"]
    got = at.session_state["got"]
    assert got == {"bool": True, "int": 3, "float": 0.5, "str": "x", "float | None": None, "int | None": 7}
    assert type(got["int"]) is int and type(got["float"]) is float and type(got["int | None"]) is int
    assert at.number_input(key="k-float | None").value is None  # empty = automatic
    assert at.session_state["refused"] == "no input for a setting of kind 'list' (a list)"


def test_the_page_words_a_jobs_progress_from_the_data_the_library_reports():
    from app_pages._common import plain, progress_text
    from influence_core.project import ScoreRun

    epoch = {"message": "epoch 7", "detail": {"stage": "epoch", "epoch": 7, "loss": 0.123456, "val_accuracy": 0.85}}
    assert progress_text(epoch) == "epoch 7 · loss 0.1235 · validation accuracy 85.0%"
    run = ScoreRun("loss", folds=5)
    scoring = {"message": "fold 1/5", "detail": {"stage": "run", "run": dict(vars(run)), "label": run.label, "index": 1,
                                                 "count": 3}}
    assert progress_text(scoring) == f"{plain('Loss, out of fold (5)')} (run 2 of 3): fold 1/5"  # the run's title
    assert progress_text({"message": "UMAP layout: epoch 3 of 200", "detail": {"stage": "view", "view": "umap"}}) == \
        "UMAP layout: epoch 3 of 200"
    assert progress_text({"message": "older record", "detail": {"stage": "run", "run": {"nope": 1}}}) == "older record"


def test_the_sidebars_current_work_is_drawn_once_per_run_also_after_a_page_that_stops_early(workspace, monkeypatch):
    """Issue 19: the sidebar's status was computed twice per run (before the page, in case it stopped, and after);
    a page that stops early (`missing`) now returns to the app, which draws it once, after the page."""
    import app_pages._common as common

    calls = []
    real = common.status
    monkeypatch.setattr(common, "status", lambda proj: (calls.append(proj.name), real(proj))[1])
    at = AppTest.from_file(APP, default_timeout=90).run()  # Data: the page runs to its end
    no_errors(at)
    assert calls == ["default"]
    at.switch_page("app_pages/5_Review.py")
    at.run()  # moons, no model yet: Review stops at its prerequisite
    assert not at.exception
    assert [i.value for i in at.info] == ["No model yet: train or upload a model first."]
    assert calls == ["default", "default"]
    sidebar = " ".join(m.value for m in at.sidebar.markdown)
    assert "**Data set** · moons" in sidebar and "**Model** · none yet" in sidebar


def test_no_page_ends_the_script_with_st_stop():
    """A page ends early through `_common.missing` (or returns): st.stop would end the whole script, and the app
    draws the sidebar's current work after the page."""
    import ast
    from pathlib import Path

    root = Path(APP).parent
    calls = [f"{path.name}:{node.lineno}" for path in [root / "app.py", *sorted((root / "app_pages").glob("*.py"))]
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "stop"
             and isinstance(node.func.value, ast.Name) and node.func.value.id == "st"]
    assert calls == []


def test_a_switchers_value_the_browser_still_holds_never_switches_back(workspace):
    """a → b → a by the sidebar switcher, then the browser sends a's first switcher's last value ("b") again, as it
    does when Streamlit skipped a full run's widget clean-up (a fragment rerun started first): a stays shown, because
    every visit draws its switcher under a new key."""
    for name in ("a", "b"):
        Project.open(name, workspace)
    at = _open("a")
    at.sidebar.selectbox(key="project-pick-a").set_value("b").run()
    assert at.query_params["project"] == "b"
    next(s for s in at.sidebar.selectbox if s.label == "Project").set_value("a").run()
    assert at.query_params["project"] == "a"
    at.session_state["project-pick-a"] = "b"
    at.run()
    no_errors(at)
    assert at.query_params["project"] == "a" and at.session_state["project"] == "a"
    assert [s.value for s in at.sidebar.selectbox if s.label == "Project"] == ["a"]
