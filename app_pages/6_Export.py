"""Export: the corrections table (CSV, Parquet), the cleaned data set (a table with the source's values, or an
ImageFolder zip with the original image files), a CIFAR-N label file with cleaned labels, and a manifest of what
produced them — as downloads and as files in the workspace; and zips for FiftyOne, Label Studio and Hugging Face."""

from __future__ import annotations

import json

import streamlit as st

from influence_core.project import InfluenceError
from app_pages._common import guarded, link, plain, start_page
from app_pages._versions import versions_section


def _reviewers(proj) -> None:
    """Decisions per reviewer and, where two reviewers decided the same samples, their agreement (Cohen's κ)."""
    summary = proj.reviewers()
    if len(summary["counts"]) < 2:
        return
    st.subheader("Reviewers")
    st.dataframe([{"reviewer": who, **counts, "total": sum(counts.values())} for who, counts in summary["counts"].items()],
                 hide_index=True, width="stretch")
    for pair in summary["agreement"]:
        a, b = (plain(who) for who in pair["reviewers"])
        kappa = "κ undefined (one category throughout)" if pair["kappa"] is None else f"Cohen's κ = {pair['kappa']:.2f}"
        st.caption(f"{a} and {b} both decided {pair['samples']} samples: they agree on {pair['agreement']:.0%}, "
                   f"{kappa} (the categories: keep, remove, relabel to each class).")
    if not summary["agreement"]:
        st.caption("No two reviewers decided the same samples, so there is no agreement to measure.")


def _summary(ds, info: dict) -> None:
    """How many samples are kept, removed and relabelled, and how many training samples remain (from the manifest)."""
    c = st.columns(4)
    for col, action in zip(c, ("keep", "remove", "relabel")):
        col.metric(action.capitalize(), info["counts"][action])
    c[3].metric("Training samples after", f"{info['n_train_after']:,} / {len(ds.train):,}")


def _corrections(proj, stem: str, info: dict) -> dict[str, bytes]:
    """The corrections table with its CSV, Parquet and manifest downloads; returns those files."""
    table = proj.corrections()
    st.subheader("Corrections table")
    st.dataframe(table, hide_index=True, width="stretch", height=260)
    files = {f"{stem}.csv": proj.table_bytes(table, "csv"), f"{stem}.parquet": proj.table_bytes(table, "parquet"),
             "manifest.json": json.dumps(info, indent=2, default=str).encode()}
    d = st.columns(3)
    d[0].download_button("Download CSV", files[f"{stem}.csv"], f"{stem}.csv", "text/csv", icon=":material/download:",
                         type="primary", width="stretch")
    d[1].download_button("Download Parquet", files[f"{stem}.parquet"], f"{stem}.parquet", "application/octet-stream",
                         icon=":material/download:", width="stretch")
    d[2].download_button("Download manifest (JSON)", files["manifest.json"], "manifest.json", "application/json",
                         icon=":material/download:", width="stretch")
    return files


def _cleaned_table(proj, ds) -> dict:
    """A tabular data set's cleaned table (kept rows, final labels, optionally the validation and test rows) as CSV
    and Parquet downloads; returns their builders (run only when downloaded or written: the table can be large)."""
    st.subheader("Cleaned data set")
    with_splits = st.checkbox("Include the validation and test rows", value=True, key="export-with-splits",
                              help="Adds a 'split' column (train / val / test). Loading the file back keeps these "
                                   "splits, so a model retrained on the cleaned data is judged on the same rows.")
    try:
        cleaned = proj.cleaned_table(with_splits)
    except InfluenceError as err:
        st.warning(plain(err))
        return {}
    name = f"{proj.export_stem()}-cleaned"
    later = {f"{name}.csv": lambda: proj.table_bytes(cleaned, "csv"),
             f"{name}.parquet": lambda: proj.table_bytes(cleaned, "parquet")}
    values = "values as in the file (not standardised)" if "originals" in ds.meta else "values as generated"
    kept = int((cleaned["split"] == "train").sum()) if with_splits else len(cleaned)
    rest = (f", then the {len(cleaned) - kept:,} validation and test rows as loaded, marked in a 'split' column"
            if with_splits else "")
    st.caption(f"The {kept:,} kept training rows with their {values} and final labels in "
               f"'{plain(proj.label_column())}'{rest}: load it next like any CSV. Each row's index in the "
               "original data is in 'original_index' (not a feature when loaded). The CSV neutralises formula "
               "cells; Parquet keeps raw values.")
    e = st.columns(2)
    e[0].download_button("Download cleaned CSV", later[f"{name}.csv"], f"{name}.csv", "text/csv",
                         icon=":material/download:", width="stretch")
    e[1].download_button("Download cleaned Parquet", later[f"{name}.parquet"], f"{name}.parquet",
                         "application/octet-stream", icon=":material/download:", width="stretch")
    return later


def _image_zip(proj, ds, current: dict, stem: str) -> dict[str, bytes]:
    """An image data set's ImageFolder zip, built on request for the current decisions; returns it once built."""
    st.subheader("Cleaned images (ImageFolder layout)")
    st.caption("train/<class>/<name> with relabels applied and removed samples left out, val/ and test/ as loaded, "
               "plus metadata.csv (every image and every removal, with its original index). An uploaded zip keeps "
               "its files and names; others are <index>.png.")
    decided = (ds.fingerprint(), sorted((r, d.action, d.new_label) for r, d in current.items()))
    if st.button("Build the image zip", icon=":material/folder_zip:"):
        with st.spinner("Writing images…"):
            st.session_state["export-zip"] = (decided, proj.image_zip())
    if st.session_state.get("export-zip", (None,))[0] != decided:  # built for these decisions, not earlier ones
        return {}
    name = f"{stem}-imagefolder.zip"
    st.download_button("Download image zip", st.session_state["export-zip"][1], name, "application/zip")
    return {name: st.session_state["export-zip"][1]}


def _cifar_labels(proj, stem: str) -> dict[str, bytes]:
    """A CIFAR-N label file with the cleaned labels, where the data set is CIFAR-N; returns it."""
    cifar = proj.cifar_labels()
    if cifar is None:
        return {}
    st.subheader("CIFAR-N label file")
    npz, source, key = cifar
    st.caption(f"All keys of {source} plus cleaned_label ({key} with your relabels; −1 = removed), in_subset (the "
               "images of this data set's training split: elsewhere cleaned_label is the given label, never "
               "reviewed) and reviewed (the images you decided).")
    st.download_button("Download label file (npz)", npz, f"{stem}-labels.npz", "application/octet-stream")
    return {f"{stem}-labels.npz": npz}


def _tool_exports(proj, ds, current: dict) -> None:
    """Exports for labelling and training tools (issue 20 §7): a format and which rows, built on request for the
    current decisions, runs and model, then downloaded as a zip."""
    formats = proj.export_formats()
    st.subheader("For labelling and training tools")
    c = st.columns(2)
    fmt = c[0].selectbox("Format", list(formats), format_func=lambda n: formats[n][0], key="export-tool-format")
    every = c[1].radio("Rows", [False, True], horizontal=True, key="export-tool-rows",
                       format_func=lambda a: "All, with review tags" if a else "Cleaned (removed left out)")
    st.caption(plain(formats[fmt][1]) + ". Each sample keeps its original index; validation and test "
               "follow as loaded; scores: lower = more detrimental.")
    state = proj.state()
    built_for = (fmt, every, ds.fingerprint(), state.model_hash, [r.label for r in state.runs],
                 sorted((r, d.action, d.new_label) for r, d in current.items()))
    if st.button("Build the export", icon=":material/folder_zip:", key="export-tool-build"):
        try:
            with st.spinner("Writing the export…"):
                st.session_state["export-tool"] = (built_for, proj.export_as(fmt, all_rows=every))
        except InfluenceError as err:
            st.warning(plain(err))
    if st.session_state.get("export-tool", (None,))[0] == built_for:  # built for these choices, not earlier ones
        st.download_button(f"Download {formats[fmt][0]} (zip)", st.session_state["export-tool"][1],
                           f"{proj.export_stem()}-{fmt}.zip", "application/zip", icon=":material/download:")


def _save(proj, files: dict[str, bytes], later: dict) -> None:
    """Write every export file into the project's exports folder."""
    st.subheader("Save to the project")
    viewer = proj.role == "viewer"
    if st.button("Write the export files", icon=":material/save:", disabled=viewer,
                 help="Your role here is viewer: download the files instead." if viewer else None):
        files = {**files, **{n: build() for n, build in later.items()}}
        folder = proj.write_export(files)
        # the project's own folder by name, never the server's path to it
        st.success(f"Wrote {len(files)} files to the project's exports/{plain(folder.name)}")


def page() -> None:
    ctx = start_page("Export", needs="model")
    proj, ds = ctx.proj, ctx.ds
    current = proj.current_decisions()
    if not current:  # first what is missing, then the versions: the data as loaded may be one (a baseline)
        baseline = " (saved as a version already)" if any(not v.rows for v in proj.versions()) else ""
        st.info("No decisions yet: review the flagged samples first. You may still save the data as loaded as a "
                f"version below, a baseline to compare the cleaned versions with{baseline}.")
        link("review", "Go to Review")
        versions_section(proj, ds)
        return
    info = proj.manifest()
    _summary(ds, info)
    _reviewers(proj)
    stem = f"{proj.export_stem()}-corrections"
    files = _corrections(proj, stem, info)
    later = _cleaned_table(proj, ds) if ds.kind in ("tabular", "text") else {}  # text: its own text and columns
    if ds.kind == "image":
        files.update(_image_zip(proj, ds, current, stem))
    files.update(_cifar_labels(proj, stem))
    _tool_exports(proj, ds, current)
    _save(proj, files, later)
    versions_section(proj, ds)  # issue 20 §6


guarded(page)
