"""Export page: needs decisions first; shows the corrections table and writes the files (the corrections table, the
cleaned data set for tables, the manifest) to the project's exports folder."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .conftest import no_errors, open_page, project_of


def _written(root: Path, name: str) -> Path:
    """The folder the page wrote its export files into (found by one of its files)."""
    found = sorted(root.rglob(name))
    assert len(found) == 1, found
    return found[0].parent


def test_without_decisions_links_to_review(scored):
    at = open_page("6_Export.py")
    assert not at.exception
    assert any("No decisions yet" in i.value for i in at.info)


def test_table_and_files(scored):
    proj = project_of(scored)
    ds = proj.dataset()
    proj.record([3], "relabel", 1 - int(ds.train.y[3]))
    proj.record([5, 7], "remove")
    at = open_page("6_Export.py")
    no_errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Remove"] == "2" and metrics["Relabel"] == "1" and metrics["Training samples after"] == "248 / 250"
    table = at.dataframe[0].value
    assert table["row"].tolist() == [3, 5, 7] and table["action"].tolist() == ["relabel", "remove", "remove"]
    assert any("248 kept training rows" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Write the export files").click().run()
    folder = _written(scored, "moons-corrections.csv")
    written = pd.read_csv(folder / "moons-corrections.csv")
    assert written["final_label"].tolist() == [1 - int(ds.train.y[3]), -1, -1]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["counts"] == {"keep": 0, "remove": 2, "relabel": 1}
    # The cleaned data set: the kept training rows with the relabel applied, CSV and Parquet alike.
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "moons-cleaned.csv", "moons-cleaned.parquet",
                                                        "moons-corrections.csv", "moons-corrections.parquet"]
    written = pd.read_csv(folder / "moons-cleaned.csv")
    pd.testing.assert_frame_equal(written, pd.read_parquet(folder / "moons-cleaned.parquet"), check_dtype=False)
    # By default the validation and test rows follow, marked in a split column (loading it back keeps them).
    assert written.columns.tolist() == ["original_index", "x1", "x2", "label", "split"]
    assert written["split"].value_counts().to_dict() == {"train": 248, "val": len(ds.val), "test": len(ds.test)}
    for part in ("val", "test"):
        rows = written[written["split"] == part]
        assert np.allclose(rows[["x1", "x2"]].to_numpy(), getattr(ds, part).x.numpy())
    cleaned = written[written["split"] == "train"].drop(columns=["split", "original_index"])
    kept = [r for r in range(len(ds.train)) if r not in (5, 7)]
    assert cleaned.columns.tolist() == ["x1", "x2", "label"] and len(cleaned) == len(kept) == 248
    assert np.allclose(cleaned[["x1", "x2"]].to_numpy(), ds.train.x[kept].numpy())
    labels = [ds.classes[int(ds.train.y[r])] for r in kept]
    labels[3] = ds.classes[1 - int(ds.train.y[3])]
    assert cleaned["label"].tolist() == labels


def test_cleaned_data_set_of_an_uploaded_csv(workspace):
    """An uploaded CSV's cleaned data set holds the file's rows as written, the decisions applied."""
    frame = pd.DataFrame({"name": [f"r{i:02d}" for i in range(40)], "size": np.arange(40) * 1.5,
                          "kind": ["=a", "b"] * 20, "label": ["no", "yes"] * 20})
    proj = project_of(workspace)
    ds = proj.upload_dataset(frame.to_csv(index=False).encode(), "pets.csv", seed=0)
    proj.train("logreg", {"epochs": 5, "seed": 0})
    proj.record([0, 1], "remove")
    at = open_page("6_Export.py")
    at.checkbox(key="export-with-splits").uncheck().run()  # the training rows alone
    no_errors(at)
    assert any(f"{len(ds.train) - 2} kept training rows" in c.value and "'label'" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Write the export files").click().run()
    cleaned = pd.read_csv(_written(workspace, "pets-cleaned.csv") / "pets-cleaned.csv")
    expected = frame.iloc[ds.source_index.numpy()[2:]].reset_index(drop=True)
    expected.insert(0, "original_index", ds.source_index.numpy()[2:])
    expected["kind"] = expected["kind"].map(lambda v: "'" + v if v.startswith("=") else v)  # formula neutralised
    pd.testing.assert_frame_equal(cleaned, expected)


def test_decisions_per_reviewer_and_their_agreement(scored):
    """ann and ben both decide rows 0-4 (ann: keep keep remove remove keep; ben: keep remove remove remove keep):
    observed agreement 4/5; ann keeps 3, removes 2, ben keeps 2, removes 3, so chance agreement (3·2 + 2·3)/25 =
    12/25 and κ = (0.8 - 0.48) / (1 - 0.48) = 0.615…; ben also removes row 9, which ann did not decide."""
    proj = project_of(scored)
    for user, keep, remove in (("ann", [0, 1, 4], [2, 3]), ("ben", [0, 4], [1, 2, 3, 9])):
        proj.record(keep, "keep", user=user)
        proj.record(remove, "remove", user=user)
    at = open_page("6_Export.py")
    no_errors(at)
    table = at.dataframe[0].value
    assert table.to_dict("records") == [{"reviewer": "ann", "keep": 3, "remove": 2, "relabel": 0, "total": 5},
                                        {"reviewer": "ben", "keep": 2, "remove": 4, "relabel": 0, "total": 6}]
    assert any("ann and ben both decided 5 samples: they agree on 80%, Cohen's κ = 0.62" in c.value for c in at.caption)
    assert proj.manifest()["decided_by"] == {"ann": {"keep": 3, "remove": 2, "relabel": 0},
                                             "ben": {"keep": 2, "remove": 4, "relabel": 0}}


def test_cleaned_data_set_of_a_text_upload_keeps_its_text(workspace):
    """Issue 18: a text upload's cleaned data set holds the file's own text and columns, the decisions applied."""
    from influence_core.data.text import generated_text_frame

    frame = generated_text_frame(60, num_classes=2, seed=0).assign(stars=np.arange(60) % 5)
    proj = project_of(workspace)
    ds = proj.upload_dataset(frame.to_csv(index=False).encode(), "reviews.csv", seed=0)
    proj.train("text-linear", {"seed": 0})
    proj.record([0], "remove")
    at = open_page("6_Export.py")
    at.checkbox(key="export-with-splits").uncheck().run()
    no_errors(at)
    next(b for b in at.button if b.label == "Write the export files").click().run()
    cleaned = pd.read_csv(_written(workspace, "reviews-cleaned.csv") / "reviews-cleaned.csv")
    src = ds.source_index.numpy()[1:]
    assert cleaned["original_index"].tolist() == src.tolist()
    assert cleaned["text"].tolist() == frame["text"][src].tolist() and cleaned["stars"].tolist() == frame["stars"][src].tolist()


def test_offers_the_labelling_tool_formats_and_builds_one(scored):
    """Issue 20 §7: a table project is offered Label Studio and Hugging Face (FiftyOne holds images); the built zip is
    the facade's export of the chosen rows."""
    import io
    import zipfile

    proj = project_of(scored)
    proj.record([5], "remove")
    at = open_page("6_Export.py")
    no_errors(at)
    picker = at.selectbox(key="export-tool-format")
    assert picker.options == ["Label Studio tasks", "Hugging Face datasets folder"]
    picker.set_value("label_studio")
    at.radio(key="export-tool-rows").set_value(True)
    at.run()
    assert not [b for b in at.get("download_button") if "Label Studio" in str(b.proto.label)]  # not built yet
    at.button(key="export-tool-build").click().run()
    no_errors(at)
    (button,) = [b for b in at.get("download_button") if "Label Studio" in str(b.proto.label)]
    names = zipfile.ZipFile(io.BytesIO(at.session_state["export-tool"][1])).namelist()
    assert sorted(names) == ["moons-label_studio/label_config.xml", "moons-label_studio/manifest.json",
                             "moons-label_studio/tasks.json"]
    tasks = json.loads(zipfile.ZipFile(io.BytesIO(at.session_state["export-tool"][1])).read("moons-label_studio/tasks.json"))
    assert len(tasks) == 250 + len(proj.dataset().val) + len(proj.dataset().test)  # all rows, the removed one tagged
    assert tasks[5]["data"]["review"] == "removed"
