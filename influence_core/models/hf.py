"""Hugging Face sequence classifiers as architectures: ``hf:<local folder or hub id>[?lora=8&alpha=16&targets=query+value]``.

The model is `AutoModelForSequenceClassification` (never ``trust_remote_code``) wrapped so that its input is the
token-id matrix the "hf" featurizer stores in a Split's x (float32, exact for ids < 2**24): every method, the
trainer and the store then treat it like any other module. The wrapper casts the ids to long, builds the attention
mask from the pad id as a ready 4-D additive bias (HF's own mask builder branches on the mask's values, which
torch.func's vmap cannot trace) and, for models with segment embeddings, the token types of a sentence pair.
Fine-tuning trains every parameter, or LoRA adapters through ``peft`` (the classification head trains beside them).
Influence parameter groups (the ``params`` setting): "head", "lora", "last:k" (the last k layers + head), "all".
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import parse_qsl, urlencode

import numpy as np
import torch
from torch import nn

from ..errors import InfluenceError
from ..data.text import register_featurizer
from ..memo import MEMORY
from .architectures import output_dim
from .registry import PREFIX_RESOLVERS, ModelSpec

PREFIX = "hf:"
MAX_TOKENS = 512  # the cap of the featurizer's max_tokens (BERT-style position tables end there)
# Other Hugging Face model families behind the same hf: prefix: name -> their ModelSpec, or None when the model is
# not theirs (models/hf_image.py adds image classifiers).
FAMILIES: list = []
_LAYER_INDEX = re.compile(r"\.(?:layer|layers|h|block|blocks)\.(\d+)\.")


@dataclass(frozen=True)
class HFSettings:
    """How an ``hf:`` model is fine-tuned: every parameter (``lora_rank`` 0) or LoRA adapters of rank ``lora_rank``
    scaled by ``lora_alpha / lora_rank`` on ``lora_targets`` (module names; empty = peft's default for the model type)."""

    lora_rank: int = 0
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.lora_rank <= 256 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1:
            raise InfluenceError("LoRA needs 0 ≤ rank ≤ 256 (0 = fine-tune every parameter), alpha > 0, 0 ≤ dropout < 1")


def parse_arch(name: str) -> tuple[str, HFSettings]:
    """(source, settings) of an architecture name ``hf:<source>[?lora=R&alpha=A&dropout=P&targets=a+b]``."""
    if not name.startswith(PREFIX) or not name[len(PREFIX):].strip():
        raise InfluenceError(f"'{name}' is not a Hugging Face model name; write hf:<folder or hub id>")
    source, _, query = name[len(PREFIX):].partition("?")
    allowed = {"lora": "lora_rank", "alpha": "lora_alpha", "dropout": "lora_dropout", "targets": "lora_targets"}
    values: dict = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in allowed:
            raise InfluenceError(f"unknown setting '{key}' in '{name}'; known: {', '.join(allowed)}")
        try:
            values[allowed[key]] = (tuple(t for t in re.split(r"[+ ,]", value) if t) if key == "targets"
                                    else int(value) if key == "lora" else float(value))
        except ValueError:
            raise InfluenceError(f"setting '{key}' in '{name}' must be a number, not '{value}'") from None
    return source.strip(), HFSettings(**values)


def arch_name(source: str, settings: HFSettings = HFSettings()) -> str:
    """The architecture name of ``source`` fine-tuned with ``settings`` (the inverse of `parse_arch`)."""
    if not settings.lora_rank:
        return PREFIX + source
    query = {"lora": settings.lora_rank, "alpha": settings.lora_alpha, "dropout": settings.lora_dropout}
    if settings.lora_targets:
        query["targets"] = "+".join(settings.lora_targets)
    return f"{PREFIX}{source}?{urlencode(query)}"


# ------------------------------------------------------------------------------------------------ loading
@contextlib.contextmanager
def _quiet_transformers():
    """transformers' load reports and progress bars belong in a developer's console, not in the app's log."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:200]


def _load(source: str, what: str, loader):
    """``loader()`` with transformers' errors turned into one line: a missing folder, or a hub id that is neither
    cached nor reachable (offline), says so."""
    local = Path(source).expanduser()
    if source.startswith((".", "/", "~")) and not local.is_dir():
        raise InfluenceError(f"no model folder '{source}'")
    try:
        with _quiet_transformers():
            return loader(str(local) if local.is_dir() else source)
    except InfluenceError:
        raise
    except (OSError, ValueError, KeyError) as err:
        from huggingface_hub.constants import is_offline_mode

        offline = is_offline_mode()
        if not local.is_dir() and (offline or "connect" in str(err).lower() or "offline" in str(err).lower()):
            raise InfluenceError(f"the {what} of '{source}' is not in the local Hugging Face cache and this machine is "
                                 "offline; download it once while online, or use a local folder") from None
        raise InfluenceError(f"cannot load the {what} of '{source}': {_one_line(err)}") from None


def _pickle_allowed(source: str) -> bool:
    """Whether ``source`` may load pickle (``.bin``) weights: only a model the server's administrator configured."""
    from ..server_config import server_config

    try:
        return source in server_config().hf_models.values()
    except InfluenceError:
        return False


def load_tokenizer(source: str):
    """The fast tokenizer of ``source`` (a folder or hub id); kept (the store's memory layer), since every
    featurization needs it."""
    return MEMORY.get("tokenizers", source, lambda: _read_tokenizer(source))


def _read_tokenizer(source: str):
    from transformers import AutoTokenizer

    tokenizer = _load(source, "tokenizer", lambda src: AutoTokenizer.from_pretrained(src, trust_remote_code=False))
    if tokenizer.pad_token_id is None:  # GPT-style tokenizers have none: pad with end-of-text, masked all the same
        if tokenizer.eos_token_id is None:
            raise InfluenceError(f"the tokenizer of '{source}' has neither a pad nor an end token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_pretrained(source: str, num_labels: int, auto_class=None) -> nn.Module:
    """``auto_class`` (default `AutoModelForSequenceClassification`) of ``source`` with a ``num_labels`` head (a new
    head when the stored one has another size); safetensors only, unless the administrator configured ``source``
    (then ``.bin`` too)."""
    from transformers import AutoModelForSequenceClassification

    auto_class = auto_class or AutoModelForSequenceClassification

    def load(src: str):
        return auto_class.from_pretrained(
            src, num_labels=num_labels, ignore_mismatched_sizes=True, trust_remote_code=False,
            use_safetensors=None if _pickle_allowed(source) else True, attn_implementation="eager")

    try:
        return _load(source, "model", load)
    except InfluenceError as err:
        if "safetensors" in str(err).lower() or ".bin" in str(err):
            raise InfluenceError(f"'{source}' has no .safetensors weights; pickle (.bin) weights are loaded only from "
                                 "a model the server's administrator configured ([server.hf_models])") from None
        raise


# ------------------------------------------------------------------------------------------------ the module
class HFSequenceClassifier(nn.Module):
    """A sequence classifier whose input is a float matrix of token ids padded with ``pad_id`` (see the module
    docstring); returns logits, one for a binary task (the library's convention) or one per class."""

    discrete_inputs = True  # the robustness impact's gradient attack has nothing to move (impacts.attack refuses)

    def __init__(self, model: nn.Module, pad_id: int, sep_id: int | None) -> None:
        super().__init__()
        self.model = model
        self.pad_id, self.sep_id = int(pad_id), sep_id
        config = getattr(model, "config", None)
        self.segments = sep_id is not None and getattr(config, "type_vocab_size", 0) >= 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.long()
        dtype = self.model.get_input_embeddings().weight.dtype
        # Additive attention bias (B, 1, 1, L): 0 on tokens, the dtype's minimum on padding.
        bias = (ids == self.pad_id).to(dtype)[:, None, None, :] * torch.finfo(dtype).min
        kwargs = {"input_ids": ids, "attention_mask": bias}
        if self.segments:  # segment B starts after the first separator (BERT's pair encoding)
            sep = (ids == self.sep_id).long()
            kwargs["token_type_ids"] = (sep.cumsum(1) - sep).clamp(max=1)
        return self.model(**kwargs).logits

    # --- parameter groups (grads.select_params asks the module first)
    def _relative(self, name: str) -> str:
        """``name`` inside the transformers model, without the wrapper's and peft's prefixes."""
        name = name.removeprefix("model.")
        return name.removeprefix("base_model.model.") if self._is_peft() else name

    def _is_peft(self) -> bool:
        return any("lora_" in n for n, _ in self.model.named_parameters())

    def _base_prefix(self) -> str:
        base = getattr(self.model, "base_model_prefix", "") or ""
        if self._is_peft():
            base = getattr(self.model.get_base_model(), "base_model_prefix", "") or ""
        return base + "."

    @property
    def parameter_groups(self) -> tuple[str, ...]:
        """The groups a page offers for this model (besides "all")."""
        return ("head", "lora", "last:1", "last:2") if self._is_peft() else ("head", "last:1", "last:2")

    def parameter_group(self, selection: str) -> list[str] | None:
        """Names of the parameters in group ``selection`` ("all", "head", "lora", "last:k"), or None when
        ``selection`` is not a group (then it is read as a name prefix). A frozen copy of the head peft keeps
        beside the trained one is never selected."""
        named = [n for n, _ in self.named_parameters() if ".original_module." not in n]
        base = self._base_prefix()
        head = [n for n in named if not self._relative(n).startswith(base) and "lora_" not in n]
        if selection == "all":
            return named
        if selection == "head":
            return head
        if selection == "lora":
            chosen = [n for n in named if "lora_" in n]
            if not chosen:
                raise InfluenceError("this model has no LoRA adapters; fine-tune it with ?lora=R, or use --params head")
            return chosen
        match = re.fullmatch(r"last:(\d+)", selection or "")
        if match is None:
            return None
        layers = {n: int(m.group(1)) for n in named if (m := _LAYER_INDEX.search("." + self._relative(n)))}
        if not layers:
            raise InfluenceError("this model has no numbered transformer layers for last:k; use head or all")
        first = max(layers.values()) - int(match.group(1)) + 1
        return [n for n in named if layers.get(n, -1) >= first] + head


def _apply_lora(model: nn.Module, settings: HFSettings) -> nn.Module:
    """``model`` with LoRA adapters (peft); only the adapters and the classification head stay trainable."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=settings.lora_rank, lora_alpha=settings.lora_alpha,
                        lora_dropout=settings.lora_dropout, target_modules=list(settings.lora_targets) or None)
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise InfluenceError(f"cannot add LoRA adapters: {_one_line(err)}") from None


def build_hf(name: str, input_shape: tuple[int, ...], num_classes: int) -> HFSequenceClassifier:
    """The architecture ``name`` (``hf:...``) with its pretrained weights and a head for ``num_classes``."""
    source, settings = parse_arch(name)
    tokenizer = load_tokenizer(source)
    model = load_pretrained(source, output_dim(num_classes))
    if len(input_shape) != 1:
        raise InfluenceError(f"model '{name}' reads token ids (text data), not inputs of shape {tuple(input_shape)}")
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and input_shape[0] > limit:
        raise InfluenceError(f"model '{name}' reads at most {limit} tokens; choose max_tokens ≤ {limit}")
    if settings.lora_rank:
        model = _apply_lora(model, settings)
    return HFSequenceClassifier(model, tokenizer.pad_token_id, tokenizer.sep_token_id)


def model_spec(name: str):
    """The registry entry of ``hf:...`` (the model registry's prefix resolver): another family's when one claims the
    model (`FAMILIES`: image classifiers, models/hf_image.py), else a sequence classifier's."""
    source, settings = parse_arch(name)
    for family in FAMILIES:
        claimed = family(name)
        if claimed is not None:
            return claimed
    # head_prefix: the module whose input is the text's embedding (Explore's feature map): "classifier" in the
    # BERT family (BERT, RoBERTa, DistilBERT, DeBERTa, ELECTRA); the "head" parameter group is the module's own.
    lr = 1e-3 if settings.lora_rank else 5e-5  # adapters start at zero and need a larger step than full fine-tuning
    return ModelSpec(name, f"Hugging Face sequence classifier {source}" + (f" + LoRA r={settings.lora_rank}" if settings.lora_rank else ""),
                     lambda shape, classes: build_hf(name, shape, classes), input_kinds=("text",),
                     check_dataset=lambda dataset: check_token_ids(dataset, source),
                     head_prefix=("model.base_model.model." if settings.lora_rank else "model.") + "classifier",
                     train_defaults={"optimizer": "adamw", "lr": lr, "epochs": 3, "batch_size": 16, "l2": 0.0, "patience": 1})


def check_token_ids(dataset, source: str) -> None:
    """Refuse a data set whose inputs are not token ids of ``source``'s tokenizer (TF-IDF features, another model's
    ids): the model would read them as ids of its own vocabulary."""
    made = (dataset.meta.get("featurizer_settings") or {}).get("model") if dataset.meta.get("features") == "hf" else None
    if made is None:
        raise InfluenceError(f"model 'hf:{source}' reads token ids; load the text with features 'hf' and this model's tokenizer")
    if (parse_arch(made)[0] if made.startswith(PREFIX) else made) != source:
        raise InfluenceError(f"the text was tokenized for '{made}', not for 'hf:{source}'; load it again for this model")
    if dataset.meta.get("feature_columns"):
        raise InfluenceError(f"model 'hf:{source}' reads only the text; load it without other feature columns")


# ------------------------------------------------------------------------------------------- featurization
@dataclass(frozen=True)
class TokenSettings:
    """The "hf" featurizer: the model whose tokenizer reads the text, and where sequences are cut or padded."""

    model: str
    max_tokens: int = 128

    def __post_init__(self) -> None:
        if not 2 <= self.max_tokens <= MAX_TOKENS:
            raise InfluenceError(f"max_tokens must be between 2 and {MAX_TOKENS}, not {self.max_tokens}")


def token_ids(source: str, texts: list, max_tokens: int, batch_size: int = 1024) -> np.ndarray:
    """N×max_tokens float32 token ids of ``texts`` (strings, or (first, second) pairs encoded as the tokenizer's
    sentence pair), truncated and padded with the pad id; float32 holds every id below 2**24 exactly."""
    if source.startswith(PREFIX):
        source = parse_arch(source)[0]
    tokenizer = load_tokenizer(source)
    if len(tokenizer) >= 2**24:
        raise InfluenceError(f"the vocabulary of '{source}' has more than 2**24 tokens")
    out = np.full((len(texts), max_tokens), tokenizer.pad_token_id, dtype=np.float32)
    for lo in range(0, len(texts), batch_size):
        chunk = list(texts[lo : lo + batch_size])
        pairs = bool(chunk) and not isinstance(chunk[0], str)
        first = [str(t[0]) if pairs else str(t) for t in chunk]
        second = [str(t[1]) for t in chunk] if pairs else None
        enc = tokenizer(first, second, padding="max_length", truncation=True, max_length=max_tokens)
        out[lo : lo + len(chunk)] = np.asarray(enc["input_ids"], dtype=np.float32)
    return out


def _pair(text) -> str | tuple[str, str]:
    """A text joined from two columns (data/text.py's separator) as the tokenizer's sentence pair, else the text."""
    from ..data.text import TEXT_SEPARATOR

    if isinstance(text, str) and TEXT_SEPARATOR in text:
        first, _, second = text.partition(TEXT_SEPARATOR)
        return first, second
    return text


def hf_features(train_texts: list[str], texts_by_split: dict[str, list], settings: TokenSettings | None) -> dict[str, np.ndarray]:
    """The "hf" featurizer (data/text.py's registry): token ids of every split by ``settings.model``'s tokenizer
    (nothing is fitted, so the training texts play no special part)."""
    if isinstance(settings, Mapping):  # as stored in a project's data set arguments (JSON)
        settings = TokenSettings(**settings)
    if not isinstance(settings, TokenSettings):
        raise InfluenceError("the hf features need the model whose tokenizer reads the text (TokenSettings(model=...))")
    return {split: token_ids(settings.model, [_pair(t) for t in texts], settings.max_tokens)
            for split, texts in texts_by_split.items()}


PREFIX_RESOLVERS[PREFIX] = model_spec  # Hugging Face sequence classifiers (issue 18): `hf:<folder or hub id>`
register_featurizer("hf", hf_features)  # their inputs: token ids (data/text.py's featurizer registry)


def choose_arch(model: str, max_tokens: int = 128, lora_rank: int = 0, offered: Mapping[str, str] | None = None
                ) -> tuple[str, TokenSettings]:
    """(the ``hf:`` architecture to train, the tokenizer settings its text is read with) for ``model``: any ``hf:``
    name or hub id / folder, or — ``offered`` given (a browser's choice) — only a name of ``offered`` (name → ``hf:``
    name). ``lora_rank`` > 0: LoRA adapters of that rank (alpha = 2·rank) instead of every parameter."""
    if offered is not None and model not in offered:
        raise InfluenceError(f"'{str(model)[:40]}' is not a model offered here; choose one of: {', '.join(offered) or 'none configured'}")
    arch = offered[model] if offered is not None else model if str(model).startswith("hf:") else f"hf:{model}"
    for key, value in (("max_tokens", max_tokens), ("lora_rank", lora_rank)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InfluenceError(f"{key} must be a whole number, not {str(value)[:20]!r}")
    settings = TokenSettings(parse_arch(arch)[0], max_tokens)
    if lora_rank:
        arch = arch_name(settings.model, HFSettings(lora_rank=lora_rank, lora_alpha=2.0 * lora_rank))
    return arch, settings
