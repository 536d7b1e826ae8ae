"""Scores: tick methods (IP + loss, loss and IP by default; each with its estimated time here), the impact and its
settings, the validation target and the parameter group, in-sample or out of fold; compute as the project's "score"
job; the leaderboard where the wrong labels are known, cleanlab's estimate of how many labels are wrong, and a table
of every training sample by its original index. Lower = more detrimental."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pandas as pd
import streamlit as st

from influence_core.figures import detection_report, format_duration
from influence_core.project import (IMPACTS, METHODS, InfluenceError, Project, ScoreRun, describe_impact,
                                    resolve_val_trim)
from app_pages._common import guarded, job_section, kind_of, link, plain, run_title, setting_input, start_page

# Friendlier names for the settings users touch most.
SETTING_LABELS = {"ensemble_size": "K (models in the ensemble)", "dropout": "p (dropout rate)", "damping": "damping λ"}
IMPACT_LABELS = {
    "positive_class": ("Positive class",
                       "Fairness measures the gap between the sensitive groups' mean predicted probability of this class."),
    "c": ("Attack strength c",
          "Binary logistic regression: each validation point is moved along w past the decision boundary, c times its "
          "margin (c > 1 crosses it). Other models use ε."),
    "epsilon": ("Attack step ε",
                "Models other than binary logistic regression: one FGSM step of this size on each validation input."),
}
# The recommended influence ranking, the loss (the strongest plain detector on the leaderboard, bench/results/detect.md)
# and the paper's IP for comparison come first and are ticked by default; the rest by kind.
FIRST = ("ip_combined", "loss", "ip")
KINDS = {"hessian-free": "Hessian-free influence", "hessian-based": "Hessian-based influence",
         "self-influence": "Self-influence", "detector": "Detectors (no gradients)"}
MAX_FOLDS = 20


def _method_names() -> list[str]:
    first = [n for n in FIRST if n in METHODS]
    return first + sorted((n for n in METHODS if n not in first), key=lambda n: (METHODS[n].kind, n))


def _label(name: str) -> str:
    return METHODS[name].label or name


def _short(name: str) -> str:
    """A method's name without its parenthesis (e.g. "IP + loss"), so name and time fit a checkbox column."""
    return _label(name).split(" (")[0]


# ------------------------------------------------------------------------------------------ widgets
def _settings_inputs(method: str) -> dict:
    """Inputs for a ticked method's settings; only what differs from the defaults goes into the run (its name and
    cache key)."""
    cls = METHODS[method]
    defaults = cls.Settings()
    specs = list(fields(cls.Settings))
    if not specs:
        return {}
    out = {}
    cols = st.columns(min(len(specs), 4))
    for i, f in enumerate(specs):
        label = f"{_label(method)}: {SETTING_LABELS.get(f.name, f.name.replace('_', ' '))}"
        with cols[i % len(cols)]:
            out[f.name] = setting_input(kind_of(f.type), label, getattr(defaults, f.name), f"setting-{method}-{f.name}")
    return {k: v for k, v in out.items() if v != getattr(defaults, k)}


def _stored_settings(method: str) -> dict:
    """A method's settings as its inputs hold them now (read before they are drawn, for the cost estimates)."""
    cls = METHODS[method]
    defaults = cls.Settings()
    out = {}
    for f in fields(cls.Settings):
        value = st.session_state.get(f"setting-{method}-{f.name}", getattr(defaults, f.name))
        if value != getattr(defaults, f.name):
            out[f.name] = value
    return out


def _costs(proj: Project, params: str, folds: int) -> dict[str, float]:
    """Each method's estimated seconds on this data set and model ({} when the estimate cannot be made)."""
    try:
        with st.spinner("Timing this model for the cost estimates…"):
            return proj.method_costs(params, folds, {n: _stored_settings(n) for n in METHODS})
    except (InfluenceError, RuntimeError, ValueError):
        return {}


def _ticked_first(ds) -> tuple[str, ...]:
    """The methods ticked until the user chooses: `FIRST`, and on text of three or more classes the class-target IP
    too (a single mean validation gradient lets the classes' pulls cancel there: bench/results/detect_text.md)."""
    return FIRST + (("ip_classwise",) if ds.kind == "text" and len(ds.classes) >= 3 and "ip_classwise" in METHODS else ())


def _method_picker(costs: dict[str, float], n_train: int, checkpoints: bool, ticked: tuple[str, ...] = FIRST) -> list[str]:
    """One checkbox per method, grouped by kind, with its estimated time here (or what it lacks): only ticked methods
    are computed (nothing can be added by typing); ``ticked``: those ticked until the user chooses."""
    st.markdown("**Methods** — tick what to compute; the time after each name is a rough estimate for this data set "
                "and model")
    names = _method_names()
    groups = {kind: [n for n in names if METHODS[n].kind == kind] for kind in KINDS}
    others = [n for n in names if METHODS[n].kind not in KINDS]
    if others:
        groups["other"] = others
    how = ("Estimated from one forward + backward pass timed on this model, scaled to the "
           f"{n_train:,} training samples and by the method's cost class and settings (bench/results/methods.md); "
           "expect a factor of two either way, more on a busy machine.")
    cols = st.columns(len(groups))
    for col, (kind, members) in zip(cols, groups.items()):
        with col:
            st.caption(KINDS.get(kind, kind))
            for name in members:
                key = f"method-{name}"
                if key not in st.session_state:
                    st.session_state[key] = name in ticked
                cost = f" · {format_duration(costs[name])}" if name in costs else ""
                lacking = METHODS[name].needs_checkpoints and not checkpoints
                if lacking:
                    cost = " · no checkpoints"
                st.checkbox(f"{_short(name)}{cost}", key=key,
                            help=f"{_label(name)}. Cost class: {METHODS[name].cost}. "
                                 + ("It needs training checkpoints: retrain with “Checkpoint every k epochs” > 0. "
                                    if lacking else "") + (how if name in costs else ""))
    return [n for n in names if st.session_state.get(f"method-{n}")]


def _param_groups(fitted) -> list[str]:
    groups = ["all"] + (["head"] if fitted.head_prefix else [])
    groups += [name for name, _ in fitted.module.named_children() if name != fitted.head_prefix]
    groups += [g for g in getattr(fitted.module, "parameter_groups", ()) if g not in groups]  # hf: lora, last:k
    return groups


def _impact_inputs(impact: str, ds) -> dict:
    """Inputs for the impact's settings besides its validation target (fairness: the positive class; robustness: c
    and ε), one per field of the impact's settings dataclass; only values that differ from the defaults are kept."""
    cls = IMPACTS[impact]
    specs = [f for f in fields(cls) if f.name != "val_trim"]
    if not specs:
        return {}
    defaults = cls()
    out = {}
    cols = st.columns(min(len(specs), 4))
    for i, f in enumerate(specs):
        default = getattr(defaults, f.name)
        label, help_text = IMPACT_LABELS.get(f.name, (f.name.replace("_", " "), None))
        key = f"impact-{impact}-{f.name}"
        with cols[i % len(cols)]:
            if f.name == "positive_class":
                classes = list(range(len(ds.classes)))
                out[f.name] = st.selectbox(label, classes, index=min(default, len(classes) - 1), key=key,
                                           format_func=lambda c: f"{c}: {ds.classes[c]}", help=help_text)
            else:
                kind = kind_of(f.type)
                limits = {"min_value": 0.0} if kind == "float" else {}
                out[f.name] = setting_input(kind, label, default, key, help_text, **limits)
    return {k: v for k, v in out.items() if v != getattr(defaults, k)}


def _target(proj: Project, impact: str, settings: dict) -> dict:
    """Which validation samples the target uses and what the model predicts for the ones left out (both memoised by
    the project)."""
    info = proj.describe_target(impact, settings)
    rows = np.asarray(info["left_out"], dtype=np.int64)
    info["predicted"] = proj.predictions("val")[0][rows].tolist() if len(rows) else []
    return info


def _target_controls(proj: Project, ds, impact: str, folds: int) -> dict:
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
    if clean:
        _warn_trusting(ds, _target(proj, impact, {}))
    info = _target(proj, impact, settings)
    out = len(info["left_out"])
    text = f"Target: {info['n_used']:,} of {info['n_val']:,} validation samples"
    text += f"; {out:,} left out as least plausible." if out else " (all of them)."
    if folds >= 2:
        text += " Shown for the full model; out of fold, each fold model leaves out its own least plausible share."
    st.caption(text)
    if out:
        with st.expander(f"The {out:,} validation samples left out of the target"):
            st.dataframe(pd.DataFrame({"validation sample": info["left_out_index"],
                                       "given label": [ds.classes[int(ds.val.y[r])] for r in info["left_out"]],
                                       "predicted": [ds.classes[int(p)] for p in info["predicted"]]}),
                         hide_index=True, width="content", key="left-out",
                         column_config={"validation sample": st.column_config.NumberColumn(
                             format="%d", help="The sample's row in the original data")})
    return settings


def _warn_trusting(ds, automatic: dict) -> None:
    """Before computing with every validation label trusted: how many of them the model finds implausible. On a
    noisy split they steer the target the wrong way (breast cancer, 10% of labels flipped: IP's AUROC 0.996 → 0.007)."""
    given = ds.val.y.numpy()[np.asarray(automatic["left_out"], dtype=np.int64)]
    contradicted = int(sum(int(p) != int(g) for p, g in zip(automatic["predicted"], given)))
    if not contradicted:
        return
    text = (f"The model predicts another class than the given label for {contradicted:,} of the "
            f"{len(given):,} validation samples it finds least plausible. Trusting every validation label puts them "
            "in the target: if they are wrong labels, the target points the wrong way and the ranking can invert "
            "(the most detrimental samples listed last). Untick unless you know these labels are right.")
    if ds.meta.get("trusted_val"):
        st.caption(text.replace(" Untick", " This data set's validation labels are marked clean; untick"))
    else:
        st.warning(text, icon=":material/warning:")


def _impacts_not_offered(proj: Project, ds, fitted, where) -> None:
    """The single impacts left out of the chooser, each with why (joint rankings follow from their parts)."""
    refused = {n: r for n, r in proj.impacts_refused(ds, fitted).items() if "+" not in n}
    if refused:
        with where.expander(f"Not offered for this data ({len(refused)})"):
            for name, reason in refused.items():
                st.caption(f"**{name}**: {plain(reason)}")


def _form(proj: Project, ds, fitted, running: bool) -> None:
    params_now = st.session_state.get("params", "all")
    folds_now = int(st.session_state.get("folds", 0) or 0)
    chosen = _method_picker(_costs(proj, params_now, folds_now), len(ds.train), bool(fitted.checkpoints),
                            _ticked_first(ds))
    c1, c2, c3 = st.columns(3)
    # Only the impacts this data and model can be scored for (each impact's own check: a sensitive attribute, twins
    # that differ, not robustness on token ids); the others are listed with the reason. a+b = a joint ranking.
    choices = proj.impacts_offered(ds, fitted)
    impact = c1.selectbox("Impact (what the score measures)", choices, key="impact",
                          format_func=lambda n: f"{n} — {describe_impact(n)}")
    _impacts_not_offered(proj, ds, fitted, c1)
    if "counterfactual" in impact.split("+"):
        differ, total = proj.counterfactual_pairs(ds)
        c1.caption(f"{differ} of {total} validation texts have a twin that differs (a demographic word swapped); "
                   "the others count as no change.")
    first = impact.split("+")[0]  # a joint ranking's settings inputs are its first impact's (utility: the target)
    params = c2.selectbox("Parameter group", _param_groups(fitted), key="params",
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
    elif folds >= 2 and fitted.metrics.get("train_seconds"):
        st.caption(f"Out of fold: training the {folds} fold models takes {format_duration((folds - 1) * fitted.metrics['train_seconds'])}"
                   " once (each about as long as this model's training), shared by every method; the times above "
                   "are for the scoring.")
    settings = _impact_inputs(first, ds)
    settings.update(_target_controls(proj, ds, first, folds))
    valid = True
    try:
        IMPACTS[first](**settings)
    except InfluenceError as err:
        st.error(plain(err))
        valid = False
    # The methods' own settings, the cluster and Compute are a form: typing a setting does not rerun the app (nor
    # redo the cost estimates); Compute scores sends them all at once.
    form = st.form("score-settings", border=False, enter_to_submit=False)
    runs = []
    for method in chosen:
        cls = METHODS[method]
        if cls.uses_impact and cls.impacts is not None and impact not in cls.impacts:
            form.info(f"{_label(method)} is meant for the {' or '.join(cls.impacts)} impact; it is left out for {impact}.")
            continue
        if cls.needs_checkpoints and not fitted.checkpoints:
            form.warning(f"{_label(method)} needs training checkpoints: retrain with “Checkpoint every k epochs” > 0.")
            continue
        with form:
            run_settings = _settings_inputs(method)
        runs.append(ScoreRun(method, impact if cls.uses_impact else "utility", params, run_settings,
                             folds=folds, impact_settings=settings if cls.uses_impact else {}))
    with form:
        cluster = _cluster_input(proj)
        clicked = st.form_submit_button("Compute scores", type="primary", icon=":material/calculate:",
                                        disabled=running or not runs or folds == 1 or not valid,
                                        help="Runs in the background; this page shows its progress.")
    if clicked:
        try:
            proj.score_in_background(runs, cluster=cluster)
        except InfluenceError as err:
            st.error(plain(err))
        else:
            st.rerun()


def _cluster_input(proj: Project) -> str | None:
    """Where shardable methods run, by name: this process, a local Dask cluster, or a cluster the server's
    administrator named (never an address typed here: a cluster receives the data and model)."""
    try:
        names = proj.dask_clusters()
    except InfluenceError as err:
        st.error(plain(err))
        return None
    with st.expander("Scale out on a Dask cluster", expanded=False):
        return st.selectbox(
            "Dask cluster", names, index=0, key="dask-cluster",
            help="Shardable methods (" + ", ".join(Project.shardable_methods()) + ") are cut into shards of the "
                 "training set, each scored on a worker and kept, so an interrupted run resumes; the progress counts "
                 "shards. The clusters offered are those the server's administrator configured (see the README).")


# ------------------------------------------------------------------------------------------ results
def _label_issues(proj: Project, folds: int) -> dict:
    """cleanlab's estimate (memoised by the project) with its mask as booleans."""
    est = proj.label_issues(folds)
    return {**est, "mask": np.asarray(est["mask"], dtype=bool)}


def _run_notes(proj: Project, runs: list[ScoreRun]) -> None:
    """What a computed run found that the user must know, e.g. exact influence on a non-convex model."""
    notes = proj.notes()
    for run in runs:
        if run.label in notes:
            st.warning(f"{plain(run_title(run))}: {plain(notes[run.label])}")


def _cleanlab_estimate(proj: Project, ds, runs: list[ScoreRun]) -> None:
    """cleanlab's own count of wrong labels, once a confident-learning run exists (out of fold when there is one)."""
    cl = [r for r in runs if r.method == "confident_learning"]
    if not cl:
        return
    run = max(cl, key=lambda r: r.folds)
    est = _label_issues(proj, run.folds)
    n = len(ds.train)
    c = st.columns([1, 3], vertical_alignment="center")
    c[0].metric("Wrong labels (cleanlab's estimate)", f"{est['count']:,}", help="cleanlab.filter.find_label_issues")
    text = (f"{est['share']:.1%} of the {n:,} training labels, " + (
        f"on out-of-fold probabilities ({run.folds} folds), as cleanlab intends." if est["out_of_fold"] else
        "on in-sample probabilities: a model that fits its own labels hides wrong ones, so this undercounts — "
        "compute confident learning with folds ≥ 2 for cleanlab's intended estimate."))
    if ds.noise_mask is not None:
        noisy = ds.noise_mask.numpy().astype(bool)
        text += (f" Known: {int(noisy.sum()):,} labels are wrong; {int((est['mask'] & noisy).sum()):,} of cleanlab's "
                 f"{est['count']:,} are.")
    c[1].caption(text)


def _leaderboard(ds, runs: list[ScoreRun], scores: dict) -> None:
    """Where the wrong labels are known: how well each computed ranking finds them (which ranking to trust)."""
    if ds.noise_mask is None:
        return
    noisy = ds.noise_mask.numpy().astype(bool)
    report = detection_report(scores, noisy)
    titles = {r.label: run_title(r) for r in runs}
    report.insert(1, "ranking", [titles.get(m, m) for m in report["method"]])
    st.markdown(f"**Which ranking to trust** — how well each computed ranking finds the {int(noisy.sum()):,} labels "
                f"known to be wrong in {plain(ds.name)}, with this model (best first)")
    st.caption("AUROC: 0.5 = random order, 1 = every wrong label ranked above every right one. precision@5%: the share "
               "of wrong labels among the 5% lowest-scored samples. Compute more methods (or out of fold) to compare.")
    numbers = [c for c in report.columns if c not in ("method", "ranking")]
    st.dataframe(report, hide_index=True, width="content", key="leaderboard",
                 column_config={c: st.column_config.NumberColumn(c, format="%.3f") for c in numbers})


FAIRNESS_IMPACTS = ("fairness", "equalized_odds")


def _flagged_cells(proj: Project, runs: list[ScoreRun]) -> None:
    """For a ranking against a fairness impact: which group × label cells its flagged samples come from, so a user
    sees at once whether influence found individual samples or a whole cell (what reweighing would fix)."""
    fair = [r for r in runs if set(r.impact.split("+")) & set(FAIRNESS_IMPACTS)]
    if not fair:
        return
    run = fair[0] if len(fair) == 1 else st.selectbox(
        "Fairness ranking", fair, key="cells-run", format_func=run_title,
        help="The fairness ranking whose flagged samples the table below breaks down by group × label cell")
    found = proj.flagged_cells(run.label)
    if found is None:
        return
    frame, sentence = found
    st.markdown(f"**Where the flagged samples of {plain(run_title(run))} come from** (group × label cells)")
    st.caption(plain(sentence))
    shares = ("share of flagged", "share of the cell flagged")
    config = {c: st.column_config.NumberColumn(c, format="percent") for c in shares}
    config["reweighing weight"] = st.column_config.NumberColumn(
        "reweighing weight", format="%.2f",
        help="Kamiran–Calders: P(group)·P(label) / P(group, label); below 1 the cell is over-represented")
    st.dataframe(frame, hide_index=True, width="content", key="flagged-cells", column_config=config)


def _table(proj: Project, ds) -> None:
    state = proj.state()  # runs, scores and the primary run from one reading: a running job adds runs meanwhile
    scores = proj.scores(state)
    if not scores:
        st.info("No scores yet: tick methods above and press **Compute scores**.")
        return
    _leaderboard(ds, state.runs, {**scores, **proj.extra_rankings()})  # data issue types beside the runs (issue 20)
    _run_notes(proj, state.runs)
    _cleanlab_estimate(proj, ds, state.runs)
    _flagged_cells(proj, state.runs)
    y = ds.train.y.numpy()
    frame = pd.DataFrame({"sample": proj.source_index().astype(np.int64), "row": np.arange(len(y)), "label": y,
                          "class": [ds.classes[int(v)] for v in y]})
    if ds.noise_mask is not None:
        frame["known wrong label"] = ds.noise_mask.numpy().astype(bool)
    if ds.clean_labels is not None:
        frame["clean label"] = ds.clean_labels.numpy()
    titles = _column_titles(state.runs, scores)
    for name, s in scores.items():
        frame[titles[name]] = s
    primary = proj.primary_run(state)
    st.markdown(f"**Scores of all {len(frame):,} training samples** — lower = more detrimental; ordered by "
                f"{plain(run_title(primary))}; click a column header to sort.")
    order = np.argsort(scores[primary.label], kind="stable")
    config = {t: st.column_config.NumberColumn(t, format="%.4g") for t in titles.values()}
    config["sample"] = st.column_config.NumberColumn(
        "sample", format="%d", help="The sample's index in the original data: the id Explore, Review and the exports use")
    config["row"] = st.column_config.NumberColumn("row", format="%d", help="Position in the training split")
    st.dataframe(frame.iloc[order], hide_index=True, width="stretch", height=420, key="scores", column_config=config)
    link("explore", "Next: see where the flagged samples lie on Explore")
    link("review", "Or review them on Review")


def _data_issues(proj: Project, ds) -> None:
    """Issue types besides wrong labels, by cleanlab's Datalab (issue 20): run it as a job (out of fold with folds),
    then how many samples each check flags and, for duplicate groups, what influence adds: the group's summed score."""
    st.markdown("**Data issues** — cleanlab's Datalab on the model's features and predicted probabilities")
    st.caption("Exact and near duplicates, outliers, non-IID order, class imbalance, underperforming groups and wrong "
               "labels; on images also cleanvision's checks (dark, light, blurry, low information, odd aspect ratio or "
               "size, grayscale). Each issue type then is a ranking on Review and Explore (lower = more likely).")
    if job_section(proj, "data_issues", "Finding data issues") is not None:
        return
    with st.form("data-issues-form"):
        folds = st.number_input("Folds (0 = in-sample)", 0, MAX_FOLDS, 0, key="issues-folds",
                                help="≥ 2: out-of-fold probabilities from K fold models (trained once and cached), as "
                                     "cleanlab intends; 0: the model's own probabilities, which hide labels it memorised")
        features = "model"
        if ds.kind == "image":
            features = st.radio("Compare images by", ["model", "pixels"], horizontal=True, key="issues-features",
                                format_func=lambda f: {"model": "the model's features", "pixels": "their pixels (8×8)"}[f],
                                help="Pixels find images from another source that a model trained on them places "
                                     "among its classes (bench/results/datalab.md)")
        start = st.form_submit_button("Find data issues", icon=":material/play_arrow:")
    if start:
        if folds == 1:
            st.error("Folds: 0 (in-sample) or 2 and more.")
        else:
            proj.data_issues_in_background(int(folds), {"features": features})
            st.rerun()
    found = proj.data_issues()
    if found is None:
        st.info("Not run yet for this data set and model: press **Find data issues**.")
        return
    st.dataframe(found.summary(), hide_index=True, width="content", key="issue-summary",
                 column_config={"share": st.column_config.NumberColumn("share", format="percent")})
    st.caption(("Out-of-fold" if found.out_of_fold else "In-sample") + f" probabilities; {len(found.duplicate_sets):,} "
               "groups of exact or near duplicates. count: samples Datalab flags; share: of the training set.")
    influence = proj.duplicate_group_influence()
    if influence is None:
        if found.duplicate_sets:
            st.caption("Compute IP (or another influence method whose scores add up) to see what each duplicate group "
                       "does to the validation loss — what Datalab cannot say.")
        return
    label, groups = influence
    st.markdown(f"**What each duplicate group does**, by the summed score of {plain(label)} (what Datalab cannot say)")
    st.dataframe(groups.head(50), hide_index=True, width="stretch", key="duplicate-influence",
                 column_config={"summed score": st.column_config.NumberColumn("summed score", format="%.4g")})


def _annotators(proj: Project, ds) -> None:
    """Issue 20 §4: each annotator's quality by cleanlab's multiannotator (CROWDLAB), on out-of-fold probabilities
    when a run has folds (their fold models are trained already), else in-sample."""
    if not proj.annotator_names():
        return
    folds = max((r.folds for r in proj.state().runs), default=0)
    with st.spinner("Comparing the annotators…"):
        table = proj.annotator_table(folds)
        report = proj.annotator_report(folds)
    st.markdown(f"**Annotators** — each one's quality (cleanlab's multiannotator, on "
                f"{f'out-of-fold ({folds} folds)' if folds else 'in-sample'} probabilities; lowest first)")
    agree = float((report["consensus_label"] == ds.train.y.numpy()).mean())
    text = f"The annotators' consensus label equals the training label on {agree:.1%} of the samples."
    if ds.clean_labels is not None:
        clean = ds.clean_labels.numpy()
        text += (f" Against the known true labels: the consensus is right on {(report['consensus_label'] == clean).mean():.1%}, "
                 f"the training label on {(ds.train.y.numpy() == clean).mean():.1%}.")
    if ds.noise_mask is not None:
        differ = report["consensus_label"] != ds.train.y.numpy()
        text += (f" Of the {int(differ.sum()):,} training labels the consensus differs from, "
                 f"{int((differ & ds.noise_mask.numpy().astype(bool)).sum()):,} are known to be wrong.")
    st.caption(text)
    numbers = {c: st.column_config.NumberColumn(c, format="%.3f") for c in ("quality", "agreement with consensus")}
    st.dataframe(table, hide_index=True, width="content", key="annotators", column_config=numbers)


def _column_titles(runs: list[ScoreRun], scores: dict) -> dict[str, str]:
    """Each score column's heading: its run's title ("IP, in-sample"), the run's label where two titles coincide."""
    titles = {r.label: run_title(r) for r in runs if r.label in scores}
    counts = pd.Series(list(titles.values())).value_counts()
    return {label: titles[label] if label in titles and counts[titles[label]] == 1 else label for label in scores}


def page() -> None:
    ctx = start_page("Scores", needs="model")
    proj, ds, fitted = ctx.proj, ctx.ds, ctx.fitted
    state = proj.state()
    st.caption(f"Data set: {plain(ds.name)} · model: {state.arch} {state.model_hash or ''}")
    running = job_section(proj, "score", "Scoring") is not None
    _form(proj, ds, fitted, running=running)
    st.divider()
    _annotators(proj, ds)
    _table(proj, ds)
    st.divider()
    _data_issues(proj, ds)


guarded(page)
