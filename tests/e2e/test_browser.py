"""End to end in a real browser: Data (moons) → Model (train) → Scores (IP) → Explore → Review (relabel one,
remove one) → Export (download the corrections CSV), then restart the server and find the decisions again.

Drives Debian's Chromium headless through Playwright (no browser download). Screenshots of every page go to
test-artifacts/. Skipped only when Chromium or Playwright is missing locally; CI installs both.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`streamlit run app.py` on a free 127.0.0.1 port with the given workspace; stopped by its own pid."""

    def __init__(self, workspace: Path, port: int | None = None, args: tuple[str, ...] = ()) -> None:
        self.port = port or _free_port()
        env = {**os.environ, "INFLUENCE_WORKSPACE": str(workspace), "OMP_NUM_THREADS": "1"}
        self.log = open(workspace.parent / f"server-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
             *args],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(self.url + "/_stcore/health", timeout=2).read() == b"ok":
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("streamlit did not start within 60 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@contextlib.contextmanager
def served_page(workspace: Path, width: int = 1280, height: int = 800, timeout_ms: int = 60_000):
    """A fresh server on ``workspace`` and a headless Chromium page (downloads allowed); both closed afterwards."""
    server = Server(workspace)
    try:
        with playwright_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
            page.set_default_timeout(timeout_ms)
            try:
                yield server, page
            finally:
                browser.close()
    finally:
        server.stop()


T0 = time.time()


def _step(name: str) -> None:
    print(f"[e2e {time.time() - T0:6.1f} s] {name}", flush=True)


def _goto(page, name: str) -> None:
    """Open a page through the sidebar navigation, as a user would."""
    _step(name)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name, exact=True).click()
    page.get_by_role("heading", name=name, exact=True).wait_for(timeout=30_000)


def _idle(page) -> None:
    """Wait until Streamlit has finished the current script run and drawn its placeholders."""
    page.wait_for_timeout(300)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=stSkeleton]')", timeout=60_000)


def _until_finished(page, done: str, failed: tuple[str, ...] = ("failed", "Something went wrong"),
                    quiet_s: float = 60, limit_s: float = 1800) -> None:
    """Wait for a background job by the page's own state, not a fixed time: the job panel shows a progress bar
    while the job runs (keep waiting, however slow the machine), then the page shows ``done``. A failure
    message, no progress bar and no ``done`` for ``quiet_s`` seconds, or ``limit_s`` in all fails the test."""
    start = last_running = time.time()
    while True:
        if page.get_by_text(done).count():
            return
        for text in failed:
            alert = page.get_by_test_id("stAlertContentError").filter(has_text=text)
            if alert.count():
                raise AssertionError(f"waiting for '{done}': the page says {alert.first.inner_text()!r}")
        if page.get_by_test_id("stProgress").count():
            last_running = time.time()
        elif time.time() - last_running > quiet_s:
            raise AssertionError(f"'{done}' not shown and no job running for {quiet_s:.0f} s")
        if time.time() - start > limit_s:
            raise AssertionError(f"'{done}' not shown after {limit_s:.0f} s")
        page.wait_for_timeout(500)


def _shot(page, name: str) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its main area, so grow the window to fit, then
    restore 1280×800."""
    _idle(page)
    ARTIFACTS.mkdir(exist_ok=True)
    for _ in range(3):  # the layout settles after a resize (tabs and charts re-measure): repeat until stable
        height = int(min(max(page.evaluate("() => document.querySelector('[data-testid=stMain]')?.scrollHeight || 800"),
                             800), 4000))
        if page.viewport_size["height"] == height:
            break
        page.set_viewport_size({"width": 1280, "height": height})
        page.wait_for_load_state("networkidle")  # images arrive as separate media requests
        page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size({"width": 1280, "height": 800})


def test_full_flow_and_restart(tmp_path):
    workspace = tmp_path / "workspace"
    with served_page(workspace) as (server, page):
        page.goto(server.url)
        page.get_by_role("heading", name="Data", exact=True).wait_for()
        page.get_by_text("Known noise rate").wait_for()
        _shot(page, "1-data")

        _goto(page, "Model")
        epochs = page.get_by_role("spinbutton", name="Epochs", exact=True)
        epochs.fill("120")  # fewer than the default 300: the test machine is shared
        epochs.press("Enter")
        _idle(page)
        page.get_by_role("button", name="Train").click()
        _until_finished(page, "Training finished.")
        page.get_by_text("Validation accuracy").first.wait_for()
        _shot(page, "2-model")

        _goto(page, "Scores")
        page.get_by_role("button", name="Compute scores").click()
        _until_finished(page, "Scores of all 250 training samples")
        _shot(page, "3-scores")

        _goto(page, "Explore")
        page.get_by_role("button", name="Compute the angle view").click()
        _until_finished(page, "Samples per region")
        _shot(page, "4-explore")

        _goto(page, "Review")
        cards = page.get_by_test_id("review-card")
        cards.nth(1).wait_for()
        _idle(page)
        cards.first.locator(".rg-title").click()  # focus the first card, relabel it to the other class by key
        page.keyboard.press(str(1 - int(cards.first.get_attribute("data-given"))))
        page.get_by_text("0 keep, 0 remove, 1 relabel").wait_for()
        cards.nth(1).get_by_role("button", name="Remove", exact=True).click()  # and a click on the second card
        page.get_by_text("0 keep, 1 remove, 1 relabel").wait_for()
        _shot(page, "5-review")

        _goto(page, "Export")
        with page.expect_download() as info:
            page.get_by_role("button", name="Download CSV").click()
        csv_path = tmp_path / "corrections.csv"
        info.value.save_as(csv_path)
        _shot(page, "6-export")

    table = pd.read_csv(csv_path)
    assert sorted(table["action"]) == ["relabel", "remove"]
    relabel = table[table["action"] == "relabel"].iloc[0]
    assert relabel["final_label"] == 1 - relabel["given_label"]  # moons is binary: the other class
    assert table.loc[table["action"] == "remove", "final_label"].item() == -1
    assert {"index", "given_label", "final_label", "score_ip", "decided_by", "decided_at"} <= set(table.columns)
    assert (table["score_ip"] < 0).all()  # flagged samples: the most detrimental, negative IP

    # A new server on the same workspace: the decisions, model and scores are all still there.
    with served_page(workspace) as (server, page):
        page.goto(server.url)
        page.get_by_role("heading", name="Data", exact=True).wait_for()
        _goto(page, "Export")
        page.get_by_text("Training samples after").wait_for()
        page.get_by_text("249 / 250").wait_for()
        _goto(page, "Review")
        page.get_by_text("0 keep, 1 remove, 1 relabel").wait_for()
        _shot(page, "7-review-after-restart")
