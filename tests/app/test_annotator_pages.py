"""Several annotators in the app (issue 20 §4): each Review card says what each annotator said, Scores shows each
annotator's quality, and the Data page reads an upload's annotator columns from the file's own columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from influence_core.project import Project, ScoreRun

from .conftest import no_errors, open_page, project_of
from .test_review_page import _grid


def _crowd_csv(folder, n: int = 120) -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    y = np.where(x[:, 0] + x[:, 1] > 0, "cat", "dog")
    coin = np.where(rng.random(n) < 0.5, "cat", "dog").astype(object)  # an annotator who guesses
    coin[:3] = None
    frame = pd.DataFrame({"f1": x[:, 0], "f2": x[:, 1], "careful": y, "coin": coin, "label": y})
    path = folder / "crowd.csv"
    frame.to_csv(path, index=False)
    return str(path)


def _scored_crowd(workspace) -> Project:
    proj = Project.open("default", workspace)
    proj.use_dataset(_crowd_csv(workspace.parent), annotator_columns=["careful", "coin"])
    proj.train("logreg", {"epochs": 20})
    proj.score(ScoreRun("loss"))
    return proj


def test_review_cards_say_what_each_annotator_said(workspace):
    proj = _scored_crowd(workspace)
    at = open_page("5_Review.py")
    no_errors(at)
    cards = _grid(at)["cards"]
    assert cards
    ds = proj.dataset()
    for card in cards:
        said = ds.annotators[card["row"]]
        parts = [f"{name}: {ds.classes[int(v)]}" for name, v in zip(["careful", "coin"], said) if not np.isnan(v)]
        assert card["annotators"] == " · ".join(parts)


def test_scores_page_lists_each_annotators_quality_lowest_first(workspace):
    proj = _scored_crowd(workspace)
    at = open_page("3_Scores.py")
    no_errors(at)
    table = next(df.value for df in at.dataframe if "annotator" in df.value.columns)
    assert table["annotator"].tolist() == ["coin", "careful"]  # the guesser has the lower quality
    np.testing.assert_allclose(table["quality"], proj.annotator_table()["quality"])


def test_review_cards_of_data_without_annotators_have_none(scored):
    at = open_page("5_Review.py")
    assert all(card["annotators"] is None for card in _grid(at)["cards"])
    assert project_of(scored).annotator_names() == []


def test_data_page_reads_an_uploads_annotator_columns(workspace):
    data = open(_crowd_csv(workspace.parent), "rb").read()
    at = open_page("1_Data.py")
    at.selectbox[0].set_value("Upload a file…").run()
    at.file_uploader[0].upload("crowd.csv", data, "text/csv").run()
    pick = next(m for m in at.multiselect if m.label.startswith("Annotator columns"))
    assert pick.options == ["f1", "f2", "careful", "coin"]  # the file's own columns, the label left out
    pick.set_value(["careful", "coin"]).run()
    no_errors(at)
    next(b for b in at.button if b.label == "Use this upload").click().run()
    no_errors(at)
    proj = project_of(workspace)
    assert proj.state().dataset_kwargs["annotator_columns"] == ["careful", "coin"]
    assert proj.annotator_names() == ["careful", "coin"] and proj.dataset().input_shape == (2,)
    assert any("Annotators: careful, coin" in c.value for c in at.caption)


def test_scores_page_says_how_the_consensus_compares_with_the_known_truth(workspace, tmp_path):
    """CIFAR-10N (a hand-made label file and 60 tiny images): the known true labels are compared with the consensus."""
    from tests.data.test_annotator_labels import _images, _label_file

    labels_path, arrays = _label_file(tmp_path)
    images = _images(tmp_path, arrays["clean_label"], np.arange(60))
    proj = Project.open("default", workspace)
    ds = proj.use_dataset("cifar10n", images=str(images), labels_path=str(labels_path), label_set="worst")
    proj.train("cnn", {"epochs": 1, "augment": False})
    proj.score(ScoreRun("loss"))
    at = open_page("3_Scores.py")
    no_errors(at)
    report, y, clean = proj.annotator_report(), ds.train.y.numpy(), ds.clean_labels.numpy()
    differ = report["consensus_label"] != y
    caption = next(c.value for c in at.caption if c.value.startswith("The annotators' consensus label"))
    assert f"the consensus is right on {(report['consensus_label'] == clean).mean():.1%}" in caption
    assert (f"Of the {int(differ.sum()):,} training labels the consensus differs from, "
            f"{int((differ & (y != clean)).sum()):,} are known to be wrong.") in caption
