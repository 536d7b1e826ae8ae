"""Architectures, the trainer and model wrappers."""

from .architectures import MLP, LogisticRegression, SmallCNN, output_dim
from .registry import MODELS, ModelSpec, build_model, default_architecture, get_model_spec, register_model
from .train import Checkpoint, FittedModel, TrainConfig, evaluate_split, fitted_from_module, resolve_device, train_model
from . import loading  # noqa: F401,E402  (registers the check of uploaded weights with data.uploads)
from . import backbones, hf  # noqa: F401,E402  (register tv:<arch>, the hf: prefix and featurizer, the zip embedder)
from . import hf_image  # noqa: F401,E402  (registers hf: image classifiers with the hf: prefix)

__all__ = [
    "MLP", "LogisticRegression", "SmallCNN", "output_dim", "MODELS", "ModelSpec", "build_model", "default_architecture",
    "get_model_spec",
    "register_model", "Checkpoint", "FittedModel", "TrainConfig", "evaluate_split", "fitted_from_module",
    "resolve_device", "train_model",
]
