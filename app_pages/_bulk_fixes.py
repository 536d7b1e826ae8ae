"""Review's "Bulk fixes" expander (issue 20 §5): choose a fix and its threshold, preview what it would do (how many
samples and a few of them), apply it as ONE batch of decisions, and take it back whole with one Undo button — found
again from the decision log after a refresh (your own latest bulk fix on this project)."""

from __future__ import annotations

import streamlit as st

from influence_core.project import InfluenceError
from app_pages._common import plain, session_id

FIXES = {"relabel": "Relabel the flagged samples the model confidently disagrees with",
         "dedupe": "Keep one sample of each duplicate group (remove the others)"}
KEEP = {"best": "keep the best-scored (least detrimental)", "first": "keep the first"}


def _attempt(action):
    """A button's work: the expander stays open for the rest of the session; a refusal is Review's one-line message
    (None returned)."""
    st.session_state["bulk-used"] = True
    try:
        return action()
    except InfluenceError as err:
        st.session_state["review-message"] = ("error", str(err))
        return None


def _preview(proj, primary: str, listed) -> None:
    """The Preview button's click: the fix computed now, kept in the session until applied or changed."""
    if st.session_state.get("bulk-fix") == "relabel":
        within = listed if st.session_state.get("bulk-within-view") else None
        preview = _attempt(lambda: proj.bulk_relabel_preview(float(st.session_state.get("bulk-threshold", 0.9)),
                                                             primary, within))
    else:
        preview = _attempt(lambda: proj.bulk_dedupe_preview(st.session_state.get("bulk-keep", "best"), label=primary))
    if preview is not None:
        st.session_state["bulk-preview"] = preview


def _apply(proj) -> None:
    preview = st.session_state.pop("bulk-preview", None)
    st.session_state["bulk-used"] = True
    if preview is not None and _attempt(lambda: proj.apply_bulk_fix(preview, session=session_id())) is not None:
        st.session_state["review-message"] = ("done", f"Bulk fix applied to {preview.count} samples (one batch).")


def _undo(proj, batch: int) -> None:
    n = _attempt(lambda: proj.undo_bulk_fix(batch))
    if n:
        st.session_state["review-message"] = ("done", f"Undid the bulk fix ({n} samples).")
    elif n is not None:  # a second click, or another tab undid it or applied a newer one first
        st.session_state["review-message"] = ("error", "Nothing undone: that bulk fix was taken back already or is "
                                              "no longer your latest one (the button now shows your latest).")


def _sample_table(proj, ds, preview) -> list[dict]:
    src = proj.source_index()
    if preview.action == "relabel":
        return [{"sample": int(src[s["row"]]), "given": ds.classes[s["given"]], "relabel to": ds.classes[s["suggested"]],
                 "probability": round(s["probability"], 3)} for s in preview.sample]
    return [{"kept sample": int(src[s["row"]]), "group size": s["group_size"],
             "removed": ", ".join(str(int(src[r])) for r in s["removed"])} for s in preview.sample]


def bulk_fixes(proj, ds, primary: str, listed) -> None:
    """The expander; ``primary``: the ranking Review orders and flags by (the relabel fix acts on its flagged rows,
    or on the rows the view lists, ``listed``; the duplicate fix keeps each group's best by its score)."""
    last = proj.last_bulk_fix()
    # open while a bulk fix can be undone, and once used in this session (it does not fold under the user after an undo)
    with st.expander("Bulk fixes", icon=":material/auto_fix_high:",
                     expanded=last is not None or bool(st.session_state.get("bulk-used"))):
        fix = st.radio("Fix", list(FIXES), format_func=FIXES.get, key="bulk-fix", horizontal=True)
        if fix == "relabel":
            st.slider("Suggested label's probability at least", 0.5, 1.0, 0.9, 0.01, key="bulk-threshold",
                      help="The suggested label is the model's most probable class (out of fold when the ranking "
                           "is); samples you have decided are left alone.")
            st.checkbox(f"Only the {len(listed)} samples this view lists (not every flagged sample)",
                        key="bulk-within-view")
        else:
            st.radio("In each group", list(KEEP), format_func=KEEP.get, key="bulk-keep", horizontal=True)
            if not proj.duplicate_sets():
                st.caption("No duplicate groups found yet: find the data issues (Datalab) first."
                           if proj.data_issues() is None else
                           "Datalab found no exact or near duplicates in this data: nothing to remove.")
        # the settings of the fix shown only: Streamlit drops a hidden widget's value, which changed nothing here
        chosen = (fix, primary, *((st.session_state.get("bulk-threshold"),
                                   st.session_state.get("bulk-within-view") and tuple(int(r) for r in listed))
                                  if fix == "relabel" else (st.session_state.get("bulk-keep"),)))
        if st.session_state.get("bulk-preview-of") != chosen:  # the settings changed: preview again
            st.session_state.pop("bulk-preview", None)
        preview = st.session_state.get("bulk-preview")
        c = st.columns([1, 1, 2])
        c[0].button("Preview", key="bulk-preview-button", width="stretch", on_click=_preview,
                     args=(proj, primary, [int(r) for r in listed]))
        st.session_state["bulk-preview-of"] = chosen
        viewer = proj.role == "viewer"  # may preview, not apply nor undo
        if viewer:
            st.caption("Your role here is viewer: you may preview a bulk fix; a reviewer or the owner applies it.")
        if preview is not None:
            c[1].button(f"Apply to {preview.count} samples", key="bulk-apply", type="primary", width="stretch",
                        disabled=preview.count == 0 or viewer, on_click=_apply, args=(proj,))
            scope = (f" (only the {len(listed)} samples this view lists)" if fix == "relabel" and chosen[3]
                     else " (every flagged sample)" if fix == "relabel" else "")
            st.markdown(f"**Preview{scope}:** {plain(preview.description)}"
                        + (" — the first few:" if preview.sample else "."))
            if preview.sample:
                st.dataframe(_sample_table(proj, ds, preview), hide_index=True, width="stretch")
            elif preview.action == "relabel":  # a dead end for a newcomer without a hint
                st.caption("No undecided flagged sample qualifies: lower the probability, flag a larger share, or "
                           "untick 'Only the samples this view lists'.")
            else:
                st.caption("No undecided duplicate to remove: every group is decided already, or Datalab found none.")
        if last is not None:
            c[2].button(f"Undo bulk fix ({last['count']} samples)", key="bulk-undo", icon=":material/undo:",
                        width="stretch", on_click=_undo, args=(proj, last["batch"]), disabled=viewer,
                        help="Takes back your latest bulk fix whole, in one step.")
