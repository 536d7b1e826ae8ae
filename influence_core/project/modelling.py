"""The project's model: trained here (through the engine, cached), uploaded or loaded weights, Hugging Face and
backbone choices a browser may make, and the model's predictions and probabilities."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.base import Dataset
from ..data.registry import DATASETS
from ..errors import InfluenceError
from ..grads import Progress
from ..keys import model_key
from ..memo import MEMORY
from ..models.train import FittedModel, TrainConfig, TrainProgress, train_settings
from ..state import Selection


class ModelMixin:
    """The project's model: trained, uploaded or loaded, and what it predicts. A part of `Project`."""

    def model(self, dataset: Dataset | None = None) -> FittedModel | None:
        """The current model (trained here and cached, or uploaded), or None when there is none yet."""
        state = self.state()
        if not state.has_model:
            return None
        return self._model(state, dataset if dataset is not None else self._current(state)[1])

    def _model(self, state: Selection, dataset: Dataset) -> FittedModel | None:
        """The model ``state`` names, for ``dataset`` (from the memory layer, else the store; never trained here)."""
        if not state.has_model:
            return None
        if state.weights:
            from ..models.loading import load_fitted

            return MEMORY.get("models", f"weights:{state.weights}:{state.arch}:{dataset.fingerprint()}",
                              lambda: load_fitted(state.weights, state.arch, dataset))
        key = model_key(dataset, state.arch, state.train_config())
        return MEMORY.get("models", f"model:{key}", lambda: self.engine.stored_model(key, dataset, state.arch))

    def train(self, arch: str, config: TrainConfig | dict | None = None, *, progress: TrainProgress | None = None,
              should_stop: Callable[[], bool] | None = None, device: str | None = None) -> FittedModel:
        """Train ``arch`` on the current data set (or find it in the cache) and make it the current model — unless the
        run was stopped, or the user chose another data set meanwhile. The score runs stay when the model is the one
        already current (the same settings found in the cache)."""
        state, dataset = self._current()
        settings = train_settings(config)
        fitted = self.engine.model(dataset, arch, TrainConfig(**settings), progress=progress,
                                   should_stop=should_stop, device=device)
        if fitted.history and fitted.history[-1].get("cancelled"):
            return fitted
        MEMORY.get("models", f"model:{model_key(dataset, arch, TrainConfig(**settings))}", lambda: fitted)

        self._update_state(lambda s: s.use_model(arch, fitted.fingerprint(), train=settings),
                           only_if=lambda s: s.dataset_key == state.dataset_key)
        return fitted

    def upload_weights(self, data: bytes, filename: str, arch: str) -> FittedModel:
        """Uploaded weights (checked: no pickled code, no code in .pt2 programs), stored and made the current model."""
        from ..models.loading import load_fitted

        dataset = self.dataset()
        path, fitted = self.save_upload(data, filename, "weights", load=lambda p: load_fitted(str(p), arch, dataset))

        self._update_state(lambda s: s.use_model(arch, fitted.fingerprint(), weights=str(path)))
        return fitted

    def use_weights(self, path: str | os.PathLike, arch: str) -> FittedModel:
        """Weights from a local file (the CLI's ``--weights``; checked like an upload, not copied) as the current model."""
        from ..models.loading import load_fitted

        dataset = self.dataset()
        fitted = load_fitted(str(path), arch, dataset)

        self._update_state(lambda s: s.use_model(arch, fitted.fingerprint(), weights=str(Path(path).resolve())))
        return fitted

    def uploaded_weights_path(self, data: bytes, filename: str) -> Path:
        from ..data.uploads import stored_path

        return stored_path(data, filename, "weights", self.folder)

    def training_estimate(self, arch: str, config: TrainConfig | dict | None = None) -> dict:
        """How long `train` would take, before it starts: ``{"seconds", "text", "how", "at_most"}``
        (`models.estimate.estimate_training`) from real training steps of ``arch`` timed on the current data (measured
        once per data, architecture and batch size, in about half a second, or one step of a very slow model) times
        batches × epochs."""
        from ..models.estimate import estimate_training, measure_steps

        dataset = self.dataset()
        resolved = TrainConfig(**train_settings(config)).resolved(arch)
        key = f"{dataset.fingerprint()}:{arch}:{resolved.optimizer}:{resolved.batch_size}:{bool(resolved.augment)}"
        times = MEMORY.get("estimates", key, lambda: measure_steps(dataset, arch, resolved))
        return estimate_training(dataset, resolved, times)

    def fold_models(self, folds: int, progress: Progress | None = None, device: str | None = None) -> list[FittedModel]:
        _, dataset, fitted = self._current_model()
        return self.engine.fold_models(dataset, fitted, folds, progress=progress, device=device)

    def predictions(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """(predicted class, class probabilities N×C) of the current model on a split (memoised per model)."""
        from ..analysis import predict

        _, dataset, fitted = self._current_model()
        return MEMORY.get("results", f"predict:{fitted.fingerprint()}:{dataset.fingerprint()}:{split}",
                          lambda: predict(fitted, getattr(dataset, split)))

    def hf_models(self) -> dict[str, str]:
        """The Hugging Face models a browser may choose: the administrator's names (``[server.hf_models]``) → their
        ``hf:`` architecture names."""
        return {name: f"hf:{source}" for name, source in self.server_config().hf_models.items()}

    def use_hf_model(self, model: str, max_tokens: int = 128, *, lora_rank: int = 0, from_browser: bool = False) -> str:
        """Load the current text upload again as token ids of ``model``'s tokenizer (what ``hf:`` models read; the
        other columns are left out) and return the architecture to train. ``model``: any ``hf:`` name (library,
        CLI), or from a browser only a name of `hf_models` — never a folder or a hub id. ``lora_rank`` > 0: the
        architecture fine-tunes LoRA adapters of that rank (alpha = 2·rank) instead of every parameter."""
        from ..models.hf import choose_arch

        arch, settings = choose_arch(model, max_tokens, lora_rank, self.hf_models() if from_browser else None)
        state = self.state()
        if self.dataset().kind != "text" or str(state.dataset) in DATASETS:
            raise InfluenceError("Hugging Face models read text: upload a CSV with a text column first")
        self.use_dataset(state.dataset, **{**state.dataset_kwargs, "tokenizer_folder": settings.model,  # text only
                                           "max_tokens": settings.max_tokens, "feature_columns": []})
        return arch

    @staticmethod
    def check_device(device: str | None) -> None:
        """A one-line refusal of a device this machine lacks or that does not exist, before a cached model or score
        (which needs no device) could hide it."""
        from ..models.train import resolve_device

        try:
            resolve_device(device)
        except RuntimeError:
            raise InfluenceError(f"unknown device '{str(device)[:40]}'; choose cpu, cuda or auto") from None

    def backbone_choices(self) -> dict[str, list[str]]:
        """Each backbone with the weights names a browser may choose for it (random, torchvision's, the server's)."""
        from ..models.backbones import BACKBONES, weights_names

        return {name: weights_names(name) for name in BACKBONES}

    def train_probabilities(self, folds: int = 0, progress: Progress | None = None) -> np.ndarray:
        """N×C class probabilities of the training split: out of fold with ``folds`` ≥ 2 (the fold models trained
        once and cached), else the model's own; memoised per data and model."""
        if not folds:
            return self.predictions()[1]
        from ..api import out_of_fold_probabilities
        from ..folds import FoldSettings

        _, dataset, fitted = self._current_model()
        return MEMORY.get("results", f"oof-probs:{dataset.fingerprint()}:{fitted.fingerprint()}:{folds}",
                          lambda: out_of_fold_probabilities(
                              dataset, self.engine.fold_models(dataset, fitted, folds, progress=progress), FoldSettings(folds)))

    def backbone_finetune_arch(self, backbone: str, weights: str = "random") -> str:
        """The architecture that fine-tunes ``backbone``'s last block from ``weights`` (a name of `backbone_choices`,
        never a path) on the current images: pass it to `train` / `train_in_background`."""
        from ..models.backbones import BackboneSpec, arch_name

        choices = self.backbone_choices()
        if backbone not in choices or weights not in choices[backbone]:
            raise InfluenceError(f"'{str(backbone)[:40]}' with weights '{str(weights)[:40]}' is not offered here; "
                                 f"choose a backbone and weights the Model page lists")
        return arch_name(BackboneSpec(backbone, weights))

    def hf_image_models(self) -> dict[str, str]:
        """The administrator's Hugging Face models (`hf_models`) that are image classifiers: name → ``hf:`` name."""
        from ..models.hf_image import is_image_classifier

        def image(arch: str) -> bool:
            try:
                return is_image_classifier(arch[len("hf:"):])
            except InfluenceError:  # a hub id not downloaded yet on an offline server: not offered
                return False

        return {name: arch for name, arch in self.hf_models().items() if image(arch)}
