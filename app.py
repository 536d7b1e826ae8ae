"""Influence Workbench: the Streamlit entry point. Routes to the pages in app_pages/ and keeps a status sidebar.

Run: ``python -m streamlit run app.py``. Work lives in projects (folders under INFLUENCE_WORKSPACE, default
./workspace, ``projects/<name>/``): each holds its data set, model, score runs, decisions, jobs and exports. The
project is in the URL (``?project=NAME``), so a refresh or a bookmark returns to it; the sidebar switches projects.
"""

from __future__ import annotations

import streamlit as st

from influence_core.project import ROLES, Access, InfluenceError, Project
from app_pages._common import (PAGES, ROOT, identity, notice_banner, plain, project, project_name, status, switch_project,
                           switcher_key, visible_projects)

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



def _sign_in_state(access: Access | None) -> None:
    """Who works here: the signed-in user with Sign out, a Sign in button, or single-user mode said plainly."""
    if access is None:
        st.button("Sign in", key="sign-in", icon=":material/login:", on_click=st.login, type="primary", width="stretch")
    elif access.signed_in:
        st.caption(f"Signed in as **{plain(access.user)}**")
        st.button("Sign out", key="sign-out", icon=":material/logout:", on_click=st.logout)
    else:
        st.caption(f"Single-user mode: no sign-in is configured, so this server is bound to localhost and you work as "
                   f"**{plain(access.user)}**, owner of every project.")
        address = st.get_option("server.address")
        if address and address not in ("localhost", "127.0.0.1", "::1"):
            st.warning(f"This server listens on {plain(address)} without sign-in: anyone who reaches it sees every "
                       "project. Configure [auth] in .streamlit/secrets.toml.")


def _project_switcher(access: Access, name: str, proj: Project | None) -> None:
    """List the projects this user may open, create one, rename or share this one; the choice goes into the URL."""
    names = visible_projects(access)
    if proj is not None and name not in names:
        names.append(name)
    # a project not listed yet (a URL's name before Create) gets its own key: its blank value must not stay once made
    chosen = st.selectbox("Project", names, index=names.index(name) if name in names else None,
                          key=switcher_key(name) + ("" if name in names else "-unlisted"), placeholder="Choose a project",
                          help="Each project keeps its own data set, model, scores, decisions and jobs. The project is "
                               "in the page's address: bookmark it to come back.")
    if chosen is not None and chosen != name:
        switch_project(chosen)
        st.rerun()
    owner = proj is not None and proj.role == "owner"
    with st.popover("New or rename" if owner else "New project", icon=":material/edit:", width="stretch"):
        new = st.text_input("Name", key="project-name", placeholder="e.g. cifar-audit", max_chars=64)
        c1, c2 = st.columns(2)
        try:
            if c1.button("Create", key="project-create", disabled=not new or not access.may_create):
                switch_project(Project.create(new, access).name)
                st.rerun()
            if owner and c2.button("Rename this one", key="project-rename", disabled=not new):
                proj.require("manage")
                switch_project(proj.rename(new).name)
                st.rerun()
            if owner:
                sure = st.checkbox("Delete this project: its data choice, decisions, jobs and exports", key="project-sure")
                if st.button("Delete this one", key="project-delete", disabled=not sure, icon=":material/delete:"):
                    proj.delete()
                    st.session_state.pop("project", None)  # on to the first project left (the default one locally)
                    del st.query_params["project"]
                    st.rerun()
        except InfluenceError as err:
            st.error(plain(err))
    if owner and access.signed_in:
        _members(proj)
    if proj is not None:
        notice_banner(proj)


def _members(proj: Project) -> None:
    """The owner shares the project: a member's e-mail (as the sign-in provider gives it) and a role, or removal."""
    members = proj.members()
    with st.popover("Members", icon=":material/group:", width="stretch"):
        st.caption(f"Owner: {plain(members.owner or 'the administrators')}")
        for who, role in sorted(members.roles.items()):
            st.caption(f"{plain(who)} · {role}")
        who = st.text_input("E-mail", key="member-user", max_chars=254, placeholder="someone@example.com")
        role = st.selectbox("Role", ROLES[:-1], index=1, key="member-role",
                            help="viewer: may open and see; reviewer: may also decide")
        c1, c2 = st.columns(2)
        try:
            if c1.button("Add or change", key="member-set", disabled=not who):
                proj.set_member(who, role)
                st.rerun()
            if c2.button("Remove", key="member-remove", disabled=not who):
                proj.set_member(who, None)
                st.rerun()
        except InfluenceError as err:
            st.error(plain(err))


def _no_project(access: Access | None, name: str | None, refusal: InfluenceError | None) -> None:
    """The one page shown without a project: sign in first, a project this user may not open (one line), or a name
    no project has, with a Create button for users who may create."""
    st.title("Influence Workbench")
    if access is None:
        st.info("Sign in to see your projects.")
    elif Project.exists(name):
        st.error(plain(refusal))
    else:
        st.info(f"No project named '{plain(name)}' — create it?")
        if access.may_create and st.button(f"Create {name}", key="project-create-named", icon=":material/add:"):
            try:
                Project.create(name, access)
            except InfluenceError as err:
                st.error(plain(err))
            else:
                st.rerun()


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
    if not access.signed_in or access.admin:  # the server's paths only for the machine's user or an administrator
        st.caption(f"Project folder: {plain(proj.folder)}")
    st.caption("Scores: lower = more detrimental.")


access = identity()
name = project_name() if access is not None else None
proj = refusal = None
try:
    proj = project() if access is not None else None
except InfluenceError as err:
    refusal = err
if proj is None:  # only the page saying why (the pages' own URLs come back with a project)
    def welcome() -> None:
        _no_project(access, name, refusal)

    current = st.navigation([st.Page(welcome, title="Influence Workbench", icon=":material/login:", default=True)])
else:
    current = st.navigation(pages)
with st.sidebar:
    _sign_in_state(access)
    if access is not None:
        _project_switcher(access, name, proj)
    work = st.empty()
current.run()  # a page that stops early (`_common.missing`) still returns here
if proj is not None:
    with work.container():  # after the page, counting what it just recorded; once per run
        _current_work(proj)
