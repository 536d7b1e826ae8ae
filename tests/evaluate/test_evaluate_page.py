"""The Evaluate page runs an experiment in the background and draws its table and charts (standalone mode)."""

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGE = Path(__file__).resolve().parents[2] / "pages" / "7_Evaluate.py"


def test_page_runs_an_experiment_and_shows_results(tmp_path, monkeypatch):
    monkeypatch.setenv("INFLUENCE_WORKSPACE", str(tmp_path))
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception
    if "Data set" in [s.label for s in at.selectbox]:  # standalone: choose a small data set here
        next(s for s in at.selectbox if s.label == "Data set").set_value("blobs")
        next(s for s in at.selectbox if s.label == "Model").set_value("logreg")
    at.run()
    next(n for n in at.number_input if n.label == "Retraining seeds").set_value(1)
    next(b for b in at.button if b.label == "Run experiment").click()
    at.run()
    job = at.session_state["evaluate-job"]
    for _ in range(240):
        if not job.running:
            break
        time.sleep(0.25)
    assert job.error is None
    at.run()
    assert not at.exception and not at.error
    table = next(m.value for m in at.markdown if m.value.startswith("| method"))
    assert "| full |" in table and "| random |" in table and "| IP |" in table
    assert len(at.get("plotly_chart")) == 2  # Pareto chart (blobs has a sensitive attribute) and attack box plot
    assert list(tmp_path.glob("experiments/*.runs.jsonl"))
