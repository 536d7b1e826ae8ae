"""Data: choose a built-in data set or upload a CSV / image zip; preview it, its class balance and known noise."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pandas as pd
import streamlit as st

from influence_core.figures import class_balance
from influence_core.project import DATASETS, PATH_LOADERS, InfluenceError, Project, format_bytes, is_size
from app_pages._common import (SETTING_KINDS, display_name, guarded, image_sizes, kind_of, link, plain, setting_input,
                               start_page)

UPLOAD = "Upload a file…"
# Loader arguments with a fixed set of values get a select box instead of a text field.
CHOICES = {"label_set": ["aggregate", "random1", "random2", "random3", "worst"]}


def _parse(text: str):
    """A free-form argument: blank = the loader's default, numbers as numbers, anything else as text."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()


def _parameter_inputs(name: str, defaults: dict, current: dict, max_samples: int) -> dict:
    """A form field per loader argument a browser may set, prefilled from the current selection or the loader's
    default, chosen by the argument's declared kind (its annotation in the loader): a fixed set of values, a size
    (n_train, max_rows, ...: up to the server's ``max_samples``), else `setting_input`'s widget for its type; an
    argument that declares no type is a free-form text field."""
    declared = inspect.signature(DATASETS[name].loader).parameters
    values = {}
    cols = st.columns(min(max(len(defaults), 1), 4))
    for i, (arg, default) in enumerate(defaults.items()):
        value = current.get(arg, default)
        key = f"data-{name}-{arg}"
        with cols[i % len(cols)]:
            label = arg.replace("_", " ")
            if arg in CHOICES:
                opts = CHOICES[arg]
                values[arg] = st.selectbox(label, opts, index=opts.index(value) if value in opts else 0, key=key)
            elif is_size(arg, default):
                shown = None if not isinstance(value, int) else min(max(value, 0), max_samples)
                chosen = st.number_input(label, value=shown, min_value=0, max_value=max_samples, step=1, key=key,
                                         placeholder="all", help=f"at most {max_samples:,} (this server's cap)")
                values[arg] = None if chosen is None else int(chosen)
            elif kind_of(declared[arg].annotation) in SETTING_KINDS:
                kind = kind_of(declared[arg].annotation)
                chosen = setting_input(kind, label, value, key)
                values[arg] = (chosen or None) if kind == "str" else chosen  # an empty text: the loader's default
            else:  # no declared type: numbers as numbers, anything else as text
                text = st.text_input(label, value="" if value is None else str(value), key=key, placeholder="default")
                values[arg] = _parse(text)
    return {k: v for k, v in values.items() if v is not None}


def _choose(proj: Project) -> None:
    state = proj.state()
    names = sorted(DATASETS)
    current = state.dataset if state.dataset in DATASETS else UPLOAD
    options = names + ([UPLOAD] if PATH_LOADERS else [])
    choice = st.selectbox("Data set", options, index=options.index(current) if current in options else 0,
                          format_func=lambda n: n if n == UPLOAD else f"{n} — {DATASETS[n].description}")
    if choice == UPLOAD:
        _upload(proj)
        return
    defaults = DATASETS[choice].browser_parameters()  # paths and downloads are the server's settings, never shown
    cap = proj.server_config().max_generated_samples
    # The loader's settings are a form: changing one does not rerun the app; "Use this data set" sends them all.
    with st.form(f"data-settings-{choice}", border=False, enter_to_submit=False):
        kwargs = _parameter_inputs(choice, defaults, state.dataset_kwargs if choice == state.dataset else {}, cap)
        submitted = st.form_submit_button("Use this data set", type="primary", icon=":material/check:")
    if not submitted:
        return
    given = {k: v for k, v in {**defaults, **state.dataset_kwargs}.items() if v is not None and k in defaults}
    if choice == state.dataset and kwargs == given:  # nothing to change: the model and scores stay
        st.info("This is the current data set, with these settings.")
        return
    try:  # checked and loaded first: a data set that cannot be loaded never becomes current
        with st.spinner(f"Loading {choice}…"):
            proj.use_dataset(choice, from_browser=True, **kwargs)
    except InfluenceError as err:
        st.error(f"This data set cannot be used: {plain(err)}")
        return
    st.rerun()


def _upload(proj: Project) -> None:
    kinds = sorted(s.lstrip(".") for s in PATH_LOADERS)
    st.caption("A CSV with one row per sample and a label column (and optionally a 'split' column of train / val / "
               "test, as the cleaned export writes it), or a zip of images in class folders (`<class>/*.png`, or "
               "`train/<class>/*.png` with optional `val/` and `test/`).")
    file = st.file_uploader("Data file", type=kinds)
    c1, c2 = st.columns(2)
    label_column = c1.text_input("Label column (CSV; blank: the column named label, y, target or class, else the last column)") or None
    sensitive_column = c2.text_input("Sensitive attribute column (CSV, optional)") or None
    cap = proj.server_config().max_image_size
    sizes = image_sizes(proj)
    image_size = sizes[0]
    if file is None or file.name.lower().endswith(".zip"):  # nothing to size in a table
        image_size = st.selectbox("Image size (zip; pixels a side)", sizes, index=0, key="image-size",
                                  help="Images are resized to this square size. 32 trains the small CNN fast; 224 is "
                                       "the size pretrained backbones (Model page) were trained at (a backbone reads "
                                       f"the zip again at its size). This server's cap: {cap}.")
    if file is None:
        return
    kwargs = {k: v for k, v in {"label_column": label_column, "sensitive_column": sensitive_column}.items() if v}
    columns_key = f"data-upload-columns-{file.name}-{file.size}"
    kwargs.update(st.session_state.get(columns_key) or {})  # text / feature columns chosen below (a rerun ago)
    if file.name.lower().endswith(".zip"):
        kwargs["image_size"] = int(image_size)
    try:  # checked, then loaded from a staging copy: only an accepted upload is stored
        with st.spinner("Checking the file…"):
            path, ds = proj.stage_dataset_upload(file.getvalue(), file.name, from_browser=True, **kwargs)
    except InfluenceError as err:
        st.error(f"This file cannot be used: {plain(err)}")
        (st.session_state.get(columns_key) or {}).pop("annotator_columns", None)  # the next run reads it without them
        return
    what = f" (label column: {plain(ds.meta['label_column'])})" if ds.meta.get("label_column") else ""
    if ds.meta.get("splits") == "column":
        what += f"; validation ({len(ds.val)}) and test ({len(ds.test)}) as its split column says"
    st.success(f"Read {len(ds.train)} training samples in {ds.num_classes} classes from {plain(file.name)}{what}.")
    for note in ds.meta.get("conversions") or []:  # what the loader read differently from the file's cells
        st.info(plain(note))
    chosen = _column_choices(ds, columns_key)
    annotators = _annotator_choice(ds, columns_key)  # issue 20 §4
    if chosen is not None or annotators is not None:  # loaded again with the columns chosen
        st.session_state[columns_key] = {**(st.session_state.get(columns_key) or {}), **(chosen or {}), **(annotators or {})}
        st.rerun()
    state = proj.state()
    if state.dataset == path and state.dataset_kwargs == kwargs:
        st.caption("This upload is the current data set.")
    elif st.button("Use this upload", type="primary", icon=":material/check:"):
        proj.use_dataset(path, from_browser=True, **kwargs)
        st.rerun()


def _column_choices(ds, key: str) -> dict | None:
    """A CSV upload's text columns (TF-IDF features; none = read as a table) and, with text, which other columns stay
    features (issue 18): the loader's keywords when the choice differs from how ``ds`` was loaded, else None."""
    columns = ds.meta.get("columns")
    if columns is None:  # not a table
        return None
    label = ds.meta.get("label_column") or ds.meta.get("originals", {}).get("label_column")
    options = [c for c in columns if c not in (label, "split", "original_index")]
    found = list(ds.meta.get("text_columns") or [])
    c1, c2 = st.columns(2)
    text = c1.multiselect("Text columns (TF-IDF features; none: read as a table)", options, default=found,
                          key=f"{key}-text", help="Several columns (sentence pairs) are joined into one text.")
    loaded = list(ds.meta.get("feature_columns") or [])
    kept: list[str] = []
    if text:
        others = [c for c in options if c not in text]
        kept_now = loaded if text == found else others
        kept = c2.multiselect("Other columns kept as features", others, default=[c for c in kept_now if c in others],
                              key=f"{key}-features-{'-'.join(text)}", help="Left out columns are ignored by the model.")
    limits = Project.tfidf_limits()
    tfidf = _tfidf_inputs(ds, key, limits) if text and ds.meta.get("tfidf") else {}
    changed = {k: v for k, v in tfidf.items() if v != limits[k][0]}  # kept only where not the default
    loaded_tfidf = {k: v for k, v in (ds.meta.get("tfidf") or {}).items() if k in limits and v != limits[k][0]}
    if (text, kept, changed) == (found, loaded, loaded_tfidf):
        return None
    return {"text_columns": text, "feature_columns": kept, **changed}


TFIDF_LABELS = {"ngram_max": "Word n-grams up to", "min_df": "Terms in at least this many texts",
                "max_features": "Most frequent terms kept"}


def _tfidf_inputs(ds, key: str, limits: dict[str, tuple[int, int]]) -> dict:
    """The TF-IDF settings (issue 18) as number inputs capped by ``limits``, starting at those ``ds`` was loaded with."""
    loaded = ds.meta["tfidf"]
    cols = st.columns(len(limits))
    out = {}
    for col, (name, (default, cap)) in zip(cols, limits.items()):
        value = min(int(loaded.get(name, default)), cap)
        out[name] = int(col.number_input(TFIDF_LABELS[name], min_value=1, max_value=cap, value=value, step=1,
                                         key=f"{key}-tfidf-{name}", help=f"TF-IDF {name} (1 to {cap:,})."))
    return out


def _annotator_choice(ds, key: str) -> dict | None:
    """Issue 20 §4: which other columns of the table hold further annotators' labels (from the file's own columns
    only): the loader's keyword when the choice differs from how ``ds`` was loaded, else None."""
    columns = ds.meta.get("columns")
    if columns is None:
        return None
    label = ds.meta.get("label_column") or ds.meta.get("originals", {}).get("label_column")
    loaded = list(ds.annotator_names or [])
    options = [c for c in columns if c not in (label, ds.meta.get("sensitive_column"), "split", "original_index")]
    options += [c for c in loaded if c not in options]  # a text table's meta lists the columns it read, not these
    chosen = st.multiselect("Annotator columns (other people's labels of the same samples; empty cells allowed)",
                            options, default=[c for c in loaded if c in options], key=f"{key}-annotators",
                            help="Read as labels, not features: cleanlab's consensus of all annotators and each "
                                 "one's quality appear on Scores, and each card on Review says what each one said.")
    return None if chosen == loaded else {"annotator_columns": chosen}


def _preview(proj: Project, ds) -> None:
    summary = ds.summary()
    c = st.columns(5)
    c[0].metric("Training", f"{summary['n_train']:,}")
    c[1].metric("Validation", f"{summary['n_val']:,}")
    c[2].metric("Test", f"{summary['n_test']:,}")
    c[3].metric("Classes", summary["num_classes"])
    c[4].metric("Known noise rate", f"{summary['noise_rate']:.1%}" if "noise_rate" in summary else "unknown")
    left, right = st.columns([2, 3])
    with left:
        noisy_counts = None
        if ds.noise_mask is not None:
            y, m = ds.train.y.numpy(), ds.noise_mask.numpy()
            noisy_counts = {ds.classes[k]: int((m & (y == k)).sum()) for k in range(ds.num_classes)}
        st.plotly_chart(class_balance(summary["class_counts"], noisy_counts), width="stretch")
        if ds.sensitive_name:
            st.caption(f"Sensitive attribute: {plain(ds.sensitive_name)} (used by the fairness impact).")
        if ds.annotators is not None:  # issue 20 §4
            st.caption(f"Annotators: {plain(', '.join(ds.annotator_names))} — each one's quality on Scores once a "
                       "model is trained.")
    with right:
        st.markdown("**Preview** (first training samples)")
        if ds.kind == "image":
            n = min(18, len(ds.train))
            pixels = proj.images(np.arange(n))
            cols = st.columns(6)
            for i in range(n):
                noisy = ds.noise_mask is not None and bool(ds.noise_mask[i])
                caption = plain(ds.classes[int(ds.train.y[i])]) + (" ⚠" if noisy else "")
                cols[i % 6].image(pixels[i], caption=caption, width="stretch")
            if ds.noise_mask is not None:
                st.caption("⚠ = the given label is known to be wrong.")
        elif ds.kind == "text":  # the texts and columns as the file holds them, not their TF-IDF numbers
            frame = proj.sample_values(np.arange(min(200, len(ds.train))))
            st.dataframe(frame, height=330, width="stretch")
        else:
            n = min(200, len(ds.train))
            x = ds.train.rows(slice(0, n)).numpy().reshape(n, -1)
            names = ds.feature_names or [f"x{i}" for i in range(x.shape[1])]
            frame = pd.DataFrame(x, columns=names[: x.shape[1]])
            frame.insert(0, "label", [ds.classes[int(v)] for v in ds.train.y[:n]])
            if ds.noise_mask is not None:
                frame.insert(1, "known noisy", ds.noise_mask[:n].numpy().astype(bool))
            st.dataframe(frame, height=330, width="stretch")


def _storage(proj: Project) -> None:
    """Workspace storage: for the server's administrators (everyone in single-user mode) bytes per project and per
    cache kind, and a button that deletes cache entries no project refers to; for other signed-in users, their own
    projects' bytes against their quota (other users' project names stay private)."""
    with st.expander("Workspace storage"):
        usage = Project.storage_usage(proj.root)
        config = proj.server_config()
        if proj.access.signed_in and not proj.access.admin:
            mine = usage["owners"].get(proj.access.user, 0)
            st.caption(f"Your projects take {format_bytes(mine)} of your {format_bytes(config.user_quota_bytes)}; "
                       f"each project's uploads and arrays may take {format_bytes(config.project_upload_bytes)}. "
                       "The server's administrators see and free the rest of the workspace.")
            return
        st.caption(f"{format_bytes(usage['total'])} in use of this server's "
                   f"{format_bytes(config.workspace_quota_bytes)}; each user's projects may take "
                   f"{format_bytes(config.user_quota_bytes)}, each project's uploads and arrays "
                   f"{format_bytes(config.project_upload_bytes)}.")
        left, right = st.columns(2)
        left.dataframe(pd.DataFrame({"project": list(usage["projects"]),
                                     "owner": [usage["project_owners"][n] for n in usage["projects"]],
                                     "size": [format_bytes(b) for b in usage["projects"].values()]}),
                       hide_index=True, width="stretch")
        right.dataframe(pd.DataFrame({"cache": list(usage["kinds"]),
                                      "size": [format_bytes(b) for b in usage["kinds"].values()]}),
                        hide_index=True, width="stretch")
        if st.button("Delete unused cache entries", icon=":material/delete_sweep:",
                     help="models and scores of data no project uses, stored arrays no project reads, shards of "
                          "finished runs; everything a project uses stays"):
            with st.spinner("Looking for entries no project uses…"):
                freed = Project.collect_garbage(proj.root)
            st.success(f"Freed {format_bytes(sum(size for _, size in freed))} in {len(freed)} entries.")


def page() -> None:
    proj = start_page("Data", intro="Pick the training data to debug. The built-in **moons** set has 20 labels "
                                    "flipped on purpose, so you can see the whole flow without uploading anything.").proj
    _choose(proj)
    st.divider()
    ds = proj.dataset()  # a data set that no longer loads: its one-line reason, the chooser above still works
    st.subheader(f"{plain(display_name(proj.state().dataset))} · {ds.kind}")
    _preview(proj, ds)
    link("model", "Next: train a model on this data on Model")
    _storage(proj)


guarded(page)
