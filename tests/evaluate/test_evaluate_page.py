"""The Evaluate page (through the app's navigation): runs an experiment on the current data set and model in
the background, then draws the table, the Pareto chart and the attack box plot."""

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from influence_core.data import load_dataset
from influence_core.session import Selection, get_workspace, save_selection

ROOT = Path(__file__).resolve().parents[2]


def _open(root: Path) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.switch_page("pages/7_Evaluate.py")
    return at.run()


@pytest.fixture
def blobs_workspace(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "ws"
    monkeypatch.setenv("INFLUENCE_WORKSPACE", str(root))
    sel = Selection(dataset="blobs", dataset_kwargs={"seed": 0})
    sel.arch, sel.train = "logreg", {"seed": 0}
    fitted = get_workspace(root).get_or_train(load_dataset("blobs", seed=0), "logreg", sel.train_config())
    sel.model_hash = fitted.fingerprint()
    save_selection(sel, root)
    return root


def test_page_runs_an_experiment_on_the_current_model(blobs_workspace):
    at = _open(blobs_workspace)
    assert not at.exception, [e.value for e in at.exception]
    assert any("blobs" in c.value and "logreg" in c.value for c in at.caption)
    next(n for n in at.number_input if n.label == "Retraining seeds").set_value(1)
    next(s for s in at.slider if s.label.startswith("Share flagged")).set_value(0.1)
    next(b for b in at.button if b.label == "Run experiment").click()
    at.run()
    job = at.session_state["evaluate-job"]
    for _ in range(480):
        if not job.running:
            break
        time.sleep(0.25)
    assert job.error is None
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = next(m.value for m in at.markdown if m.value.startswith("| method"))
    assert "| full |" in table and "| random |" in table and "| IP |" in table
    assert len(at.get("plotly_chart")) == 2  # Pareto chart (blobs has a sensitive attribute) and attack box plot
    # The result states its settings (caption and chart titles), and the form shows them, not its defaults.
    summary = "trim the lowest 10% by IP, IP Ensemble · utility impact · 1 seed(s) · 5 attack(s)"
    assert any(summary in c.value.replace("\\", "") for c in at.caption)
    import json

    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert len(titles) == 2 and all(summary in t for t in titles)
    assert next(n for n in at.number_input if n.label == "Retraining seeds").value == 1
    assert next(s for s in at.slider if s.label.startswith("Share flagged")).value == pytest.approx(0.1)
    assert next(m for m in at.multiselect if m.label == "Methods").value == ["ip", "ip_ensemble"]
    assert list(blobs_workspace.glob("experiments/*.runs.jsonl"))


def test_page_without_a_model_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("INFLUENCE_WORKSPACE", str(tmp_path / "empty"))
    at = _open(tmp_path / "empty")
    assert not at.exception
    assert any("model" in i.value.lower() for i in at.info)
