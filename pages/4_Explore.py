"""Explore: gradient-angle regions (paper Fig. 1), method-vs-method scatter, score distributions for noisy and
clean samples, a UMAP feature map with lasso selection for review, and the decision boundary of 2-D sets."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import streamlit as st

from influence_core import figures
from influence_core.analysis import angle_geometry, decision_grid, embed_2d, penultimate_features
from influence_core.jobs import forget_job, get_job, start_job
from influence_core.session import flagged_rows, workspace_root
from pages._common import PAGES, guarded, job_panel, plain, require_dataset, require_model, require_scores, selection


def _background_view(name: str, title: str, path: Path, compute: Callable[[Callable[[float, str], None]], dict],
                     button: str, slot) -> dict | None:
    """Arrays cached in ``path`` (npz); when missing, a button computes them in the background with progress.

    Everything (button, progress, Stop) is drawn inside ``slot`` (an ``st.empty``) so that the caller's chart, drawn
    into the same slot, replaces it whole: no stale button or progress bar is left under the chart.
    """
    key = f"view:{path.name}"
    if path.exists():
        finished = get_job(key)
        if finished is not None and not finished.running:
            forget_job(key)
        with np.load(path, allow_pickle=False) as data:
            return dict(data)
    with slot.container():
        finished = job_panel(key)
        if finished is not None:
            if finished.state == "failed":
                st.error(f"{title} failed: {plain(finished.error)}")
            forget_job(key)
        if get_job(key) is None and st.button(button, key=f"btn-{name}", icon=":material/play_arrow:"):
            def run(handle):
                def progress(fraction: float, message: str) -> None:
                    handle.check()
                    handle.report(fraction, message)

                arrays = compute(progress)
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez(path, **arrays)

            start_job(key, title, run)
            st.rerun()
    return None


def _angles(sel, ds, fitted) -> None:
    run = sel.primary_run()
    st.caption("Each training gradient g projected onto the plane of u = ∇f and w = H⁻¹∇f. gᵀu is the IP score, gᵀw the "
               "influence score. Region I: both negative (both call the sample detrimental); III: both positive; II and "
               "IV: they disagree. Pairs in II/IV keep the same order under both scores (paper App. A).")
    path = workspace_root() / "views" / f"angles-{sel.model_hash}-{run.impact}-{run.params}.npz"

    def compute(progress):
        g = angle_geometry(ds, fitted, run.impact, run.params, progress=progress)
        return {"ip": g.ip, "influence": g.influence, "coords": g.coords, "u_xy": g.u_xy, "w_xy": g.w_xy,
                "hessian": np.array(g.hessian)}

    slot = st.empty()
    data = _background_view("angles", "Gradient angles", path, compute,
                            "Compute the angle view (exact Hessian for small models, else LiSSA)", slot)
    if data is not None:
        noisy = None if ds.noise_mask is None else ds.noise_mask.numpy()
        with slot.container():
            st.plotly_chart(figures.angle_regions_figure(data["coords"], data["u_xy"], data["w_xy"], data["ip"],
                                                         data["influence"], noisy), width="stretch")
            counts = figures.region_counts(data["ip"], data["influence"])
            angle = figures.vector_angle(data["u_xy"], data["w_xy"])
            st.caption("Samples per region: " + " · ".join(f"{k}: {v}" for k, v in counts.items())
                       + f" · angle between u and w: {angle:.1f}° (drawn to scale: one unit per axis)"
                       + f" · w from the {data['hessian']} · parameters: {run.params}")


def _compare(ds, scores: dict) -> None:
    names = list(scores)
    if len(names) < 2:
        st.info("Compute at least two methods on the Scores page to compare them (e.g. IP and Exact influence).")
        st.page_link(PAGES["scores"], label="Go to Scores", icon=":material/arrow_forward:")
        return
    c1, c2 = st.columns(2)
    a = c1.selectbox("x axis", names, index=0)
    b = c2.selectbox("y axis", names, index=1)
    noisy = None if ds.noise_mask is None else ds.noise_mask.numpy()
    st.plotly_chart(figures.score_scatter(scores[a], scores[b], a, b, noisy), width="stretch")


def _distributions(ds, scores: dict) -> None:
    noisy = None if ds.noise_mask is None else ds.noise_mask.numpy()
    if noisy is None:
        st.caption("This data set has no known noisy labels: the histograms are not split.")
    st.plotly_chart(figures.score_distributions(scores, noisy), width="stretch")


def _feature_map(sel, ds, fitted, scores: dict) -> None:
    run = sel.primary_run()
    path = workspace_root() / "views" / f"umap-{sel.model_hash}.npz"

    def compute(progress):
        progress(0.1, "features")
        feats = penultimate_features(fitted, ds.train)
        progress(0.3, "UMAP (the first run compiles, give it a minute)")
        return {"xy": embed_2d(feats)}

    data = _background_view("umap", "Feature map", path, compute, "Compute the UMAP feature map", st.empty())
    if data is None:
        return
    name = st.selectbox("Colour by", list(scores), index=list(scores).index(run.label), key="umap-colour")
    noisy = None if ds.noise_mask is None else ds.noise_mask.numpy()
    event = st.plotly_chart(figures.embedding_figure(data["xy"], scores[name], name, noisy), width="stretch",
                            on_select="rerun", selection_mode=("lasso", "box"), key="umap-chart")
    picked = sorted({int(p["customdata"]) for p in (event.selection.points if event else []) if "customdata" in p})
    if picked:
        st.write(f"{len(picked)} samples selected.")
        if st.button("Review these samples", type="primary", icon=":material/fact_check:"):
            st.session_state["review_batch"] = picked
            st.switch_page(PAGES["review"])


def _boundary(sel, ds, fitted, scores: dict) -> None:
    run = sel.primary_run()
    x = ds.train.x.numpy()
    xs, ys, prob = decision_grid(fitted, x)
    flagged = flagged_rows(scores[run.label], sel.flag_share)
    noisy = None if ds.noise_mask is None else ds.noise_mask.numpy()
    st.plotly_chart(figures.decision_boundary_figure(xs, ys, prob, x, ds.train.y.numpy(), flagged, noisy, ds.classes),
                    width="stretch")
    st.caption(f"Ringed: the {len(flagged)} samples flagged by {run.label}; crossed: labels known to be wrong.")


def page() -> None:
    st.title("Explore")
    sel = selection()
    ds = require_dataset(sel)
    fitted = require_model(sel, ds)
    scores = require_scores(sel, ds, fitted)
    two_d = ds.kind == "tabular" and ds.train.x.shape[1] == 2
    names = ["Gradient angles", "Compare methods", "Distributions", "Feature map"] + (["Decision boundary"] if two_d else [])
    view = st.segmented_control("View", names, default=names[0], key="explore-view", label_visibility="collapsed") or names[0]
    if view == "Gradient angles":
        _angles(sel, ds, fitted)
    elif view == "Compare methods":
        _compare(ds, scores)
    elif view == "Distributions":
        _distributions(ds, scores)
    elif view == "Feature map":
        _feature_map(sel, ds, fitted, scores)
    else:
        _boundary(sel, ds, fitted, scores)


guarded(page)
