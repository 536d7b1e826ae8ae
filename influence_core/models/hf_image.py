"""Hugging Face image classifiers as architectures: ``hf:<local folder or hub id>`` whose config is an
`AutoModelForImageClassification` model (ViT, ConvNeXt, Swin, BEiT, …; never ``trust_remote_code``).

`models.hf`'s resolver hands such a name here (`is_image_classifier`). The model reads the data set's images
(standardised with the data set's own per-channel statistics, as every image model here does): the wrapper maps them
back to [0, 1], resizes them to the size the model's image processor says (bilinear, antialiased; in torch, a batch
at a time) and standardises them with the processor's mean and std — so the whole input pipeline is differentiable
and vmap-able, and every method runs on it. The classification head is replaced for the data set's classes; every
parameter trains (AdamW), or LoRA adapters through ``peft`` (``hf:<folder>?lora=8``: on the attention's query and value
projections, see `LORA_TARGETS`, or on ``&targets=a+b``; the head trains beside them, every other weight stays frozen);
influence on the parameter groups "head", "lora", "last:k" (the last k blocks and the head), "all".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import InfluenceError
from .architectures import output_dim
from .hf import _LAYER_INDEX, FAMILIES, HFSequenceClassifier, HFSettings, _load, _one_line, load_pretrained, parse_arch
from .registry import ModelSpec

DEFAULT_MEAN = (0.485, 0.456, 0.406)  # ImageNet's, for a model saved without an image processor
DEFAULT_STD = (0.229, 0.224, 0.225)
# LoRA's default target modules, the first of these pairs of linear layers the architecture has: the attention's
# query and value projections of the vision transformers (as LoRA's paper and peft's image-classification guide;
# transformers 5 names them q_proj / v_proj, earlier versions query / value), else the pointwise layers of ConvNeXt's
# blocks. peft itself names none for image models.
LORA_TARGETS = (("q_proj", "v_proj"), ("query", "value"), ("pwconv1", "pwconv2"))


@dataclass(frozen=True)
class ImageInput:
    """What the model's image processor does to a picture: resize to ``size``², then (x − mean) / std on [0, 1]."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _config(source: str):
    from transformers import AutoConfig

    return _load(source, "config", lambda src: AutoConfig.from_pretrained(src, trust_remote_code=False))


def is_image_classifier(source: str) -> bool:
    """Whether ``source``'s config is an image classifier. A hub id neither cached nor reachable says so in one
    line; another unreadable config gives False (the text path then says why in its own words)."""
    from transformers.models.auto.modeling_auto import (MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
                                                        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES)

    try:
        config = _config(source)
    except InfluenceError as err:
        if "offline" in str(err):
            raise
        return False
    kind = getattr(config, "model_type", "")
    if kind not in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES:
        return False
    named = getattr(config, "architectures", None) or []
    return kind not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES or any("ImageClassification" in a for a in named)


def image_input(source: str) -> ImageInput:
    """The input size and normalisation of ``source``'s image processor (its config's ``image_size`` and ImageNet's
    statistics when it has none)."""
    from transformers import AutoImageProcessor

    config = _config(source)
    try:
        processor = _load(source, "image processor", lambda src: AutoImageProcessor.from_pretrained(src, trust_remote_code=False))
    except InfluenceError:
        processor = None
    size = getattr(processor, "size", None) or {}
    get = size.get if isinstance(size, dict) else (lambda key: getattr(size, key, None))
    side = get("height") or get("shortest_edge") or getattr(config, "image_size", None) or 224
    side = side[0] if isinstance(side, (tuple, list)) else side
    mean = tuple(getattr(processor, "image_mean", None) or DEFAULT_MEAN)
    std = tuple(getattr(processor, "image_std", None) or DEFAULT_STD)
    if processor is not None and getattr(processor, "do_normalize", True) is False:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return ImageInput(int(side), mean, std)


class HFImageClassifier(HFSequenceClassifier):
    """An image classifier whose input is the data set's standardised N×C×H×W images (see the module docstring);
    returns logits, one for a binary task (the library's convention) or one per class. The data set's statistics
    (``input_mean`` / ``input_std``) and the processor's (``mean`` / ``std``) are buffers, saved with the weights."""

    discrete_inputs = False  # pixels: the robustness impact's attack can move them

    def __init__(self, model: nn.Module, image: ImageInput) -> None:
        nn.Module.__init__(self)
        self.model = model
        self.size = image.size
        for name, value in (("input_mean", (0.0,) * 3), ("input_std", (1.0,) * 3), ("mean", image.mean),
                            ("std", image.std)):
            self.register_buffer(name, torch.tensor(value, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.input_std + self.input_mean  # back to [0, 1]
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                                          align_corners=False)
        return self.model(pixel_values=(x - self.mean) / self.std).logits

    @property
    def parameter_groups(self) -> tuple[str, ...]:
        return ("head", "lora", "last:1", "last:2") if self._is_peft() else ("head", "last:1", "last:2")

    def parameter_group(self, selection: str) -> list[str] | None:
        """As `HFSequenceClassifier.parameter_group`, with "last:k" counting blocks in the order the network runs
        them, also across stages (ConvNeXt's ``stages.3.layers.2`` is its last block)."""
        match = re.fullmatch(r"last:(\d+)", selection or "")
        if match is None:
            return super().parameter_group(selection)
        named = [n for n, _ in self.named_parameters()]
        blocks: dict[str, str] = {}
        for n in named:
            found = list(_LAYER_INDEX.finditer("." + self._relative(n)))
            if found:
                blocks[n] = self._relative(n)[: found[-1].end() - 2]  # the block's own prefix, up to its index
        order = list(dict.fromkeys(blocks.values()))
        if not order:
            raise InfluenceError("this model has no numbered blocks for last:k; use head or all")
        chosen = set(order[-int(match.group(1)):])
        return [n for n in named if blocks.get(n) in chosen] + super().parameter_group("head")


def apply_lora(model: nn.Module, settings: HFSettings) -> nn.Module:
    """``model`` with LoRA adapters (peft) on ``settings.lora_targets``, else on the first pair of `LORA_TARGETS`
    its architecture has; only the adapters and the classification head (``classifier``) stay trainable."""
    from peft import LoraConfig, get_peft_model

    linear = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    targets = list(settings.lora_targets or next((t for t in LORA_TARGETS if set(t) <= linear), ()))
    if not targets:
        kind = getattr(model.config, "model_type", "")
        raise InfluenceError(f"no default LoRA target modules for '{kind}' image models; name them with &targets=a+b")
    config = LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                        target_modules=targets, modules_to_save=["classifier"])
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise InfluenceError(f"cannot add LoRA adapters: {_one_line(err)}") from None


def build_hf_image(source: str, num_classes: int, settings: HFSettings = HFSettings()) -> HFImageClassifier:
    """The classifier of ``source`` with its pretrained weights and a head for ``num_classes`` (with LoRA adapters
    when ``settings.lora_rank`` > 0)."""
    from transformers import AutoModelForImageClassification

    model = load_pretrained(source, output_dim(num_classes), AutoModelForImageClassification)
    if settings.lora_rank:
        model = apply_lora(model, settings)
    return HFImageClassifier(model, image_input(source))


def check_images(dataset) -> None:
    if dataset.kind != "image" or "pixel_mean" not in dataset.meta:
        raise InfluenceError(f"a Hugging Face image classifier reads images; '{dataset.name}' is {dataset.kind} data")
    if getattr(dataset.train, "pixels", None) is not None:
        raise InfluenceError("this data set holds a backbone's embeddings; load the images without a backbone")


def initial_state(source: str, dataset, settings: HFSettings = HFSettings()) -> dict[str, torch.Tensor]:
    """The pretrained model with a new head (and LoRA adapters), and the data set's statistics to map its images
    back to [0, 1]."""
    check_images(dataset)
    module = build_hf_image(source, dataset.num_classes, settings)
    module.input_mean.copy_(torch.tensor(dataset.meta["pixel_mean"]).view(1, -1, 1, 1))
    module.input_std.copy_(torch.tensor(dataset.meta["pixel_std"]).view(1, -1, 1, 1))
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def weights_token(source: str) -> str:
    """What identifies ``source``'s weights in model keys: the SHA-256 of a local folder's weight files, else the
    hub id (the Hugging Face cache keeps one revision per id)."""
    from .backbones import _weights_token

    folder = Path(source).expanduser()
    if not folder.is_dir():
        return f"hub:{source}"
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    return ",".join(f"{p.name}:{_weights_token(p)}" for p in files)


def image_model_spec(name: str) -> ModelSpec:
    """The registry entry of ``hf:<image classifier>``."""
    source, settings = parse_arch(name)
    lora = f" + LoRA r={settings.lora_rank}" if settings.lora_rank else ""
    return ModelSpec(name, f"Hugging Face image classifier {source}{lora}",
                     lambda shape, classes: build_hf_image(source, classes, settings), input_kinds=("image",),
                     check_dataset=check_images,
                     head_prefix=("model.base_model.model." if lora else "model.") + "classifier",
                     # adapters start at zero and need a larger step than full fine-tuning (as models/hf.py's)
                     train_defaults={"optimizer": "adamw", "lr": 1e-3 if lora else 5e-5, "epochs": 3, "batch_size": 16,
                                     "l2": 0.0, "patience": 1, "augment": False},
                     initial_state=lambda dataset: initial_state(source, dataset, settings),
                     weights_token=lambda: weights_token(source))


def _claim(name: str) -> ModelSpec | None:
    """`models.hf`'s family hook: the spec of ``hf:<image classifier>``, None for other models."""
    return image_model_spec(name) if is_image_classifier(parse_arch(name)[0]) else None


FAMILIES.append(_claim)  # hf:<folder or hub id> of an image classifier (issue 18)
