"""The trainer: seeded, with progress callbacks, early stopping, cancellation and optional checkpoints.

The objective is the one every Hessian-based method assumes: (1/Σw) Σ w_i ℓ_i + (l2/2)‖θ‖², with the L2
term written into the loss (not as optimiser weight decay) so the trained model's Hessian is well defined.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn

from ..data.base import Dataset, Split
from ..errors import InfluenceError
from ..grads import per_sample_loss, predict_labels
from .registry import build_model, get_model_spec
from .sparse_linear import reads_sparse, sparse_logits

TrainProgress = Callable[[dict], None]


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. ``None`` fields take the architecture's defaults (see the model registry)."""

    optimizer: str | None = None  # "lbfgs" (full batch), "adam", "adamw" (fine-tuning) or "sgd"
    lr: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    l2: float | None = None
    seed: int = 0
    # Early stopping on validation loss after this many epochs without improvement (0 = off); the best epoch's
    # weights are restored. None = the architecture's default (on for neural networks: they memorise noisy labels).
    patience: int | None = None
    augment: bool | None = None  # images: random 32×32 crop of the 4-pixel-padded image + horizontal flip
    checkpoint_every: int = 0  # save (state, lr) every k epochs for TracIn / TDA (0 = only the final model)
    max_iter: int = 500  # L-BFGS iterations

    # (field, smallest value, whether the smallest is allowed): a setting outside is refused in one line, wherever
    # the config comes from (CLI, page, notebook), before anything trains.
    LIMITS: ClassVar[tuple] = (("lr", 0.0, False), ("epochs", 1, True), ("batch_size", 1, True), ("l2", 0.0, True),
                               ("seed", 0, True), ("patience", 0, True), ("checkpoint_every", 0, True),
                               ("max_iter", 1, True))
    OPTIMIZERS: ClassVar[tuple] = ("lbfgs", "adam", "adamw", "sgd")

    def __post_init__(self) -> None:
        for name, low, inclusive in self.LIMITS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
                    (value < low if inclusive else value <= low):
                bound = f"at least {low:g}" if inclusive else f"above {low:g}"
                raise InfluenceError(f"training setting {name} must be a number {bound}, not {value!r}")
        if self.optimizer is not None and self.optimizer not in self.OPTIMIZERS:
            raise InfluenceError(f"unknown optimizer '{self.optimizer}'; choose lbfgs, adam, adamw or sgd")

    def resolved(self, arch: str) -> "TrainConfig":
        base = {"optimizer": "adam", "lr": 1e-3, "epochs": 20, "batch_size": 128, "l2": 1e-4, "patience": 0, "augment": False}
        base.update(get_model_spec(arch).train_defaults)
        filled = {k: (getattr(self, k) if getattr(self, k) is not None else base[k]) for k in base}
        return replace(self, **filled)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def train_settings(config: TrainConfig | dict | None) -> dict:
    """Training settings as the dict a project's state keeps (known fields only; an unknown one: one line)."""
    if config is None:
        return {}
    if isinstance(config, TrainConfig):
        return asdict(config)
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise InfluenceError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return dict(config)


@dataclass
class Checkpoint:
    """Parameters saved during training with the learning rate in force (TracIn weights by it)."""

    epoch: int
    lr: float
    state: dict[str, torch.Tensor]


@dataclass
class FittedModel:
    """A trained (or uploaded) model with what the influence methods need to know about its training."""

    module: nn.Module
    arch: str
    config: TrainConfig
    history: list[dict] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    dataset_fingerprint: str = ""

    @property
    def l2(self) -> float:
        return float(self.config.l2 or 0.0)

    @property
    def head_prefix(self) -> str:
        try:
            return get_model_spec(self.arch).head_prefix
        except InfluenceError:
            return ""

    def fingerprint(self) -> str:
        """A content hash of the weights (cache key for scores)."""
        h = hashlib.sha256(self.arch.encode())
        for name, t in self.module.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def checkpoints_fingerprint(self) -> str:
        """A content hash of the training checkpoints (epoch, learning rate, weights): TracIn-like scores depend on
        the trajectory, not only on the final weights."""
        h = hashlib.sha256()
        for c in self.checkpoints:
            h.update(f"{c.epoch}:{c.lr!r}".encode())
            for name, t in c.state.items():
                h.update(name.encode())
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """CUDA when available and not overridden, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InfluenceError("--device cuda was asked for but no CUDA GPU is available")
    return dev


@torch.no_grad()
def evaluate_split(module: nn.Module, split: Split, batch_size: int = 512, device: torch.device | str = "cpu") -> dict:
    """Mean loss and accuracy of ``module`` on ``split``."""
    module.eval()
    loss, correct = 0.0, 0
    for x, y in split.batches(batch_size, device):
        logits = module(x)
        loss += float(per_sample_loss(logits, y).sum())
        correct += int((predict_labels(logits) == y).sum())
    n = max(len(split), 1)
    return {"loss": loss / n, "accuracy": correct / n}


def _objective(module: nn.Module, x, y, w, l2: float, forward: Callable | None = None) -> torch.Tensor:
    losses = per_sample_loss((forward or module)(x), y)
    data = (losses * w).sum() / w.sum() if w is not None else losses.mean()
    if l2:
        data = data + 0.5 * l2 * sum((p * p).sum() for p in module.parameters())
    return data


def _loader_settings(split: Split, dev: torch.device, workers: int | None) -> tuple[int, bool]:
    """(reader processes, pinned memory) for the training loader: see `train_model`'s ``loader_workers``."""
    on_gpu = dev.type == "cuda"
    if workers is None:
        workers = 2 if on_gpu and split.on_disk else 0
    return max(int(workers), 0), on_gpu


def _streamed_objective(module: nn.Module, split: Split, w_all: torch.Tensor | None, l2: float, dev: torch.device,
                        backward: bool, batch_size: int = 1024) -> torch.Tensor:
    """The training objective of `_objective` over the whole split, summed a batch at a time (gradients accumulated
    when ``backward``): full-batch L-BFGS without the whole split in memory."""
    denom = float(w_all.sum()) if w_all is not None else float(len(split))
    total = torch.zeros((), dtype=torch.float64)
    with torch.set_grad_enabled(backward):
        for lo, (x, y) in zip(range(0, len(split), batch_size), split.batches(batch_size, dev)):
            losses = per_sample_loss(module(x), y)
            if w_all is not None:
                losses = losses * w_all[lo : lo + len(y)].to(dev)
            part = losses.sum() / denom
            if backward:
                part.backward()
            total += float(part.detach())
        if l2:
            reg = 0.5 * l2 * sum((p * p).sum() for p in module.parameters())
            if backward:
                reg.backward()
            total += float(reg.detach())
    return total


def train_model(
    dataset: Dataset,
    arch: str = "mlp",
    config: TrainConfig | None = None,
    *,
    sample_weight: torch.Tensor | np.ndarray | None = None,
    device: str | torch.device | None = None,
    progress: TrainProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
    init_state: dict | None = None,
    loader_workers: int | None = None,
) -> FittedModel:
    """Train architecture ``arch`` on ``dataset.train`` and report validation and test accuracy.

    ``progress`` receives a dict per epoch (epoch, loss, train/val accuracy, fraction done);
    ``should_stop`` returning True cancels cleanly and keeps the best model so far. The training rows are read a
    mini-batch at a time (from disk for a stored split); ``loader_workers`` processes read ahead (None = automatic:
    on a GPU, 2 for data on disk, with pinned memory; on the CPU none, the cores are busy training).
    """
    config = (config or TrainConfig()).resolved(arch)
    dev = resolve_device(device)
    spec = get_model_spec(arch)
    if dataset.kind not in spec.input_kinds:
        raise InfluenceError(f"model '{arch}' needs {' or '.join(spec.input_kinds)} data, '{dataset.name}' is {dataset.kind}")
    if spec.check_dataset is not None:
        spec.check_dataset(dataset)
    if len(dataset.train) == 0:
        raise InfluenceError("the training split is empty")
    torch.manual_seed(config.seed)
    module = build_model(arch, dataset.input_shape, dataset.num_classes).to(dev)
    if init_state is None and spec.initial_state is not None:  # pretrained weights (models/backbones.py)
        init_state = spec.initial_state(dataset)
    if init_state is not None:
        module.load_state_dict(init_state)
    train, y_all = dataset.train, dataset.train.y
    w_all = None if sample_weight is None else torch.as_tensor(np.asarray(sample_weight), dtype=torch.float32)
    if w_all is not None and (w_all.shape[0] != len(y_all) or bool((w_all < 0).any()) or float(w_all.sum()) <= 0):
        raise InfluenceError("sample weights must be non-negative, one per training sample, not all zero")
    history: list[dict] = []
    checkpoints: list[Checkpoint] = []
    t0 = time.perf_counter()

    if config.optimizer == "lbfgs":
        opt = torch.optim.LBFGS(module.parameters(), lr=1.0, max_iter=config.max_iter, tolerance_grad=1e-9,
                                tolerance_change=1e-12, history_size=50, line_search_fn="strong_wolfe")
        module.train()
        if train.on_disk:  # full-batch L-BFGS on data that stays on disk: the objective summed batch by batch
            def closure():
                opt.zero_grad()
                return _streamed_objective(module, train, w_all, config.l2, dev, backward=True)

            opt.step(closure)
            final_loss = float(_streamed_objective(module, train, w_all, config.l2, dev, backward=False))
        else:
            forward = None
            if train.sparse is not None and reads_sparse(module):  # TF-IDF rows: X Wᵀ over the nonzeros only
                x, forward = train.sparse.torch_sparse(dev), partial(sparse_logits, module)
            else:
                x = train.x.to(dev)
            y = y_all.to(dev)
            w = None if w_all is None else w_all.to(dev)

            def closure():
                opt.zero_grad()
                loss = _objective(module, x, y, w, config.l2, forward)
                loss.backward()
                return loss

            opt.step(closure)
            final_loss = float(_objective(module, x, y, w, config.l2, forward).detach())
        _log_epoch(module, dataset, dev, history, 1, 1, final_loss, progress)
        if config.checkpoint_every:
            checkpoints.append(Checkpoint(1, 1.0, _state_copy(module)))
    else:
        # TrainConfig refused any other optimizer when it was made
        opt_cls = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}[config.optimizer]
        kwargs = {"momentum": 0.9} if config.optimizer == "sgd" else {}
        # Frozen parameters (a LoRA model's base) stay out of the optimiser. AdamW's decoupled decay (0.01) is not in
        # the objective the Hessian-based methods assume: fine-tuned models keep l2 = 0 and rely on their damping.
        opt = opt_cls([p for p in module.parameters() if p.requires_grad], lr=config.lr, **kwargs)
        gen = torch.Generator().manual_seed(config.seed)
        augment = bool(config.augment) and dataset.kind == "image"
        best, best_state, best_epoch, stale = float("inf"), None, 0, 0
        workers, pin = _loader_settings(train, dev, loader_workers)
        for epoch in range(1, config.epochs + 1):
            module.train()
            perm = torch.randperm(len(y_all), generator=gen)
            total = 0.0
            for b, (idx, xb, yb) in enumerate(train.loader(perm, config.batch_size, num_workers=workers, pin_memory=pin)):
                if len(idx) == 1 and b > 0:
                    continue  # BatchNorm cannot train on one sample; it is in another batch next epoch
                w = None if w_all is None else w_all[idx].to(dev)
                if w is not None and float(w.sum()) == 0:
                    continue
                opt.zero_grad()
                xb = xb.to(dev, non_blocking=pin)
                if augment:
                    xb = augment_images(xb, gen)
                loss = _objective(module, xb, yb.to(dev, non_blocking=pin), w, config.l2)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            rec = _log_epoch(module, dataset, dev, history, epoch, config.epochs, total / len(perm), progress)
            if config.checkpoint_every and epoch % config.checkpoint_every == 0:
                checkpoints.append(Checkpoint(epoch, float(opt.param_groups[0]["lr"]), _state_copy(module)))
            if config.patience:
                if rec["val_loss"] < best - 1e-6:
                    best, best_state, best_epoch, stale = rec["val_loss"], _state_copy(module), epoch, 0
                else:
                    stale += 1
                    if stale >= config.patience:
                        break
            if should_stop is not None and should_stop():
                history[-1]["cancelled"] = True
                break
        if best_state is not None:
            module.load_state_dict(best_state)
            # The model scored is the best epoch's: TracIn's checkpoints end there too.
            checkpoints = [c for c in checkpoints if c.epoch < best_epoch]
            history[best_epoch - 1]["best"] = True

    module = module.cpu().eval()
    metrics = {
        "train_accuracy": evaluate_split(module, dataset.train)["accuracy"],
        "val_accuracy": evaluate_split(module, dataset.val)["accuracy"],
        "test_accuracy": evaluate_split(module, dataset.test)["accuracy"],
        "train_seconds": time.perf_counter() - t0,
    }
    final_epoch = next((h["epoch"] for h in history if h.get("best")), len(history))
    metrics["epochs_run"], metrics["best_epoch"] = len(history), final_epoch
    if config.checkpoint_every and (not checkpoints or checkpoints[-1].epoch != final_epoch):
        # TracIn's sum always ends at the model the user scores: add the final (best) parameters.
        checkpoints.append(Checkpoint(final_epoch, float(opt.param_groups[0]["lr"]), _state_copy(module)))
    checkpoints = [Checkpoint(c.epoch, c.lr, {k: v.cpu() for k, v in c.state.items()}) for c in checkpoints]
    return FittedModel(module, arch, config, history, checkpoints, metrics, dataset.fingerprint())


def augment_images(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """The standard CIFAR augmentation on a batch: a random H×W crop of the zero-padded image (zero = the
    training mean, images being standardised), then a horizontal flip with probability 1/2."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    out = padded[torch.arange(b, device=x.device)[:, None, None, None], torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
    flip = (torch.rand(b, generator=gen) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


MEMORISATION_GAP = 0.20
MEMORISATION_WARNING = ("the model fits its training labels much better than new data; scores of memorised samples "
                        "are weak — use out-of-fold scoring")


def memorisation_warning(metrics: dict) -> str | None:
    """The warning to show when training accuracy exceeds validation accuracy by more than 20 points, else None."""
    train, val = metrics.get("train_accuracy"), metrics.get("val_accuracy")
    if train is None or val is None or train - val <= MEMORISATION_GAP:
        return None
    return f"training accuracy {train:.0%} vs validation {val:.0%}: {MEMORISATION_WARNING}"


def _state_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _log_epoch(module, dataset, dev, history, epoch, epochs, train_loss, progress) -> dict:
    val = evaluate_split(module, dataset.val, device=dev)
    rec = {"epoch": epoch, "loss": train_loss, "val_loss": val["loss"], "val_accuracy": val["accuracy"], "fraction": epoch / epochs}
    history.append(rec)
    if progress is not None:
        progress(rec)
    return rec


def fitted_from_module(module: nn.Module, arch: str, dataset: Dataset, l2: float = 0.0) -> FittedModel:
    """Wrap a module trained elsewhere (an upload) so the methods can score it."""
    module = module.cpu().eval()
    metrics = {
        "val_accuracy": evaluate_split(module, dataset.val)["accuracy"],
        "test_accuracy": evaluate_split(module, dataset.test)["accuracy"],
    }
    return FittedModel(module, arch, TrainConfig(l2=l2), [], [], metrics, dataset.fingerprint())
