"""Explore: gradient-angle regions (paper Fig. 1), method-vs-method scatter, score distributions for noisy and
clean samples, a feature map (t-SNE / UMAP of the model's features; click or lasso samples, see them, hand them to
Review) and the decision boundary of 2-D sets. The slow views run as project jobs and are cached; every hover names
a sample by its original index."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from influence_core import figures
from influence_core.project import InfluenceError, Project, ScoreRun
from app_pages._common import go, guarded, job_section, link, plain, run_title, start_page

MAX_THUMBNAILS = 24
MAP_GROUPS = ("given class", "predicted class")  # the feature map's colourings besides a score's rank


def _noisy(ds) -> np.ndarray | None:
    return None if ds.noise_mask is None else ds.noise_mask.numpy().astype(bool)


def _view_job(proj: Project, name: str, what: str, button: str, settings: dict, seconds: float | None = None) -> None:
    """The view's job panel while it runs (progress, Stop), how it ended, else a button that starts it (with the
    estimated ``seconds`` beside it when known)."""
    if job_section(proj, f"view:{name}", what) is None:
        left, right = st.columns([2, 3], vertical_alignment="center")
        if seconds is not None:
            right.caption(f"Estimated time: {figures.format_duration(seconds)} on this model (a rough estimate).")
        if left.button(button, key=f"btn-{name}", icon=":material/play_arrow:"):
            proj.view_in_background(name, **settings)
            st.rerun()


def _drop_ended(proj: Project, name: str) -> None:
    """The view is cached: a job that computed it (or an older one) has nothing left to say."""
    job = proj.job(f"view:{name}")
    if job is not None and not job.running:
        proj.forget_job(f"view:{name}")


# --------------------------------------------------------------------------------------------- views
def _angles(proj: Project, ds, run: ScoreRun) -> None:
    st.caption("Each training gradient g at its components along u = ∇f and along w = H⁻¹∇f (gᵀu/‖u‖, gᵀw/‖w‖). gᵀu is "
               "the IP score, gᵀw the influence score. Region I: both negative (both call the sample detrimental); III: both positive; II and "
               "IV: they disagree. Pairs in II/IV keep the same order under both scores (paper App. A).")
    settings = {"impact": run.impact, "params": run.params}
    if not proj.has_view("angles", **settings):
        try:
            seconds = proj.angle_view_seconds(run.params)
        except (InfluenceError, RuntimeError, ValueError):
            seconds = None
        _view_job(proj, "angles", "The angle view", "Compute the angle view (exact Hessian for small models, else LiSSA)",
                  settings, seconds)
        return
    _drop_ended(proj, "angles")
    data = proj.angle_view(run.impact, run.params)
    st.plotly_chart(figures.angle_regions_figure(data["ip"], data["influence"], data["u_xy"], data["w_xy"], _noisy(ds),
                                                 index=proj.source_index()), width="stretch")
    counts = figures.region_counts(data["ip"], data["influence"])
    angle = figures.vector_angle(data["u_xy"], data["w_xy"])
    st.caption("Samples per region: " + " · ".join(f"{k}: {v}" for k, v in counts.items())
               + f" · angle between u and w: {angle:.1f}° (each axis on its own scale, so both spreads show)"
               + f" · w from the {data['hessian']} · impact: {run.impact} · parameters: {plain(run.params)}")


def _compare(proj: Project, ds, scores: dict) -> None:
    names = list(scores)
    if len(names) < 2:
        st.info("Compute at least two methods on the Scores page to compare them (e.g. IP and Exact influence).")
        link("scores", "Go to Scores")
        return
    c1, c2 = st.columns(2)
    a = c1.selectbox("x axis", names, index=0, key="compare-x")
    b = c2.selectbox("y axis", names, index=1, key="compare-y")
    st.plotly_chart(figures.score_scatter(scores[a], scores[b], a, b, _noisy(ds), index=proj.source_index()),
                    width="stretch")


def _distributions(ds, scores: dict) -> None:
    if ds.noise_mask is None:
        st.caption("This data set has no known noisy labels: the histograms are not split.")
    st.plotly_chart(figures.score_distributions(scores, _noisy(ds)), width="stretch")


def _rows_of(points: list) -> list[int]:
    """Training rows of the points a selection event names (each point's customdata starts with its row)."""
    rows = set()
    for p in points or []:
        data = p.get("customdata") if isinstance(p, dict) else None
        if data is None:
            continue
        rows.add(int(data[0] if isinstance(data, (list, tuple)) else data))
    return sorted(rows)


def _remember_selection() -> None:
    """The map's click / lasso / box selection, kept as training rows (also what a test sets)."""
    event = st.session_state.get("map-chart")
    points = event["selection"]["points"] if event and event.get("selection") else []
    st.session_state["map-selection"] = _rows_of(points)


def _selection_panel(proj: Project, ds, rows: list[int], score: np.ndarray, name: str) -> None:
    """What is selected on the map: thumbnails (image data) or a small table, and the hand-off to Review."""
    src = proj.source_index()
    noisy = _noisy(ds)
    st.markdown(f"**{len(rows):,} sample{'s' if len(rows) != 1 else ''} selected**")
    if ds.kind == "image":
        shown = rows[:MAX_THUMBNAILS]
        images = proj.images(shown)
        captions = [f"sample {int(src[r])} · {ds.classes[int(ds.train.y[r])]}" for r in shown]
        st.image(list(images), caption=captions, width=72 if len(shown) > 1 else 160)
        if len(rows) > len(shown):
            st.caption(f"The first {len(shown)} of {len(rows):,} shown.")
    table = pd.DataFrame({"sample": src[rows].astype(np.int64), "class": [ds.classes[int(ds.train.y[r])] for r in rows],
                          name: score[rows]})
    if noisy is not None:
        table["known wrong label"] = noisy[rows]
    if ds.texts is not None:  # text data: each sample's text, its start (Review shows it whole)
        table["text"] = [t if len(t) <= 120 else t[:119] + "…" for t in (ds.texts["train"][r] for r in rows)]
    st.dataframe(table, hide_index=True, width="stretch", height=min(36 * (len(rows) + 1), 300), key="map-selected",
                 column_config={name: st.column_config.NumberColumn(name, format="%.3g")})
    if st.button("Review these samples", type="primary", icon=":material/fact_check:", key="to-review"):
        st.session_state["review_batch"] = [int(r) for r in rows]
        go("review")


def _feature_map(proj: Project, ds, scores: dict, primary: ScoreRun) -> None:
    n = len(ds.train)
    if not proj.has_view("umap"):
        st.caption(f"A 2-D map of the model's penultimate-layer features of the {n:,} training samples — "
                   + ("t-SNE (a few seconds to a minute)" if n <= 2500 else
                      "UMAP (its first run in a server compiles for about a minute, then epochs)")
                   + ": samples the model sees alike sit together. Computed once and cached.")
        _view_job(proj, "umap", "The feature map", "Compute the feature map", {})
        return
    _drop_ended(proj, "umap")
    data = proj.feature_map()
    method = str(data["method"]) if "method" in data else "UMAP"
    names = list(scores)
    colourings = names + list(MAP_GROUPS)
    c1, c2 = st.columns(2)
    colour = c1.selectbox("Colour by", colourings, index=names.index(primary.label), key="map-colour",
                          format_func=lambda c: f"{c} (score rank)" if c in scores else c)
    name = c2.selectbox("Score shown on hover and beside the selection", names, index=names.index(primary.label),
                        key="map-score") if colour in MAP_GROUPS else colour
    score = np.asarray(scores[name], np.float64)
    given = [ds.classes[int(v)] for v in ds.train.y.numpy()]
    groups = None if colour not in MAP_GROUPS else given if colour == "given class" else \
        [ds.classes[int(v)] for v in proj.predictions()[0]]
    rows = [r for r in st.session_state.get("map-selection", []) if 0 <= r < n]
    fig = figures.embedding_figure(data["xy"], score, name, _noisy(ds), index=proj.source_index(), labels=given,
                                   method=method, groups=groups, group_title=colour, selected=rows or None)
    chart, side = st.columns([3, 1]) if ds.kind == "image" else (st.container(), st.container())
    with chart:
        st.plotly_chart(fig, width="stretch", on_select=_remember_selection, selection_mode=("points", "box", "lasso"),
                        key="map-chart")
    what = (f"{plain(run_title(primary) if name == primary.label else name)} — the rank of each sample's score, red = "
            "most detrimental" if groups is None else f"the {colour}, one colour per class")
    st.caption(f"Colour: {what}. Hover a point for its sample id and score; click a point, or pick the "
               "lasso (or box) in the chart's toolbar and circle a group, to "
               + ("see the images and " if ds.kind == "image" else "list them and ") + "send them to Review; "
               "the selection stays drawn when you recolour.")
    with side:
        if rows:
            _selection_panel(proj, ds, rows, score, name)
        elif ds.kind == "image":
            st.caption("Click a point to see its image here (Plotly's hover box can show text only).")


def _boundary(proj: Project, ds, scores: dict, primary: ScoreRun) -> None:
    xs, ys, prob = proj.decision_surface()
    flagged = proj.flagged(primary.label)
    x = ds.train.x.numpy()
    st.plotly_chart(figures.decision_boundary_figure(xs, ys, prob, x, ds.train.y.numpy(), flagged, _noisy(ds),
                                                     list(ds.classes), index=proj.source_index()),
                    width="stretch")
    st.caption(f"Ringed: the {len(flagged)} samples flagged by {plain(primary.label)}; crossed: labels known to be wrong.")


def page() -> None:
    ctx = start_page("Explore", needs="scores")
    proj, ds, scores = ctx.proj, ctx.ds, ctx.scores
    primary = proj.primary_run(ctx.state)  # among the runs `scores` holds
    two_d = ds.kind == "tabular" and ds.train.x.shape[1] == 2
    names = ["Gradient angles", "Compare methods", "Distributions", "Feature map"] + (["Decision boundary"] if two_d else [])
    view = st.segmented_control("View", names, default=names[0], key="explore-view", label_visibility="collapsed") or names[0]
    if view == "Gradient angles":
        _angles(proj, ds, primary)
    elif view == "Compare methods":
        _compare(proj, ds, scores)
    elif view == "Distributions":
        _distributions(ds, scores)
    elif view == "Feature map":
        _feature_map(proj, ds, proj.rankings(ctx.state), primary)  # data issue types colour it too (issue 20)
    else:
        _boundary(proj, ds, scores, primary)
    st.divider()
    link("review", "Next: review the flagged samples on Review")


guarded(page)
