"""The router: every page file present is reachable, including Evaluate when it exists, and none errors."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from influence_core.project import Access, Project

from .conftest import APP, no_errors, open_page, shown

PAGES = sorted(p.name for p in (Path(APP).parent / "app_pages").glob("[0-9]_*.py"))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_on_a_scored_workspace(scored, page):
    at = open_page(page)
    no_errors(at)
    if page != "7_Evaluate.py":  # Evaluate belongs to another part of the project; it only has to open cleanly
        assert at.title[0].value == page.split("_", 1)[1].removesuffix(".py")


# ------------------------------------------------------------------------------------------------ sign-in
# With [auth] configured, st.user (what app_pages._common.identity reads) comes from AppTest's user; the e2e test
# tests/e2e/test_signin_browser.py signs in through a real OpenID Connect provider instead.
AUTH = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "test-only",
                 "client_id": "workbench", "client_secret": "test-only",
                 "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}}
ALICE, MALLORY = "alice@example.com", "mallory@example.com"


def _as(user: str | None, project: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.secrets = dict(AUTH)
    at.user = {"is_logged_in": True, "email": user} if user else {"is_logged_in": False}
    if project:
        at.query_params["project"] = project
    return at.run()


def _alices_project(workspace) -> Project:
    proj = Project.create("audit", Access(ALICE, signed_in=True), workspace)
    proj.use_dataset("moons", seed=0)
    return proj


def test_another_users_project_by_url_is_refused_in_one_line(workspace):
    _alices_project(workspace)
    at = _as(MALLORY, "audit")
    assert not at.exception
    assert [shown(e.value) for e in at.error] == [f"{MALLORY} has no access to project 'audit': ask its owner to add you"]
    assert [t.value for t in at.title] == ["Influence Workbench"]  # nothing of the project
    assert not [m for m in at.sidebar.markdown if "moons" in m.value]
    assert "audit" not in at.sidebar.selectbox[0].options  # the project switcher


def test_the_owner_opens_the_project_and_the_switcher_lists_only_theirs(workspace):
    _alices_project(workspace)
    Project.create("mallorys", Access(MALLORY, signed_in=True), workspace)
    at = _as(ALICE)
    no_errors(at)
    assert at.title[0].value == "Data"
    assert at.sidebar.selectbox(key="project-pick-audit").options == ["audit"]
    assert any(f"Signed in as **{ALICE}**" == shown(c.value).replace("\\", "") for c in at.sidebar.caption)


def test_an_unknown_project_in_the_url_is_offered_not_created(workspace):
    at = _as(ALICE, "fresh")
    no_errors(at)
    assert [shown(i.value) for i in at.info] == ["No project named 'fresh' — create it?"]
    assert not (workspace / "projects" / "fresh").exists()
    at.button(key="project-create-named").click().run()
    no_errors(at)
    assert Project.open_existing("fresh", Access(ALICE, signed_in=True), workspace).role == "owner"
    assert at.title[0].value == "Data"


def test_the_servers_project_folder_is_shown_only_to_the_machines_user(workspace):
    _alices_project(workspace)
    signed_in = _as(ALICE, "audit")  # the owner, but not an administrator: the server's paths are not theirs to see
    no_errors(signed_in)
    assert not [c for c in signed_in.sidebar.caption if "Project folder" in c.value or str(workspace) in c.value]
    local = open_page()
    assert [c for c in local.sidebar.caption if c.value.startswith("Project folder:")]

def test_without_signing_in_nothing_is_shown_but_the_sign_in_button(workspace):
    _alices_project(workspace)
    at = _as(None, "audit")
    assert not at.exception
    assert at.sidebar.button(key="sign-in").label == "Sign in"
    assert [i.value for i in at.info] == ["Sign in to see your projects."]
    assert not at.sidebar.selectbox and [t.value for t in at.title] == ["Influence Workbench"]


def test_without_auth_the_sidebar_says_single_user_mode(workspace):
    at = open_page()
    no_errors(at)
    assert any("Single-user mode" in c.value for c in at.sidebar.caption)
    assert (workspace / "projects" / "default").is_dir()  # the local user's default project, as before


def test_a_viewer_sees_the_review_page_but_every_decision_is_refused_in_one_line(scored):
    viewer = "carol@example.com"
    Project.open("default", scored).set_member(viewer, "viewer")
    at = _as(viewer, "default")
    at.switch_page("app_pages/5_Review.py").run()
    assert at.title[0].value == "Review" and not at.exception
    event = {"label": None, "project": "default", "reviewer": "ab12cd34ef56ab12"}
    at.session_state["review-grid-default"] = {"queue": [{"id": "k1", "action": "keep", "rows": [0], **event},
                                                 {"id": "u1", "action": "undo", "rows": [], **event}]}
    at.run()
    refusal = "you may view project 'default' but not decide (your role: viewer); ask its owner for the reviewer role"
    grid = next(json.loads(c.proto.json) for c in _all(at.main) if getattr(c, "type", None) == "bidi_component")
    assert grid["failed"] == {"k1": refusal, "u1": refusal}
    at.multiselect(key="batch-rows").set_value([at.multiselect(key="batch-rows").options[0]]).run()  # a batch
    next(b for b in at.button if b.label == "Remove all").click().run()
    assert [shown(e.value) for e in at.error] == [refusal]
    assert Project.open("default", scored).current_decisions() == {}


def test_a_viewers_ranking_orders_their_view_only_and_the_projects_state_stays(scored):
    """The audit: a viewer's Order by and flagged share were written into the project for everyone."""
    viewer = "carol@example.com"
    owner = Project.open("default", scored)
    owner.set_member(viewer, "viewer")
    before = owner.state()
    at = _as(viewer, "default")
    at.switch_page("app_pages/5_Review.py").run()
    order = next(s for s in at.selectbox if s.label == "Order by")
    other = next(o for o in order.options if o != order.value)
    order.set_value(other).run()
    assert not at.exception and not at.error
    assert next(s for s in at.select_slider if s.label.startswith("Flag the most")).disabled
    after = Project.open("default", scored).state()
    assert (after.primary, after.flag_share) == (before.primary, before.flag_share)

def _all(node):
    """Every element under ``node``."""
    yield node
    for child in (node.children.values() if isinstance(getattr(node, "children", None), dict) else []):
        yield from _all(child)


def test_only_the_owner_is_offered_members_rename_and_delete(workspace):
    """(Sidebar clicks are driven in tests/e2e/test_signin_browser.py; the rights themselves in tests/test_access.py.)"""
    proj = _alices_project(workspace)
    proj.set_member(MALLORY, "reviewer")
    owner_only = {"member-set", "member-remove", "project-rename", "project-delete"}
    owner, reviewer = _as(ALICE, "audit"), _as(MALLORY, "audit")
    no_errors(owner)
    no_errors(reviewer)
    assert owner_only <= {b.key for b in owner.sidebar.button}
    assert reviewer.title[0].value == "Data" and not owner_only & {b.key for b in reviewer.sidebar.button}


@pytest.mark.parametrize("page, next_page", [("1_Data.py", "Model"), ("2_Model.py", "Scores"),
                                             ("3_Scores.py", "Explore"), ("4_Explore.py", "Review")])
def test_each_step_done_links_to_the_next_page(scored, page, next_page):
    at = open_page(page)
    no_errors(at)
    assert [link.proto.page for link in at.get("page_link") if link.proto.label.startswith("Next:")] == [next_page]


def test_single_user_mode_offers_an_unknown_project_in_the_url_and_makes_it_only_by_the_button(workspace):
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params["project"] = "typo"
    at.run()
    no_errors(at)
    assert [shown(i.value) for i in at.info] == ["No project named 'typo' — create it?"]
    assert not (workspace / "projects" / "typo").exists()  # visiting the URL made nothing
    assert [t.value for t in at.title] == ["Influence Workbench"]
    assert at.sidebar.selectbox[0].value is None  # no project "typo" yet: the switcher names none
    at.button(key="project-create-named").click().run()
    no_errors(at)
    assert (workspace / "projects" / "typo").is_dir() and at.title[0].value == "Data"
    assert at.sidebar.selectbox[0].value == "typo"  # once made, the switcher shows it (it stayed blank before)
