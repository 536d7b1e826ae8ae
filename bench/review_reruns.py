"""Bench: what one key press in the Review grid reruns. The app is served by a launcher that counts Streamlit's script
runs (a full run of the app, or a fragment run) in the server process; a headless Chromium opens Review on a moons
project (logistic regression, IP scores), focuses the first card and presses ``--keys`` decision keys (`a` and `r`
in turn), each once the one before shows as saved, then ``--gap-ms`` later. Reported per key press: full app runs,
fragment runs, and the seconds from the key to its card showing "saved" (median and max).

``--tree`` serves another checkout of the app (e.g. main's, from ``git archive``) to measure the before:

    OMP_NUM_THREADS=1 python bench/review_reruns.py --label after
    mkdir /tmp/main && git archive 6330f1e | tar -x -C /tmp/main
    OMP_NUM_THREADS=1 python bench/review_reruns.py --tree /tmp/main --label "before (main 6330f1e)"

Each run adds its row to bench/results/review_reruns.json and prints the markdown table of all rows.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import RESULTS, markdown_table  # noqa: E402

# Run inside the server process: count every script run before Streamlit starts it, then serve app.py as usual.
LAUNCHER = """
import json, sys
from streamlit.runtime.scriptrunner import script_runner
counts, out = {"full": 0, "fragment": 0}, sys.argv.pop(1)
original = script_runner.ScriptRunner._run_script
def counted(self, rerun_data):
    counts["fragment" if rerun_data.fragment_id_queue else "full"] += 1
    with open(out, "w") as f:
        json.dump(counts, f)
    return original(self, rerun_data)
script_runner.ScriptRunner._run_script = counted
from streamlit.web import cli
sys.argv = ["streamlit", "run", "app.py", *sys.argv[1:]]
cli.main()
"""


def _project(tree: Path, workspace: Path) -> None:
    """A moons project "a" with a model and IP scores, built through the facade of the tree that is served."""
    code = ("from influence_core.project import Project, ScoreRun\n"
            f"p = Project.open('a', {str(workspace)!r})\n"
            "p.use_dataset('moons', seed=0); p.train('logreg'); p.score(ScoreRun('ip'))\n")
    subprocess.run([sys.executable, "-c", code], cwd=tree, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _serve(tree: Path, workspace: Path, counts: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "INFLUENCE_WORKSPACE": str(workspace), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(counts), "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"],
                            cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("streamlit did not start")


def _idle(page) -> None:
    page.wait_for_timeout(500)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=120_000)


def measure(tree: Path, keys: int, gap_ms: int) -> dict:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        workspace, counts = Path(tmp) / "workspace", Path(tmp) / "counts.json"
        _project(tree, workspace)
        proc, url = _serve(tree, workspace, counts)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                             headless=True, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(120_000)
                page.goto(f"{url}/Review?project=a")
                cards = page.get_by_test_id("review-card")
                cards.nth(keys - 1).wait_for()
                _idle(page)
                cards.first.locator(".rg-title").click()
                _idle(page)
                before = json.loads(counts.read_text())
                saved = page.locator('[data-testid="review-card"][data-state="saved"]')
                latencies = []
                for i in range(keys):  # one at a time: each key's decision shown as saved before the next key
                    start = time.time()
                    page.keyboard.press("ar"[i % 2])
                    while saved.count() < i + 1:
                        page.wait_for_timeout(20)
                    latencies.append(time.time() - start)
                    page.wait_for_timeout(gap_ms)
                _idle(page)
                page.wait_for_timeout(3000)  # a late rerun is counted too
                after = json.loads(counts.read_text())
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
    full, fragment = after["full"] - before["full"], after["fragment"] - before["fragment"]
    return {"keys": keys, "gap_ms": gap_ms, "full_runs": full, "fragment_runs": fragment,
            "full_per_key": full / keys, "fragment_per_key": fragment / keys,
            "median_s_to_saved": float(np.median(latencies)), "max_s_to_saved": max(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose app is served")
    parser.add_argument("--label", default="this checkout")
    parser.add_argument("--keys", type=int, default=12)
    parser.add_argument("--gap-ms", type=int, default=300)
    args = parser.parse_args()
    row = {"label": args.label, **measure(args.tree.resolve(), args.keys, args.gap_ms),
           "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": round(os.getloadavg()[0], 1)}
    path = RESULTS / "review_reruns.json"
    rows = [r for r in (json.loads(path.read_text()) if path.exists() else []) if r["label"] != row["label"]]
    rows.append(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2))
    print(markdown_table(rows, [("label", "app"), ("keys", "keys"), ("gap_ms", "gap ms"),
                                ("full_per_key", "full app runs / key"), ("fragment_per_key", "fragment runs / key"),
                                ("median_s_to_saved", "median s key → saved"), ("max_s_to_saved", "max s"),
                                ("load", "load avg"), ("when", "when")]))


if __name__ == "__main__":
    main()
