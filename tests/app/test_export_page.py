"""Export page: needs decisions first; shows the corrections table and writes the files to the workspace."""

import json

import pandas as pd

from influence_core.data import load_dataset
from influence_core.review import DecisionLog
from influence_core.session import decision_scope

from .conftest import no_errors, open_page


def test_without_decisions_links_to_review(scored):
    at = open_page("6_Export.py")
    assert not at.exception
    assert any("No decisions yet" in i.value for i in at.info)


def test_table_and_files(scored):
    ds = load_dataset("moons", seed=0)
    log = DecisionLog(scored / "decisions.sqlite")
    log.record(decision_scope(ds), [3], "relabel", 1 - int(ds.train.y[3]))
    log.record(decision_scope(ds), [5, 7], "remove")
    at = open_page("6_Export.py")
    no_errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Remove"] == "2" and metrics["Relabel"] == "1" and metrics["Training samples after"] == "248 / 250"
    table = at.dataframe[0].value
    assert table["row"].tolist() == [3, 5, 7] and table["action"].tolist() == ["relabel", "remove", "remove"]
    next(b for b in at.button if b.label == "Write the export files").click().run()
    folder = next((scored / "exports").iterdir())
    written = pd.read_csv(next(folder.glob("*.csv")))
    assert written["final_label"].tolist() == [1 - int(ds.train.y[3]), -1, -1]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["counts"] == {"keep": 0, "remove": 2, "relabel": 1}
