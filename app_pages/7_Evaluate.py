"""Evaluate: act on the most detrimental samples (trim / relabel / reweight) by each chosen method, retrain from
scratch with several seeds, and compare with the full data and a random control — accuracy table, clean test
accuracy per arm with the seeds' spread, the utility/fairness Pareto chart (paper Fig. 5) and, when attacks are
asked for, accuracy before/after attack (paper Fig. 6).

Works on the project's current data set and model. The experiment runs as the project's "experiment" job: its
progress, and afterwards its result (kept in the job's record), survive a refresh and a server restart; finished
runs are journaled in the project, so running an interrupted experiment again resumes it. Scores: lower = more
detrimental.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import streamlit as st

from influence_core.figures import (accuracy_figure, as_text, attack_boxplot, attacks_without_effect, best_arm_sentence,
                                    format_duration, pareto_figure, spread_note)
from influence_core.project import (BASELINE_ARMS, CLEANING_ACTIONS, IMPACTS, JOINT_RANKINGS, METHODS, AttackSettings,
                                    ExperimentResult, ExperimentSettings, InfluenceError, describe_impact, format_table)
from app_pages._common import display_name, form_buttons, guarded, job_outcome, job_section, plain, start_page
from app_pages._versions import compare_section

KIND = "experiment"
ACTION_HELP = {
    "trim": "remove the flagged samples",
    "relabel": "flip binary labels / use the model's predicted class",
    "reweight": "weight every sample by n·softmax(score / T)",
}
# No attacks by default: Evaluate asks whether cleaning helped (clean test accuracy); robustness is opt-in.
FORM_DEFAULTS = {"ev-action": CLEANING_ACTIONS[0], "ev-fraction": 0.05, "ev-seeds": 3, "ev-attacks": 0,
                 "ev-impact": "utility", "ev-temperature": 1.0, "ev-relabel": None, "ev-baselines": []}


def settings_summary(settings: ExperimentSettings) -> str:
    """The settings that produced a result, in one line (stated above its table and in its charts' titles)."""
    methods = ", ".join(METHODS[m].label or m if m in METHODS else m for m in settings.methods)
    extra = f", T = {settings.temperature:g}" if settings.action == "reweight" else ""
    attacks = f"{settings.attacks.n_attacks} attack(s)" if settings.attacks.n_attacks else "no attacks"
    baselines = f" · baselines: {', '.join(settings.baselines)}" if settings.baselines else ""
    return (f"{settings.action} the lowest {settings.fraction:.0%} by {methods} · {settings.impact} impact · "
            f"{settings.seeds} seed(s) · {attacks}{extra}{baselines}")


def job_settings(job) -> ExperimentSettings | None:
    """The settings a job ran with: from its result, else from the first record of its log (a running or
    interrupted job); None when the job holds neither."""
    if isinstance(job.result, dict) and "settings" in job.result:
        return ExperimentSettings.from_json(job.result["settings"])
    first = job.log[0] if job.log else {}
    return ExperimentSettings.from_json(first["settings"]) if isinstance(first.get("settings"), dict) else None


def _show_settings_in_form(settings: ExperimentSettings | None, ident) -> None:
    """Put the settings of the result on screen into the form (once per result, so the user's later edits stay)."""
    if settings is None or st.session_state.get("ev-form-of") == ident:
        return
    st.session_state.update({
        "ev-methods": [m for m in settings.methods if m in METHODS], "ev-action": settings.action,
        "ev-fraction": float(settings.fraction), "ev-seeds": int(settings.seeds),
        "ev-attacks": int(settings.attacks.n_attacks), "ev-impact": settings.impact,
        "ev-temperature": float(settings.temperature), "ev-relabel": settings.relabel_class, "ev-form-of": ident,
        "ev-baselines": [b for b in settings.baselines if b in BASELINE_ARMS]})


def _form(proj, ds, fitted) -> None:
    methods = sorted(METHODS, key=lambda n: (METHODS[n].kind, n))
    # Widgets take their values from the session state only (no defaults passed): the defaults on a first visit,
    # the settings of the result below once there is one.
    st.session_state.setdefault("ev-methods", [m for m in ("ip", "ip_ensemble") if m in methods] or methods[:1])
    for key, value in FORM_DEFAULTS.items():
        st.session_state.setdefault(key, value)
    # A form (issue 19): choosing does not rerun the app; Run experiment (or Update the estimate) sends every setting
    # at once. Its widgets read the session state set above (so a restored result's settings show), never callbacks.
    form = st.form("ev-settings", border=False, enter_to_submit=False)
    chosen = form.multiselect("Methods", methods, key="ev-methods",
                              format_func=lambda n: f"{METHODS[n].label or n} ({METHODS[n].kind})")
    baselines = form.multiselect("Baselines: what a practitioner would pick instead (each swept: a front on the chart)",
                                 list(BASELINE_ARMS), key="ev-baselines", format_func=lambda n: BASELINE_ARMS[n].label)
    c1, c2, c3, c4 = form.columns(4)
    action = c1.radio("Action", CLEANING_ACTIONS, key="ev-action", format_func=lambda a: f"{a} — {ACTION_HELP.get(a, a)}")
    fraction = c2.slider("Share flagged (lowest scores)", 0.01, 0.30, step=0.01, format="%.2f", key="ev-fraction")
    seeds = int(c3.number_input("Retraining seeds", 1, 10, key="ev-seeds"))
    attacks = int(c4.number_input("Random attacks (5–25% of test)", 0, 20, key="ev-attacks"))
    c1, c2, c3 = form.columns(3)
    choices = [n for n in [*IMPACTS, *JOINT_RANKINGS] if "counterfactual" not in n or ds.val.twin is not None]
    impact = c1.selectbox("Impact the methods score against", choices, key="ev-impact",
                          format_func=lambda n: f"{n} — {describe_impact(n)}")
    # The action's own settings are always drawn (a form does not rerun when the action changes); each says when it applies.
    temperature = float(c2.number_input("Temperature T (reweight only; large = uniform)", 0.05, 100.0, format="%g",
                                        key="ev-temperature"))
    relabel_class = None
    if ds.num_classes > 2:
        options = [None, *range(ds.num_classes)]
        if st.session_state.get("ev-relabel") not in options:
            st.session_state["ev-relabel"] = None
        relabel_class = c3.selectbox("New label (relabel only)", options, key="ev-relabel",
                                     format_func=lambda c: "the model's predicted class" if c is None else ds.classes[c])
    clicked, right = form_buttons(form, "Run experiment")
    needs = [m for m in chosen if METHODS[m].needs_checkpoints and not fitted.checkpoints]
    if needs:
        st.warning(f"{', '.join(needs)} need training checkpoints; this model has none, so they will fail. "
                   "Retrain the model with checkpoints on the Model page.")
    if chosen:
        arms = sum(len(BASELINE_ARMS[b].sweep) for b in baselines)
        right.caption(_estimate(proj, fitted, chosen, seeds) + (f" Plus {arms} baseline arm(s) × {seeds} seed(s) "
                      "(an ExponentiatedGradient arm trains the model about 50 times)." if arms else ""))
    if clicked and not chosen:
        st.error("Choose at least one method.")
        return
    if clicked:
        state = proj.state()
        settings = ExperimentSettings(
            dataset=state.dataset, dataset_kwargs=dict(state.dataset_kwargs), model=fitted.arch, methods=tuple(chosen),
            action=action, fraction=fraction, seeds=seeds, impact=impact,
            temperature=temperature if action == "reweight" else 1.0,
            relabel_class=relabel_class if action == "relabel" else None, attacks=AttackSettings(n_attacks=attacks),
            baselines=tuple(baselines))
        try:
            settings.validate()  # a setting that cannot run: one line here, not a failed job
        except InfluenceError as err:
            st.error(plain(err))
            return
        proj.experiment_in_background(settings)
        st.rerun()


def _estimate(proj, fitted, methods: list[str], seeds: int) -> str:
    """How long the experiment would take, before it starts: one training per (arm, seed) but the full-data run the
    current model already is, at the current model's own training time (else the Model page's estimate), plus each
    method's scoring estimate (nothing when its scores are cached)."""
    retrains = (len(methods) + 2) * seeds - 1
    try:
        train = fitted.metrics.get("train_seconds") or proj.training_estimate(fitted.arch, fitted.config)["seconds"]
        costs = proj.method_costs()
        scoring = sum(costs.get(m, 0.0) for m in methods)
    except (InfluenceError, RuntimeError, ValueError):
        return f"{retrains} retrainings ({len(methods)} method(s), full data and the random control × {seeds} seed(s))."
    return (f"Estimated time: {format_duration(retrains * float(train) + scoring)} — {retrains} retrainings "
            f"({len(methods)} method(s), full data and the random control × {seeds} seed(s)) at "
            f"{format_duration(float(train))} each, plus scoring ({format_duration(scoring)}; less when cached).")


def _table(result: ExperimentResult) -> str:
    """The result table as Markdown; labels and failure messages (which may quote file names) as plain text."""
    rows = {name: {**row, "label": plain(row.get("label", name)),
                   "error": plain(row["error"]) if row.get("error") else row.get("error")}
            for name, row in result.rows.items()}
    return format_table(replace(result, rows=rows)).split("\n", 2)[2]


def _download_name(settings: ExperimentSettings) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", display_name(settings.dataset).rsplit(".", 1)[0]).strip("-") or "data"
    return f"experiment-{stem}-{settings.model}-{settings.action}.json"


def _show(proj, result: ExperimentResult) -> None:
    if result.stopped:
        st.warning("Stopped: the rows below use the runs finished so far. Run again to resume.")
    s = result.settings
    summary = settings_summary(s)
    st.subheader("Accuracy after cleaning")
    st.caption(f"Results of: **{plain(summary)}** (data set {plain(display_name(s.dataset))}, model {plain(s.model)}). "
               "The form above shows these settings.")
    st.caption("mean ± std over retraining seeds (attacked accuracy: over seeds × attacks); "
               "`full` = no change, `random` = the same action on a random share (the control).")
    st.markdown(_table(result))
    note = spread_note(result)
    if note:
        st.warning(note, icon=":material/casino:")
    has_gap = bool((result.rows.get("full") or {}).get("fairness_gap"))
    # Text with twins (issue 18): the Pareto chart is accuracy against the counterfactual fair score (paper Sec. 6).
    fair_metric = "fair_score" if (result.rows.get("full") or {}).get("fair_score") else "fairness_gap"
    has_gap = has_gap or fair_metric == "fair_score"
    c1, c2 = st.columns(2)
    with c1:
        try:
            st.plotly_chart(accuracy_figure(result, title=f"Clean test accuracy per arm (dots: seeds; bars: ± std)"
                                                          f"<br><sup>{as_text(summary)}</sup>"), width="stretch")
        except InfluenceError as err:
            st.info(plain(err))
    with c2:
        if has_gap:
            st.plotly_chart(pareto_figure(result, title=f"Utility vs fairness after cleaning<br><sup>{as_text(summary)}</sup>",
                                          metric=fair_metric), width="stretch")
        else:
            st.info("No sensitive attribute in this data set: no fairness gap to chart.")
    for metric in ("fairness_gap", "attacked_accuracy"):  # which arm is best at which accuracy (issue 17)
        sentence = best_arm_sentence(result.rows, metric)
        if sentence:
            st.info(plain(sentence), icon=":material/trophy:")
    if s.attacks.n_attacks > 0:
        why = attacks_without_effect(result)
        if why:
            st.info(f"No attack chart: {why}.")
        else:
            st.plotly_chart(attack_boxplot(result, title="Test accuracy under random evasion attacks on 5–25% of the test "
                                                         "set (the full-data model before attack, then each arm after)"
                                                         f"<br><sup>{as_text(summary)}</sup>"), width="stretch")
    c1, c2 = st.columns([1, 4])
    c1.download_button("Download results (JSON)", json.dumps(result.to_json(), indent=2, default=str),
                       file_name=_download_name(s), mime="application/json", icon=":material/download:")
    if c2.button("Clear result", icon=":material/delete:", help="Forget this result (a new run also replaces it)"):
        proj.forget_job(KIND)
        st.rerun()
    _cleaned_split(proj, result)


def _cleaned_split(proj, result: ExperimentResult) -> None:
    methods = [m for m in result.settings.methods if m in result.rows and not result.rows[m].get("error")]
    if not methods:
        return
    st.subheader("Cleaned training split")
    if st.session_state.get("ev-split-method") not in methods:  # a new result with other methods
        st.session_state.pop("ev-split-method", None)
    method = st.selectbox("Method", methods, key="ev-split-method",
                          format_func=lambda m: METHODS[m].label or m if m in METHODS else m)
    try:
        table = proj.cleaned_split(result, method)
    except InfluenceError as err:
        st.info(f"No cleaned split to show: {plain(err)}.")
        return
    st.dataframe(table[table["action"] != "keep"] if result.settings.action != "reweight" else table,
                 hide_index=True, width="stretch")
    st.download_button("Download the cleaned split (CSV)", table.to_csv(index=False).encode(),
                       file_name=f"cleaned-{method}-{result.settings.action}.csv", mime="text/csv",
                       icon=":material/download:")


def _running(snap: dict) -> None:
    """What the running experiment was started with (the first record of its log)."""
    first = snap["log"][0] if snap["log"] else {}
    if isinstance(first.get("settings"), dict):
        st.caption(f"Running: {plain(settings_summary(ExperimentSettings.from_json(first['settings'])))}")


def _ended(proj, job) -> ExperimentResult | None:
    """An ended experiment (kept until dismissed or replaced): its result, else how it ended with a Dismiss button;
    its settings go into the form."""
    result = None
    if isinstance(job.result, dict) and "settings" in job.result:
        result = ExperimentResult.from_json(job.result)  # a stopped run's result says so itself
    else:
        job_outcome(proj, KIND, job, "The experiment")
    _show_settings_in_form(job_settings(job), job.started)
    if result is None and st.button("Dismiss", icon=":material/close:"):
        proj.forget_job(KIND)
        st.rerun()
    return result


def page() -> None:
    ctx = start_page("Evaluate", needs="model",
                     intro="Clean, retrain, compare: act on the most detrimental samples found by each method (lower "
                           "score = more detrimental), retrain from scratch, and see whether the data got better.")
    proj, ds, fitted = ctx.proj, ctx.ds, ctx.fitted
    st.caption(f"Data set **{plain(display_name(proj.state().dataset))}** ({len(ds.train)} training samples) · model "
               f"**{plain(fitted.arch)}** · retraining uses the same training settings")
    ended = []  # the result stays in the job's record: the job section keeps it (forget=False)
    if job_section(proj, KIND, "The experiment", render_running=_running, on_end=ended.append, forget=False) is not None:
        return  # progress and Stop while it runs; the form comes back with its settings when it has ended
    result = _ended(proj, ended[0]) if ended else None
    _form(proj, ds, fitted)
    if result is not None:
        st.divider()
        _show(proj, result)
    compare_section(proj)  # issue 20 §6


guarded(page)
