"""Model: train an architecture on the chosen data (in the background, with a live curve, stoppable) or upload
trained weights; show validation and test accuracy."""

from __future__ import annotations

from dataclasses import fields

import streamlit as st

from influence_core.data.uploads import save_upload, stored_path, upload_name
from influence_core.errors import InfluenceError
from influence_core.figures import training_curve
from influence_core.jobs import forget_job, start_job
from influence_core.models.registry import MODELS
from influence_core.models.train import TrainConfig, memorisation_warning
from influence_core.session import get_workspace, load_selection, save_selection, workspace_root
from pages._common import guarded, job_panel, model_of, plain, require_dataset, save, selection


def _show_current(sel, ds) -> None:
    if not sel.has_model:
        st.info("No model yet. Train one below (the defaults take a few seconds on moons) or upload weights.")
        return
    fitted = model_of(sel, ds)
    source = "uploaded weights" if sel.weights else "trained here"
    st.subheader(f"Current model: {sel.arch} ({source})")
    st.caption(f"Model hash {sel.model_hash or fitted.fingerprint()} · data set {plain(ds.name)}")
    c = st.columns(3)
    c[0].metric("Validation accuracy", f"{fitted.metrics.get('val_accuracy', float('nan')):.1%}")
    c[1].metric("Test accuracy", f"{fitted.metrics.get('test_accuracy', float('nan')):.1%}")
    if "train_accuracy" in fitted.metrics:
        c[2].metric("Training accuracy", f"{fitted.metrics['train_accuracy']:.1%}")
    warning = memorisation_warning(fitted.metrics)
    if warning:
        st.warning(f"Memorisation: {warning} (the **Folds** setting on the Scores page).", icon=":material/warning:")
    run, best = fitted.metrics.get("epochs_run"), fitted.metrics.get("best_epoch")
    if run:
        if fitted.config.optimizer == "lbfgs":
            st.caption("L-BFGS trained to convergence (one full-batch run).")
        elif best and best < run:
            st.caption(f"Best epoch {best} of {run} run: early stopping on the validation loss restored epoch {best}'s "
                       "weights.")
        elif not fitted.config.patience:
            st.caption(f"{run} epochs run (early stopping off).")
        else:
            st.caption(f"Best epoch {best or run} of {run} run.")
    if len(fitted.history) > 1:
        st.plotly_chart(training_curve(fitted.history), width="stretch")
    elif fitted.history:  # one fit (L-BFGS): a single point is no curve, so say its numbers
        h = fitted.history[0]
        acc = h.get("val_accuracy")
        st.caption(f"Fitted in one pass (no training curve): training loss {h['loss']:.4g}"
                   + (f", validation accuracy {acc:.1%}." if acc is not None else "."))


def _train_form(sel, ds, job_key: str) -> None:
    archs = [n for n, spec in sorted(MODELS.items()) if ds.kind in spec.input_kinds]
    if not archs:
        st.warning(f"No architecture takes {ds.kind} data.")
        return
    default_arch = sel.arch if sel.arch in archs else ("mlp" if "mlp" in archs else archs[0])
    arch = st.selectbox("Architecture", archs, index=archs.index(default_arch),
                        format_func=lambda n: f"{n} — {MODELS[n].description}")
    base = TrainConfig().resolved(arch)
    previous = sel.train if sel.arch == arch and sel.train else {}
    lbfgs = base.optimizer == "lbfgs"

    def start(name: str, default):
        return previous.get(name) if previous.get(name) is not None else default

    c = st.columns(4)
    epochs = c[0].number_input("Epochs", 1, 10_000, int(start("epochs", base.epochs)), disabled=lbfgs,
                               help="L-BFGS (logistic regression) runs to convergence instead" if lbfgs else
                               f"at most; {arch}'s default: {base.epochs}")
    lr = c[1].number_input("Learning rate", 1e-6, 10.0, float(start("lr", base.lr)), format="%g", disabled=lbfgs,
                           help=None if lbfgs else f"{arch}'s default: {base.lr:g}")
    l2 = c[2].number_input("Weight decay (L2)", 0.0, 10.0, float(start("l2", base.l2)), format="%g",
                           help=f"½·λ·‖θ‖² added to the training objective (the influence methods use it too); "
                                f"{arch}'s default: {base.l2:g}")
    every = c[3].number_input("Checkpoint every k epochs", 0, 1000, int(start("checkpoint_every", 0)),
                              help="0 = none; TracIn-style methods need checkpoints")
    c = st.columns(4)
    patience = c[0].number_input(
        "Early stopping patience", 0, 10_000, int(start("patience", base.patience)), disabled=lbfgs,
        help="Stop after this many epochs without a lower validation loss and keep the best epoch's weights; "
             f"0 = off. {arch}'s default: {base.patience} (a network trained to convergence on noisy labels memorises "
             "them, and the scores of memorised samples fade)")
    config = {"epochs": int(epochs), "lr": float(lr), "l2": float(l2), "seed": 0, "checkpoint_every": int(every),
              "patience": int(patience)}
    if ds.kind == "image":
        config["augment"] = bool(c[1].checkbox(
            "Augment images", value=bool(start("augment", base.augment)), disabled=lbfgs,
            help="Random 32×32 crop of the 4-pixel-padded image and a horizontal flip, per batch; "
                 f"{arch}'s default: {'on' if base.augment else 'off'}"))
    if st.button("Train", type="primary", icon=":material/play_arrow:"):
        _start_training(sel, ds, arch, config, job_key)
        st.rerun()


def _start_training(sel, ds, arch: str, config: dict, job_key: str) -> None:
    root, dataset_key = workspace_root(), sel.dataset_key
    known = {f.name for f in fields(TrainConfig)}
    train_config = TrainConfig(**{k: v for k, v in config.items() if k in known})

    def run(handle):
        def progress(rec: dict) -> None:
            handle.report(rec["fraction"], f"epoch {rec['epoch']} · loss {rec['loss']:.4f} · validation accuracy "
                                           f"{rec['val_accuracy']:.1%}", record=rec)

        fitted = get_workspace(root).get_or_train(ds, arch, train_config, progress=progress, should_stop=handle.should_stop)
        if handle.should_stop():
            return {"cancelled": True, "epochs": len(fitted.history)}
        current = load_selection(root)
        if current.dataset_key == dataset_key:  # the user may have switched data sets meanwhile
            current.clear_model()
            current.arch, current.train, current.model_hash = arch, config, fitted.fingerprint()
            save_selection(current, root)
        return {"cancelled": False, "val_accuracy": fitted.metrics.get("val_accuracy")}

    start_job(job_key, f"Training {arch}", run)


def _upload_form(sel, ds) -> None:
    archs = [n for n, spec in sorted(MODELS.items()) if ds.kind in spec.input_kinds]
    default = sel.arch if sel.arch in archs else ("mlp" if "mlp" in archs else archs[0])
    arch = st.selectbox("Architecture of the weights", archs, index=archs.index(default), key="upload-arch",
                        help="ignored for .pt2 programs, which carry their own architecture")
    file = st.file_uploader("Weights: a state_dict (.safetensors, .pt) or a torch.export program (.pt2)",
                            type=["safetensors", "pt", "pth", "pt2"])
    if file is None:
        return
    try:
        from influence_core.models import loading
    except ImportError:
        st.error("This installation cannot read weight files (influence_core.models.loading is missing).")
        return
    data = file.getvalue()
    if sel.weights == str(stored_path(data, file.name, "weights", workspace_root())) and sel.arch == arch:
        st.caption(f"{plain(upload_name(file.name))} is the current model.")
        return
    try:  # checked (no pickled code, no code in .pt2 archives), loaded from a staging copy, stored only when it fits
        path, fitted = save_upload(data, file.name, "weights", workspace_root(), load=lambda p: loading.load_fitted(str(p), arch, ds))
    except InfluenceError as err:
        st.error(f"These weights cannot be used: {plain(err)}")
        return
    sel.clear_model()
    sel.arch, sel.weights, sel.model_hash = arch, str(path), fitted.fingerprint()
    save(sel)
    st.rerun()


def page() -> None:
    st.title("Model")
    sel = selection()
    ds = require_dataset(sel)
    st.caption(f"Data set: {plain(ds.name)} · {len(ds.train):,} training samples")
    job_key = f"train:{ds.fingerprint()}"
    finished = job_panel(job_key, lambda snap: snap["log"] and st.plotly_chart(training_curve(snap["log"]), width="stretch"))
    if finished is not None:
        if finished.state == "failed":
            st.error(f"Training failed: {plain(finished.error)}")
        elif finished.state == "cancelled" or (finished.result or {}).get("cancelled"):
            st.warning("Training was stopped; the previous model (if any) is still the current one.")
        else:
            st.success("Training finished.")
        forget_job(job_key)
    _show_current(sel, ds)
    st.divider()
    train_tab, upload_tab = st.tabs(["Train a model", "Upload weights"])
    with train_tab:
        _train_form(sel, ds, job_key)
    with upload_tab:
        _upload_form(sel, ds)


guarded(page)
