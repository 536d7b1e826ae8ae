"""Model: train an architecture on the chosen data (the project's "train" job: a live curve, stoppable, still shown
after a refresh) or upload trained weights; show validation and test accuracy."""

from __future__ import annotations

import streamlit as st

from influence_core.figures import training_curve
from influence_core.project import (MODELS, InfluenceError, Project, TrainConfig, default_architecture,
                                    memorisation_warning)
from app_pages._common import form_buttons, image_sizes, guarded, job_outcome, job_section, link, plain, start_page


def _show_current(proj: Project, ds, training: bool) -> None:
    state = proj.state()
    if not state.has_model:
        if not training:  # while training runs, its panel above says what is happening
            st.info("No model yet. Train one below or upload weights.")
        return
    try:
        with st.spinner("Loading the model…"):
            fitted = proj.model(ds)
    except InfluenceError as err:  # e.g. uploaded weights gone from disk: say so, and keep the forms below usable
        st.error(f"The current model could not be loaded: {plain(err)}. Train or upload another below.")
        return
    source = "uploaded weights" if state.weights else "trained here"
    named = {arch: name for name, arch in proj.hf_models().items()}  # a Hugging Face model by its configured name
    st.subheader(f"Current model: {named.get(str(state.arch).partition('?')[0], state.arch)} ({source})")
    st.caption(f"Model hash {state.model_hash or fitted.fingerprint()} · data set {plain(ds.name)}")
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
    if not training:
        link("scores", "Next: score the training samples on Scores")


def _archs(ds) -> list[str]:
    if "backbone" in ds.meta:  # features are a frozen backbone's embeddings: a head on vectors
        return [n for n, spec in sorted(MODELS.items()) if "tabular" in spec.input_kinds]
    return [n for n, spec in sorted(MODELS.items()) if ds.kind in spec.input_kinds]


def _backbone_form(proj: Project, ds, training: bool) -> None:
    """Frozen backbone + head: the images' embeddings become the features (names only; computed once, stored)."""
    used = ds.meta.get("backbone")
    if used:
        st.info(f"Features: the embeddings of a frozen {used['arch']} (weights {plain(used['weights'])}, "
                f"{used['dim']} numbers per image). Train a head (logreg or mlp) in the \"Train a model\" tab.")
        if st.button("Back to the images", icon=":material/undo:"):
            guarded_call(lambda: proj.use_backbone(None, from_browser=True))
        return
    choices = proj.backbone_choices()
    c = st.columns(3)
    arch = c[0].selectbox("Backbone", list(choices), key="backbone-arch")
    weights = c[1].selectbox("Weights of the backbone", choices[arch], key="backbone-weights",
                             help="random, torchvision's pretrained weights (downloaded once when the server is "
                                  "online), or a file this server's administrator named")
    mode = c[2].radio("Mode", ["Frozen backbone + head", "Fine-tune the last block"], key="backbone-mode")
    if mode != "Frozen backbone + head":
        _finetune_form(proj, ds, arch, weights, training)
        return
    own = proj.backbone_image_size(arch, weights)
    sizes = image_sizes(proj, own)
    size = st.selectbox("Image size for the backbone (pixels a side)", sizes, key=f"backbone-size-{own}",
                        index=sizes.index(own),
                        help=f"{arch} was trained at {own}×{own} with these weights: smaller images lose detail, larger "
                             "ones take longer. The zip is read again at this size; the uploaded file is kept.")
    now = _image_side(ds)
    again = f", read again from the upload at {size}×{size} (now {now}×{now})" if size != now else ""
    st.caption(f"The images{again} go through {arch} once; its embeddings are stored with the project and become the "
               "features, so a head trains in seconds.")
    if st.button("Use the backbone's embeddings", type="primary", icon=":material/hub:"):
        guarded_call(lambda: proj.use_backbone(arch, weights, image_size=int(size), from_browser=True))


def _image_side(ds) -> int:
    """The side the zip's images are read at now."""
    return ds.meta.get("image_size") or ds.input_shape[-1]


def _finetune_form(proj: Project, ds, arch: str, weights: str, training: bool) -> None:
    """Fine-tune the last block from the chosen weights (names only): a training job like the Train tab's."""
    st.caption(f"{arch}'s last block and a new head train from these weights, the rest stays frozen; score it with "
               "the parameter group last_block (that block and the head) or head.")
    own, now = proj.backbone_image_size(arch, weights), _image_side(ds)
    if now < own:
        st.caption(f"The images are {now}×{now}; {arch} was trained at {own}×{own}. To fine-tune at that size, upload "
                   f"the zip again on Data with Image size {own}.")
    if training:
        st.caption("Training is running (above): stop it or wait for it to finish to fine-tune.")
        return
    form = st.form(f"finetune-{arch}", border=False, enter_to_submit=False)
    epochs = form.number_input("Epochs", 1, 100, 10, help="at most; early stopping on the validation loss (patience 2)")
    if form.form_submit_button("Fine-tune the last block", type="primary", icon=":material/tune:"):
        try:
            chosen = proj.backbone_finetune_arch(arch, weights)
        except InfluenceError as err:
            st.error(plain(err))
            return
        proj.train_in_background(chosen, {"epochs": int(epochs)})
        st.rerun()


def guarded_call(action) -> None:
    """Run a switch of the data set, then rerun; a refusal is one line."""
    try:
        with st.spinner("Embedding the images…"):
            action()
    except InfluenceError as err:
        st.error(f"The backbone cannot be used: {plain(err)}")
        return
    st.rerun()


def _default_arch(ds, archs: list[str]) -> str:
    """The architecture offered first for this data: the CNN for images, the MLP otherwise."""
    preferred = "logreg" if "backbone" in ds.meta else default_architecture(ds.kind)
    return preferred if preferred in archs else archs[0]


def _train_form(proj: Project, ds, training: bool) -> None:
    if training:  # one run at a time; the form comes back with the settings of the model it trained
        st.caption("Training is running (above): stop it or wait for it to finish to train again.")
        return
    # Text: also the Hugging Face models the administrator configured, offered by name (never a folder or hub id).
    hf = {arch: name for name, arch in proj.hf_models().items()} if ds.kind == "text" else {}
    if ds.kind == "image" and "backbone" not in ds.meta:  # the configured Hugging Face image classifiers, by name
        hf = {arch: name for name, arch in proj.hf_image_models().items()}
    archs = _archs(ds) + list(hf)
    if not archs:
        st.warning(f"No architecture takes {ds.kind} data.")
        return
    state = proj.state()
    default_arch = state.arch if state.arch in archs else _default_arch(ds, archs)
    arch = st.selectbox("Architecture", archs, index=archs.index(default_arch),
                        format_func=lambda n: f"{hf[n]} — Hugging Face model, fine-tuned" if n in hf
                        else f"{n} — {MODELS[n].description}")
    base = TrainConfig().resolved(arch)
    previous = state.train if state.arch == arch and state.train else {}
    lbfgs = base.optimizer == "lbfgs"

    def start(name: str, default):
        return previous.get(name) if previous.get(name) is not None else default

    # A form: typing a setting does not rerun the app; Train (or Update the estimate) sends them all at once.
    form = st.form(f"train-settings-{arch}", border=False, enter_to_submit=False)
    c = form.columns(4)
    epochs = c[0].number_input("Epochs", 1, 10_000, int(start("epochs", base.epochs)), disabled=lbfgs,
                               help="L-BFGS (logistic regression) runs to convergence instead" if lbfgs else
                               f"at most; {arch}'s default: {base.epochs}")
    lr = c[1].number_input("Learning rate", 1e-6, 10.0, float(start("lr", base.lr)), format="%g", disabled=lbfgs,
                           help=None if lbfgs else f"{arch}'s default: {base.lr:g}")
    l2 = c[2].number_input("Weight decay (L2)", 0.0, 10.0, float(start("l2", base.l2)), format="%g",
                           help=f"½·λ·‖θ‖² added to the training objective (the influence methods use it too); "
                                f"{arch}'s default: {base.l2:g}")
    every = c[3].number_input("Checkpoint every k epochs", 0, 1000, int(start("checkpoint_every", 0)),
                              help="0 = none; TracIn-style methods need checkpoints" + (
                                  " (L-BFGS runs as one step: any k > 0 keeps the final model as the one checkpoint)"
                                  if lbfgs else ""))
    c = form.columns(4)
    patience = c[0].number_input(
        "Early stopping patience", 0, 10_000, int(start("patience", base.patience)), disabled=lbfgs,
        help="Stop after this many epochs without a lower validation loss and keep the best epoch's weights; "
             f"0 = off. {arch}'s default: {base.patience} (a network trained to convergence on noisy labels memorises "
             "them, and the scores of memorised samples fade)")
    config = {"epochs": int(epochs), "lr": float(lr), "l2": float(l2), "seed": 0, "checkpoint_every": int(every),
              "patience": int(patience)}
    if ds.kind == "image" and "backbone" not in ds.meta:  # embeddings are vectors: nothing to crop or flip
        config["augment"] = bool(c[1].checkbox(
            "Augment images", value=bool(start("augment", base.augment)), disabled=lbfgs,
            help="Random 32×32 crop of the 4-pixel-padded image and a horizontal flip, per batch; "
                 f"{arch}'s default: {'on' if base.augment else 'off'}"))
    if arch in hf and ds.kind == "text":
        max_tokens = c[1].number_input("Max tokens", 8, 512, 128, help="each text is cut or padded to this many tokens")
    if arch in hf:
        lora = c[2].number_input("LoRA rank", 0, 64, 0, help="0 = fine-tune every parameter; r > 0 = LoRA adapters of "
                                                              "rank r (and the classification head) only")
    clicked, right = form_buttons(form, "Train")
    try:
        if arch in hf:
            right.caption("No time estimate for a Hugging Face model: it depends on the model's size.")
        else:
            with right, st.spinner("Timing a few training steps…"):
                estimate = proj.training_estimate(arch, config)
            right.caption(f"Estimated training time: {estimate['text']} — {estimate['how']}.")
    except InfluenceError as err:
        right.warning(plain(err))
    if clicked:
        if arch in hf and ds.kind == "text":  # the text is read again as this model's token ids
            try:
                with st.spinner("Tokenizing the text…"):
                    arch = proj.use_hf_model(hf[arch], int(max_tokens), lora_rank=int(lora), from_browser=True)
            except InfluenceError as err:
                st.error(plain(err))
                return
        elif arch in hf and lora:  # an image classifier: its adapters by name (models/hf_image.py, alpha = 2·rank)
            arch = f"{arch}?lora={int(lora)}&alpha={2 * int(lora)}"
        proj.train_in_background(arch, config)
        st.rerun()


def _upload_form(proj: Project, ds) -> None:
    archs = _archs(ds)
    if not archs:
        return
    state = proj.state()
    default = state.arch if state.arch in archs else _default_arch(ds, archs)
    arch = st.selectbox("Architecture of the weights", archs, index=archs.index(default), key="upload-arch",
                        help="ignored for .pt2 programs, which carry their own architecture")
    file = st.file_uploader("Weights: a state_dict (.safetensors, .pt) or a torch.export program (.pt2)",
                            type=["safetensors", "pt", "pth", "pt2"])
    if file is None:
        return
    data = file.getvalue()
    stored = proj.uploaded_weights_path(data, file.name)
    if state.weights == str(stored) and state.arch == arch:
        st.caption(f"{plain(stored.name)} is the current model.")
        return
    try:  # checked (no pickled code, no code in .pt2 archives), loaded from a staging copy, stored only when it fits
        with st.spinner("Checking the weights…"):
            proj.upload_weights(data, file.name, arch)
    except InfluenceError as err:
        st.error(f"These weights cannot be used: {plain(err)}")
        return
    st.rerun()


def _live_curve(snap: dict) -> None:
    if len(snap["log"]) > 1:
        st.plotly_chart(training_curve(snap["log"]), width="stretch")


def _report(proj: Project, job) -> None:
    """How the last training run ended, said once (the job section forgets the job after this)."""
    if job.state == "done" and not (job.result or {}).get("cancelled"):
        st.success("Training finished.")
    elif job.state in ("cancelled", "done"):
        st.warning("Training was stopped; the previous model (if any) is still the current one.")
    else:
        job_outcome(proj, "train", job, "Training")


def page() -> None:
    ctx = start_page("Model", needs="dataset")
    proj, ds = ctx.proj, ctx.ds
    st.caption(f"Data set: {plain(ds.name)} · {len(ds.train):,} training samples")
    training = job_section(proj, "train", "Training", on_end=lambda job: _report(proj, job),
                           render_running=_live_curve) is not None
    _show_current(proj, ds, training)
    st.divider()
    names = ["Train a model", "Upload weights"] + (["Pretrained backbone"] if ds.kind == "image" else [])
    tabs = st.tabs(names)
    with tabs[0]:
        _train_form(proj, ds, training)
    with tabs[1]:
        _upload_form(proj, ds)
    if ds.kind == "image":
        with tabs[2]:
            _backbone_form(proj, ds, training)


guarded(page)
