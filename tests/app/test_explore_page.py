"""Explore page: missing scores are said; the angle view and the feature map run as project jobs and are cached;
the map's selection shows the samples (thumbnails for images) and hands their rows to Review; every view renders,
naming samples by their original index."""

import base64
import json

import numpy as np
import pytest

from influence_core.analysis import decision_grid
from influence_core.project import InfluenceError, ScoreRun

from .conftest import no_errors, open_page, project_of, settle, shown


def _array(value) -> np.ndarray:
    """An array of a chart's JSON: Plotly writes numeric arrays as base64 ({"dtype", "bdata", "shape"})."""
    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return out.reshape([int(v) for v in str(value.get("shape", len(out))).split(",")])
    return np.asarray(value)


def _view(at, name):
    at.segmented_control(key="explore-view").set_value(name).run()
    no_errors(at)
    return at


def test_without_scores_links_to_the_scores_page(scored):
    proj = project_of(scored)
    state = proj.state()
    state.runs, state.primary = [], None
    proj.save_state(state)
    at = open_page("4_Explore.py")
    assert not at.exception
    assert any("compute influence scores first" in i.value for i in at.info)


def test_views_render_and_slow_ones_are_cached_project_jobs(scored):
    proj = project_of(scored)
    at = open_page("4_Explore.py")
    no_errors(at)
    assert not proj.has_view("angles", impact="utility", params="all")
    assert any(c.value.startswith("Estimated time: ") for c in at.caption)  # said before it starts
    at.button(key="btn-angles").click().run()
    at = settle(at)
    no_errors(at)
    assert any(c.value.startswith("Samples per region") and "angle between u and w" in c.value for c in at.caption)
    # Once the chart is there, nothing of the computation is left: no compute button, no Stop, no finished job.
    assert not [b for b in at.button if b.key == "btn-angles" or b.label == "Stop"]
    assert proj.has_view("angles", impact="utility", params="all") and proj.job("view:angles") is None
    ids = proj.source_index()
    traces = [t for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"] if t.get("customdata")]
    assert all(t["hovertemplate"].startswith("sample %{customdata[0]}") for t in traces)  # hover names the sample id
    shown_ids = np.concatenate([_array(t["customdata"])[:, 0] for t in traces]).astype(int)
    assert sorted(shown_ids.tolist()) == sorted(ids.tolist())
    for view in ("Compare methods", "Distributions"):
        _view(at, view)
    at = _view(at, "Decision boundary")
    assert any("flagged by ip" in c.value for c in at.caption)
    xs, ys, prob = proj.decision_surface()
    ds = proj.dataset()
    exs, eys, eprob = decision_grid(proj.model(ds), ds.train.x.numpy(), 120)
    np.testing.assert_allclose(prob, eprob) and np.testing.assert_allclose(xs, exs)
    assert len(ids) == len(ds.train)


def test_feature_map_job_selection_and_hand_off_to_review(scored):
    proj = project_of(scored)
    at = _view(open_page("4_Explore.py"), "Feature map")
    assert any("t-SNE" in c.value for c in at.caption)  # 250 points: t-SNE, no numba compile
    at.button(key="btn-umap").click().run()
    at = settle(at)
    no_errors(at)
    assert proj.has_view("umap") and str(proj.feature_map()["method"]) == "t-SNE"
    assert not [b for b in at.button if b.key == "btn-umap"]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["title"]["text"].startswith("t-SNE map of the model")
    assert {t["marker"]["symbol"] for t in spec["data"]} == {"circle", "x"}  # filled markers; × = known wrong label
    # a click or lasso on the map: the selected training rows (what the chart's on_select callback stores)
    ds = proj.dataset()
    ids = proj.source_index()
    at.session_state["map-selection"] = [3, 5]
    at.run()
    no_errors(at)
    assert any(shown(m.value) == "**2 samples selected**" for m in at.markdown)
    table = next(d.value for d in at.dataframe if "known wrong label" in d.value.columns)
    assert table["sample"].tolist() == [int(ids[3]), int(ids[5])]
    np.testing.assert_allclose(table["ip"].to_numpy(), proj.scores()["ip"][[3, 5]])
    # Recoloured by the given class: the map still draws the selection the panel lists (issue 21)
    for colour in (None, "given class", "predicted class"):
        if colour:
            at.selectbox(key="map-colour").set_value(colour).run()
            no_errors(at)
        spec = json.loads(at.get("plotly_chart")[0].proto.spec)
        drawn = {int(_array(t["customdata"])[i][0]) for t in spec["data"] for i in t.get("selectedpoints") or []}
        assert drawn == {3, 5}, colour
    assert {t["name"] for t in spec["data"]} <= {f"{c}{k}" for c in ds.classes for k in ("", " · known wrong label")}
    assert any(shown(m.value) == "**2 samples selected**" for m in at.markdown)
    at.button(key="to-review").click().run()
    # Review takes the rows over (they become its grid's cards)
    handed = at.session_state["review_batch"] if "review_batch" in at.session_state else at.session_state["review-from-map"]
    assert [int(r) for r in handed] == [3, 5]
    assert len(ds.train) == 250


@pytest.fixture
def cifar(workspace):
    proj = project_of(workspace)
    try:
        ds = proj.use_dataset("cifar10n", label_set="worst", max_train=120, max_test=50, seed=0)
    except InfluenceError as err:
        pytest.skip(f"CIFAR-10N subset not available: {err}")
    proj.train("cnn", {"epochs": 1, "seed": 0})
    proj.score(ScoreRun("loss"))
    proj.feature_map()
    return ds


def test_selected_images_are_shown_beside_the_map(cifar, workspace):
    """Plotly's hover box shows text only: a clicked or lassoed image sample is shown beside the map."""
    proj = project_of(workspace)
    at = _view(open_page("4_Explore.py"), "Feature map")
    assert any("Click a point to see its image" in c.value for c in at.caption)
    rows = [2, 9, 40]
    at.session_state["map-selection"] = rows
    at.run()
    no_errors(at)
    ids = proj.source_index()
    assert [img.caption for el in at.get("image") for img in el.proto.imgs] == [
        f"sample {int(ids[r])} · {cifar.classes[int(cifar.train.y[r])]}" for r in rows]
    assert any(int(ids[r]) != r for r in range(len(ids)))  # CIFAR rows are not the original indices
