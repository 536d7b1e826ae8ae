"""What every page shares: the project named in the URL (``?project=NAME``), prerequisite messages with links,
background-job panels and the error guard. Pages ask the project (`influence_core.project`) for everything and
only render; nothing here computes."""

from __future__ import annotations

import re
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import streamlit as st

from influence_core import __version__
from influence_core.errors import disk_error
from influence_core.project import (DEFAULT_PROJECT, METHODS, Access, InfluenceError, Job, Project, ScoreRun,
                                    project_names, valid_project_name, workspace_root)

ROOT = Path(__file__).resolve().parents[1]
PAGES = {
    "data": "app_pages/1_Data.py", "model": "app_pages/2_Model.py", "scores": "app_pages/3_Scores.py",
    "explore": "app_pages/4_Explore.py", "review": "app_pages/5_Review.py", "export": "app_pages/6_Export.py",
    "evaluate": "app_pages/7_Evaluate.py",
}
APP_VERSION = __version__
# Session-state keys that belong to the browser session, not to one project: a project switch clears every other key.
SESSION_KEYS = ("project", "state-of-project", "project-switches")


# -------------------------------------------------------------------------------------------- project
IMAGE_SIZES = (32, 64, 96, 128, 160, 224, 256, 384, 512)  # the sides an image zip may be read at (≤ the server's cap)


def image_sizes(proj: Project, *also: int) -> list[int]:
    """The image sides a browser may choose here: `IMAGE_SIZES` up to the server's ``max_image_size`` (the cap
    itself when it is below them all), with ``also`` (e.g. a network's own size, already capped), sorted."""
    cap = proj.server_config().max_image_size
    return sorted({*([s for s in IMAGE_SIZES if s <= cap] or [cap]), *also})


def sign_in_configured() -> bool:
    """Whether the server's administrator configured sign-in (an ``[auth]`` table in .streamlit/secrets.toml)."""
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets file at all
        return False


def identity() -> Access | None:
    """Who uses this browser session: with sign-in configured, the signed-in identity (its e-mail, else its OpenID
    subject) or None before signing in; without it, the machine's user, who owns every project (single-user mode)."""
    if not sign_in_configured():
        return Access.local()
    if not st.user.get("is_logged_in"):
        return None
    return Access.signed_in_as(st.user.get("email") or st.user.get("sub"))


def visible_projects(access: Access) -> list[str]:
    """The workspace's projects this user may open (all of them in single-user mode)."""
    return access.visible(workspace_root() / "projects", project_names())


def project_name() -> str:
    """The project in the URL; a page change that drops the query keeps this session's project (and puts it back).
    Signed in without a project named: the first one the user may open."""
    name = st.query_params.get("project") or st.session_state.get("project")
    if not name:
        access = identity()
        mine = visible_projects(access) if access is not None and access.signed_in else []
        name = mine[0] if mine else DEFAULT_PROJECT
    try:
        name = valid_project_name(name)
    except InfluenceError as err:
        st.error(plain(err))
        name = DEFAULT_PROJECT
    st.session_state["project"] = name
    if st.query_params.get("project") != name:
        st.query_params["project"] = name
    _scope_state_to(name)
    return name


def _scope_state_to(name: str) -> None:
    """Page state — widget values, selections, the Review batch and queue, the reviewer id — belongs to one project:
    when this session's project changes (the switcher, a link, an edited address), the old project's is cleared, so
    nothing chosen in one project is shown or recorded in another."""
    owner = st.session_state.get("state-of-project")
    if owner is not None and owner != name:
        for key in [k for k in st.session_state if k not in SESSION_KEYS]:
            del st.session_state[key]
        st.session_state["project-switches"] = st.session_state.get("project-switches", 0) + 1
    st.session_state["state-of-project"] = name


def switcher_key(name: str) -> str:
    """The sidebar switcher's widget key while project ``name`` is shown: a new one after every switch. The browser
    may keep an old switcher's value (Streamlit skips a full run's clean-up of old widgets when a fragment rerun — the
    review grid's — starts before that run has ended), and a key that only named the project would hand project a's
    switcher its last value, "b", when a is shown again: the session would switch straight back to b."""
    switches = st.session_state.get("project-switches", 0)
    return f"project-pick-{name}" if not switches else f"project-pick-{name}-{switches}"


def project() -> Project:
    """This session's project (a folder in the workspace): its data set, model, scores, decisions and jobs. Signed
    in, only a project the user may open. A URL never makes a project (creating one is the switcher's or the
    welcome page's button): only single-user mode's default project, the app's starting point, is made when missing.
    A project renamed (in another session) is followed from its old name to the new one, said in one line."""
    access = identity()
    if access is None:
        raise InfluenceError("sign in to open a project")
    name = project_name()
    if not access.signed_in and name == DEFAULT_PROJECT:
        proj = Project.open(name, user=access.user)
    else:
        proj = Project.open_existing(name, access)
    if proj.renamed_from is not None:
        st.sidebar.info(f"Project '{plain(proj.renamed_from)}' was renamed to '{plain(proj.name)}'; now showing it.")
        switch_project(proj.name)
    return proj


def notice_banner(proj: Project) -> None:
    """The project's notice (e.g. that an unreadable state.json was restored), with a button to dismiss it."""
    notice = proj.notice()
    if notice:
        st.warning(plain(notice), icon=":material/restore:")
        st.button("Dismiss", key="project-notice-dismiss", on_click=proj.dismiss_notice)


def switch_project(name: str) -> None:
    """Show project ``name`` in this session (the URL changes with it, so a bookmark returns here)."""
    st.session_state["project"] = name
    st.query_params["project"] = name


def session_id() -> str:
    """This reviewer session's id in this project: its Undo takes back only its own decisions. The review grid keeps
    it in the browser (`use_session_id`), so a refresh keeps it; until then, an id made for this Streamlit session."""
    return st.session_state.setdefault("session-id", uuid.uuid4().hex[:12])


def use_session_id(value: str) -> None:
    """Adopt the reviewer-session id the browser keeps for this project (checked well-formed by the caller)."""
    st.session_state["session-id"] = value


def link(page: str, label: str, icon: str = ":material/arrow_forward:") -> None:
    """A link to another page of this project."""
    st.page_link(PAGES[page], label=label, icon=icon, query_params={"project": project_name()})


def go(page: str) -> None:
    st.switch_page(PAGES[page], query_params={"project": project_name()})


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


def run_title(run: ScoreRun) -> str:
    """A run for people, e.g. 'IP + loss (rank average), out of fold (5)' (plain text: settings may be typed in)."""
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
        parts.append("target trusts every validation label" if not trim else f"{trim:.0%} of validation samples left out")
    parts.append(f"out of fold ({run.folds})" if run.folds else "in-sample")
    return ", ".join(parts)


# ------------------------------------------------------------------------------------- prerequisites
# What a page may need, each step needing the ones before it: the page scaffold checks them in this order.
NEEDS = ("project", "dataset", "model", "scores")


@dataclass(frozen=True)
class PageContext:
    """What the page scaffold found: the project and, as far as the page needs them, the loaded data set, the model
    and the score runs' scores (None where the page does not need them), with the project state they were read from
    (a running job adds runs meanwhile: the page picks its primary run among these, `Project.primary_run(state)`)."""

    proj: Project
    ds: Any = None
    fitted: Any = None
    scores: dict[str, np.ndarray] | None = None
    state: Any = None


def start_page(title: str, needs: str = "project", intro: str | None = None) -> PageContext:
    """Every page's start: its title (and ``intro`` line), this session's project and what the page needs (one of
    `NEEDS`; each missing prerequisite is said in one line with a link to the page that makes it, and the page stops
    there)."""
    st.title(title)
    if intro:
        st.caption(intro)
    proj = project()
    level = NEEDS.index(needs)
    ds = require_dataset(proj) if level >= 1 else None
    fitted = require_model(proj, ds) if level >= 2 else None
    state = proj.state()
    scores = require_scores(proj, state) if level >= 3 else None
    return PageContext(proj, ds, fitted, scores, state)


class PageStop(Exception):
    """Ends a page early (`missing`): `guarded` ends the page body quietly, so the app still draws what follows the
    page — the sidebar's current work — once per run (st.stop would end the whole script)."""


def missing(message: str, page: str, label: str) -> None:
    """Say plainly what is missing, link to where to fix it, and stop the page."""
    st.info(message)
    link(page, label)
    raise PageStop(message)


def require_dataset(proj: Project):
    try:
        with st.spinner("Loading the data set…"):
            return proj.dataset()
    except InfluenceError as err:
        st.error(f"The data set could not be loaded: {plain(err)}")
        missing("Choose another data set first.", "data", "Go to Data")


def require_model(proj: Project, dataset):
    if not proj.state().has_model:
        missing("No model yet: train or upload a model first.", "model", "Go to Model")
    with st.spinner("Loading the model…"):
        return proj.model(dataset)


def require_scores(proj: Project, state=None) -> dict[str, np.ndarray]:
    state = state or proj.state()
    if not state.runs:
        missing("No scores yet: compute influence scores first.", "scores", "Go to Scores")
    return proj.scores(state)


def status(proj: Project) -> dict:
    """What the sidebar shows: data set, model, score runs, decisions and flagged samples still to review."""
    state = proj.state()
    out = {"dataset": display_name(state.dataset), "model": None, "scores": [r.label for r in state.runs],
           "decisions": 0, "pending": None}
    try:
        current = proj.current_decisions()
        out["decisions"] = len(current)
        if state.has_model:
            fitted = proj.model()
            out["model"] = f"{state.arch} · {state.model_hash or fitted.fingerprint()}"[:28]
            out["val_accuracy"] = fitted.metrics.get("val_accuracy")
            if state.runs:
                out["pending"] = int(sum(1 for r in proj.flagged() if int(r) not in current))
    except Exception:  # the sidebar never breaks a page; the page itself reports the problem
        pass
    return out


# ------------------------------------------------------------------------------------------ settings
SETTING_KINDS = ("bool", "int", "float", "str", "int | None", "float | None")  # what `setting_input` draws


def kind_of(annotation) -> str:
    """A setting's declared kind from its annotation (a settings dataclass field's or a loader argument's type):
    'bool', 'int', 'float', 'str', 'int | None' or 'float | None'; '' when it declares none."""
    text = annotation if isinstance(annotation, str) else annotation.__name__ if isinstance(annotation, type) else \
        str(annotation)
    text = re.sub(r"Optional\[(\w+)\]", r"\1 | None", text.replace("typing.", ""))
    return "" if text in ("_empty", "inspect._empty") else " | ".join(p.strip() for p in text.split("|"))


def setting_input(kind: str, label: str, value, key: str, help: str | None = None, **limits):
    """One input for a setting of the declared ``kind`` (`kind_of`): a checkbox, a whole-number or decimal box, a text
    field, or an optional number whose empty box means "automatic" (None)."""
    if kind == "bool":
        return st.checkbox(label, value=bool(value), key=key, help=help)
    if kind == "int":
        return int(st.number_input(label, value=int(value), step=1, key=key, help=help, **limits))
    if kind == "float":
        return float(st.number_input(label, value=float(value), format="%g", key=key, help=help, **limits))
    if kind in ("int | None", "float | None"):
        whole = kind.startswith("int")
        chosen = st.number_input(label, value=value, step=1 if whole else None, format=None if whole else "%g",
                                 placeholder="automatic", key=key, help=help, **limits)
        return None if chosen is None else (int(chosen) if whole else float(chosen))
    if kind == "str":
        return st.text_input(label, value="" if value is None else str(value), key=key, help=help)
    raise InfluenceError(f"no input for a setting of kind '{kind or 'undeclared'}' ({label})")


def form_buttons(form, action: str) -> tuple[bool, Any]:
    """A settings form's buttons — ``action`` (primary: sends the settings and starts) and "Update the estimate"
    (sends them only) — and the column beside them for the estimate; returns whether ``action`` was clicked, and
    that column."""
    left, mid, right = form.columns([1, 1.6, 3.4], vertical_alignment="center")  # room for "Update the estimate"
    with left:
        clicked = st.form_submit_button(action, type="primary", icon=":material/play_arrow:")
    with mid:
        st.form_submit_button("Update the estimate", icon=":material/timer:",
                              help=f"The estimate beside is for the settings as last sent (with {action} or this button)")
    return clicked, right


# ------------------------------------------------------------------------------------------- guard
def guarded(body: Callable[[], None]) -> None:
    """Run a page body; user errors show their one-line message, a write the disk refused (full, read-only, no
    permission) one line without server paths, anything else a short note (traceback to the log)."""
    try:
        body()
    except PageStop:  # said already (`missing`)
        return
    except InfluenceError as err:
        st.error(plain(err))
    except Exception as err:
        traceback.print_exc()
        refused = disk_error(err, "write to the workspace")
        st.error(plain(refused) if refused else f"Something went wrong: {type(err).__name__}: {plain(err)}")


# --------------------------------------------------------------------------------------- job panel
def job_panel(proj: Project, kind: str, render_running: Callable[[dict], None] | None = None) -> Job | None:
    """Show the project's running ``kind`` job — started in this session or another, before a refresh or not — with
    its progress (polled every second) and a Stop button; rerun the page when it ends.

    Returns the job when it has ended (done, failed, cancelled, or "interrupted" by a server restart) so the page
    can report its outcome; None while it runs or when there is none.
    """
    job = proj.job(kind)
    if job is None:
        return None
    if not job.running:
        return job

    @st.fragment(run_every=1.0)
    def _watch() -> None:
        live = proj.job(kind)
        snap = live.snapshot() if live is not None else {"state": "gone"}
        if snap["state"] != "running":
            st.rerun()
        st.progress(snap["fraction"], text=f"{live.title}: {progress_text(snap)} ({snap['seconds']:.0f} s)")
        if render_running is not None:
            render_running(snap)
        if st.button("Stop", key=f"stop-{kind}", icon=":material/stop_circle:"):
            live.cancel()
            st.toast("Stopping at the next checkpoint…")

    _watch()
    return None


def progress_text(snap: dict) -> str:
    """A running job's progress in words, from what the library reports as data (`Job.snapshot`'s ``detail``): an
    epoch's loss and validation accuracy, the score run by its title and its place among the runs; else the
    library's status line."""
    detail, message = snap.get("detail") or {}, snap.get("message", "")
    try:
        if detail.get("stage") == "epoch" and detail.get("loss") is not None:
            accuracy = detail.get("val_accuracy")
            return f"epoch {detail['epoch']} · loss {detail['loss']:.4f}" + (
                f" · validation accuracy {accuracy:.1%}" if accuracy is not None else "")
        if detail.get("stage") == "run":
            place = f" (run {detail['index'] + 1} of {detail['count']})" if detail["count"] > 1 else ""
            return f"{plain(run_title(ScoreRun(**detail['run'])))}{place}: {message}"
    except (KeyError, TypeError, ValueError):  # a record written by another version: its status line
        pass
    return message


def job_outcome(proj: Project, kind: str, job: Job, what: str) -> None:
    """Report how a finished job ended (an error, a stop, an interruption) in one line."""
    if job.state == "failed":
        st.error(f"{what} failed: {plain(job.error)}")
    elif job.state == "cancelled":
        st.warning(f"{what} was stopped; what had finished is kept.")
    elif job.state == "interrupted":
        st.warning(f"{what} was interrupted (the server restarted); what had finished is kept — start it again to "
                   "resume.")


def job_section(proj: Project, kind: str, what: str, *, on_end: Callable[[Job], None] | None = None,
                render_running: Callable[[dict], None] | None = None, forget: bool = True) -> Job | None:
    """A page's one job section: the project's running ``kind`` job as its panel (`job_panel`: progress, Stop); once
    it has ended, ``on_end(job)`` (default: `job_outcome`'s one line on a failure, stop or interruption) and, with
    ``forget``, the job is forgotten, so its outcome is said once. Returns the job while it runs, else None."""
    ended = job_panel(proj, kind, render_running)
    if ended is not None:
        if on_end is None:
            job_outcome(proj, kind, ended, what)
        else:
            on_end(ended)
        if forget:
            proj.forget_job(kind)
    live = proj.job(kind)
    return live if live is not None and live.running else None
