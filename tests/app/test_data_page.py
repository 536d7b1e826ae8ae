"""Data page: opens on moons with a preview; switching data sets is saved; a bad upload is refused with a reason."""

from influence_core.data import PATH_LOADERS
from influence_core.session import load_selection
import pytest

from .conftest import no_errors, open_page


def test_opens_on_moons_with_summary(workspace):
    at = open_page()
    no_errors(at)
    assert at.title[0].value == "Data"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Training"] == "250" and metrics["Known noise rate"] == "8.0%"  # 20 of 250 flipped
    assert at.dataframe[0].value.shape[0] == 200  # table preview


def test_switching_to_blobs_is_saved_and_clears_the_model(scored):
    at = open_page("1_Data.py")
    at.selectbox[0].set_value("blobs").run()
    next(b for b in at.button if b.label == "Use this data set").click().run()
    no_errors(at)
    sel = load_selection(scored)
    assert sel.dataset == "blobs" and sel.arch is None and sel.runs == []
    assert {m.label: m.value for m in at.metric}["Training"] == "150"


@pytest.mark.skipif(".csv" not in PATH_LOADERS, reason="no CSV loader in this build")
def test_bad_csv_upload_is_refused(workspace):
    at = open_page("1_Data.py")
    at.selectbox[0].set_value("Upload a file…").run()
    at.file_uploader[0].upload("broken.csv", b"a,b\n1\n", "text/csv").run()
    assert not at.exception
    assert any("cannot be used" in e.value for e in at.error)
    assert load_selection(workspace).dataset == "moons"


@pytest.mark.skipif(".csv" not in PATH_LOADERS, reason="no CSV loader in this build")
def test_good_csv_upload_becomes_the_data_set(workspace):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    rows = "\n".join(f"{a:.4f},{b:.4f},{'yes' if a + b > 0 else 'no'}" for a, b in x)
    at = open_page("1_Data.py")
    at.selectbox[0].set_value("Upload a file…").run()
    at.file_uploader[0].upload("points.csv", f"f1,f2,target\n{rows}\n".encode(), "text/csv").run()
    assert any("Read" in s.value for s in at.success), [e.value for e in at.error]
    next(b for b in at.button if b.label == "Use this upload").click().run()
    no_errors(at)
    sel = load_selection(workspace)
    assert sel.dataset.endswith("points.csv") and (workspace / "uploads" / "data").is_dir()
    assert any(h.value.startswith("points.csv") for h in at.subheader)


def test_a_saved_data_set_that_no_longer_loads_is_reported_not_raised(workspace):
    from influence_core.session import Selection, save_selection

    save_selection(Selection(dataset="/gone/points.csv", dataset_kwargs={}), workspace)
    at = open_page("1_Data.py")
    assert not at.exception
    assert any("no such file" in e.value for e in at.error)
    at.selectbox[0].set_value("moons").run()  # the chooser stays usable: back to a built-in set
    next(b for b in at.button if b.label == "Use this data set").click().run()
    assert load_selection(workspace).dataset == "moons"
    save_selection(Selection(dataset="/gone/points.csv", dataset_kwargs={}), workspace)
    at = open_page("3_Scores.py")
    assert not at.exception
    assert any("could not be loaded" in e.value for e in at.error) and any("Choose another" in i.value for i in at.info)
