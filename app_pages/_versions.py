"""Export's "Versions" section (issue 20 §6): save the current decisions as a named, immutable version of the cleaned
data set, list the versions, show what the selected one changed against the version before it, and download any."""

from __future__ import annotations

import json

import streamlit as st

from influence_core.project import InfluenceError
from app_pages._common import job_outcome, job_section, plain


# the versions table's columns in words (the CLI's `versions list` keeps the short names)
SUMMARY_COLUMNS = {"created_at": "saved at (UTC)", "created_by": "saved by", "n_train_after": "training samples after",
                   "decided_by": "decisions by", "rankings": "rankings computed"}


def _save(proj) -> None:
    """The Save button's click: a taken or malformed name is one line, never an overwrite."""
    name = str(st.session_state.get("version-name") or "").strip()
    try:
        version = proj.save_version(name)
    except InfluenceError as err:
        st.session_state["version-message"] = ("error", str(err))
        return
    st.session_state["version-message"] = ("done", f"Saved version {version.name}.")
    st.session_state["version-chosen"] = version.name
    st.session_state["version-name"] = ""


def _downloads(proj, ds, version) -> None:
    """The version's record (JSON) and its cleaned data set, rebuilt from it (a table; images: a zip on request)."""
    c = st.columns(2)
    c[0].download_button("Download the version's record (JSON)", json.dumps(version.to_json(), indent=2),
                         f"version-{version.name}.json", "application/json", icon=":material/download:",
                         key="version-json", width="stretch")
    stem = f"{proj.export_stem()}-{version.name}"
    if ds.kind in ("tabular", "text"):
        c[1].download_button("Download its cleaned data set (CSV)",
                             lambda: proj.table_bytes(proj.version_cleaned_table(version.name), "csv"), f"{stem}.csv",
                             "text/csv", icon=":material/download:", key="version-csv", width="stretch")
        return
    built = st.session_state.get("version-zip")
    if c[1].button("Build its image zip", icon=":material/folder_zip:", key="version-build-zip"):
        with st.spinner("Writing images…"):
            built = st.session_state["version-zip"] = (version.name, proj.version_image_zip(version.name))
    if built is not None and built[0] == version.name:
        c[1].download_button("Download its image zip", built[1], f"{stem}-imagefolder.zip", "application/zip",
                             key="version-zip-download")


def versions_section(proj, ds) -> None:
    st.subheader("Versions of the cleaned data set")
    st.caption("A version is the current decisions under a name, kept for good: never overwritten, with who decided, "
               "from which rankings and after which version. Evaluate retrains on any two and compares them.")
    kind, message = st.session_state.pop("version-message", (None, ""))
    if kind == "error":
        st.error(plain(message))
    elif kind:
        st.success(plain(message))
    viewer = proj.role == "viewer"
    c = st.columns([3, 1], vertical_alignment="bottom")
    c[0].text_input("Save as version…", key="version-name", max_chars=64, disabled=viewer,
                    placeholder="your role here is viewer: you may download versions" if viewer
                    else "a name: letters, digits, '-', '_', '.', e.g. cleaned-1")
    c[1].button("Save version", icon=":material/bookmark_add:", on_click=_save, args=(proj,), width="stretch",
                disabled=viewer)
    versions = proj.versions()
    if not versions:
        st.caption("No versions of this data set yet.")
        return
    st.dataframe([{SUMMARY_COLUMNS.get(k, k): v for k, v in version.summary().items()} for version in versions[::-1]],
                 hide_index=True, width="stretch")
    names = [v.name for v in versions[::-1]]  # newest first
    if st.session_state.get("version-chosen") not in names:
        st.session_state["version-chosen"] = names[0]
    version = proj.version(st.selectbox("Version", names, key="version-chosen"))
    parent = version.parent
    try:
        diff = proj.version_diff(parent, version.name)
    except InfluenceError as err:  # its parent was deleted or cannot be read: the diff against the data as loaded
        st.warning(f"{plain(err)}; the changes below are against the data as loaded.")
        parent, diff = None, proj.version_diff(None, version.name)
    before = f"version {parent}" if parent else "the data as loaded"
    st.markdown(f"**{plain(version.name)} against {plain(before)}:** {len(diff.removed)} removed · "
                f"{len(diff.restored)} restored · {len(diff.relabelled)} relabelled")
    table = diff.table(proj.source_index())
    if len(table):
        st.dataframe(table, hide_index=True, width="stretch", height=220)
    _downloads(proj, ds, version)


COMPARE_JOB = "versions"


def compare_section(proj) -> None:
    """Evaluate's comparison of two versions: retrain the model's architecture with its training settings on each
    (the same seeds), as the project's "versions" job with progress; a small table of test accuracy and loss."""
    st.divider()
    st.subheader("Compare two versions of the cleaned data set")
    versions = [v.name for v in proj.versions()][::-1]  # newest first
    if len(versions) < 2:
        st.caption("Save two versions on the Export page (Versions) to retrain on each and compare them here.")
        return
    ended = []
    if job_section(proj, COMPARE_JOB, "Retraining on the versions", on_end=ended.append, forget=False) is not None:
        return
    job = ended[0] if ended else None
    c = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    a = c[0].selectbox("Version A", versions, index=1, key="vc-a")
    b = c[1].selectbox("Version B", versions, index=0, key="vc-b")
    seeds = int(c[2].number_input("Seeds", 1, 5, 1, key="vc-seeds"))
    viewer = proj.role == "viewer"
    if c[3].button("Retrain on both", icon=":material/play_arrow:", disabled=a == b or viewer, key="vc-run",
                   help="Your role here is viewer: retraining is for reviewers and the owner." if viewer else None):
        try:
            proj.compare_versions_in_background(a, b, seeds)
        except InfluenceError as err:  # a version deleted meanwhile: one line, the page stays
            st.error(plain(err))
            return
        st.rerun()
    if job is None:
        return
    result = job.result if isinstance(job.result, dict) else {}
    if job.state == "done" and "table" in result:
        first, second = result["versions"]
        st.caption(f"Test split, the current model's architecture and training settings retrained on {plain(first)} "
                   f"and on {plain(second)} with the same seeds (mean ± std over seeds).")
        st.dataframe(result["table"], hide_index=True, width="stretch")
    else:
        job_outcome(proj, COMPARE_JOB, job, "Retraining on the versions")
