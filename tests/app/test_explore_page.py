"""Explore page: missing scores are said; the angle view computes in the background; every view renders."""

from .conftest import no_errors, open_page, settle


def test_without_scores_links_to_the_scores_page(scored):
    from influence_core.session import load_selection, save_selection

    sel = load_selection(scored)
    sel.runs, sel.primary = [], None
    save_selection(sel, scored)
    at = open_page("4_Explore.py")
    assert not at.exception
    assert any("compute influence scores first" in i.value for i in at.info)


def test_views_render(scored):
    at = open_page("4_Explore.py")
    no_errors(at)
    at.button(key="btn-angles").click().run()
    at = settle(at)
    no_errors(at)
    assert any(c.value.startswith("Samples per region") and "angle between u and w" in c.value for c in at.caption)
    # Once the chart is there, nothing of the computation is left under it: no compute button, no Stop.
    assert not [b for b in at.button if b.key == "btn-angles" or b.label == "Stop"]
    assert (scored / "views").is_dir()
    for view in ("Compare methods", "Distributions", "Feature map", "Decision boundary"):
        at.segmented_control(key="explore-view").set_value(view).run()
        no_errors(at)
    assert any("flagged by ip" in c.value for c in at.caption)
