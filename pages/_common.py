"""What every page shares: the selection on disk, cached loading of data / model / scores, prerequisite
messages with links, background-job panels and the error guard. Pages call the library through these."""

from __future__ import annotations

import json
import re
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
import streamlit as st

from influence_core import __version__
from influence_core.data.base import Dataset
from influence_core.data.registry import load_dataset
from influence_core.errors import InfluenceError
from influence_core.jobs import Job, get_job
from influence_core.models.train import FittedModel
from influence_core.review import DecisionLog
from influence_core.session import ScoreRun, Selection, decision_scope, flagged_rows, get_workspace, load_selection, save_selection, workspace_root

ROOT = Path(__file__).resolve().parents[1]
PAGES = {
    "data": "pages/1_Data.py", "model": "pages/2_Model.py", "scores": "pages/3_Scores.py",
    "explore": "pages/4_Explore.py", "review": "pages/5_Review.py", "export": "pages/6_Export.py",
    "evaluate": "pages/7_Evaluate.py",
}
APP_VERSION = __version__


# ------------------------------------------------------------------------------------------ selection
def selection() -> Selection:
    """The current selection, read from the workspace on every run (the disk holds the truth)."""
    return load_selection(workspace_root())


def save(sel: Selection) -> None:
    save_selection(sel, workspace_root())


def display_name(dataset: str) -> str:
    """A data set's name for people: registry names as they are, uploads by their original file name."""
    if not Path(dataset).suffix:
        return dataset
    name = Path(dataset).name  # uploads are stored as uploads/data/<12-hex digest>/<name>
    stem, sep, rest = name.partition("-")
    return rest if sep and re.fullmatch(r"[0-9a-f]{12}", stem) else name  # older workspaces: <digest>-<name>


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>!|~$:&@])")


def plain(text) -> str:
    """``text`` as literal text inside Markdown (st.markdown, st.error, st.success, st.caption, st.subheader, …).

    Names from uploads — files, columns, classes — and messages quoting them go through this: every character
    Markdown or Streamlit would interpret (links, images, emphasis, :color[…] and :icon: directives, $math$,
    HTML-ish <tags>, entities, e-mail and www. autolinks) is backslash-escaped, line breaks become spaces, and a
    leading '#', '-', '+', '=' or '1.' cannot start a heading or list. The text reads the same; nothing in it is
    rendered.
    """
    text = " ".join(str(text).split())
    text = _MARKDOWN.sub(r"\\\1", text)
    text = re.sub(r"(?i)\b(www)\.", r"\1\\.", text)
    if text[:1] in ("#", "-", "+", "="):
        text = "\\" + text
    return re.sub(r"^(\d+)([.)])", r"\1\\\2", text)


def workspace():
    return get_workspace(workspace_root())


def decisions() -> DecisionLog:
    return DecisionLog(workspace_root() / "decisions.sqlite")


# ------------------------------------------------------------------------------------------- loading
@st.cache_resource(max_entries=4, show_spinner="Loading the data set…")
def _load_dataset(name: str, kwargs_json: str) -> Dataset:
    return load_dataset(name, **json.loads(kwargs_json))


def dataset_of(sel: Selection) -> Dataset:
    return _load_dataset(sel.dataset, json.dumps(sel.dataset_kwargs, sort_keys=True))


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def _load_model(_dataset: Dataset, fingerprint: str, arch: str, train_json: str, weights: str | None, root: str) -> FittedModel:
    if weights:
        from influence_core.models import loading  # weight uploads (data branch)

        return loading.load_fitted(weights, arch, _dataset)
    sel = Selection(train=json.loads(train_json))
    return get_workspace(Path(root)).get_or_train(_dataset, arch, sel.train_config())


def model_of(sel: Selection, dataset: Dataset) -> FittedModel | None:
    if not sel.has_model:
        return None
    return _load_model(dataset, dataset.fingerprint(), sel.arch, json.dumps(sel.train or {}, sort_keys=True), sel.weights,
                       str(workspace_root()))


@st.cache_resource(max_entries=32, show_spinner=False)
def _load_run(_dataset: Dataset, _fitted: FittedModel, key: str, root: str, run_json: str) -> tuple[np.ndarray, dict]:
    """(scores, details) of one run, from the workspace cache: the details are its notes for the user."""
    run = ScoreRun(**json.loads(run_json))
    details: dict = {}
    scores = get_workspace(Path(root)).get_or_score(_dataset, _fitted, details=details, **run.score_kwargs())
    return scores, details


def _runs(sel: Selection, dataset: Dataset, fitted: FittedModel) -> dict[str, tuple[np.ndarray, dict]]:
    key = f"{dataset.fingerprint()}-{sel.model_hash}"
    return {run.label: _load_run(dataset, fitted, key, str(workspace_root()), json.dumps(run.__dict__, sort_keys=True, default=str))
            for run in sel.runs}


def scores_of(sel: Selection, dataset: Dataset, fitted: FittedModel) -> dict[str, np.ndarray]:
    """Every computed run's scores (lower = more detrimental), by column label; computed runs come from the disk cache."""
    return {label: scores for label, (scores, _) in _runs(sel, dataset, fitted).items()}


def notes_of(sel: Selection, dataset: Dataset, fitted: FittedModel) -> dict[str, str]:
    """What computed runs found that the user must know (e.g. exact influence on a Hessian that is not positive
    definite), by column label; stored with the scores, so reading them costs nothing."""
    return {label: details["note"] for label, (_, details) in _runs(sel, dataset, fitted).items() if details.get("note")}


def run_title(run: ScoreRun) -> str:
    """A run for people, e.g. 'IP + loss (rank average), out of fold (5)' (plain text: settings may be typed in)."""
    from influence_core.methods import METHODS

    cls = METHODS.get(run.method)
    parts = [(cls.label or cls.name) if cls is not None else run.method]
    if run.settings:
        parts.append(", ".join(f"{k} = {v}" for k, v in sorted(run.settings.items())))
    if run.impact != "utility":
        parts.append(f"impact: {run.impact}")
    if run.params != "all":
        parts.append(f"parameters: {run.params}")
    trim = (run.impact_settings or {}).get("val_trim")
    if trim is not None:
        parts.append("all validation samples in the target" if not trim else f"{trim:.0%} of validation samples left out")
    parts.append(f"out of fold ({run.folds})" if run.folds else "in-sample")
    return ", ".join(parts)


# ------------------------------------------------------------------------------------- prerequisites
def missing(message: str, page: str, label: str) -> None:
    """Say plainly what is missing, link to where to fix it, and stop the page."""
    st.info(message)
    st.page_link(PAGES[page], label=label, icon=":material/arrow_forward:")
    st.stop()


def require_dataset(sel: Selection) -> Dataset:
    try:
        return dataset_of(sel)
    except InfluenceError as err:
        st.error(f"The data set could not be loaded: {plain(err)}")
        missing("Choose another data set first.", "data", "Go to Data")


def require_model(sel: Selection, dataset: Dataset) -> FittedModel:
    if not sel.has_model:
        missing("No model yet: train or upload a model first.", "model", "Go to Model")
    fitted = model_of(sel, dataset)
    return fitted


def require_scores(sel: Selection, dataset: Dataset, fitted: FittedModel) -> dict[str, np.ndarray]:
    if not sel.runs:
        missing("No scores yet: compute influence scores first.", "scores", "Go to Scores")
    return scores_of(sel, dataset, fitted)


def status(sel: Selection) -> dict:
    """What the sidebar shows: data set, model, score runs, decisions and flagged samples still to review."""
    out = {"dataset": display_name(sel.dataset), "model": None,
           "scores": [r.label for r in sel.runs], "decisions": 0, "pending": None}
    try:
        ds = dataset_of(sel)
        current = decisions().current(decision_scope(ds))
        out["decisions"] = len(current)
        if sel.has_model:
            fitted = model_of(sel, ds)
            out["model"] = f"{sel.arch} · {sel.model_hash or fitted.fingerprint()}"[:28]
            out["val_accuracy"] = fitted.metrics.get("val_accuracy")
            run = sel.primary_run()
            if run is not None:
                s = scores_of(sel, ds, fitted)[run.label]
                flagged = flagged_rows(s, sel.flag_share)
                out["pending"] = int(sum(1 for r in flagged if int(r) not in current))
    except Exception:  # the sidebar never breaks a page; the page itself reports the problem
        pass
    return out


# ------------------------------------------------------------------------------------------- guard
def guarded(body: Callable[[], None]) -> None:
    """Run a page body; user errors show their one-line message, anything else a short note (traceback to the log)."""
    try:
        body()
    except InfluenceError as err:
        st.error(plain(err))
    except Exception as err:
        traceback.print_exc()
        st.error(f"Something went wrong: {type(err).__name__}: {plain(err)}")


# --------------------------------------------------------------------------------------- job panel
def job_panel(key: str, render_running: Callable[[dict], None] | None = None) -> Job | None:
    """Show a running job's progress (polled every second) with a Stop button; rerun the page when it ends.

    Returns the job when it has finished (so the page can report its outcome), else None.
    """
    job = get_job(key)
    if job is None:
        return None
    if not job.running:
        return job

    @st.fragment(run_every=1.0)
    def _watch() -> None:
        snap = job.snapshot()
        if snap["state"] != "running":
            st.rerun()
        st.progress(snap["fraction"], text=f"{job.title}: {snap['message']} ({snap['seconds']:.0f} s)")
        if render_running is not None:
            render_running(snap)
        if st.button("Stop", key=f"stop-{key}", icon=":material/stop_circle:"):
            job.cancel()
            st.toast("Stopping at the next checkpoint…")

    _watch()
    return None
