"""Registry of architectures: name -> builder(input_shape, num_classes) plus default training settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from ..errors import InfluenceError
from .architectures import MLP, LogisticRegression, SmallCNN
from .resnet import resnet18_cifar, resnet34_cifar


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    builder: Callable[[tuple[int, ...], int], nn.Module]
    input_kinds: tuple[str, ...] = ("tabular", "image", "text")
    # Which parameters `--params head` selects (a name prefix), and the trainer's defaults for this architecture.
    head_prefix: str = ""
    train_defaults: dict = field(default_factory=dict)
    # Refuses (InfluenceError) a data set whose inputs this model cannot read, beyond its kind (models/hf.py: token
    # ids of its own tokenizer); None = any data set of an accepted kind.
    check_dataset: Callable | None = None
    # Pretrained weights training starts from (models/backbones.py's ``tv:<arch>?weights=NAME``): the initial state
    # dict for a data set, and what identifies the weights' content in model keys (keys.model_key); None = the
    # builder's own initialisation.
    initial_state: Callable | None = None
    weights_token: Callable[[], str] | None = None


MODELS: dict[str, ModelSpec] = {}
# Architecture families named by a prefix and an open-ended rest (``hf:<folder or hub id>``): the resolver builds the
# entry on first use, importing its (heavy) library only then.
PREFIX_RESOLVERS: dict[str, Callable[[str], ModelSpec]] = {}
_RESOLVED: dict[str, ModelSpec] = {}  # kept apart from MODELS, the list of names a page offers


def register_model(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.name] = spec
    return spec


def get_model_spec(name: str) -> ModelSpec:
    prefix = name.partition(":")[0] + ":"
    if name not in MODELS and prefix in PREFIX_RESOLVERS:
        if name not in _RESOLVED:
            _RESOLVED[name] = PREFIX_RESOLVERS[prefix](name)
        return _RESOLVED[name]
    if name not in MODELS:
        raise InfluenceError(f"unknown model '{name}'; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def default_architecture(kind: str) -> str:
    """The architecture a model for ``kind`` data gets unless one is chosen (the Model page, the CLI): the CNN for
    images (augmented, early stopping: the README's leaderboard setting), text-linear for text, the MLP otherwise."""
    return {"image": "cnn", "text": "text-linear"}.get(kind, "mlp")


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A freshly initialised module of architecture ``name`` for inputs of ``input_shape``."""
    spec = get_model_spec(name)
    try:
        return spec.builder(tuple(input_shape), num_classes)
    except (ValueError, RuntimeError, TypeError) as err:
        raise InfluenceError(f"model '{name}' cannot take inputs of shape {tuple(input_shape)}: {err}") from None


register_model(ModelSpec("logreg", "Logistic regression (L-BFGS, L2 1e-2)", LogisticRegression,
                         head_prefix="linear", train_defaults={"optimizer": "lbfgs", "l2": 1e-2}))
# Neural networks stop early on the validation loss (best epoch restored) and images are augmented: a network
# trained to convergence on noisy labels memorises them, and a memorised sample's gradient (its score) fades.
register_model(ModelSpec("mlp", "MLP, two hidden layers of 32, ReLU", MLP, head_prefix="head",
                         train_defaults={"optimizer": "adam", "lr": 1e-2, "epochs": 300, "batch_size": 64, "l2": 1e-3,
                                         "patience": 30}))
register_model(ModelSpec("cnn", "Small CNN for 32x32 images (~140k parameters)", SmallCNN, input_kinds=("image",),
                         head_prefix="head",
                         train_defaults={"optimizer": "adam", "lr": 2e-3, "epochs": 30, "batch_size": 128, "l2": 5e-4,
                                         "patience": 3, "augment": True}))
_RESNET_DEFAULTS = {"optimizer": "sgd", "lr": 0.05, "epochs": 30, "batch_size": 128, "l2": 5e-4, "patience": 4, "augment": True}
register_model(ModelSpec("resnet18", "ResNet-18 for 32x32 images (3x3 stem, no max-pool; random init or your weights)",
                         resnet18_cifar, input_kinds=("image",), head_prefix="fc", train_defaults=_RESNET_DEFAULTS))
register_model(ModelSpec("resnet34", "ResNet-34 for 32x32 images (3x3 stem, no max-pool; random init or your weights)",
                         resnet34_cifar, input_kinds=("image",), head_prefix="fc", train_defaults=_RESNET_DEFAULTS))
# Text (issue 18): a linear model on the TF-IDF features (data/text.py), full-batch L-BFGS: the training loss is
# strictly convex, so exact / LiSSA / EKFAC / IP agree on what they estimate, and it trains in seconds.
register_model(ModelSpec("text-linear", "Logistic regression on TF-IDF text features (L-BFGS, L2 1e-2)",
                         LogisticRegression, input_kinds=("text",), head_prefix="linear",
                         train_defaults={"optimizer": "lbfgs", "l2": 1e-2}))
