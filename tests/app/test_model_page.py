"""Model page: says a model is missing, trains one as the project's "train" job (shown after a refresh, reported
once), estimates the training time for the chosen data and model, uploads weights, and can be stopped."""

from influence_core.data import load_dataset
from influence_core.project import Selection

from .conftest import no_errors, open_page, project_of, settle, shown


def test_missing_model_is_said_plainly(workspace):
    at = open_page("2_Model.py")
    no_errors(at)
    assert any("No model yet" in i.value for i in at.info)


def test_train_saves_the_model_and_shows_accuracy(workspace):
    at = open_page("2_Model.py")
    at.number_input[0].set_value(30)  # epochs
    next(b for b in at.button if b.label == "Train").click().run()
    at = settle(at)
    no_errors(at)
    assert any("Training finished" in s.value for s in at.success)
    sel = project_of(workspace).state()
    assert sel.arch == "mlp" and sel.train["epochs"] == 30 and sel.model_hash
    metrics = {m.label: m.value for m in at.metric}
    assert any(sel.model_hash in c.value for c in at.caption)
    assert float(metrics["Validation accuracy"].rstrip("%")) > 70  # moons is easy
    # Reported once, then forgotten: the next run of the page says nothing about it.
    assert project_of(workspace).job("train") is None
    at.run()
    assert not at.success and any(sel.model_hash in c.value for c in at.caption)
    # A fresh session (restart) finds the same model.
    assert any(sel.model_hash in c.value for c in open_page("2_Model.py").caption)


def _running_view(at) -> None:
    """What the page shows while the project's training job runs: its progress, no 'No model yet', no Train."""
    no_errors(at)
    assert [p for p in at.get("progress") if "Training mlp" in p.proto.text]
    assert not [i for i in at.info if "No model yet" in i.value]
    assert not [b for b in at.button if b.label == "Train"]
    assert any("Training is running" in c.value for c in at.caption)
    assert not [w for w in at.number_input if w.label == "Epochs"]  # no form whose values differ from the run's
    assert [b for b in at.button if b.label == "Stop"]


def test_running_training_survives_a_refresh_and_stop_keeps_no_model(workspace):
    at = open_page("2_Model.py")
    at.number_input[0].set_value(5000)  # epochs
    _widget(at, "Early stopping patience").set_value(0)
    next(b for b in at.button if b.label == "Train").click().run()
    job = project_of(workspace).job("train")
    assert job is not None and job.running
    _running_view(at)
    _running_view(open_page("2_Model.py"))  # a refresh (a new session) shows the same job
    job.cancel()
    at = settle(at)
    assert not at.exception
    assert [w.value for w in at.warning] == ["Training was stopped; the previous model (if any) is still the current one."]
    assert project_of(workspace).state().arch is None and project_of(workspace).job("train") is None
    assert len(job.log) < 5000
    at.run()  # said once: gone on the next run, and the form is back
    assert not at.warning and [b for b in at.button if b.label == "Train"]
    assert any("No model yet" in i.value for i in at.info)


def _estimate(at) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Estimated training time"))


def test_training_time_is_estimated_for_the_chosen_data_and_model(workspace):
    at = open_page("2_Model.py")
    no_errors(at)
    assert not [i for i in at.info if "few seconds on moons" in i.value]  # issue 12: no hint fixed to moons
    text = _estimate(at)  # moons: 250 rows in batches of 64, the MLP's 300 epochs with early stopping
    assert text.startswith("Estimated training time: at most about ") and "early stopping usually ends sooner" in text
    assert "300 epochs × 4 batches of 64" in text
    at.number_input[0].set_value(20).run()  # epochs
    assert "20 epochs × 4 batches of 64" in _estimate(at)
    at.selectbox[0].set_value("logreg").run()
    assert "L-BFGS" in _estimate(at) and "at most" not in _estimate(at)
    project_of(workspace).use_dataset("blobs", seed=0)  # 150 rows: 3 batches
    at = open_page("2_Model.py")
    assert "300 epochs × 3 batches of 64" in _estimate(at)


def test_uploaded_weights_become_the_model_and_bad_ones_are_refused(workspace):
    from safetensors.torch import save as save_safetensors

    from influence_core.models import TrainConfig, train_model

    ds = load_dataset("moons", seed=0)
    trained = train_model(ds, "mlp", TrainConfig(epochs=20))
    at = open_page("2_Model.py")
    at.file_uploader[0].upload("junk.safetensors", b"not a weights file", "application/octet-stream").run()
    assert not at.exception
    assert any("cannot be used" in e.value for e in at.error)
    assert project_of(workspace).state().arch is None
    data = save_safetensors({k: v.contiguous() for k, v in trained.module.state_dict().items()})
    at.file_uploader[0].upload("mlp.safetensors", data, "application/octet-stream").run()
    at.run()
    no_errors(at)
    sel = project_of(workspace).state()
    assert sel.weights and sel.model_hash == trained.fingerprint()
    assert any("uploaded weights" in h.value for h in at.subheader)
    assert _stored(workspace) == ["mlp.safetensors"]  # the refused junk file left nothing behind


def _stored(workspace):
    folder = project_of(workspace).folder / "uploads"
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_crafted_pt2_upload_runs_nothing_and_stores_nothing(workspace, tmp_path, monkeypatch):
    from tests.models.pt2_exploits import MARKER, crafted_pt2

    monkeypatch.chdir(tmp_path)  # the payload would touch MARKER here
    at = open_page("2_Model.py")
    at.file_uploader[0].upload("evil.pt2", crafted_pt2("pickled_weight"), "application/octet-stream").run()
    assert not at.exception
    errors = [shown(e.value) for e in at.error]
    assert any(e.startswith("These weights cannot be used: refused to load 'evil.pt2': the entry '0.weight' in "
                            "'model_weights_config.json' is stored as a pickle") for e in errors), errors
    assert not (tmp_path / MARKER).exists()
    assert _stored(workspace) == [] and project_of(workspace).state().arch is None


def test_pickled_pt_upload_is_refused_and_not_stored(workspace, tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    at = open_page("2_Model.py")
    at.file_uploader[0].upload("evil.pt", pickle.dumps({"0.weight": Evil()}), "application/octet-stream").run()
    assert any("refused to load 'evil.pt'" in e.value for e in at.error)
    assert not (tmp_path / "pwned").exists() and _stored(workspace) == []


def _widget(at, label):
    return next(w for w in list(at.number_input) + list(at.checkbox) if w.label == label)


def test_default_training_stops_early_and_moons_shows_no_memorisation_warning(workspace):
    from influence_core.models.train import TrainConfig

    at = open_page("2_Model.py")
    # The form starts at the architecture's resolved defaults: early stopping on for the MLP, no augmentation (tabular).
    base = TrainConfig().resolved("mlp")
    assert _widget(at, "Early stopping patience").value == base.patience > 0
    assert _widget(at, "Weight decay (L2)").value == base.l2
    assert not [c for c in at.checkbox if c.label == "Augment images"]
    next(b for b in at.button if b.label == "Train").click().run()
    at = settle(at)
    no_errors(at)
    sel = project_of(workspace).state()
    assert sel.train["patience"] == base.patience and sel.train["l2"] == base.l2
    fitted = project_of(workspace).model()
    best, run = fitted.metrics["best_epoch"], fitted.metrics["epochs_run"]
    assert any(f"Best epoch {best} of {run} run" in c.value for c in at.caption)
    assert not [w for w in at.warning if "Memorisation" in w.value]


def test_patience_zero_turns_early_stopping_off(workspace):
    at = open_page("2_Model.py")
    at.number_input[0].set_value(12)  # epochs
    _widget(at, "Early stopping patience").set_value(0)
    _widget(at, "Weight decay (L2)").set_value(0.0)
    next(b for b in at.button if b.label == "Train").click().run()
    at = settle(at)
    no_errors(at)
    sel = project_of(workspace).state()
    assert sel.train["patience"] == 0 and sel.train["l2"] == 0.0
    assert sel.train_config().resolved("mlp").patience == 0
    assert any("12 epochs run (early stopping off)" in c.value for c in at.caption)


def test_memorisation_warning_shows_for_a_model_that_memorised(scored):
    import json

    from influence_core import project as project_module

    project_module.MEMORY.clear("models")  # loaded models are kept in memory per process: read the edited metrics
    meta_path = next((scored / "models").glob("*/meta.json"))
    meta = json.loads(meta_path.read_text())
    meta["metrics"].update(train_accuracy=0.99, val_accuracy=0.62)  # fits its labels, not new data
    meta_path.write_text(json.dumps(meta))
    at = open_page("2_Model.py")
    no_errors(at)
    warnings = [w.value for w in at.warning if "Memorisation" in w.value]
    assert len(warnings) == 1 and "use out-of-fold scoring" in warnings[0] and "99%" in warnings[0], warnings
    # 20 points or less: no warning
    meta["metrics"].update(train_accuracy=0.80, val_accuracy=0.62)
    meta_path.write_text(json.dumps(meta))
    project_module.MEMORY.clear("models")
    at = open_page("2_Model.py")
    assert not [w for w in at.warning if "Memorisation" in w.value]


def test_image_data_offers_augmentation_at_the_cnn_default(workspace):
    import pytest

    from influence_core.errors import InfluenceError
    from influence_core.models.train import TrainConfig
    kwargs = {"label_set": "worst", "max_train": 60, "max_test": 20, "seed": 0}
    try:
        load_dataset("cifar10n", **kwargs)
    except InfluenceError as err:
        pytest.skip(f"CIFAR-10N subset not available: {err}")
    project_of(workspace).save_state(Selection(dataset="cifar10n", dataset_kwargs=kwargs))
    at = open_page("2_Model.py")
    no_errors(at)
    at.selectbox[0].set_value("cnn").run()
    base = TrainConfig().resolved("cnn")
    assert _widget(at, "Augment images").value is True is base.augment
    assert _widget(at, "Early stopping patience").value == base.patience


def test_weights_gone_from_disk_are_reported_and_the_forms_stay(workspace):
    proj = project_of(workspace)
    state = proj.state()
    state.arch, state.weights, state.model_hash = "mlp", str(workspace / "gone.safetensors"), "0123abcd"
    proj.save_state(state)
    at = open_page("2_Model.py")
    assert not at.exception
    assert [shown(e.value) for e in at.error] == [
        f"The current model could not be loaded: no such weights file: {workspace / 'gone.safetensors'}. "
        "Train or upload another below."]
    assert [b for b in at.button if b.label == "Train"] and at.file_uploader


def test_image_data_preselects_the_cnn_with_its_augmentation_and_a_trained_model_links_to_scores(workspace,
                                                                                                 tiny_image_zip):
    from influence_core.models.train import TrainConfig

    proj = project_of(workspace)
    proj.use_dataset(tiny_image_zip, seed=0)
    at = open_page("2_Model.py")
    no_errors(at)
    assert at.selectbox[0].value == "cnn"
    assert _widget(at, "Augment images").value is True is TrainConfig().resolved("cnn").augment
    assert not _next_links(at)
    proj.train("cnn", {"epochs": 1, "patience": 0})
    assert _next_links(open_page("2_Model.py")) == ["Scores"]


def _next_links(at) -> list[str]:
    return [link.proto.page for link in at.get("page_link") if link.proto.label.startswith("Next:")]
