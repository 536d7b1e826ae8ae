"""Scores: pick methods (IP + loss first), the impact, its validation target and the parameter group, in-sample
or out of fold; compute in the background (cached); the leaderboard where the wrong labels are known, cleanlab's
estimate of how many labels are wrong, and a table sortable by any method. Lower = more detrimental."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch

from influence_core.api import describe_target, estimate_label_issues, scores_frame
from influence_core.figures import detection_report
from influence_core.impacts import IMPACTS, resolve_val_trim
from influence_core.jobs import forget_job, start_job
from influence_core.methods import METHODS
from influence_core.session import ScoreRun, get_workspace, load_selection, save_selection, workspace_root
from pages._common import guarded, job_panel, notes_of, plain, require_dataset, require_model, run_title, scores_of, selection

# Friendlier names for the settings users touch most.
SETTING_LABELS = {"ensemble_size": "K (models in the ensemble)", "dropout": "p (dropout rate)", "damping": "damping λ"}
# The recommended influence ranking, the loss (the strongest plain detector on the leaderboard, bench/results/detect.md)
# and the paper's IP for comparison come first and are computed by default; the rest by kind.
FIRST = ("ip_combined", "loss", "ip")
MAX_FOLDS = 20


def _method_names() -> list[str]:
    first = [n for n in FIRST if n in METHODS]
    return first + sorted((n for n in METHODS if n not in first), key=lambda n: (METHODS[n].kind, n))


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
            elif default is None:  # an optional number: empty = the method's automatic choice
                value = st.number_input(label, value=None, format="%g", placeholder="automatic", key=key)
                out[f.name] = None if value is None else float(value)
    # Only what differs from the defaults goes into the run's name and cache key.
    return {k: v for k, v in out.items() if v != getattr(defaults, k)}


def _param_groups(fitted) -> list[str]:
    groups = ["all"] + (["head"] if fitted.head_prefix else [])
    groups += [name for name, _ in fitted.module.named_children() if name != fitted.head_prefix]
    return groups


@st.cache_resource(max_entries=16, show_spinner="Finding the validation samples the target uses…")
def _target(_ds, _fitted, key: str, impact: str, settings_json: str) -> dict:
    info = describe_target(_ds, _fitted, impact, json.loads(settings_json))
    rows = np.asarray(info["left_out"], dtype=np.int64)
    if len(rows):
        with torch.no_grad():
            info["predicted"] = _fitted.module.eval()(_ds.val.x[torch.from_numpy(rows)]).argmax(1).tolist()
    return info


def _target_controls(ds, fitted, impact: str, folds: int, key: str) -> dict:
    """The validation target's settings (``{}`` = automatic) and which validation samples it uses."""
    if "val_trim" not in {f.name for f in fields(IMPACTS[impact])}:
        return {}
    auto = resolve_val_trim(None, ds)
    trusted = " This data set's validation labels are marked clean." if ds.meta.get("trusted_val") else ""
    c1, c2 = st.columns(2)
    clean = c1.checkbox("Validation labels are clean — use all of them", key="val-clean",
                        help="Every validation sample counts in the target (the share below is then 0)." + trusted)
    share = c2.number_input(
        "Leave out the least plausible validation samples (share)", 0.0, 0.9, value=None, step=0.05, format="%.2f",
        placeholder=f"automatic ({auto:.0%})", disabled=clean, key="val-trim",
        help="A validation split carved from your own noisy file has wrong labels too, and they dominate the mean "
             "validation loss: the target would point the wrong way. This share of validation samples with the "
             f"highest loss is left out of the target. Empty = automatic ({auto:.0%}).")
    settings = {"val_trim": 0.0} if clean else ({} if share is None else {"val_trim": float(share)})
    info = _target(ds, fitted, key, impact, json.dumps(settings, sort_keys=True))
    out = len(info["left_out"])
    text = f"Target: {info['n_used']:,} of {info['n_val']:,} validation samples"
    text += f"; {out:,} left out as least plausible." if out else " (all of them)."
    if folds >= 2:
        text += " Shown for the full model; out of fold, each fold model leaves out its own least plausible share."
    st.caption(text)
    if out:
        with st.expander(f"The {out:,} validation samples left out of the target"):
            st.dataframe(pd.DataFrame({"validation sample": info["left_out"],
                                       "given label": [ds.classes[int(ds.val.y[r])] for r in info["left_out"]],
                                       "predicted": [ds.classes[int(p)] for p in info["predicted"]]}),
                         hide_index=True, width="content", key="left-out")
    return settings


def _form(sel, ds, fitted, job_key: str) -> None:
    names = _method_names()
    chosen = st.multiselect("Methods", names, default=[n for n in FIRST if n in names] or names[:1],
                            format_func=lambda n: f"{METHODS[n].label or n} ({METHODS[n].kind}, {METHODS[n].cost})",
                            help="IP + loss (rank average) is the recommended ranking; IP is the paper's method, kept "
                                 "for comparison. Detectors (loss, margin, confident learning) rank by how little the "
                                 "model believes a label.")
    c1, c2, c3 = st.columns(3)
    impact = c1.selectbox("Impact (what the score measures)", list(IMPACTS),
                          format_func=lambda n: f"{n} — {IMPACTS[n].description}")
    params = c2.selectbox("Parameter group", _param_groups(fitted),
                          help="'head' = the last layer only: faster, and required for the exact Hessian on larger models")
    refittable = bool(fitted.history)
    folds = int(c3.number_input(
        "Folds (out-of-fold scoring)", 0, MAX_FOLDS, 0, step=1, disabled=not refittable, key="folds",
        help="0 = in-sample: every sample is scored by the model that trained on it. K ≥ 2 = out of fold: K models of "
             "this architecture and training settings, each trained on the other K−1 folds, and every sample is "
             "scored by the one that did not see it (a memorised wrong label no longer hides). The fold models are "
             "trained once and cached, shared by every method; an interrupted run resumes at the next fold."
        if refittable else "Out-of-fold scoring retrains the model on each fold: uploaded weights have no training "
                           "recipe. Train the model here to use it."))
    if folds == 1:
        st.warning("Folds: 0 (in-sample) or at least 2.")
    impact_settings = _target_controls(ds, fitted, impact, folds, sel.model_hash or fitted.fingerprint())
    runs = []
    for method in chosen:
        cls = METHODS[method]
        if cls.uses_impact and cls.impacts is not None and impact not in cls.impacts:
            st.info(f"{cls.label or method} is meant for the {' or '.join(cls.impacts)} impact; it is left out for "
                    f"{impact}.")
            continue
        if cls.needs_checkpoints and not fitted.checkpoints:
            st.warning(f"{cls.label or method} needs training checkpoints: retrain with “Checkpoint every k epochs” > 0.")
            continue
        runs.append(ScoreRun(method, impact if cls.uses_impact else "utility", params, _settings_inputs(method),
                             folds=folds, impact_settings=impact_settings if cls.uses_impact else {}))
    if st.button("Compute scores", type="primary", disabled=not runs or folds == 1, icon=":material/calculate:"):
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

            ws.get_or_score(ds, fitted, progress=progress, **r.score_kwargs())
            current = load_selection(root)
            if current.model_hash == model_hash:
                current.add_run(r)
                save_selection(current, root)
        return len(runs)

    start_job(job_key, "Scoring", run)


@st.cache_resource(max_entries=8, show_spinner="Asking cleanlab how many labels are wrong…")
def _label_issues(_ds, _fitted, key: str, folds: int, root: str) -> dict:
    fold_models = get_workspace(Path(root)).fold_models(_ds, _fitted, folds) if folds else None
    return estimate_label_issues(_ds, _fitted, fold_models=fold_models, folds=folds or None)


def _run_notes(sel, ds, fitted) -> None:
    """What a computed run found that the user must know, e.g. exact influence on a non-convex model."""
    notes = notes_of(sel, ds, fitted)
    for run in sel.runs:
        if run.label in notes:
            st.warning(f"{plain(run_title(run))}: {plain(notes[run.label])}")


def _cleanlab_estimate(sel, ds, fitted) -> None:
    """cleanlab's own count of wrong labels, once a confident-learning run exists (out of fold when there is one)."""
    runs = [r for r in sel.runs if r.method == "confident_learning"]
    if not runs:
        return
    run = max(runs, key=lambda r: r.folds)
    est = _label_issues(ds, fitted, sel.model_hash or fitted.fingerprint(), run.folds, str(workspace_root()))
    n = len(ds.train)
    c = st.columns([1, 3], vertical_alignment="center")
    c[0].metric("Wrong labels (cleanlab's estimate)", f"{est['count']:,}", help="cleanlab.filter.find_label_issues")
    text = (f"{est['share']:.1%} of the {n:,} training labels, " + (
        f"on out-of-fold probabilities ({run.folds} folds), as cleanlab intends." if est["out_of_fold"] else
        "on in-sample probabilities: a model that fits its own labels hides wrong ones, so this undercounts — "
        "compute confident learning with folds ≥ 2 for cleanlab's intended estimate."))
    if ds.noise_mask is not None:
        noisy = ds.noise_mask.numpy().astype(bool)
        text += f" Known: {int(noisy.sum()):,} labels are wrong; {int((est['mask'] & noisy).sum()):,} of cleanlab's {est['count']:,} are."
    c[1].caption(text)


def _leaderboard(sel, ds, scores: dict) -> None:
    """Where the wrong labels are known: how well each computed ranking finds them (which ranking to trust)."""
    if ds.noise_mask is None:
        return
    noisy = ds.noise_mask.numpy().astype(bool)
    report = detection_report(scores, noisy)
    titles = {r.label: run_title(r) for r in sel.runs}
    report.insert(1, "ranking", [titles.get(m, m) for m in report["method"]])
    st.markdown(f"**Which ranking to trust** — how well each computed ranking finds the {int(noisy.sum()):,} labels "
                f"known to be wrong in {plain(ds.name)}, with this model (best first)")
    st.caption("AUROC: 0.5 = random order, 1 = every wrong label ranked above every right one. precision@5%: the share "
               "of wrong labels among the 5% lowest-scored samples. Compute more methods (or out of fold) to compare.")
    numbers = [c for c in report.columns if c not in ("method", "ranking")]
    st.dataframe(report, hide_index=True, width="content", key="leaderboard",
                 column_config={c: st.column_config.NumberColumn(c, format="%.3f") for c in numbers})


def _table(sel, ds, fitted) -> None:
    scores = scores_of(sel, ds, fitted)
    if not scores:
        st.info("No scores yet: pick methods above and press **Compute scores**.")
        return
    _leaderboard(sel, ds, scores)
    _run_notes(sel, ds, fitted)
    _cleanlab_estimate(sel, ds, fitted)
    frame = scores_frame(ds, next(iter(scores.values())), column="_").drop(columns=["_", "rank"])
    frame.insert(2, "class", [ds.classes[int(v)] for v in frame["label"]])
    for name, s in scores.items():
        frame[name] = s
    primary = sel.primary_run()
    st.markdown(f"**Scores of all {len(frame):,} training samples** — lower = more detrimental; ordered by "
                f"{plain(run_title(primary))}; click a column header to sort.")
    order = np.argsort(scores[primary.label], kind="stable")
    st.dataframe(frame.iloc[order], hide_index=True, width="stretch", height=420, key="scores",
                 column_config={n: st.column_config.NumberColumn(n, format="%.4g") for n in scores})


def page() -> None:
    st.title("Scores")
    sel = selection()
    ds = require_dataset(sel)
    fitted = require_model(sel, ds)
    st.caption(f"Data set: {plain(ds.name)} · model: {sel.arch} {sel.model_hash}")
    job_key = f"score:{sel.model_hash}"
    finished = job_panel(job_key)
    if finished is not None:
        if finished.state == "failed":
            st.error(f"Scoring failed: {plain(finished.error)}")
        elif finished.state == "cancelled":
            st.warning("Scoring was stopped; the methods that had finished are kept.")
        forget_job(job_key)
    _form(sel, ds, fitted, job_key)
    st.divider()
    _table(sel, ds, fitted)


guarded(page)
