"""Export: the corrections table (CSV, Parquet), the cleaned data set (a table with the source's values, or an
ImageFolder zip with the original image files), a CIFAR-N label file with cleaned labels, and a manifest of what
produced them — as downloads and as files in the workspace."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from influence_core.data.cifar import load_label_file
from influence_core.data.paths import shared_data_dir
from influence_core.data.originals import label_column
from influence_core.errors import InfluenceError
from influence_core.export import (cifar_label_file, cleaned_table, corrections_table, export_stem, imagefolder_zip,
                                   manifest, manifest_bytes, table_bytes, write_export)
from influence_core.session import decision_scope, workspace_root
from pages._common import APP_VERSION, decisions, guarded, missing, plain, require_dataset, require_model, scores_of, selection

def _cifar_source(ds, sel) -> tuple[Path, str] | None:
    """(label file, key the training labels came from) for CIFAR-N data sets; None for others."""
    key = ds.meta.get("label_key")
    if key is None or not ds.name.startswith(("cifar10n", "cifar100n")):
        return None
    name = "cifar100n_labels.npz" if ds.name.startswith("cifar100n") else "cifar10n_labels.npz"
    path = Path(sel.dataset_kwargs.get("labels_path") or shared_data_dir() / "cifar_n" / name)
    return (path, key) if path.exists() else None


def page() -> None:
    st.title("Export")
    sel = selection()
    ds = require_dataset(sel)
    fitted = require_model(sel, ds)
    log, scope = decisions(), decision_scope(ds)
    current = log.current(scope)
    if not current:
        missing("No decisions yet: review the flagged samples first.", "review", "Go to Review")
    scores = scores_of(sel, ds, fitted)
    table = corrections_table(ds, current, scores)
    info = manifest(ds, sel.model_hash or fitted.fingerprint(), [r.__dict__ | {"label": r.label} for r in sel.runs], current,
                    APP_VERSION)
    c = st.columns(4)
    for col, action in zip(c, ("keep", "remove", "relabel")):
        col.metric(action.capitalize(), info["counts"][action])
    c[3].metric("Training samples after", f"{info['n_train_after']:,} / {len(ds.train):,}")
    st.subheader("Corrections table")
    st.dataframe(table, hide_index=True, width="stretch", height=260)
    stem = f"{export_stem(ds.name)}-corrections"
    files = {f"{stem}.csv": table_bytes(table, "csv"), f"{stem}.parquet": table_bytes(table, "parquet"),
             "manifest.json": manifest_bytes(info)}
    d = st.columns(3)
    d[0].download_button("Download CSV", files[f"{stem}.csv"], f"{stem}.csv", "text/csv", icon=":material/download:",
                         type="primary", width="stretch")
    d[1].download_button("Download Parquet", files[f"{stem}.parquet"], f"{stem}.parquet", "application/octet-stream",
                         icon=":material/download:", width="stretch")
    d[2].download_button("Download manifest (JSON)", files["manifest.json"], "manifest.json", "application/json",
                         icon=":material/download:", width="stretch")
    later = {}  # built only when downloaded or written: the cleaned data set can be large
    if ds.kind == "tabular":
        st.subheader("Cleaned data set")
        try:
            cleaned = cleaned_table(ds, current)
        except InfluenceError as err:
            st.warning(str(err))
        else:
            name = f"{export_stem(ds.name)}-cleaned"
            later = {f"{name}.csv": lambda: table_bytes(cleaned, "csv"), f"{name}.parquet": lambda: table_bytes(cleaned, "parquet")}
            values = "values as in the file (not standardised)" if "originals" in ds.meta else "values as generated"
            st.caption(f"The {len(cleaned):,} kept training rows with their {values} and final labels in "
                       f"'{plain(label_column(ds))}': load it next like any CSV. The CSV neutralises formula cells; "
                       "Parquet keeps raw values.")
            e = st.columns(2)
            e[0].download_button("Download cleaned CSV", later[f"{name}.csv"], f"{name}.csv", "text/csv",
                                 icon=":material/download:", width="stretch")
            e[1].download_button("Download cleaned Parquet", later[f"{name}.parquet"], f"{name}.parquet",
                                 "application/octet-stream", icon=":material/download:", width="stretch")
    if ds.kind == "image":
        st.subheader("Cleaned images (ImageFolder layout)")
        st.caption("train/<class>/<name> with relabels applied and removed samples left out, val/ and test/ as loaded, "
                   "plus metadata.csv. An uploaded zip keeps its files and names; others are <index>.png.")
        decided = (ds.fingerprint(), sorted((r, d.action, d.new_label) for r, d in current.items()))
        if st.button("Build the image zip", icon=":material/folder_zip:"):
            with st.spinner("Writing images…"):
                st.session_state["export-zip"] = (decided, imagefolder_zip(ds, current))
        if st.session_state.get("export-zip", (None,))[0] == decided:  # built for these decisions, not earlier ones
            files[f"{stem}-imagefolder.zip"] = st.session_state["export-zip"][1]
            st.download_button("Download image zip", files[f"{stem}-imagefolder.zip"], f"{stem}-imagefolder.zip", "application/zip")
    source = _cifar_source(ds, sel)
    if source is not None:
        st.subheader("CIFAR-N label file")
        path, key = source
        npz = cifar_label_file(load_label_file(path), ds, current, key)
        files[f"{stem}-labels.npz"] = npz
        st.caption(f"All keys of {path.name} plus cleaned_label ({key} with your relabels; −1 = removed).")
        st.download_button("Download label file (npz)", npz, f"{stem}-labels.npz", "application/octet-stream")
    st.subheader("Save to the workspace")
    if st.button("Write the export files", icon=":material/save:"):
        files.update({n: build() for n, build in later.items()})
        folder = write_export(workspace_root() / "exports" / f"{export_stem(ds.name)}-{time.strftime('%Y%m%d-%H%M%S')}", files)
        st.success(f"Wrote {len(files)} files to {plain(folder)}")


guarded(page)
