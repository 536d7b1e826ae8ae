"""Issue 20 §5-6 in the app: Review's bulk fix previews the hand-computed rows, applies them as one batch and its
Undo button (found again by a new session, as after a refresh) takes all back; Export saves versions (a name never
twice) and shows the diff; Evaluate retrains on two versions as a job and shows the table."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import no_errors, open_page, project_of, settle, shown


def _button(at, label: str):
    return next(b for b in at.button if b.label == label)


def test_bulk_fix_preview_apply_and_one_undo_after_a_refresh(scored):
    proj = project_of(scored)
    at = open_page("5_Review.py")
    no_errors(at)
    at.slider(key="bulk-threshold").set_value(0.55).run()
    _button(at, "Preview").click().run()
    no_errors(at)
    _, probs = proj.predictions()
    given = proj.dataset().train.y.numpy()
    expected = [int(r) for r in proj.flagged() if probs[r].argmax() != given[r] and probs[r].max() >= 0.55]
    assert expected, "the fixture's flagged samples hold none the model confidently disagrees with"
    assert any(f"relabel {len(expected)} flagged sample(s)" in shown(m.value) for m in at.markdown)
    _button(at, f"Apply to {len(expected)} samples").click().run()
    no_errors(at)
    decided = proj.current_decisions()
    assert sorted(decided) == sorted(expected)
    assert all(decided[r].new_label == int(probs[r].argmax()) for r in expected)

    again = open_page("5_Review.py")  # a refresh: a new session, the log on disk
    _button(again, f"Undo bulk fix ({len(expected)} samples)").click().run()
    no_errors(again)
    assert proj.current_decisions() == {}
    assert not any(b.label.startswith("Undo bulk fix") for b in again.button)


def test_keep_one_of_each_duplicate_group_from_datalab(scored):
    proj = project_of(scored)
    proj.find_data_issues()
    groups = proj.data_issues().duplicate_sets
    assert groups, "Datalab finds no duplicates in the fixture"
    removed = sorted(r for g in groups for r in sorted(g)[1:])  # keep the first (smallest row) of each group
    at = open_page("5_Review.py")
    at.radio(key="bulk-fix").set_value("dedupe").run()
    at.radio(key="bulk-keep").set_value("first").run()
    _button(at, "Preview").click().run()
    no_errors(at)
    _button(at, f"Apply to {len(removed)} samples").click().run()
    no_errors(at)
    decided = proj.current_decisions()
    assert sorted(decided) == removed and {d.action for d in decided.values()} == {"remove"}
    assert _button(at, f"Undo bulk fix ({len(removed)} samples)")


def test_the_first_preview_after_switching_the_fix_is_shown(scored):
    """Switching the fix hides the slider (or the keep radio), whose value Streamlit then drops: the first Preview
    click after the switch computed the fix and the same run threw it away as "settings changed" (the browser: the
    first click did nothing, the second showed it)."""
    proj = project_of(scored)
    proj.find_data_issues()
    removed = sum(len(g) - 1 for g in proj.data_issues().duplicate_sets)
    at = open_page("5_Review.py")
    at.radio(key="bulk-fix").set_value("dedupe").run()
    _button(at, "Preview").click().run()
    no_errors(at)
    assert _button(at, f"Apply to {removed} samples")
    at.radio(key="bulk-fix").set_value("relabel").run()
    _button(at, "Preview").click().run()
    assert any(b.label.startswith("Apply to ") for b in at.button)


def test_no_duplicates_found_is_not_told_to_run_datalab_first(scored):
    """Datalab ran and found no duplicate group: the dedupe fix said "No duplicate groups found yet: find the data
    issues (Datalab) first."""
    proj = project_of(scored)
    at = open_page("5_Review.py")
    at.radio(key="bulk-fix").set_value("dedupe").run()
    assert any("find the data issues (Datalab) first" in c.value for c in at.caption)  # not run: say what to do
    proj.find_data_issues(settings={"checks": ("label", "outlier")})
    assert proj.data_issues() is not None and proj.duplicate_sets() == []
    at.run()
    no_errors(at)
    assert not any("Datalab) first" in c.value for c in at.caption)
    assert any("Datalab found no exact or near duplicates" in c.value for c in at.caption)


def test_versions_saved_once_each_diffed_and_compared_on_evaluate(scored):
    proj = project_of(scored)
    given = proj.dataset().train.y.numpy()
    at = open_page("6_Export.py")  # no decisions yet: the data as loaded may be saved as a version (a baseline)
    at.text_input(key="version-name").input("raw").run()
    _button(at, "Save version").click().run()
    no_errors(at)
    assert proj.version("raw").rows == () and any("No decisions yet" in i.value for i in at.info)
    assert any("saved as a version already" in i.value for i in open_page("6_Export.py").info)  # not asked again
    proj.record([3, 5], "remove")
    at = open_page("6_Export.py")
    no_errors(at)
    at.text_input(key="version-name").input("first").run()
    _button(at, "Save version").click().run()
    no_errors(at)
    at.text_input(key="version-name").input("first").run()
    _button(at, "Save version").click().run()
    assert any("exists already" in e.value for e in at.error)
    proj.record([5], "keep")
    proj.record([8], "relabel", 1 - int(given[8]))
    at = open_page("6_Export.py")
    at.text_input(key="version-name").input("second").run()
    _button(at, "Save version").click().run()
    no_errors(at)
    assert [v.name for v in proj.versions()] == ["raw", "first", "second"]
    assert any("second against version first" in shown(m.value) and "1 restored · 1 relabelled" in shown(m.value)
               for m in at.markdown)
    diff = next(d.value for d in at.dataframe if "change" in d.value.columns)
    assert diff["change"].tolist() == ["restored", "relabelled"] and diff["row"].tolist() == [5, 8]

    ev = open_page("7_Evaluate.py")
    no_errors(ev)
    ev.selectbox(key="vc-a").set_value("first").run()  # the newest two are preselected: second, first
    _button(ev, "Retrain on both").click().run()
    ev = settle(ev)
    no_errors(ev)
    table = next(d.value for d in ev.dataframe if "version" in d.value.columns)
    assert table["version"].tolist() == ["first", "second"] and table["n_train"].tolist() == [248, 249]
    assert np.all((table["accuracy"] >= 0) & (table["accuracy"] <= 1))


# --------------------------------------------------------------------------------- attacks (the audit, issue 20)
def test_a_stale_undo_click_undoes_nothing_and_says_so(scored):
    proj = project_of(scored)
    proj.apply_bulk_fix(proj.bulk_dedupe_preview("first", groups=[[0, 1, 2]]))
    at = open_page("5_Review.py")
    stale = _button(at, "Undo bulk fix (2 samples)")
    proj.undo_bulk_fix()  # another tab took it back first
    proj.record([7], "remove")  # ... and decided one more sample, which the stale click must not take back
    stale.click().run()
    assert not at.exception
    assert any("Nothing undone" in e.value for e in at.error)
    assert set(proj.current_decisions()) == {7}


def _two_versions(root):
    """The default project with version "a" (row 3 removed) and its child "b" (rows 3 and 4 removed)."""
    proj = project_of(root)
    proj.record([3], "remove")
    proj.save_version("a")
    proj.record([4], "remove")
    proj.save_version("b")
    return proj


def test_a_viewer_sees_the_versions_but_saves_writes_and_retrains_nothing(scored):
    from streamlit.testing.v1 import AppTest

    from influence_core.access import Access, Members, write_members
    from influence_core.project import InfluenceError, Project

    from .conftest import APP
    from .test_navigation import AUTH

    proj = _two_versions(scored)
    write_members(proj.folder, Members("alice@example.com", {"carol@example.com": "viewer"}))
    exports = proj.folder / "exports"
    at = AppTest.from_file(APP, default_timeout=90)
    at.secrets = dict(AUTH)
    at.user = {"is_logged_in": True, "email": "carol@example.com"}
    at.query_params["project"] = "default"
    at.switch_page("app_pages/6_Export.py").run()
    no_errors(at)
    assert _button(at, "Save version").disabled and at.text_input(key="version-name").disabled
    assert _button(at, "Write the export files").disabled
    assert any(d.label.startswith("Download the version's record") for d in at.get("download_button"))
    at.switch_page("app_pages/5_Review.py").run()
    no_errors(at)
    at.slider(key="bulk-threshold").set_value(0.55).run()
    _button(at, "Preview").click().run()  # a viewer may look at what a fix would do
    no_errors(at)
    apply = next(b for b in at.button if b.label.startswith("Apply to "))
    assert apply.label != "Apply to 0 samples" and apply.disabled
    carol = Project.open_existing("default", Access("carol@example.com", signed_in=True), scored)
    for act in (lambda: carol.write_export({"x.csv": b"1"}), lambda: carol.compare_versions_in_background("a", "b")):
        with pytest.raises(InfluenceError, match="not decide"):
            act()
    assert not exports.exists() and carol.job("versions") is None


def test_export_files_are_reported_without_the_servers_path_and_a_lost_parent_is_a_warning(scored):
    proj = _two_versions(scored)
    (proj.folder / "versions" / "a.json").unlink()  # the parent removed by hand on the server
    at = open_page("6_Export.py")
    assert not at.exception and not at.error
    assert any("no version named 'a'" in w.value for w in at.warning)
    assert any("b against the data as loaded" in shown(m.value) and "2 removed" in shown(m.value) for m in at.markdown)
    _button(at, "Write the export files").click().run()
    no_errors(at)
    message = at.success[-1].value
    assert "exports/" in message and str(scored) not in message and not any(ch in message for ch in "\\")


def test_a_bulk_fix_that_changes_nothing_says_what_to_change_and_export_says_first_what_is_missing(scored):
    at = open_page("5_Review.py")
    at.slider(key="bulk-threshold").set_value(1.0).run()  # no flagged sample is suggested with probability 1
    _button(at, "Preview").click().run()
    no_errors(at)
    assert _button(at, "Apply to 0 samples").disabled
    assert any("lower the probability" in c.value for c in at.caption)
    at = open_page("6_Export.py")
    no_errors(at)
    assert "No decisions yet" in at.info[0].value and "baseline" in at.info[0].value
    assert [s.value for s in at.subheader] == ["Versions of the cleaned data set"]
