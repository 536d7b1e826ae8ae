"""Evaluate: act on the most detrimental samples (trim / relabel / reweight) by each chosen method, retrain from
scratch with several seeds, and compare with the full data and a random control — accuracy table, the
utility/fairness Pareto chart (paper Fig. 5) and accuracy before/after attack (paper Fig. 6).

Uses the app's current data set and model when the app's session helpers exist; otherwise its own selectors.
Runs in a background thread (progress, Stop); finished runs are kept on disk, so a rerun resumes.
Scores: lower = more detrimental.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from pathlib import Path

import streamlit as st

from influence_core.data.registry import DATASETS, load_dataset
from influence_core.errors import InfluenceError
from influence_core.evaluate.actions import ACTIONS
from influence_core.evaluate.figures import attack_boxplot, attacks_without_effect, pareto_figure
from influence_core.evaluate.retrain import AttackSettings
from influence_core.figures import as_text
from influence_core.evaluate.runner import ExperimentSettings, cleaned_split_table, format_table, run_experiment
from influence_core.impacts import IMPACTS
from influence_core.methods import METHODS
from influence_core.models import MODELS, TrainConfig, train_model

try:  # the app's shared helpers (current selection on disk); the page also runs on its own
    from pages._common import plain, require_dataset, require_model, selection
    from influence_core.session import workspace_root
except ImportError:  # pragma: no cover - standalone page
    selection = None

    def plain(text) -> str:  # names from uploads shown as text, not Markdown
        import re

        return re.sub(r"([\\`*_{}\[\]()<>!|~$:&@])", r"\\\1", " ".join(str(text).split()))

JOB_KEY = "evaluate-job"
ACTION_HELP = {
    "trim": "remove the flagged samples",
    "relabel": "flip binary labels / use the model's predicted class",
    "reweight": "weight every sample by n·softmax(score / T)",
}


def _root() -> Path:
    if selection is not None:
        return workspace_root()
    return Path(os.environ.get("INFLUENCE_WORKSPACE") or "workspace").resolve()


@st.cache_resource(max_entries=4, show_spinner="Loading the data set and training the model…")
def _standalone(dataset: str, arch: str, seed: int):
    ds = load_dataset(dataset, seed=seed)
    return ds, train_model(ds, arch, TrainConfig(seed=seed))


def _data_and_model():
    """(dataset name, Dataset, FittedModel): the app's current selection, or chosen here."""
    if selection is not None:
        sel = selection()
        ds = require_dataset(sel)
        return sel.dataset, ds, require_model(sel, ds)
    c1, c2, c3 = st.columns(3)
    names = sorted(DATASETS)
    name = c1.selectbox("Data set", names, index=names.index("moons") if "moons" in names else 0)
    archs = sorted(MODELS)
    arch = c2.selectbox("Model", archs, index=archs.index("logreg") if "logreg" in archs else 0)
    seed = int(c3.number_input("Seed", value=0, step=1))
    ds, fitted = _standalone(name, arch, seed)
    return name, ds, fitted


class _Job:
    """A background experiment: progress for the page to poll, a stop flag, and the result or error."""

    def __init__(self, settings: ExperimentSettings, out: Path, dataset, fitted) -> None:
        self.settings, self.out = settings, out
        self.fraction, self.message, self.started = 0.0, "starting", time.time()
        self.result, self.error = None, None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(dataset, fitted), daemon=True)
        self.thread.start()

    def _run(self, dataset, fitted) -> None:
        def progress(f: float, m: str) -> None:
            self.fraction, self.message = f, m

        try:
            self.result = run_experiment(self.settings, self.out, dataset=dataset, base=fitted, progress=progress,
                                         should_stop=self.stop.is_set)
        except InfluenceError as err:
            self.error = str(err)
        except Exception as err:  # shown as one line; the traceback goes to the server log
            traceback.print_exc()
            self.error = f"{type(err).__name__}: {err}"

    @property
    def running(self) -> bool:
        return self.thread.is_alive()


FORM_DEFAULTS = {"ev-action": ACTIONS[0], "ev-fraction": 0.05, "ev-seeds": 3, "ev-attacks": 5, "ev-impact": "utility",
                 "ev-temperature": 1.0, "ev-relabel": None}


def settings_summary(settings: ExperimentSettings) -> str:
    """The settings that produced a result, in one line (stated above its table and in its charts' titles)."""
    methods = ", ".join(METHODS[m].label or m if m in METHODS else m for m in settings.methods)
    extra = f", T = {settings.temperature:g}" if settings.action == "reweight" else ""
    return (f"{settings.action} the lowest {settings.fraction:.0%} by {methods} · {settings.impact} impact · "
            f"{settings.seeds} seed(s) · {settings.attacks.n_attacks} attack(s){extra}")


def _show_settings_in_form(job: "_Job | None") -> None:
    """Put the settings of the result on screen into the form (once per result, so the user's later edits stay)."""
    if job is None or job.running or job.error or st.session_state.get("ev-form-of") == id(job):
        return
    s = job.settings
    st.session_state.update({
        "ev-methods": [m for m in s.methods if m in METHODS], "ev-action": s.action, "ev-fraction": float(s.fraction),
        "ev-seeds": int(s.seeds), "ev-attacks": int(s.attacks.n_attacks), "ev-impact": s.impact,
        "ev-temperature": float(s.temperature), "ev-relabel": s.relabel_class, "ev-form-of": id(job)})


def _form(name: str, ds, fitted) -> None:
    methods = sorted(METHODS, key=lambda n: (METHODS[n].kind, n))
    # Widgets take their values from the session state only (no defaults passed): the defaults on a first visit,
    # the settings of the result below once there is one.
    st.session_state.setdefault("ev-methods", [m for m in ("ip", "ip_ensemble") if m in methods] or methods[:1])
    for key, value in FORM_DEFAULTS.items():
        st.session_state.setdefault(key, value)
    chosen = st.multiselect("Methods", methods, key="ev-methods",
                            format_func=lambda n: f"{METHODS[n].label or n} ({METHODS[n].kind})")
    c1, c2, c3, c4 = st.columns(4)
    action = c1.radio("Action", ACTIONS, key="ev-action", format_func=lambda a: f"{a} — {ACTION_HELP[a]}")
    fraction = c2.slider("Share flagged (lowest scores)", 0.01, 0.30, step=0.01, format="%.2f", key="ev-fraction")
    seeds = int(c3.number_input("Retraining seeds", 1, 10, key="ev-seeds"))
    attacks = int(c4.number_input("Random attacks (5–25% of test)", 0, 20, key="ev-attacks"))
    c1, c2, c3 = st.columns(3)
    impact = c1.selectbox("Impact the methods score against", list(IMPACTS), key="ev-impact",
                          format_func=lambda n: f"{n} — {IMPACTS[n].description}")
    temperature, relabel_class = 1.0, None
    if action == "reweight":
        temperature = float(c2.number_input("Temperature T (large = uniform)", 0.05, 100.0, format="%g", key="ev-temperature"))
    if action == "relabel" and ds.num_classes > 2:
        options = [None, *range(ds.num_classes)]
        if st.session_state.get("ev-relabel") not in options:
            st.session_state["ev-relabel"] = None
        relabel_class = c2.selectbox("New label", options, key="ev-relabel",
                                     format_func=lambda c: "the model's predicted class" if c is None else ds.classes[c])
    needs = [m for m in chosen if METHODS[m].needs_checkpoints and not fitted.checkpoints]
    if needs:
        st.warning(f"{', '.join(needs)} need training checkpoints; this model has none, so they will fail. "
                   "Retrain the model with checkpoints on the Model page.")
    if st.button("Run experiment", type="primary", disabled=not chosen, icon=":material/play_arrow:"):
        settings = ExperimentSettings(
            dataset=name, model=fitted.arch, methods=tuple(chosen), action=action, fraction=fraction, seeds=seeds,
            impact=impact, temperature=temperature, relabel_class=relabel_class,
            attacks=AttackSettings(n_attacks=attacks))
        out = _root() / "experiments" / f"{Path(name).stem}-{fitted.arch}-{action}.json"
        st.session_state[JOB_KEY] = _Job(settings, out, ds, fitted)
        st.rerun()


@st.fragment(run_every=0.5)
def _watch(job: _Job) -> None:
    if not job.running:
        st.rerun()
    st.progress(min(job.fraction, 1.0), text=f"{job.message} ({time.time() - job.started:.0f} s)")
    if st.button("Stop", icon=":material/stop_circle:"):
        job.stop.set()
        st.toast("Stopping after the current training…")


def _show(job: _Job) -> None:
    if job.error:
        st.error(plain(job.error))
        return
    result = job.result
    if result.stopped:
        st.warning("Stopped: the rows below use the runs finished so far. Run again to resume.")
    st.subheader("Accuracy after cleaning")
    summary = settings_summary(result.settings)
    st.caption(f"Results of: **{plain(summary)}** (data set {plain(result.settings.dataset)}, model "
               f"{plain(result.settings.model)}). The form above shows these settings.")
    st.caption("mean ± std over retraining seeds (attacked accuracy: over seeds × attacks); "
               "`full` = no change, `random` = the same action on a random share (the control).")
    st.markdown(format_table(result).split("\n", 2)[2])
    has_gap = bool((result.rows.get("full") or {}).get("fairness_gap"))
    c1, c2 = st.columns(2)
    with c1:
        if has_gap:
            st.plotly_chart(pareto_figure(result, title=f"Utility vs fairness after cleaning<br><sup>{as_text(summary)}</sup>"),
                            width="stretch")
        else:
            st.info("No sensitive attribute in this data set: no fairness gap to chart.")
    with c2:
        if result.settings.attacks.n_attacks > 0:
            why = attacks_without_effect(result)
            if why:
                st.info(f"No attack chart: {why}.")
            else:
                st.plotly_chart(attack_boxplot(result, title=f"Accuracy before and after attack<br><sup>{as_text(summary)}</sup>"),
                                width="stretch")
    st.download_button("Download results (JSON)", json.dumps(result.to_json(), indent=2, default=str),
                       file_name=job.out.name, mime="application/json")
    if result.actions:
        st.subheader("Cleaned training split")
        method = st.selectbox("Method", list(result.actions), format_func=lambda m: METHODS[m].label or m)
        table = cleaned_split_table(result, method)
        st.dataframe(table[table["action"] != "keep"] if result.settings.action != "reweight" else table,
                     hide_index=True, width="stretch")
        st.download_button("Download the cleaned split (CSV)", table.to_csv(index=False).encode(),
                           file_name=f"cleaned-{method}-{result.settings.action}.csv", mime="text/csv")


def main() -> None:
    st.header("Evaluate: clean, retrain, compare")
    st.caption("Act on the most detrimental samples found by each method (lower score = more detrimental), "
               "retrain from scratch, and see whether the data got better.")
    name, ds, fitted = _data_and_model()
    st.caption(f"Data set **{plain(ds.name)}** ({len(ds.train)} training samples) · model **{fitted.arch}** · "
               f"retraining uses the same training settings")
    job: _Job | None = st.session_state.get(JOB_KEY)
    if job is not None and job.running:
        _watch(job)
        return
    _show_settings_in_form(job)
    _form(name, ds, fitted)
    if job is not None:
        _show(job)


try:
    main()
except InfluenceError as err:
    st.error(plain(err))
