"""The image path on the real CIFAR-10N subset: image preview, review grid, ImageFolder zip and label-file export."""

from __future__ import annotations

import pytest

from influence_core.project import InfluenceError, ScoreRun

from .conftest import no_errors, open_page, project_of

KWARGS = {"label_set": "worst", "max_train": 120, "max_test": 50, "seed": 0}


@pytest.fixture
def cifar(workspace):
    proj = project_of(workspace)
    try:
        ds = proj.use_dataset("cifar10n", **KWARGS)
    except InfluenceError as err:
        pytest.skip(f"CIFAR-10N subset not available: {err}")
    proj.train("cnn", {"epochs": 1, "seed": 0})
    proj.score(ScoreRun("ip", params="head"))
    return ds


def _cards(at) -> list[dict]:
    """The Review grid's cards as the page sends them to the browser component."""
    import json

    grid = next(iter(at.get("bidi_component")))
    return json.loads(grid.proto.json)["cards"]


def _decide(at, event: dict) -> None:
    """A click on a card, as the grid component reports it: its event queue in the widget's state."""
    at.session_state["review-grid-default"] = {"queue": [{"project": "default", **event}]}  # events name their project
    at.run()
    no_errors(at)


def test_images_flow_through_review_and_export(cifar, workspace, monkeypatch):
    from app_pages import _review_grid

    encoded = []
    encode = _review_grid.thumbnail
    monkeypatch.setattr(_review_grid, "thumbnail", lambda px: encoded.append(1) or encode(px))
    proj = project_of(workspace)
    at = open_page("1_Data.py")
    no_errors(at)
    assert {m.label: m.value for m in at.metric}["Training"] == f"{len(cifar.train)}"
    shown = [img.caption for el in at.get("image") for img in el.proto.imgs]  # the preview: images, not a table
    assert len(shown) == 18 and set(shown) <= set(cifar.classes) | {f"{c} ⚠" for c in cifar.classes}
    storage = [e for e in at.expander if e.label == "Workspace storage"]  # the workspace's bytes: tables by design
    assert len(at.dataframe) == sum(len(e.dataframe) for e in storage)  # the preview itself holds none
    at = open_page("5_Review.py")
    no_errors(at)
    cards = _cards(at)
    flagged = {int(r) for r in proj.flagged()}
    assert cards and {c["row"] for c in cards} <= flagged  # the flagged 10%, most detrimental first
    assert all(c["image"].startswith("data:image/png;base64,") for c in cards)
    assert len(encoded) == len(cards)  # each card's image encoded once …
    row, given = cards[0]["row"], cards[0]["given"]
    _decide(at, {"id": "image-flow-1", "action": "relabel", "rows": [row], "label": (given + 1) % cifar.num_classes})
    assert len(encoded) == len(cards) and [c["image"] for c in _cards(at)] == [c["image"] for c in cards]  # … not again
    log = proj.current_decisions()
    assert log[row].action == "relabel" and log[row].new_label != int(cifar.train.y[row])
    at = open_page("6_Export.py")
    no_errors(at)
    assert any("worse_label" in c.value for c in at.caption)  # the label file keeps the key it came from
    next(b for b in at.button if b.label == "Build the image zip").click().run()
    no_errors(at)
    next(b for b in at.button if b.label == "Write the export files").click().run()
    no_errors(at)
    folder = next((proj.folder / "exports").iterdir())
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["cifar10n-corrections.csv", "cifar10n-corrections.parquet", "manifest.json",
                            "cifar10n-corrections-imagefolder.zip", "cifar10n-corrections-labels.npz"])


def test_review_names_samples_by_their_original_index_as_the_exports_do(cifar, workspace):
    """CIFAR training rows are not the original indices (validation is carved out): Review names a sample by its
    original index, and the corrections export names the same sample by the same number."""
    proj = project_of(workspace)
    at = open_page("5_Review.py")
    no_errors(at)
    cards = _cards(at)
    source = proj.source_index()
    assert all(c["id"] == int(source[c["row"]]) for c in cards)
    moved = [c for c in cards if c["id"] != c["row"]]
    assert moved, "expected at least one flagged sample whose original index differs from its row"
    _decide(at, {"id": "image-flow-2", "action": "keep", "rows": [moved[0]["row"]]})
    table = proj.corrections()
    assert table["index"].tolist() == [moved[0]["id"]]
