"""Influence Workbench: the Streamlit entry point. Routes to the pages in pages/ and keeps a status sidebar.

Run: ``python -m streamlit run app.py``. Work lives in projects (folders under INFLUENCE_WORKSPACE, default
./workspace, ``projects/<name>/``): each holds its data set, model, score runs, decisions, jobs and exports. The
project is in the URL (``?project=NAME``), so a refresh or a bookmark returns to it; the sidebar switches projects.
"""

from __future__ import annotations

import streamlit as st

from influence_core.project import InfluenceError, Project, project_names, valid_project_name
from pages._common import PAGES, ROOT, notice_banner, plain, project, status, switch_project

st.set_page_config(page_title="Influence Workbench", page_icon=str(ROOT / "assets" / "icon.svg"), layout="wide")
st.logo(str(ROOT / "assets" / "logo.svg"), size="large", icon_image=str(ROOT / "assets" / "icon.svg"))

_PAGES = [
    ("data", "Data", ":material/database:"),
    ("model", "Model", ":material/model_training:"),
    ("scores", "Scores", ":material/leaderboard:"),
    ("explore", "Explore", ":material/scatter_plot:"),
    ("review", "Review", ":material/fact_check:"),
    ("export", "Export", ":material/download:"),
    ("evaluate", "Evaluate", ":material/query_stats:"),
]
# Build the navigation from the page files present (Evaluate comes from another part of the project).
pages = [st.Page(PAGES[key], title=title, icon=icon, default=(key == "data"))
         for key, title, icon in _PAGES if (ROOT / PAGES[key]).exists()]
current = st.navigation(pages)



def _project_switcher(proj: Project) -> None:
    """List, create and rename projects; the choice goes into the URL."""
    names = project_names(proj.root)
    if proj.name not in names:
        names.append(proj.name)
    chosen = st.selectbox("Project", names, index=names.index(proj.name), key=f"project-pick-{proj.name}",
                          help="Each project keeps its own data set, model, scores, decisions and jobs. The project is "
                               "in the page's address: bookmark it to come back.")
    if chosen != proj.name:
        switch_project(chosen)
        st.rerun()
    with st.popover("New or rename", icon=":material/edit:", width="stretch"):
        name = st.text_input("Name", key="project-name", placeholder="e.g. cifar-audit", max_chars=64)
        c1, c2 = st.columns(2)
        try:
            if c1.button("Create", key="project-create", disabled=not name):
                new = valid_project_name(name)
                if new in names:
                    raise InfluenceError(f"a project named '{new}' exists already")
                Project.open(new, proj.root)
                switch_project(new)
                st.rerun()
            if c2.button("Rename this one", key="project-rename", disabled=not name):
                switch_project(proj.rename(name).name)
                st.rerun()
        except InfluenceError as err:
            st.error(plain(err))
    notice_banner(proj)


def _current_work(proj: Project) -> None:
    """What the project holds now: data set, model, score runs, decisions and flagged samples still to review."""
    info = status(proj)
    st.caption("CURRENT WORK")
    st.markdown(f"**Data set** · {plain(info['dataset'])}")
    if info["model"]:
        acc = info.get("val_accuracy")
        st.markdown(f"**Model** · {plain(info['model'])}" + (f"  \nvalidation accuracy {acc:.1%}" if acc is not None else ""))
    else:
        st.markdown("**Model** · none yet")
    st.markdown("**Scores** · " + (plain(", ".join(info["scores"])) if info["scores"] else "none yet"))
    pending = "" if info["pending"] is None else f" · {info['pending']} flagged to review"
    st.markdown(f"**Decisions** · {info['decisions']} made{pending}")
    st.caption(f"Project folder: {plain(proj.folder)}")
    st.caption("Scores: lower = more detrimental.")


proj = project()
with st.sidebar:
    _project_switcher(proj)
    work = st.empty()
with work.container():  # drawn before the page (a page may stop early) …
    _current_work(proj)
current.run()
with work.container():  # … and again after it, counting what the page just recorded
    _current_work(proj)
