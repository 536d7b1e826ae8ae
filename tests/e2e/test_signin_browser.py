"""Sign-in in a real browser through a real OpenID Connect provider (oidc-provider-mock, started here on 127.0.0.1):
Streamlit's st.login redirects Chromium to the provider, Alice authorizes as alice@example.com, the provider
redirects back to /oauth2callback. Then: the switcher lists only Alice's projects; Bob's project by URL is refused
in one line; an unknown name is offered with a Create button (no folder before the click), which she shares
and deletes from the sidebar; her decision on Review
is recorded with decided_by = alice@example.com; after Sign out (the provider ends the session too)
the project is closed again.

The secrets file with [auth] lives in the test's temporary folder (Streamlit's --secrets.files), never in the
repository. Skipped like tests/e2e/test_browser.py when Chromium or Playwright is missing.
"""

from __future__ import annotations

import threading

import pytest

from influence_core.access import read_members
from influence_core.project import Access, Project, ScoreRun
from tests.e2e.test_browser import CHROMIUM, Server, _free_port, _goto, _idle, _shot, _step, playwright_api

oidc_provider_mock = pytest.importorskip("oidc_provider_mock", reason="pip install oidc-provider-mock")
serving = pytest.importorskip("werkzeug.serving")

ALICE, BOB = "alice@example.com", "bob@example.com"


def _provider():
    """The OpenID Connect provider on a free 127.0.0.1 port, served from a thread; returns (server, its URL)."""
    server = serving.make_server("127.0.0.1", 0, oidc_provider_mock.app(), threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def _secrets(folder, app_port: int, provider_url: str):
    path = folder / "secrets.toml"
    path.write_text(f"""[auth]
redirect_uri = "http://127.0.0.1:{app_port}/oauth2callback"
cookie_secret = "a-test-only-cookie-secret-of-enough-length"
client_id = "influence-workbench-test"
client_secret = "test-only-client-secret"
server_metadata_url = "{provider_url}/.well-known/openid-configuration"
""")
    return path


def _sign_in(page, user: str) -> None:
    """Sign in through the provider's own authorization form, as a person would."""
    page.get_by_test_id("stSidebar").get_by_role("button", name="Sign in").click()
    page.locator("input[name=sub]").fill(user)
    page.get_by_role("button", name="Authorize").click()
    page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {user}").wait_for()


def test_sign_in_through_a_real_provider_scopes_projects_and_records_the_identity(tmp_path):
    workspace = tmp_path / "workspace"
    audit = Project.create("audit", Access(ALICE, signed_in=True), workspace)
    audit.use_dataset("moons", seed=0)
    audit.train("logreg")
    audit.score(ScoreRun("ip"))
    Project.create("bobs", Access(BOB, signed_in=True), workspace)
    provider, provider_url = _provider()
    port = _free_port()
    server = Server(workspace, port=port, args=("--secrets.files", str(_secrets(tmp_path, port, provider_url))))
    try:
        with playwright_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(90_000)
            page.goto(f"{server.url}/?project=bobs")
            page.get_by_text("Sign in to see your projects.").wait_for()
            assert "bobs" not in page.get_by_test_id("stSidebar").inner_text()  # no switcher before signing in

            _step("sign in at the provider")
            _sign_in(page, ALICE)
            _idle(page)
            _shot(page, "signin-signed-in")
            sidebar = page.get_by_test_id("stSidebar")
            sidebar.get_by_test_id("stSelectbox").filter(has_text="Project").click()
            assert [o.inner_text() for o in page.get_by_role("option").all()] == ["audit"]
            page.keyboard.press("Escape")

            _step("Bob's project by URL")
            page.goto(f"{server.url}/?project=bobs")
            page.get_by_text(f"{ALICE} has no access to project 'bobs': ask its owner to add you").wait_for()
            assert page.get_by_role("heading", name="Data", exact=True).count() == 0

            _step("an unknown name is offered, then created")
            page.goto(f"{server.url}/?project=fresh")
            page.get_by_text("No project named 'fresh' — create it?").wait_for()
            assert not (workspace / "projects" / "fresh").exists()
            page.get_by_role("button", name="Create fresh").click()
            page.get_by_role("heading", name="Data", exact=True).wait_for()
            assert Project.open_existing("fresh", Access(ALICE, signed_in=True), workspace).role == "owner"

            _step("share the new project, then delete it")
            sidebar.get_by_role("button", name="Members").click()  # a popover: it stays open across reruns
            email = page.get_by_role("textbox", name="E-mail")
            email.fill(BOB)
            email.press("Enter")
            page.get_by_role("button", name="Add or change").click()  # Playwright waits until it is enabled
            page.get_by_text(f"{BOB} · reviewer").wait_for()  # the member list, drawn again after the change
            assert read_members(workspace / "projects" / "fresh").roles == {BOB: "reviewer"}
            page.keyboard.press("Escape")
            sidebar.get_by_role("button", name="New or rename").click()
            page.get_by_text("Delete this project").click()
            page.get_by_role("button", name="Delete this one").click()
            page.wait_for_url("**project=audit")  # on to the project left
            assert not (workspace / "projects" / "fresh").exists()

            _step("a decision on Review is Alice's")
            page.goto(f"{server.url}/?project=audit")
            page.get_by_role("heading", name="Data", exact=True).wait_for()
            _goto(page, "Review")
            cards = page.get_by_test_id("review-card")
            cards.first.wait_for()
            _idle(page)
            cards.first.locator(".rg-title").click()
            page.keyboard.press("r")
            page.get_by_test_id("review-sync").filter(has_text="every decision saved").wait_for()
            [decision] = audit.current_decisions().values()
            assert decision.decided_by == ALICE

            _step("sign out")
            page.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
            page.get_by_role("button", name="End session").click()  # the provider's own logout confirmation
            page.get_by_test_id("stSidebar").get_by_role("button", name="Sign in").wait_for()
            page.goto(f"{server.url}/?project=audit")
            page.get_by_text("Sign in to see your projects.").wait_for()
            browser.close()
    finally:
        server.stop()
        provider.shutdown()
