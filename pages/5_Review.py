"""Review: the flagged samples, most detrimental first; keep, remove or relabel them one by one or in batches,
undo, and see why a sample was flagged. Every decision is saved to the workspace's SQLite log at once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from influence_core.analysis import gradient_similarity, predict
from influence_core.export import images_uint8, source_index
from influence_core.session import decision_scope, flagged_rows
from pages._common import decisions, guarded, plain, require_dataset, require_model, require_scores, run_title, save, selection

PER_PAGE = 12
IMAGES_PER_ROW = 3  # wide enough for readable images and unclipped buttons at 1280 px


@st.cache_resource(max_entries=4, show_spinner="Predicting…")
def _predictions(_fitted, _dataset, key: str) -> np.ndarray:
    return predict(_fitted, _dataset.train)[0]


@st.cache_resource(max_entries=16, show_spinner="Comparing gradients…")
def _similarity(_dataset, _fitted, key: str, row: int, params: str) -> np.ndarray:
    return gradient_similarity(_dataset, _fitted, row, params)


def _describe(ds, row: int) -> str:
    """A tabular sample as 'feature=value' text."""
    names = ds.feature_names or [f"x{i}" for i in range(ds.train.x.shape[1])]
    values = ds.train.x[row].flatten().tolist()
    return ", ".join(f"{n}={v:.3g}" for n, v in list(zip(names, values))[:8]) + (" …" if len(values) > 8 else "")


def _cls(ds, c: int) -> str:
    """A class name as literal Markdown text (upload class names may contain Markdown)."""
    return plain(ds.classes[int(c)])


def _relabel_options(ds, given: int, predicted: int) -> list[int]:
    """Classes to relabel to, the model's prediction first, the given label left out."""
    rest = [c for c in range(ds.num_classes) if c not in (given, predicted)]
    return ([predicted] if predicted != given else []) + rest


def _decide(log, scope: str, row: int, action: str, label: int | None = None) -> None:
    log.record(scope, [row], action, label)
    st.rerun()


def _actions(ds, row: int, given: int, pred: int, log, scope: str, compact: bool) -> None:
    """Keep / Remove / Relabel buttons for one sample; the relabel choice offers the model's prediction first."""
    options = _relabel_options(ds, given, pred)
    if compact:  # a row of a table: everything on one line
        cols = st.columns([1.3, 1, 1.25, 1.25], gap="small")
        target = cols[0].selectbox("Relabel to", options, key=f"target-{row}", format_func=lambda c: ds.classes[c],
                                   label_visibility="collapsed")
        buttons = cols[1:]
    else:  # a card: relabel choice and button on one line, keep / remove below
        top = st.columns([1.3, 1], gap="small")
        target = top[0].selectbox("Relabel to", options, key=f"target-{row}", format_func=lambda c: ds.classes[c],
                                  label_visibility="collapsed")
        bottom = st.columns(2, gap="small")
        buttons = [bottom[0], bottom[1], top[1]]
    if buttons[0].button("Keep", key=f"keep-{row}", width="stretch"):
        _decide(log, scope, row, "keep")
    if buttons[1].button("Remove", key=f"remove-{row}", width="stretch"):
        _decide(log, scope, row, "remove")
    if buttons[2].button("Relabel", key=f"relabel-{row}", width="stretch", type="primary", disabled=not options):
        _decide(log, scope, row, "relabel", int(target))


def _noisy_note(ds, row: int) -> str:
    """' · known noisy (true: dog)' when the data set knows this label is wrong."""
    if ds.noise_mask is None or not bool(ds.noise_mask[row]):
        return ""
    true = f" (true: {_cls(ds, ds.clean_labels[row])})" if ds.clean_labels is not None else ""
    return f" · :red[known noisy{true}]"


def _sample_id(ds, row: int) -> str:
    """A sample's id as the exports and the decision log's export show it: its index in the original data (the row
    in the training split second)."""
    return f"{int(source_index(ds)[row])}"


def _sample_label(ds, row: int) -> str:
    original = _sample_id(ds, row)
    return f"{original}" if original == str(row) else f"{original} (row {row})"


def _decision_badge(ds, decision) -> str:
    if decision is None:
        return ""
    what = decision.action + (f" → {_cls(ds, decision.new_label)}" if decision.action == "relabel" else "")
    return f" :green-badge[{what}]"


def _image_card(ds, row: int, score: float, pred: int, decision, scope: str, log, pixels) -> None:
    given = int(ds.train.y[row])
    st.image(pixels, width="stretch")
    st.markdown(f"**{_sample_label(ds, row)}** · given **{_cls(ds, given)}** · predicted **{_cls(ds, pred)}**  \n"
                f"score {score:.4g}{_noisy_note(ds, row)}{_decision_badge(ds, decision)}")
    _actions(ds, row, given, pred, log, scope, compact=False)


def _table_row(ds, row: int, score: float, pred: int, decision, scope: str, log) -> None:
    given = int(ds.train.y[row])
    left, right = st.columns([1, 1.3], vertical_alignment="center")
    left.markdown(f"**{_sample_label(ds, row)}** · given **{_cls(ds, given)}** · predicted **{_cls(ds, pred)}** · score {score:.4g}"
                  f"{_noisy_note(ds, row)}{_decision_badge(ds, decision)}  \n:gray[{plain(_describe(ds, row))}]")
    with right:
        _actions(ds, row, given, pred, log, scope, compact=True)


def _batch_bar(ds, rows: np.ndarray, preds: np.ndarray, scope: str, log) -> None:
    # Widget state can only be set before the widget is drawn: a lasso batch from Explore, or a clear after an action.
    if "review_batch" in st.session_state:
        st.session_state["batch-rows"] = [int(r) for r in st.session_state.pop("review_batch")]
        st.session_state["batch-from-map"] = len(st.session_state["batch-rows"])
    if st.session_state.pop("batch-clear", False):
        st.session_state["batch-rows"] = []
        st.session_state.pop("batch-from-map", None)
    if st.session_state.get("batch-from-map"):
        st.info(f"{st.session_state['batch-from-map']} samples selected on the Explore map are preselected below.")
    preset = st.session_state.get("batch-rows", [])
    options = [int(r) for r in rows] + [r for r in preset if r not in set(rows.tolist())]
    chosen = st.multiselect("Batch: samples", options, key="batch-rows", format_func=lambda r: _sample_label(ds, r))
    c = st.columns([1, 1, 2, 1, 1])

    def act(action: str, label: int | None = None) -> None:
        log.record(scope, chosen, action, label)
        st.session_state["batch-clear"] = True
        st.rerun()

    if c[0].button("Keep all", disabled=not chosen, width="stretch"):
        act("keep")
    if c[1].button("Remove all", disabled=not chosen, width="stretch"):
        act("remove")
    # The batch's majority prediction is offered first.
    majority = int(np.bincount(preds[chosen], minlength=ds.num_classes).argmax()) if chosen else 0
    order = [majority] + [k for k in range(ds.num_classes) if k != majority]
    target = c[2].selectbox("Batch relabel to", order, format_func=lambda k: f"relabel to {ds.classes[k]}",
                            label_visibility="collapsed")
    if c[3].button("Relabel all", disabled=not chosen, width="stretch"):
        act("relabel", int(target))
    if c[4].button("Undo", icon=":material/undo:", disabled=not log.can_undo(scope), width="stretch"):
        n = log.undo(scope)
        st.toast(f"Undid the last decision ({n} sample{'s' if n != 1 else ''}).")
        st.rerun()


def _why(ds, fitted, sel, scores: dict, rows: np.ndarray, preds: np.ndarray) -> None:
    st.subheader("Why flagged")
    row = st.selectbox("Sample", [int(r) for r in rows], format_func=lambda r: _sample_label(ds, r), key="why-row")
    per_method = pd.DataFrame([{"method": n, "score": float(s[row]), "rank (1 = most detrimental)": int((s < s[row]).sum()) + 1}
                               for n, s in scores.items()])
    st.dataframe(per_method, hide_index=True, width="content")
    run = sel.primary_run()
    sim = _similarity(ds, fitted, sel.model_hash, row, run.params)
    sim[row] = np.nan  # itself
    order = np.argsort(np.nan_to_num(sim, nan=0.0))
    st.caption("Training samples whose gradients align with this sample's own (they support its given label) and "
               "those that oppose it: grad ℓⱼᵀ grad ℓᵢ.")
    helping, hurting = [int(j) for j in order[::-1][:6]], [int(j) for j in order[:6]]
    left, right = st.columns(2)
    for col, title, picks in ((left, "Most helping", helping), (right, "Most hurting", hurting)):
        with col:
            st.markdown(f"**{title}**")
            if ds.kind == "image":
                pixels = images_uint8(ds, picks)
                cols = st.columns(6)
                for i, j in enumerate(picks):
                    cols[i].image(pixels[i], caption=f"{_sample_id(ds, j)} {plain(ds.classes[int(ds.train.y[j])])}", width="stretch")
            else:
                st.dataframe(pd.DataFrame({"sample": picks, "label": [ds.classes[int(ds.train.y[j])] for j in picks],
                                           "gradient similarity": sim[picks], "features": [_describe(ds, j) for j in picks]}),
                             hide_index=True, width="stretch")


def page() -> None:
    st.title("Review")
    sel = selection()
    ds = require_dataset(sel)
    fitted = require_model(sel, ds)
    scores = require_scores(sel, ds, fitted)
    log, scope = decisions(), decision_scope(ds)
    c1, c2, c3 = st.columns([2, 2, 1])
    runs = {r.label: r for r in sel.runs}
    labels = list(scores)
    primary = c1.selectbox("Order by", labels, index=labels.index(sel.primary_run().label),
                           format_func=lambda label: run_title(runs[label]) if label in runs else label,
                           help="Any computed ranking (lower = more detrimental first); compute more on the Scores page. "
                                "IP + loss (rank average) is the recommended one.")
    share = c2.slider("Flag the most detrimental share of the training set", 0.01, 0.5, float(sel.flag_share), 0.01,
                      format="%.2f")
    show = c3.radio("Show", ["to review", "all flagged", "decided"], horizontal=False)
    if primary != sel.primary or share != sel.flag_share:
        sel.primary, sel.flag_share = primary, share
        save(sel)
    s = scores[primary]
    flagged = flagged_rows(s, share)
    current = log.current(scope)
    preds = _predictions(fitted, ds, sel.model_hash)
    if show == "to review":
        rows = np.array([r for r in flagged if int(r) not in current], dtype=np.int64)
    elif show == "decided":
        rows = np.array(sorted(current, key=lambda r: s[r]), dtype=np.int64)
    else:
        rows = flagged
    counts = log.counts(scope)
    st.markdown(f"**Ordered by:** {plain(run_title(runs[primary]))}")
    st.caption(f"{len(flagged)} flagged (the lowest scores of {plain(primary)}, most detrimental first) · {len(rows)} shown · "
               "decisions so far: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    _batch_bar(ds, rows, preds, scope, log)
    if len(rows) == 0:
        st.success("Nothing left to review here. Export the decisions when you are done.")
        st.page_link("pages/6_Export.py", label="Go to Export", icon=":material/arrow_forward:")
    else:
        pages = max(1, -(-len(rows) // PER_PAGE))
        page_no = st.columns([1, 5])[0].number_input(f"Page (of {pages})", 1, pages, 1, key="review-page") if pages > 1 else 1
        visible = rows[(page_no - 1) * PER_PAGE : page_no * PER_PAGE]
        if ds.kind == "image":
            pixels = images_uint8(ds, visible)
            for start in range(0, len(visible), IMAGES_PER_ROW):
                cols = st.columns(IMAGES_PER_ROW, border=True)
                for col, row, px in zip(cols, visible[start : start + IMAGES_PER_ROW], pixels[start : start + IMAGES_PER_ROW]):
                    with col:
                        _image_card(ds, int(row), float(s[row]), int(preds[row]), current.get(int(row)), scope, log, px)
        else:
            for row in visible:
                with st.container(border=True):
                    _table_row(ds, int(row), float(s[row]), int(preds[row]), current.get(int(row)), scope, log)
    st.divider()
    _why(ds, fitted, sel, scores, flagged, preds)


guarded(page)
