"""The image path on the real CIFAR-10N subset: image preview, review grid, ImageFolder zip and label-file export."""

from __future__ import annotations

import pytest

from influence_core.data import load_dataset
from influence_core.errors import InfluenceError
from influence_core.review import DecisionLog
from influence_core.session import ScoreRun, Selection, decision_scope, get_workspace, save_selection

from .conftest import no_errors, open_page

KWARGS = {"label_set": "worst", "max_train": 120, "max_test": 50, "seed": 0}


@pytest.fixture
def cifar(workspace):
    try:
        ds = load_dataset("cifar10n", **KWARGS)
    except InfluenceError as err:
        pytest.skip(f"CIFAR-10N subset not available: {err}")
    sel = Selection(dataset="cifar10n", dataset_kwargs=dict(KWARGS))
    sel.arch, sel.train = "cnn", {"epochs": 1, "seed": 0}
    ws = get_workspace(workspace)
    fitted = ws.get_or_train(ds, "cnn", sel.train_config())
    sel.model_hash = fitted.fingerprint()
    ws.get_or_score(ds, fitted, "ip", "utility", "head", {})
    sel.add_run(ScoreRun("ip", params="head"))
    save_selection(sel, workspace)
    return ds


def test_images_flow_through_review_and_export(cifar, workspace):
    at = open_page("1_Data.py")
    no_errors(at)
    assert {m.label: m.value for m in at.metric}["Training"] == f"{len(cifar.train)}"
    at = open_page("5_Review.py")
    no_errors(at)
    rows = [int(b.key.split("-")[1]) for b in at.button if b.key and b.key.startswith("relabel-")]
    assert len(rows) == min(12, round(0.1 * len(cifar.train)))  # the flagged 10%, at most one page of the grid
    at.button(key=f"relabel-{rows[0]}").click().run()
    no_errors(at)
    log = DecisionLog(workspace / "decisions.sqlite").current(decision_scope(cifar))
    assert log[rows[0]].action == "relabel" and log[rows[0]].new_label != int(cifar.train.y[rows[0]])
    at = open_page("6_Export.py")
    no_errors(at)
    assert any("worse_label" in c.value for c in at.caption)  # the label file keeps the key it came from
    next(b for b in at.button if b.label == "Build the image zip").click().run()
    no_errors(at)
    next(b for b in at.button if b.label == "Write the export files").click().run()
    folder = next((workspace / "exports").iterdir())
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["cifar10n-corrections.csv", "cifar10n-corrections.parquet", "manifest.json",
                            "cifar10n-corrections-imagefolder.zip", "cifar10n-corrections-labels.npz"])


def test_review_names_samples_by_their_original_index_as_the_exports_do(cifar, workspace):
    """CIFAR training rows are not the original indices (validation is carved out): Review shows the original index,
    with the row second, and the corrections export names the same sample by the same number."""
    from influence_core.export import corrections_table

    at = open_page("5_Review.py")
    no_errors(at)
    rows = [int(b.key.split("-")[1]) for b in at.button if b.key and b.key.startswith("relabel-")]
    moved = [r for r in rows if int(cifar.source_index[r]) != r]
    assert moved, "expected at least one flagged sample whose original index differs from its row"
    row = moved[0]
    original = int(cifar.source_index[row])
    assert any(f"**{original} (row {row})**" in m.value for m in at.markdown)
    at.button(key=f"keep-{row}").click().run()
    table = corrections_table(cifar, DecisionLog(workspace / "decisions.sqlite").current(decision_scope(cifar)), {})
    assert original in table["index"].tolist()
