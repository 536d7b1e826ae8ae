"""Data page: opens on moons with a preview; switching data sets is saved; a bad upload is refused with a reason."""

import pytest

from influence_core.project import PATH_LOADERS, Selection

from .conftest import no_errors, open_page, project_of, shown


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
    sel = project_of(scored).state()
    assert sel.dataset == "blobs" and sel.arch is None and sel.runs == []
    assert {m.label: m.value for m in at.metric}["Training"] == "150"


def test_the_settings_are_a_form_and_sending_them_unchanged_keeps_the_model_and_scores(scored):
    at = open_page("1_Data.py")
    assert {n.form_id for n in at.number_input} == {"data-settings-moons"}  # typing does not rerun the app
    at.number_input(key="data-moons-n_train").set_value(200).run()  # not sent: no button pressed
    assert project_of(scored).state().dataset_kwargs == {"seed": 0}
    next(b for b in at.button if b.label == "Use this data set").click().run()
    no_errors(at)
    assert [i.value for i in at.info] == ["This is the current data set, with these settings."]
    state = project_of(scored).state()
    assert state.dataset_kwargs == {"seed": 0} and state.has_model and state.runs


def test_a_data_set_that_cannot_be_loaded_never_becomes_current(scored):
    at = open_page("1_Data.py")
    at.selectbox[0].set_value("cifar100n").run()  # no CIFAR-100 images offline
    next(b for b in at.button if b.label == "Use this data set").click().run()
    assert not at.exception
    assert [e.value for e in at.error if e.value.startswith("This data set cannot be used: ")]
    state = project_of(scored).state()
    assert state.dataset == "moons" and state.has_model and state.runs  # the model and scores are kept
    assert {m.label: m.value for m in at.metric}["Training"] == "250"  # the preview still shows moons


@pytest.mark.skipif(".csv" not in PATH_LOADERS, reason="no CSV loader in this build")
def test_bad_csv_upload_is_refused(workspace):
    at = open_page("1_Data.py")
    at.selectbox[0].set_value("Upload a file…").run()
    at.file_uploader[0].upload("broken.csv", b"a,b\n1\n", "text/csv").run()
    assert not at.exception
    assert any("cannot be used" in e.value for e in at.error)
    assert project_of(workspace).state().dataset == "moons"


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
    assert "This upload is the current data set." in [c.value for c in at.caption]
    assert not [b for b in at.button if b.label == "Use this upload"]
    sel = project_of(workspace).state()
    assert sel.dataset.endswith("points.csv") and (project_of(workspace).folder / "uploads" / "data").is_dir()
    assert any(h.value.startswith("points.csv") for h in at.subheader)


def test_a_saved_data_set_that_no_longer_loads_is_reported_not_raised(workspace):
    project_of(workspace).save_state(Selection(dataset="/gone/points.csv", dataset_kwargs={}))
    at = open_page("1_Data.py")
    assert not at.exception
    assert any("no such file" in e.value for e in at.error)
    at.selectbox[0].set_value("moons").run()  # the chooser stays usable: back to a built-in set
    next(b for b in at.button if b.label == "Use this data set").click().run()
    no_errors(at)
    assert project_of(workspace).state().dataset == "moons"
    assert {m.label: m.value for m in at.metric}["Training"] == "250"


def test_a_later_page_says_the_saved_data_set_no_longer_loads(workspace):
    project_of(workspace).save_state(Selection(dataset="/gone/points.csv", dataset_kwargs={}))
    at = open_page("3_Scores.py")
    assert not at.exception
    assert any("could not be loaded" in e.value for e in at.error) and any("Choose another" in i.value for i in at.info)


def _stored(workspace):
    folder = project_of(workspace).folder / "uploads"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _zip(entries: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, blob in entries.items():
            z.writestr(name, blob)
    return buf.getvalue()


def _png(color) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (12, 10), color).save(buf, format="PNG")
    return buf.getvalue()


def _upload(name: str, data: bytes, label_column: str = ""):
    at = open_page("1_Data.py")
    at.selectbox[0].set_value("Upload a file…").run()
    if label_column:
        at.text_input[0].set_value(label_column).run()
    at.file_uploader[0].upload(name, data, "application/octet-stream").run()
    assert not at.exception
    return at


def test_refused_uploads_leave_nothing_in_the_workspace(workspace, monkeypatch):
    from influence_core.data import uploads

    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1000)
    big = b"a,label\n" + b"1,0\n" * 300
    at = _upload("big.csv", big)
    assert [shown(e.value) for e in at.error] == ["This file cannot be used: 'big.csv' is 0.0 MB; uploads are limited to 0 MB"]
    monkeypatch.undo()
    slip = _zip({"cat/1.png": _png("red"), "../../evil/1.png": _png("blue")})
    at = _upload("slip.zip", slip)
    assert any("unsafe path '../../evil/1.png' in 'slip.zip'" in shown(e.value) for e in at.error)
    at = _upload("nolabel.csv", b"a,b\n1,x\n2,y\n", label_column="label")
    assert [shown(e.value) for e in at.error] == ["This file cannot be used: no label column 'label' in 'nolabel.csv'; the columns are: a, b"]
    assert _stored(workspace) == [] and project_of(workspace).state().dataset == "moons"


def test_blank_label_column_uses_the_last_column_as_the_hint_says(workspace):
    import numpy as np

    rng = np.random.default_rng(0)
    rows = "\n".join(f"{a:.3f},{b:.3f},{'up' if a > 0 else 'down'}" for a, b in rng.normal(size=(60, 2)))
    at = _upload("points.csv", f"f1,f2,direction\n{rows}\n".encode())
    assert any("blank: the column named label, y, target or class, else the last column" in t.label for t in at.text_input)
    assert [shown(s.value) for s in at.success] == [
        "Read 38 training samples in 2 classes from points.csv (label column: direction)."]
    assert not at.error and _stored(workspace)[0].endswith("/points.csv")


def test_split_folder_zip_and_names_shown_as_text(workspace):
    evil = "![t](http:__host_p.png) :red[x]"
    entries = {f"train/{c}/{i}.png": _png(col) for c, col in ((evil, "red"), ("dog", "blue")) for i in range(8)}
    entries.update({f"val/{c}/{i}.png": _png(col) for c, col in ((evil, "red"), ("dog", "blue")) for i in range(2)})
    at = _upload("**pets** <b>.zip", _zip(entries))
    assert [s.value for s in at.success] == [r"Read 13 training samples in 2 classes from \*\*pets\*\* \<b\>.zip."]
    next(b for b in at.button if b.label == "Use this upload").click().run()
    no_errors(at)
    sel = project_of(workspace).state()
    assert sel.dataset.endswith("/__pets__ _b_.zip")  # stored under a name safe on any file system
    assert [shown(t) for t in at.subheader.values] == ["__pets__ _b_.zip · image"]
    captions = [img.caption for el in at.get("image") for img in el.proto.imgs]
    assert captions and {shown(c) for c in captions} <= {evil, "dog"} and evil in {shown(c) for c in captions}
    texts = captions + [e.value for kind in ("markdown", "success", "caption", "subheader", "error", "info") for e in getattr(at, kind)]
    for raw in ("![t](", ":red[x]", "**pets**", "<b>"):
        assert not any(raw in t for t in texts), raw  # every one of them escaped
    from influence_core.data import load_dataset

    ds = load_dataset(sel.dataset)
    assert ds.classes == [evil, "dog"] or ds.classes == sorted([evil, "dog"])
    assert ds.meta["splits"] == "folders" and len(ds.val) == 4


def test_a_csv_with_a_split_column_says_it_keeps_its_splits(workspace):
    """A cleaned export loaded back: the page says validation and test come from the file's split column."""
    import numpy as np

    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 2))
    split = ["train"] * 40 + ["val"] * 8 + ["test"] * 12
    rows = "\n".join(f"{a:.4f},{b:.4f},{'yes' if a + b > 0 else 'no'},{s}" for (a, b), s in zip(x, split))
    at = open_page("1_Data.py")
    at.selectbox[0].set_value("Upload a file…").run()
    at.file_uploader[0].upload("cleaned.csv", f"f1,f2,target,split\n{rows}\n".encode(), "text/csv").run()
    assert any("Read 40 training samples" in s.value and "validation (8) and test (12) as its split column says"
               in s.value for s in at.success), [s.value for s in at.success] + [e.value for e in at.error]


# ---------------------------------------------------------------- server-side settings, caps, workspace storage
def _labels(at) -> set[str]:
    return {w.label for kind in ("text_input", "number_input", "checkbox", "selectbox") for w in getattr(at, kind)}


@pytest.mark.parametrize("name", ["adult", "bank", "cifar10n", "cifar100n"])
def test_the_page_never_offers_server_paths_or_downloads(workspace, name):
    at = open_page("1_Data.py")
    at.selectbox[0].set_value(name).run()
    assert not at.exception
    labels = _labels(at)
    assert "seed" in labels  # the form is there
    for hidden in ("data path", "test path", "images", "labels path", "download", "on disk"):
        assert hidden not in labels, (name, hidden)


def test_size_inputs_carry_the_server_cap_and_the_page_checks_what_it_sends(workspace):
    """Attacker: moons with 10⁷ training samples from the Data page; the cap comes from the server's config."""
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "server.toml").write_text("[server]\nmax_generated_samples = 1000\n")
    at = open_page("1_Data.py")
    at.selectbox[0].set_value("moons").run()
    sizes = {n.label: n for n in at.number_input if n.label in ("n train", "n val", "n test")}
    assert {n.max for n in sizes.values()} == {1000}
    sizes["n train"].set_value(600)  # a form: the values go to the server together, with the button
    at.number_input(key="data-moons-n_val").set_value(300)
    at.number_input(key="data-moons-n_test").set_value(200)
    next(b for b in at.button if b.label == "Use this data set").click().run()
    assert [shown(e.value) for e in at.error] == [
        "This data set cannot be used: moons: 1,100 samples in all is over this server's cap of 1,000"]
    assert project_of(workspace).state().dataset_kwargs == {"seed": 0}  # nothing changed


def test_workspace_storage_shows_bytes_and_frees_what_no_project_uses(workspace):
    import numpy as np

    from influence_core.data.storage import save_array

    from influence_core.project import format_bytes

    stale = save_array(workspace / "arrays" / "stale.npy", np.zeros((64, 64), np.uint8)).path
    size = stale.stat().st_size + stale.with_suffix(".json").stat().st_size  # the array and its digest sidecar
    at = open_page("1_Data.py")
    frames = [d.value for d in at.dataframe if "project" in d.value.columns or "cache" in d.value.columns]
    assert frames[0]["project"].tolist() == ["default"]
    assert frames[1].set_index("cache")["size"]["arrays"].endswith("KiB")
    next(b for b in at.button if b.label == "Delete unused cache entries").click().run()
    no_errors(at)
    assert [s.value for s in at.success] == [f"Freed {format_bytes(size)} in 2 entries."]
    assert not stale.exists()


def test_the_upload_summary_states_what_was_read_differently(workspace):
    """Thousands separators read as numbers and a free-text column read as text: each said on the page (issues 21
    §1, 18)."""
    rows = "\n".join(f'"{937 + 37 * i:,}",the film number {i} was rather good,{i % 2}' for i in range(60))
    at = _upload("reviews.csv", f"amount,review,label\n{rows}\n".encode())
    no_errors(at)
    assert [shown(i.value) for i in at.info] == [
        "column 'amount': thousands separators read as numbers",
        "text column 'review': TF-IDF features, with 1 other column(s)"]


def test_signed_in_users_see_only_their_own_storage_and_only_admins_free_space(workspace):
    """Other users' project names stay private and the gc button is the administrators' (it deletes shared cache)."""
    from tests.app.test_navigation import ALICE, MALLORY, _as

    from influence_core.project import Access, Project

    for user, name in ((ALICE, "alices"), (MALLORY, "mallorys")):
        Project.create(name, Access(user, signed_in=True), workspace).use_dataset("moons", seed=0)
    at = _as(ALICE, "alices")
    no_errors(at)
    storage = next(e for e in at.expander if e.label == "Workspace storage")
    assert not storage.dataframe and not [b for b in storage.button if b.label == "Delete unused cache entries"]
    said = " ".join(c.value for c in storage.caption)
    assert "Your projects take" in said and "mallorys" not in said
    (workspace / "server.toml").write_text(f'[server]\nadmins = ["{ALICE}"]\n')  # now Alice administers the server
    at = _as(ALICE, "alices")
    storage = next(e for e in at.expander if e.label == "Workspace storage")
    assert "mallorys" in storage.dataframe[0].value["project"].tolist()
    assert [b for b in storage.button if b.label == "Delete unused cache entries"]


def test_a_text_csv_upload_chooses_its_text_and_other_columns(workspace):
    """Issue 18: the recognised text column is preselected; leaving another column out or reading the file as a
    table reloads the upload that way, and "Use this upload" keeps that choice."""
    import numpy as np

    from influence_core.data.text import generated_text_frame

    frame = generated_text_frame(100, num_classes=2, seed=0).assign(stars=np.arange(100) % 5, city=["a", "b"] * 50)
    at = _upload("reviews.csv", frame[["text", "stars", "city", "label"]].to_csv(index=False).encode())
    text, kept = (next(m for m in at.multiselect if m.label.startswith(p)) for p in ("Text columns", "Other columns"))
    assert text.value == ["text"] and kept.value == ["stars", "city"]
    kept.set_value(["city"]).run()
    no_errors(at)
    next(b for b in at.button if b.label == "Use this upload").click().run()
    no_errors(at)
    proj = project_of(workspace)
    assert proj.state().dataset_kwargs == {"text_columns": ["text"], "feature_columns": ["city"]}
    ds = proj.dataset()
    assert ds.kind == "text" and ds.meta["feature_columns"] == ["city"]
    assert not any(s.label.startswith("Image size") for s in at.selectbox)  # a table has no image size
    preview = next(d.value for d in at.dataframe if "text" in d.value.columns)  # as the file holds them, not TF-IDF
    assert list(preview.columns) == ["text", "stars", "city", "label"]
    assert preview["text"].tolist() == [frame["text"][i] for i in preview.index]
    next(m for m in at.multiselect if m.label.startswith("Text columns")).set_value([]).run()
    no_errors(at)
    assert any("left out (not named as a text column)" in shown(i.value) for i in at.info)


def test_a_text_upload_takes_capped_tfidf_settings_into_its_features(workspace):
    """Issue 18: n-grams, min_df and max_features are number inputs capped by the library's limits (a browser cannot
    ask for an unbounded vocabulary); a change reloads the upload with them and "Use this upload" keeps them."""
    import numpy as np

    from influence_core.data.text import MAX_NGRAM, MAX_TFIDF_FEATURES, generated_text_frame

    frame = generated_text_frame(100, num_classes=2, seed=0)
    at = _upload("docs.csv", frame.to_csv(index=False).encode())
    inputs = {n.label: n for n in at.number_input}
    ngrams, terms = inputs["Word n-grams up to"], inputs["Most frequent terms kept"]
    assert (ngrams.value, ngrams.max, terms.max) == (2, MAX_NGRAM, MAX_TFIDF_FEATURES)
    ngrams.set_value(1).run()
    at.number_input(key=terms.key).set_value(30).run()
    no_errors(at)
    next(b for b in at.button if b.label == "Use this upload").click().run()
    no_errors(at)
    proj = project_of(workspace)
    assert proj.state().dataset_kwargs == {"text_columns": ["text"], "feature_columns": [], "ngram_max": 1,
                                           "max_features": 30}
    ds = proj.dataset()
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 1), min_df=2, max_features=30, sublinear_tf=True).fit(ds.texts["train"])
    assert ds.input_shape == (30,)
    np.testing.assert_allclose(ds.train.x.numpy(), vec.transform(ds.texts["train"]).toarray(), rtol=1e-5, atol=1e-6)


def test_the_generated_text_set_takes_its_tfidf_settings_from_the_form(workspace):
    at = open_page("1_Data.py")
    at.selectbox[0].set_value("text-topics").run()
    assert not at.exception
    at.number_input(key="data-text-topics-max_features").set_value(25)
    at.number_input(key="data-text-topics-n_train").set_value(100)
    next(b for b in at.button if b.label == "Use this data set").click().run()
    no_errors(at)
    ds = project_of(workspace).dataset()
    assert ds.name == "text-topics" and ds.input_shape == (25,) and len(ds.train) == 100
