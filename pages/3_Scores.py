"""Scores: pick influence methods, the impact and the parameter group; compute in the background (cached);
a table sortable by any method. Lower = more detrimental."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pandas as pd
import streamlit as st

from influence_core.api import scores_frame
from influence_core.figures import detection_auroc, precision_at_k
from influence_core.impacts import IMPACTS
from influence_core.jobs import forget_job, start_job
from influence_core.methods import METHODS
from influence_core.session import ScoreRun, get_workspace, load_selection, save_selection, workspace_root
from pages._common import guarded, job_panel, require_dataset, require_model, scores_of, selection

# Friendlier names for the settings users touch most.
SETTING_LABELS = {"ensemble_size": "K (models in the ensemble)", "dropout": "p (dropout rate)", "damping": "damping λ"}


def _settings_inputs(method: str) -> dict:
    cls = METHODS[method]
    out = {}
    defaults = cls.Settings()
    specs = [f for f in fields(cls.Settings)]
    if not specs:
        return out
    cols = st.columns(min(len(specs), 4))
    for i, f in enumerate(specs):
        default = getattr(defaults, f.name)
        label = f"{cls.label or cls.name}: {SETTING_LABELS.get(f.name, f.name.replace('_', ' '))}"
        key = f"setting-{method}-{f.name}"
        with cols[i % len(cols)]:
            if isinstance(default, bool):
                out[f.name] = st.checkbox(label, value=default, key=key)
            elif isinstance(default, int):
                out[f.name] = int(st.number_input(label, value=default, step=1, key=key))
            elif isinstance(default, float):
                out[f.name] = float(st.number_input(label, value=default, format="%g", key=key))
            elif isinstance(default, str):
                out[f.name] = st.text_input(label, value=default, key=key)
    # Only what differs from the defaults goes into the run's name and cache key.
    return {k: v for k, v in out.items() if v != getattr(defaults, k)}


def _param_groups(fitted) -> list[str]:
    groups = ["all"] + (["head"] if fitted.head_prefix else [])
    groups += [name for name, _ in fitted.module.named_children() if name != fitted.head_prefix]
    return groups


def _form(sel, ds, fitted, job_key: str) -> None:
    names = sorted(METHODS, key=lambda n: (METHODS[n].kind, n))
    chosen = st.multiselect("Methods", names, default=["ip"] if "ip" in names else names[:1],
                            format_func=lambda n: f"{METHODS[n].label or n} ({METHODS[n].kind}, {METHODS[n].cost})")
    c1, c2 = st.columns(2)
    impact = c1.selectbox("Impact (what the score measures)", list(IMPACTS),
                          format_func=lambda n: f"{n} — {IMPACTS[n].description}")
    params = c2.selectbox("Parameter group", _param_groups(fitted),
                          help="'head' = the last layer only: faster, and required for the exact Hessian on larger models")
    runs = []
    for method in chosen:
        if METHODS[method].needs_checkpoints and not fitted.checkpoints:
            st.warning(f"{METHODS[method].label or method} needs training checkpoints: retrain with “Checkpoint every k epochs” > 0.")
            continue
        runs.append(ScoreRun(method, impact if METHODS[method].uses_impact else "utility", params, _settings_inputs(method)))
    if st.button("Compute scores", type="primary", disabled=not runs, icon=":material/calculate:"):
        _start(sel, ds, fitted, runs, job_key)
        st.rerun()


def _start(sel, ds, fitted, runs: list[ScoreRun], job_key: str) -> None:
    root, model_hash = workspace_root(), sel.model_hash

    def run(handle):
        ws = get_workspace(root)
        for i, r in enumerate(runs):
            def progress(fraction: float, message: str, i=i, r=r) -> None:
                handle.check()  # Stop takes effect inside a method, at its next progress report
                handle.report((i + fraction) / len(runs), f"{r.label}: {message}")

            ws.get_or_score(ds, fitted, r.method, r.impact, r.params, r.settings, progress=progress)
            current = load_selection(root)
            if current.model_hash == model_hash:
                current.add_run(r)
                save_selection(current, root)
        return len(runs)

    start_job(job_key, "Scoring", run)


def _table(sel, ds, fitted) -> None:
    scores = scores_of(sel, ds, fitted)
    if not scores:
        st.info("No scores yet: pick methods above and press **Compute scores**.")
        return
    frame = scores_frame(ds, next(iter(scores.values())), column="_").drop(columns=["_", "rank"])
    frame.insert(2, "class", [ds.classes[int(v)] for v in frame["label"]])
    for name, s in scores.items():
        frame[name] = s
    if ds.noise_mask is not None:
        noisy = ds.noise_mask.numpy()
        k = int(noisy.sum())
        quality = pd.DataFrame([{"method": n, "AUROC (noisy vs clean)": detection_auroc(s, noisy),
                                 f"precision@{k}": precision_at_k(s, noisy, k)} for n, s in scores.items()])
        st.markdown("**How well each method finds the known noisy labels**")
        st.dataframe(quality, hide_index=True, width="content")
    st.markdown(f"**Scores of all {len(frame):,} training samples** — lower = more detrimental; click a column header to sort.")
    order = np.argsort(scores[sel.primary_run().label], kind="stable")
    st.dataframe(frame.iloc[order], hide_index=True, width="stretch", height=420,
                 column_config={n: st.column_config.NumberColumn(n, format="%.4g") for n in scores})


def page() -> None:
    st.title("Scores")
    sel = selection()
    ds = require_dataset(sel)
    fitted = require_model(sel, ds)
    st.caption(f"Data set: {ds.name} · model: {sel.arch} {sel.model_hash}")
    job_key = f"score:{sel.model_hash}"
    finished = job_panel(job_key)
    if finished is not None:
        if finished.state == "failed":
            st.error(f"Scoring failed: {finished.error}")
        elif finished.state == "cancelled":
            st.warning("Scoring was stopped; the methods that had finished are kept.")
        forget_job(job_key)
    _form(sel, ds, fitted, job_key)
    st.divider()
    _table(sel, ds, fitted)


guarded(page)
