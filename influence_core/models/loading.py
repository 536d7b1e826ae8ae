"""Uploaded models, loaded without running anything from the file.

- A state_dict for a built-in architecture: ``.safetensors`` (no code can run by design) or a torch file
  (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) read with ``torch.load(weights_only=True)``; a pickle that would build
  arbitrary Python objects is refused, never executed.
- A ``torch.export`` program (``.pt2``) for a custom architecture: the archive is checked with `zipfile` first
  (`pt2_check.check_pt2_archive`: no pickled weights, constants or inputs, no compiled code, only ATen operators,
  plain symbolic shapes) and refused otherwise; its ``guards_code`` is dropped, never executed.
Then the model must fit the data: keys, shapes, inputs and the number of outputs, each mismatch said precisely.
"""

from __future__ import annotations

import io
import logging
import os
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from ..data.base import Dataset
from ..data.uploads import check_size, register_content_check
from ..errors import InfluenceError
from .architectures import output_dim
from .pt2_check import check_loaded_program, check_pt2_archive
from .registry import build_model, get_model_spec
from .train import FittedModel, TrainConfig, fitted_from_module

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
EXPORTED_ARCH = "exported"  # the `arch` of a FittedModel built from a torch.export program
MAX_ABS_WEIGHT = 1e6  # a larger weight means a damaged file or a diverged training: scoring would fail much later


class ExportedModule(nn.Module):
    """A torch.export program as a module. Its graph is fixed as exported, so train()/eval() only set the flag
    (the unlifted graph module refuses them)."""

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        self.program = program

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)

    def train(self, mode: bool = True) -> "ExportedModule":
        self.training = mode
        return self


# -------------------------------------------------------------------------------------------- reading
class _LoggedErrors(logging.Handler):
    """The exceptions a logger reports with ``exc_info`` (torch.export.load logs the reason it cannot read a file)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_state_dict(data: bytes, filename: str) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or torch state_dict file, without executing anything it contains."""
    suffix = Path(filename).suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load as load_safetensors

        try:
            obj = load_safetensors(data)
        except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
            raise InfluenceError(f"cannot read '{filename}' as safetensors: {str(err).splitlines()[0]}") from None
    elif suffix in TORCH_SUFFIXES:
        try:
            with warnings.catch_warnings():  # torch warns about pickle protocols before refusing; the refusal is the news
                warnings.simplefilter("ignore", UserWarning)
                obj = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        except Exception as err:  # noqa: BLE001 - pickle and zip errors alike
            text = str(err)
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
            if "Weights only load failed" in text or found:
                what = f" ({found.group(1)})" if found else ""
                raise InfluenceError(
                    f"refused to load '{filename}': it holds Python objects that would run code when unpickled{what}; "
                    "save only the weights (torch.save(model.state_dict(), ...) or safetensors)") from None
            raise InfluenceError(f"cannot read '{filename}' as a torch file: {_first_line(err)}") from None
    else:
        raise InfluenceError(f"weights must be .safetensors, {', '.join(TORCH_SUFFIXES)} or a .pt2 torch.export program, not '{filename}'")
    return _as_state_dict(obj, filename)


@register_content_check("weights")
def check_weights_bytes(data: bytes, filename: str) -> None:
    """Uploaded weights read without running anything: a .pt2 archive `pt2_check` accepts, else a state_dict."""
    if Path(filename).suffix.lower() == ".pt2":
        check_pt2_archive(data, filename)
    else:
        read_state_dict(data, filename)


def _as_state_dict(obj, filename: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):  # common checkpoint wrappers
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise InfluenceError(f"'{filename}' holds a {type(obj).__name__}, not a state_dict (a dict of parameter tensors)")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise InfluenceError(f"'{filename}' is not a plain state_dict: entry '{bad[0]}' is a {type(obj[bad[0]]).__name__}, not a tensor")
    check_tensor_values(obj, filename)
    # Wrappers add prefixes: DataParallel 'module.', torch.compile '_orig_mod.'.
    for prefix in ("module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items()}
    return {k: (v.float() if v.is_floating_point() else v) for k, v in obj.items()}


def check_tensor_values(state: dict, filename: str) -> None:
    """Refuse tensors that would load wrong or fail later: complex (the imaginary part would be dropped), sparse or
    meta (a traceback on loading), quantized, NaN / infinite or beyond `MAX_ABS_WEIGHT` (scoring fails later)."""
    for key, v in state.items():
        if not isinstance(v, torch.Tensor):
            continue
        why = None
        if v.layout != torch.strided:
            why = f"is a sparse tensor ({v.layout}); save dense weights (tensor.to_dense())"
        elif v.is_meta:
            why = "is a meta tensor, which holds no values; save the trained weights"
        elif v.is_complex():
            why = "holds complex numbers; weights must be real"
        elif v.is_quantized:
            why = "is a quantized tensor; save float weights"
        elif v.is_floating_point() and v.numel():
            if not bool(torch.isfinite(v).all()):
                why = "holds NaN or infinite values"
            elif (largest := float(v.abs().max())) > MAX_ABS_WEIGHT:
                why = f"holds values as large as {largest:g} (the limit is {MAX_ABS_WEIGHT:g})"
            if why:
                why += "; the file is damaged or the training diverged"
        if why:
            raise InfluenceError(f"refused to load '{filename}': entry '{key}' {why}")


# ------------------------------------------------------------------------------------------- checking
def _output_message(got: int, dataset: Dataset) -> str:
    want = output_dim(dataset.num_classes)
    detail = " (a binary model here has 1 output, one logit)" if dataset.num_classes == 2 else ""
    return f"the uploaded weights have {got} outputs, the data set has {dataset.num_classes} classes{detail}; expected {want}"


def check_state_dict(state: dict[str, torch.Tensor], module: nn.Module, arch: str, dataset: Dataset) -> None:
    """Raise a precise `InfluenceError` when ``state`` cannot be loaded into ``module`` (built for ``dataset``)."""
    expected = module.state_dict()
    linears = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    head = f"{linears[-1]}.weight" if linears else None
    if head and head in state and state[head].ndim == 2 and state[head].shape[0] != expected[head].shape[0]:
        raise InfluenceError(_output_message(int(state[head].shape[0]), dataset))
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        raise InfluenceError(f"the weights do not fit architecture '{arch}': {'; '.join(parts)}; is --model right?")
    first = next(iter(expected))
    for key, want in expected.items():
        got = state[key]
        if tuple(got.shape) == tuple(want.shape):
            continue
        if key == first and got.ndim == want.ndim == 2:
            raise InfluenceError(f"the uploaded weights take {got.shape[1]} input features, the data set has {want.shape[1]}")
        if key == first and got.ndim == want.ndim == 4:
            raise InfluenceError(f"the uploaded weights take {got.shape[1]}-channel images, the data set has {want.shape[1]} channels")
        raise InfluenceError(f"parameter '{key}' has shape {tuple(got.shape)} in the file but {tuple(want.shape)} in '{arch}' "
                             f"for inputs of shape {dataset.input_shape}")


def _probe(module: nn.Module, dataset: Dataset, label: str) -> None:
    """Run two samples through the model: the inputs must fit and the outputs must match the classes."""
    split = dataset.val if len(dataset.val) >= 2 else dataset.train
    x = split.x[:2]
    try:
        with torch.no_grad():
            out = module(x)
    except Exception as err:  # noqa: BLE001 - whatever the graph raises, the user needs the shape and the reason
        raise InfluenceError(f"{label} does not accept inputs of shape {tuple(x.shape)} from this data set ({_first_line(err)}); "
                             "export it for these inputs with a dynamic batch dimension") from None
    if out.ndim != 2:
        raise InfluenceError(f"{label} returns outputs of shape {tuple(out.shape)}; it must return logits of shape (batch, outputs)")
    if out.shape[1] != output_dim(dataset.num_classes):
        raise InfluenceError(_output_message(int(out.shape[1]), dataset))


# ---------------------------------------------------------------------------------------------- public
def load_fitted_bytes(data: bytes, filename: str, arch: str, dataset: Dataset) -> FittedModel:
    """A `FittedModel` from uploaded bytes: a state_dict for built-in ``arch``, or a ``.pt2`` export (``arch`` ignored)."""
    check_size(len(data), filename)
    if Path(filename).suffix.lower() == ".pt2":
        check_pt2_archive(data, filename)  # before torch reads a byte of it
        logged = _LoggedErrors()  # torch logs the real error, then raises "check the warnings above"
        logger = logging.getLogger(torch.export.__name__)
        logger.addHandler(logged)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.load(io.BytesIO(data))
        except Exception as err:  # noqa: BLE001
            cause = logged.errors[-1] if logged.errors else err
            raise InfluenceError(f"cannot read '{filename}' as a torch.export program: {_first_line(cause)}") from None
        finally:
            logger.removeHandler(logged)
        check_loaded_program(program, filename)
        check_tensor_values({**program.state_dict, **program.constants}, filename)
        program._guards_code = []  # Python source from the file: `.module()` would exec it
        try:
            module = ExportedModule(program.module())
        except Exception as err:  # noqa: BLE001
            raise InfluenceError(f"cannot use the torch.export program '{filename}': {_first_line(err)}") from None
        _probe(module, dataset, f"the exported program '{filename}'")
        return fitted_from_module(module, EXPORTED_ARCH, dataset)
    spec = get_model_spec(arch)
    if dataset.kind not in spec.input_kinds:
        raise InfluenceError(f"model '{arch}' needs {' or '.join(spec.input_kinds)} data, '{dataset.name}' is {dataset.kind}")
    state = read_state_dict(data, filename)
    module = build_model(arch, dataset.input_shape, dataset.num_classes)
    check_state_dict(state, module, arch, dataset)
    module.load_state_dict(state)
    _probe(module.eval(), dataset, f"the model in '{filename}'")
    return fitted_from_module(module, arch, dataset, l2=float(TrainConfig().resolved(arch).l2 or 0.0))


def load_fitted(path: str | os.PathLike, arch: str, dataset: Dataset) -> FittedModel:
    """`load_fitted_bytes` for a file on disk (the CLI's ``--weights``)."""
    path = Path(path)
    if not path.is_file():
        raise InfluenceError(f"no such weights file: {path}")
    check_size(path.stat().st_size, path.name)
    return load_fitted_bytes(path.read_bytes(), path.name, arch, dataset)


def save_state_dict(fitted: FittedModel, path: str | os.PathLike) -> Path:
    """Write the model's weights as ``.safetensors`` (or a torch file for other suffixes) — the format `load_fitted` reads."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in fitted.module.state_dict().items()}
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path
