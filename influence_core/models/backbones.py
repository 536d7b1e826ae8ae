"""Pretrained torchvision networks: as frozen feature extractors (embeddings stored once, a small head trained on
them) or with their last block fine-tuned.

Weights come by name and are read through one safe path (`loading.read_state_dict`: safetensors, or a torch file
with ``weights_only=True``):

- ``"random"``: the architecture's own initialisation, seeded (so equal settings give equal embeddings);
- a torchvision ``weights=`` enum name (``"IMAGENET1K_V1"``): the file torch hub keeps in its cache
  (``$TORCH_HOME/hub/checkpoints``), downloaded there on first use when the machine is online;
- a name from the server's ``[server.backbone_weights]`` table (administrator: name -> file), or, for the CLI and
  the library, a local ``weights_file``.

A browser only ever sends names. The inputs are normalised as the weights' transforms say (ImageNet mean / std) and
resized to the network's input size where it needs one (ViT); other networks take the images at their stored size.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qsl, urlencode

import numpy as np
import torch
from torch import nn

from ..data.base import Dataset, Split
from ..data.storage import FEATURES_ON_DISK_BYTES, DiskArray, StoredFeatures, write_array
from ..data.uploads import register_image_embedder
from ..errors import InfluenceError
from ..memo import MEMORY
from .architectures import output_dim
from .registry import PREFIX_RESOLVERS, ModelSpec, register_model

Progress = Callable[[float, str], None]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM = "random"
EMBED_BATCH = 128
EMBEDDINGS_VERSION = 1  # part of the cache key: bump when the embedding computation changes


@dataclass(frozen=True)
class Backbone:
    """A torchvision architecture: its builder and weights enum in `torchvision.models`, the classifier module the
    head replaces, the parameters of its last block, and the input size it needs (None = any size)."""

    name: str
    builder: str
    weights_enum: str
    head: str
    last_block: str  # name prefixes, comma-separated (as `grads.select_params` takes them)
    fixed_size: int | None = None


BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("resnet18", "resnet18", "ResNet18_Weights", "fc", "layer4"),
    Backbone("resnet50", "resnet50", "ResNet50_Weights", "fc", "layer4"),
    Backbone("efficientnet_b0", "efficientnet_b0", "EfficientNet_B0_Weights", "classifier.1", "features.7,features.8"),
    Backbone("convnext_tiny", "convnext_tiny", "ConvNeXt_Tiny_Weights", "classifier.2", "features.7,classifier.0"),
    Backbone("vit_b_16", "vit_b_16", "ViT_B_16_Weights", "heads.head", "encoder.layers.encoder_layer_11,encoder.ln",
             fixed_size=224),
)}
PREFIX = "tv:"  # registry names of the fine-tunable models: tv:resnet18, ...


@dataclass(frozen=True)
class BackboneSpec:
    """Which network embeds the images: ``arch`` (a `BACKBONES` name), ``weights`` (see the module docstring) and,
    for the CLI and the library only, a local ``weights_file`` (then ``weights`` is just its label)."""

    arch: str = "resnet18"
    weights: str = RANDOM
    weights_file: str | None = None
    seed: int = 0


def backbone_entry(arch: str) -> Backbone:
    name = arch[len(PREFIX):] if arch.startswith(PREFIX) else arch
    if name not in BACKBONES:
        raise InfluenceError(f"unknown backbone '{arch}'; choose one of: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def _weights_enum(entry: Backbone):
    import torchvision.models

    return getattr(torchvision.models, entry.weights_enum)


def weights_names(arch: str) -> list[str]:
    """The weights a user may choose for ``arch``: random, torchvision's enum names, then the server's own files."""
    from ..server_config import server_config

    return [RANDOM] + [w.name for w in _weights_enum(backbone_entry(arch))] + sorted(server_config().backbone_weights)


def input_size(arch: str, weights: str = RANDOM) -> int:
    """The network's own input size: its weights' crop size (224 for ImageNet weights; 384 for ViT SWAG), else 224."""
    entry = backbone_entry(arch)
    members = _weights_enum(entry).__members__
    if weights in members:
        return int(members[weights].transforms().crop_size[0])
    return entry.fixed_size or 224


def _normalisation(entry: Backbone, weights: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    members = _weights_enum(entry).__members__
    if weights in members:
        t = members[weights].transforms()
        return tuple(t.mean), tuple(t.std)
    return IMAGENET_MEAN, IMAGENET_STD


# ------------------------------------------------------------------------------------------- weights
def _download(url: str, dest: Path) -> None:
    """Fetch ``url`` into torch hub's cache file ``dest`` (what ``weights.get_state_dict`` would do)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(dest), progress=False)


def _weights_path(spec: BackboneSpec) -> Path | None:
    """The file holding ``spec``'s weights (downloaded into torch hub's cache when needed), None for random."""
    if spec.weights_file:
        return Path(spec.weights_file)
    if spec.weights in ("", None, RANDOM):
        return None
    entry = backbone_entry(spec.arch)
    members = _weights_enum(entry).__members__
    if spec.weights in members:
        url = members[spec.weights].url
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        if not cached.is_file():
            try:
                _download(url, cached)
            except Exception as err:  # noqa: BLE001 - no network, a proxy, a full disk: one line either way
                reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise InfluenceError(f"the {entry.name} weights {spec.weights} are not in torch's cache and could not be "
                                     f"downloaded ({reason[:120]}); fetch them once online, or ask the administrator "
                                     "for a weights file") from None
        return cached
    from ..server_config import server_config

    configured = server_config().backbone_weights
    if spec.weights in configured:
        return Path(configured[spec.weights])
    raise InfluenceError(f"unknown weights '{str(spec.weights)[:40]}' for {entry.name}; choose one of: "
                         f"{', '.join(weights_names(entry.name))}")


def _weights_token(path: Path | None) -> str:
    """What identifies the weights in cache keys: their file's SHA-256 (the name says nothing about the content);
    hashed once per file version (path, size, modification time)."""
    if path is None:
        return RANDOM
    try:
        stat = path.stat()
    except OSError:
        raise InfluenceError(f"the weights file '{path.name}' is missing on the server; ask the administrator") from None
    return MEMORY.get("file_hashes", f"{path}:{stat.st_size}:{stat.st_mtime_ns}", lambda: _file_sha256(str(path)))


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_network(arch: str, num_outputs: int = 1000, seed: int = 0) -> nn.Module:
    """A torchvision ``arch`` with ``num_outputs`` classifier outputs, initialised with ``seed``."""
    import torchvision.models

    entry = backbone_entry(arch)
    torch.manual_seed(seed)
    return getattr(torchvision.models, entry.builder)(weights=None, num_classes=num_outputs)


def load_backbone(spec: BackboneSpec) -> nn.Module:
    """The network of ``spec`` with its weights (checked like an upload: no code runs) and its classifier replaced
    by the identity: it maps images to embeddings. In eval mode, parameters frozen."""
    from .loading import read_state_dict

    entry = backbone_entry(spec.arch)
    path = _weights_path(spec)
    module = build_network(entry.name, seed=spec.seed)
    if path is not None:
        if not path.is_file():
            raise InfluenceError(f"the weights file for '{spec.weights}' is missing on the server; ask the administrator")
        state = read_state_dict(path.read_bytes(), path.name)
        missing, unexpected = module.load_state_dict(state, strict=False)
        head_keys = {f"{entry.head}.weight", f"{entry.head}.bias"}
        missing = [k for k in missing if k not in head_keys]  # a file without the ImageNet classifier is fine
        if missing or unexpected:
            bad = (missing or unexpected)[:3]
            raise InfluenceError(f"the weights '{spec.weights}' do not fit {entry.name}: "
                                 f"{'missing' if missing else 'unexpected'} keys e.g. {', '.join(bad)}")
    _set_submodule(module, entry.head, nn.Identity())
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def _set_submodule(module: nn.Module, name: str, value: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, leaf, value)


# ---------------------------------------------------------------------------------------- embeddings
def _pixel_batches(split: Split, meta: dict, batch_size: int):
    """uint8 N×H×W×C batches of an image split: read as stored from disk, or the normalisation undone in memory
    (as `data.prepare.raw_images`)."""
    pixels = getattr(split, "pixels", split)
    for lo in range(0, len(pixels), batch_size):
        rows = slice(lo, min(lo + batch_size, len(pixels)))
        if pixels.on_disk and pixels.store.layout == "nhwc":
            store = pixels.store
            index = np.arange(rows.start, rows.stop) if store.rows is None else store.rows[rows]
            yield store.array.read(index)
        else:
            x = pixels.rows(rows).double()
            mean = torch.tensor(meta["pixel_mean"], dtype=torch.float64).view(1, -1, 1, 1)
            std = torch.tensor(meta["pixel_std"], dtype=torch.float64).view(1, -1, 1, 1)
            yield ((x * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def network_inputs(pixels: np.ndarray, mean, std, size: int | None) -> torch.Tensor:
    """uint8 N×H×W×C -> float32 N×C×H×W as the weights' transforms expect: [0, 1], resized to ``size`` when the
    network needs one (bilinear, antialiased), standardised with the weights' ``mean`` / ``std``."""
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float() / 255.0
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s


def inference_network(module: nn.Module) -> nn.Module:
    """``module`` (frozen, eval mode) made fast for inference: batch norms folded into the convolutions before them
    (torch.fx's ``fuse``: W' = W·γ/σ, b' = (b − μ)·γ/σ + β; the same function to float rounding) and weights in
    channels-last order, which the images already have (N×H×W×C pixels, permuted): on the CPU about 1.8× faster for
    resnet18. A network fx cannot trace is only converted to channels last."""
    from torch.fx.experimental.optimization import fuse

    try:
        module = fuse(module.eval())
    except Exception:  # noqa: BLE001 - data-dependent control flow: keep the module as it is
        pass
    return module.to(memory_format=torch.channels_last)


@torch.inference_mode()
def compute_embeddings(module: nn.Module, split: Split, meta: dict, mean, std, size: int | None, device: torch.device,
                       batch_size: int = EMBED_BATCH, done: Callable[[int], None] | None = None):
    """float32 embedding batches of ``split``'s images, one batch of pixels in memory at a time (``module``:
    preferably an `inference_network`)."""
    for pixels in _pixel_batches(split, meta, batch_size):
        out = _embed_batch(module, pixels, mean, std, size, device)
        if done is not None:
            done(len(out))
        yield out


def _embed_batch(network: nn.Module, pixels: np.ndarray, mean, std, size: int | None, device) -> np.ndarray:
    x = network_inputs(pixels, mean, std, size).to(device).contiguous(memory_format=torch.channels_last)
    out = network(x).float().cpu().numpy()
    return out.reshape(len(out), -1)


def embed_pixels(module: nn.Module, pixels: np.ndarray, mean, std, size: int | None, batch_size: int = EMBED_BATCH
                 ) -> np.ndarray:
    """float32 embeddings of uint8 N×H×W×C ``pixels`` by the frozen ``module``: a Dask task of `embed_dataset`'s
    sharded path, on the worker's GPU when it has one (the fast network built once per worker and module)."""
    from .train import resolve_device

    dev = resolve_device(None)
    network = _worker_network(module).to(dev)
    with torch.inference_mode():
        return np.concatenate([_embed_batch(network, pixels[lo : lo + batch_size], mean, std, size, dev)
                               for lo in range(0, len(pixels), batch_size)])


@lru_cache(maxsize=2)  # on a Dask worker, by the module object itself (the memory layer's keys are text)
def _worker_network(module: nn.Module) -> nn.Module:
    return inference_network(module)


def dask_embeddings(client, module: nn.Module, split: Split, meta: dict, mean, std, size: int | None,
                    batch_size: int = EMBED_BATCH, shard_rows: int | None = None,
                    done: Callable[[int], None] | None = None):
    """`compute_embeddings` sharded on an open Dask ``client``: the frozen network sent to every worker once, then
    one task per shard of ``shard_rows`` images (default: about 64 MiB of pixels), sent as uint8 pixels — so any
    worker can embed them, a remote or GPU one too — and a few shards per worker in flight at a time (memory stays
    flat); the embeddings come back in order, shard by shard."""
    from collections import deque

    from ..cluster import _one_line

    if shard_rows is None:
        per_image = int(np.prod(split.feature_shape))
        shard_rows = max(batch_size, (64 << 20) // max(per_image, 1) // batch_size * batch_size)
    depth = 2 * max(1, len(client.scheduler_info().get("workers", {})))
    scattered = client.scatter(module, broadcast=True, hash=False)
    window: deque = deque()

    def result():
        try:
            out = window.popleft().result()
        except Exception as err:  # noqa: BLE001 - a worker lost, out of memory: one line for the user
            raise InfluenceError(f"embedding the images on the Dask cluster failed: {_one_line(err)}") from None
        if done is not None:
            done(len(out))
        return out

    try:
        for pixels in _pixel_batches(split, meta, shard_rows):
            window.append(client.submit(embed_pixels, scattered, pixels, mean, std, size, batch_size, pure=False))
            if len(window) >= depth:
                yield result()
        while window:
            yield result()
    finally:
        client.cancel(list(window) + [scattered], force=True)


def embedding_key(dataset: Dataset, spec: BackboneSpec, weights_token: str) -> str:
    """The cache key of a data set's embeddings: data fingerprint, network, weights' content, version."""
    payload = {"dataset": dataset.fingerprint(), "spec": {**asdict(spec), "weights_file": None},
               "weights": weights_token, "version": EMBEDDINGS_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _embeddings_folder(store) -> Path:
    """Where embeddings are kept: ``store.path("embeddings")`` of a `Workspace`, a folder given, else the arrays
    folder of the current load (a project's ``arrays/``, see `data.storage.arrays_in`)."""
    if store is None:
        from ..data.storage import _arrays_folder

        return _arrays_folder() / "embeddings"
    if hasattr(store, "path"):
        return store.path("embeddings", "x").parent
    return Path(store)


def _stored(path: Path) -> DiskArray | None:
    try:
        found = DiskArray(path)
        json.loads(found.sidecar.read_text())["digest"]
        return found
    except (InfluenceError, OSError, ValueError, KeyError):
        return None


class EmbeddedSplit(Split):
    """A split whose model inputs are embeddings and which keeps its images (``pixels``) for the Review cards and
    the exports: row for row, through subsets and relabelling."""

    def __init__(self, x, y, sensitive=None, pixels: Split | None = None) -> None:
        super().__init__(x, y, sensitive)
        self.pixels = pixels

    def subset(self, index) -> "EmbeddedSplit":
        out = super().subset(index)
        return EmbeddedSplit(out.store if out.store is not None else out.x, out.y, out.sensitive,
                             None if self.pixels is None else self.pixels.subset(index))

    def with_labels(self, y) -> "EmbeddedSplit":
        return EmbeddedSplit(self.store if self.store is not None else self.x, y, self.sensitive,
                             None if self.pixels is None else self.pixels.with_labels(y))


def embed_dataset(dataset: Dataset, spec: BackboneSpec, store=None, progress: Progress | None = None,
                  device: str | torch.device | None = None, batch_size: int = EMBED_BATCH, *, client=None,
                  shard_rows: int | None = None) -> Dataset:
    """``dataset`` (images) with the frozen backbone's embeddings as its features: same labels, splits, noise mask
    and originals; kind stays "image" (Review shows the pictures: each split keeps its ``pixels``).

    Computed once per (data fingerprint, backbone, weights' content), a batch at a time, streamed to float32 `.npy`
    files under ``store`` (see `_embeddings_folder`) and reused; read from disk a batch at a time past
    `FEATURES_ON_DISK_BYTES`, else held in memory. On the GPU when there is one (``device``); sharded on an open
    Dask ``client`` when given (`dask_embeddings`: the same embeddings, on the workers' GPUs when they have one)."""
    from .train import resolve_device

    if dataset.kind != "image" or "pixel_mean" not in dataset.meta:
        raise InfluenceError(f"a backbone embeds images; '{dataset.name}' is {dataset.kind} data")
    entry = backbone_entry(spec.arch)
    path = _weights_path(spec)
    key = embedding_key(dataset, spec, _weights_token(path))
    folder = _embeddings_folder(store)
    splits = ("train", "val", "test")
    files = {s: folder / f"{entry.name}-{key}-{s}.npy" for s in splits}
    found = {s: _stored(p) for s, p in files.items()}
    if any(v is None for v in found.values()):
        dev = resolve_device(device)
        frozen = load_backbone(spec)
        module = inference_network(frozen).to(dev)
        mean, std = _normalisation(entry, spec.weights)
        size = input_size(entry.name, spec.weights) if entry.fixed_size else None
        total = sum(len(getattr(dataset, s)) for s in splits)
        seen = [0]

        def done(n: int) -> None:
            seen[0] += n
            if progress is not None:
                progress(seen[0] / max(total, 1), f"embedding images with {entry.name}: {seen[0]:,} of {total:,}")

        for s in splits:
            if found[s] is not None:
                seen[0] += len(getattr(dataset, s))
                continue
            part = getattr(dataset, s)
            dim = _embedding_dim(module, dataset, mean, std, size, dev)
            batches = (compute_embeddings(module, part, dataset.meta, mean, std, size, dev, batch_size, done)
                       if client is None else
                       dask_embeddings(client, frozen, part, dataset.meta, mean, std, size, batch_size, shard_rows, done))
            found[s] = write_array(files[s], batches, (len(part), dim), "float32")
    on_disk = sum(a.shape[0] * a.shape[1] * 4 for a in found.values()) > FEATURES_ON_DISK_BYTES

    def split(s: str) -> EmbeddedSplit:
        part = getattr(dataset, s)
        x = StoredFeatures(found[s]) if on_disk else torch.from_numpy(found[s].read(slice(None)))
        return EmbeddedSplit(x, part.y, part.sensitive, pixels=part)

    meta = {**dataset.meta, "backbone": {"arch": entry.name, "weights": spec.weights, "key": key,
                                         "dim": int(found["train"].shape[1])}}
    return Dataset(name=dataset.name, train=split("train"), val=split("val"), test=split("test"),
                   classes=list(dataset.classes), kind="image", noise_mask=dataset.noise_mask,
                   clean_labels=dataset.clean_labels, feature_names=None, source_index=dataset.source_index,
                   sensitive_name=dataset.sensitive_name, meta=meta)


@torch.inference_mode()
def _embedding_dim(module: nn.Module, dataset: Dataset, mean, std, size: int | None, dev) -> int:
    """The embedding width, from one image (the network decides it, e.g. 512 for resnet18)."""
    pixels = next(_pixel_batches(dataset.train, dataset.meta, 1))
    return int(module(network_inputs(pixels, mean, std, size).to(dev)).reshape(1, -1).shape[1])


# ------------------------------------------------------------------------------------ last-block fine-tuning
class LastBlockNetwork(nn.Module):
    """A torchvision network that takes the data set's standardised images, with everything but its last block and
    its new head frozen. The inputs are mapped back to [0, 1] with the data set's per-channel statistics and
    standardised as the weights expect (``input_mean`` / ``input_std`` and ``mean`` / ``std``: buffers, so they are
    saved with the weights); resized where the network needs a fixed size."""

    def __init__(self, arch: str, num_outputs: int) -> None:
        super().__init__()
        entry = backbone_entry(arch)
        self.net = build_network(entry.name, num_outputs)
        self.size = entry.fixed_size
        self.last_block_params = ",".join(f"net.{p}" for p in entry.last_block.split(",") + [entry.head])
        for name in ("input_mean", "input_std", "mean", "std"):
            default = IMAGENET_STD if name.endswith("std") else IMAGENET_MEAN
            self.register_buffer(name, torch.tensor(default if not name.startswith("input") else
                                                    (0.0, 0.0, 0.0) if name == "input_mean" else (1.0, 1.0, 1.0)).view(1, 3, 1, 1))
        trainable = tuple(p.strip() for p in self.last_block_params.split(","))
        for name, p in self.named_parameters():
            p.requires_grad_(any(name == t or name.startswith(t + ".") for t in trainable))

    def train(self, mode: bool = True) -> "LastBlockNetwork":
        """Only the trained block and the head switch to training mode: the frozen layers' batch-norm statistics
        stay as the weights have them."""
        super().train(mode)
        if mode:
            self.net.eval()
            for prefix in self.last_block_params.split(","):
                self.get_submodule(prefix).train()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.input_std + self.input_mean  # back to [0, 1]
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                                                align_corners=False)
        return self.net((x - self.mean) / self.std)


def last_block_state(dataset: Dataset, spec: BackboneSpec) -> dict[str, torch.Tensor]:
    """Initial weights of `LastBlockNetwork` for ``dataset``: the backbone's weights (a fresh head) and the
    normalisations (the data set's statistics in, the weights' out)."""
    entry = backbone_entry(spec.arch)
    module = LastBlockNetwork(entry.name, output_dim(dataset.num_classes))
    backbone = load_backbone(spec)
    for name, value in backbone.state_dict().items():
        module.net.state_dict()[name].copy_(value)
    mean, std = _normalisation(entry, spec.weights)
    module.input_mean.copy_(torch.tensor(dataset.meta["pixel_mean"]).view(1, -1, 1, 1))
    module.input_std.copy_(torch.tensor(dataset.meta["pixel_std"]).view(1, -1, 1, 1))
    module.mean.copy_(torch.tensor(mean).view(1, -1, 1, 1))
    module.std.copy_(torch.tensor(std).view(1, -1, 1, 1))
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _check_finetune_data(dataset: Dataset) -> None:
    if dataset.kind != "image" or "pixel_mean" not in dataset.meta:
        raise InfluenceError(f"fine-tuning a backbone needs images; '{dataset.name}' is {dataset.kind} data")
    if getattr(dataset.train, "pixels", None) is not None:
        raise InfluenceError("this data set holds a backbone's embeddings; load the images without a backbone to fine-tune")


def finetune_last_block(dataset: Dataset, spec: BackboneSpec, config=None, *, progress=None, device=None,
                        should_stop=None):
    """Train the last block and a new head of ``spec``'s network on the images of ``dataset`` (the rest frozen):
    a `FittedModel` of architecture `arch_name(spec)` (``tv:<arch>[?weights=NAME]``); score it with
    ``params="last_block"`` (that block and the head) or ``"head"``."""
    from .train import train_model

    return train_model(dataset, arch_name(spec), config, progress=progress, device=device, should_stop=should_stop)


# ------------------------------------------------------------------- tv:<arch>?weights=NAME as architecture names
def arch_name(spec: BackboneSpec) -> str:
    """The architecture that fine-tunes ``spec``'s last block from its weights: ``tv:<arch>`` (random, seed 0),
    ``tv:<arch>?weights=NAME`` (a weights name) or, for the CLI and the library, ``...&file=PATH``."""
    entry = backbone_entry(spec.arch)
    if spec.seed:
        raise InfluenceError("a fine-tuned backbone starts from seed 0; the training seed is TrainConfig's")
    if spec.weights_file is None and spec.weights in ("", None, RANDOM):
        return PREFIX + entry.name
    query = {"weights": spec.weights or "file"}
    if spec.weights_file:
        query["file"] = str(spec.weights_file)
    return f"{PREFIX}{entry.name}?{urlencode(query)}"


def parse_arch(name: str) -> BackboneSpec:
    """The `BackboneSpec` of an architecture name ``tv:<arch>[?weights=NAME[&file=PATH]]`` (see `arch_name`)."""
    arch, _, query = name[len(PREFIX):].partition("?") if name.startswith(PREFIX) else (name, "", "")
    values = dict(parse_qsl(query, keep_blank_values=True))
    unknown = set(values) - {"weights", "file"}
    if unknown:
        raise InfluenceError(f"unknown setting '{sorted(unknown)[0][:40]}' in '{name[:80]}'; known: weights, file")
    return BackboneSpec(backbone_entry(arch).name, values.get("weights", RANDOM), values.get("file") or None)


def _last_block_spec(name: str) -> ModelSpec:
    """The registry entry of ``tv:<arch>[?weights=...]``: a `LastBlockNetwork` whose training starts from the
    weights (`last_block_state`) and whose model key holds their content (`_weights_token`)."""
    spec = parse_arch(name)
    entry = backbone_entry(spec.arch)

    def initial_state(dataset: Dataset) -> dict[str, torch.Tensor]:
        _check_finetune_data(dataset)
        return last_block_state(dataset, spec)

    return ModelSpec(
        name, f"torchvision {entry.name}, last block + head trained from weights {spec.weights}, the rest frozen",
        lambda shape, k: LastBlockNetwork(entry.name, output_dim(k)), input_kinds=("image",),
        head_prefix=f"net.{entry.head}",
        train_defaults={"optimizer": "adam", "lr": 1e-3, "epochs": 10, "batch_size": 64, "l2": 1e-4, "patience": 2,
                        "augment": False},
        initial_state=initial_state, weights_token=lambda: _weights_token(_weights_path(spec)))


def _embed_image_zip(dataset: Dataset, backbone: str, weights: str, weights_file: str | None) -> Dataset:
    """`data.uploads.load_image_zip`'s ``backbone=``: the zip's images embedded by that frozen network — sharded
    on the server's Dask scheduler when ``$INFLUENCE_DASK_SCHEDULER`` names one, else in this process."""
    from ..cluster import dask_client, parse_cluster

    with dask_client(parse_cluster()) as client:
        return embed_dataset(dataset, BackboneSpec(backbone, weights, weights_file), client=client)


register_image_embedder(input_size, _embed_image_zip)


def _register_backbones() -> None:
    """torchvision networks with their last block fine-tuned: ``tv:resnet18``... (random weights, seed 0) offered
    by name; ``tv:resnet18?weights=NAME`` (pretrained) resolved on first use."""
    for name in BACKBONES:
        register_model(replace(_last_block_spec(PREFIX + name),
                               description=f"torchvision {name}, last block + head trained, the rest frozen"))


_register_backbones()
PREFIX_RESOLVERS[PREFIX] = _last_block_spec  # tv:<arch>?weights=NAME: fine-tuning from pretrained weights
