"""Uploaded models: round trips, precise mismatch messages, refusal of code-running pickles, torch.export programs."""

from __future__ import annotations

import io
import pickle
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from influence_core import compute_scores, load_dataset
from influence_core.errors import InfluenceError
from influence_core.models import TrainConfig, build_model, fitted_from_module, train_model
from influence_core.models.loading import load_fitted, load_fitted_bytes, save_state_dict


@pytest.fixture(scope="module")
def images(shared_data):
    return load_dataset("cifar10n", max_train=40, max_test=8, val_fraction=0.25)


def torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_round_trip_gives_the_same_predictions(blobs, tmp_path, suffix):
    fitted = train_model(blobs, "mlp", TrainConfig(epochs=20))
    path = save_state_dict(fitted, tmp_path / f"mlp{suffix}")
    loaded = load_fitted(path, "mlp", blobs)
    with torch.no_grad():
        assert torch.equal(loaded.module(blobs.test.x), fitted.module(blobs.test.x))
    assert loaded.metrics["test_accuracy"] == fitted.metrics["test_accuracy"]
    np.testing.assert_allclose(compute_scores(blobs, loaded, "ip"), compute_scores(blobs, fitted, "ip"), rtol=1e-6)


def test_checkpoint_wrappers_and_dataparallel_prefix_are_accepted(blobs):
    module = build_model("logreg", blobs.input_shape, 2)
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in module.state_dict().items()}}
    loaded = load_fitted_bytes(torch_bytes(wrapped), "ckpt.pt", "logreg", blobs)
    assert torch.equal(loaded.module.linear.weight, module.linear.weight)


@pytest.mark.parametrize("make, arch, message", [
    (lambda: build_model("mlp", (2,), 10).state_dict(), "mlp",
     "the uploaded weights have 10 outputs, the data set has 2 classes (a binary model here has 1 output, one logit); expected 1"),
    (lambda: build_model("logreg", (5,), 2).state_dict(), "logreg",
     "the uploaded weights take 5 input features, the data set has 2"),
    (lambda: build_model("mlp", (2,), 2).state_dict(), "logreg",
     "the weights do not fit architecture 'logreg': missing 2 keys (e.g. linear.weight, linear.bias); "
     "6 unexpected keys (e.g. body.1.weight, body.1.bias, body.3.weight); is --model right?"),
    (lambda: {"w": torch.zeros(2), "epoch": 3}, "logreg",
     "'weights.pt' is not a plain state_dict: entry 'epoch' is a int, not a tensor"),
    (lambda: torch.zeros(3), "logreg", "'weights.pt' holds a Tensor, not a state_dict (a dict of parameter tensors)"),
])
def test_tabular_mismatch_messages(blobs, make, arch, message):
    with pytest.raises(InfluenceError) as err:
        load_fitted_bytes(torch_bytes(make()), "weights.pt", arch, blobs)
    assert str(err.value) == message


def test_image_mismatch_messages(images):
    grey = safetensors_bytes(build_model("cnn", (1, 32, 32), 10).state_dict())
    with pytest.raises(InfluenceError, match="^the uploaded weights take 1-channel images, the data set has 3 channels$"):
        load_fitted_bytes(grey, "grey.safetensors", "cnn", images)
    big = safetensors_bytes(build_model("cnn", (3, 64, 64), 10).state_dict())
    with pytest.raises(InfluenceError, match=r"^parameter 'fc.0.weight' has shape \(64, 8192\) in the file but \(64, 2048\) "
                                             r"in 'cnn' for inputs of shape \(3, 32, 32\)$"):
        load_fitted_bytes(big, "big.safetensors", "cnn", images)
    r18 = safetensors_bytes(build_model("resnet18", (3, 32, 32), 100).state_dict())
    with pytest.raises(InfluenceError, match="^the uploaded weights have 100 outputs, the data set has 10 classes; expected 10$"):
        load_fitted_bytes(r18, "r18.safetensors", "resnet18", images)
    with pytest.raises(InfluenceError, match="^model 'resnet18' needs image data, 'blobs' is tabular$"):
        load_fitted_bytes(r18, "r18.safetensors", "resnet18", load_dataset("blobs"))


def test_bad_files(blobs, tmp_path):
    with pytest.raises(InfluenceError, match="^the file 'w.pt' is empty$"):
        load_fitted_bytes(b"", "w.pt", "logreg", blobs)
    with pytest.raises(InfluenceError, match="^cannot read 'w.safetensors' as safetensors"):
        load_fitted_bytes(b"not safetensors at all", "w.safetensors", "logreg", blobs)
    with pytest.raises(InfluenceError, match="^cannot read 'w.pt' as a torch file"):
        load_fitted_bytes(b"PK\x03\x04 broken zip", "w.pt", "logreg", blobs)
    with pytest.raises(InfluenceError, match=r"^weights must be \.safetensors, \.pt, \.pth, \.bin, \.ckpt or a \.pt2"):
        load_fitted_bytes(b"x", "w.h5", "logreg", blobs)
    with pytest.raises(InfluenceError, match="^no such weights file"):
        load_fitted(tmp_path / "missing.pt", "logreg", blobs)


class CreatesMarker:
    """Unpickling this calls open(marker, 'w'): a file appears if the loader ever executes the pickle."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("container", ["torch.save", "raw pickle"])
def test_malicious_pickle_is_refused_not_executed(blobs, tmp_path, container):
    marker = tmp_path / "pwned"
    payload = {"linear.weight": torch.zeros(1, 2), "linear.bias": CreatesMarker(str(marker))}
    data = torch_bytes(payload) if container == "torch.save" else pickle.dumps(payload)
    path = tmp_path / "weights.pth"
    path.write_bytes(data)
    with pytest.raises(InfluenceError) as err:
        load_fitted(path, "logreg", blobs)
    assert not marker.exists()
    assert str(err.value).startswith("refused to load 'weights.pth': it holds Python objects that would run code when unpickled")
    assert "io.open" in str(err.value) or container == "raw pickle"


class TinyCustomNet(nn.Module):
    """An architecture the registry does not know (uploaded as a torch.export program)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.out = nn.Linear(4 * 16 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.conv(x)).flatten(1))


def export_bytes(module: nn.Module, example: torch.Tensor, dynamic: bool = True) -> bytes:
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    program = torch.export.export(module.eval(), (example,), dynamic_shapes=shapes)
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def test_torch_export_program_scores_like_the_original_module(images):
    torch.manual_seed(0)
    net = TinyCustomNet()
    loaded = load_fitted_bytes(export_bytes(net, images.train.x[:4]), "custom.pt2", "ignored", images)
    assert loaded.arch == "exported"
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(images.test.x), net(images.test.x))
    # IP through the exported graph equals IP through the original Python module.
    original = fitted_from_module(net, "custom", images)
    np.testing.assert_allclose(compute_scores(images, loaded, "ip", batch_size=7),
                               compute_scores(images, original, "ip", batch_size=7), rtol=1e-5, atol=1e-8)


def test_torch_export_misfits_are_explained(images):
    torch.manual_seed(0)
    static = export_bytes(TinyCustomNet(), images.train.x[:4], dynamic=False)
    with pytest.raises(InfluenceError, match=r"^the exported program 's.pt2' does not accept inputs of shape \(2, 3, 32, 32\)"):
        load_fitted_bytes(static, "s.pt2", "", images)
    binary = load_dataset("cifar10n", max_train=40, max_test=8, val_fraction=0.25)
    binary.classes = binary.classes[:2]  # pretend the data has 2 classes: the 10-output program no longer fits
    with pytest.raises(InfluenceError, match="^the uploaded weights have 10 outputs, the data set has 2 classes"):
        load_fitted_bytes(export_bytes(TinyCustomNet(), images.train.x[:4]), "c.pt2", "", binary)
    with pytest.raises(InfluenceError, match="^cannot read 'junk.pt2' as a torch.export program"):
        load_fitted_bytes(b"junk", "junk.pt2", "", images)


def test_cli_weights_option_scores_the_uploaded_model(blobs, tmp_path, capsys):
    import pandas as pd

    from influence_core import cli

    fitted = train_model(blobs, "logreg", TrainConfig(l2=0.1))  # not the default l2: retraining would differ
    path = save_state_dict(fitted, tmp_path / "lr.safetensors")
    out = tmp_path / "scores.csv"
    assert cli.main(["score", "--dataset", "blobs", "--model", "logreg", "--weights", str(path), "--quiet",
                     "--no-cache", "--out", str(out)]) == 0
    np.testing.assert_allclose(pd.read_csv(out)["score"].to_numpy(), compute_scores(blobs, fitted, "ip"), rtol=1e-6)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(pickle.dumps({"linear.weight": CreatesMarker(str(tmp_path / "pwned"))}))
    assert cli.main(["score", "--dataset", "blobs", "--model", "logreg", "--weights", str(bad), "--no-cache"]) == 2
    assert "error: refused to load 'bad.pt'" in capsys.readouterr().err and not (tmp_path / "pwned").exists()


# ---------------------------------------------------- weights that would load wrong or crash later (issue 21 §1)
def _logreg_state(blobs, change) -> dict:
    return {k: change(k, v) for k, v in build_model("logreg", blobs.input_shape, 2).state_dict().items()}


@pytest.mark.parametrize("change, message", [
    (lambda k, v: v.to(torch.complex64) + 1j, "'w.pt': entry 'linear.weight' holds complex numbers; weights must be real"),
    (lambda k, v: v.to_sparse() if v.ndim == 2 else v,
     "'w.pt': entry 'linear.weight' is a sparse tensor (torch.sparse_coo); save dense weights (tensor.to_dense())"),
    (lambda k, v: v.to_sparse_csr() if v.ndim == 2 else v,
     "'w.pt': entry 'linear.weight' is a sparse tensor (torch.sparse_csr); save dense weights (tensor.to_dense())"),
    (lambda k, v: v.to("meta"), "'w.pt': entry 'linear.weight' is a meta tensor, which holds no values; save the trained weights"),
    (lambda k, v: v.clone().fill_(float("nan")) if k == "linear.bias" else v,
     "'w.pt': entry 'linear.bias' holds NaN or infinite values; the file is damaged or the training diverged"),
    (lambda k, v: v + 1e30 if k == "linear.weight" else v,
     "'w.pt': entry 'linear.weight' holds values as large as 1e+30 (the limit is 1e+06); the file is damaged or the "
     "training diverged"),
])
def test_complex_sparse_meta_and_non_finite_weights_are_refused_in_one_line(blobs, change, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that sparse CSR support is beta
        data = torch_bytes(_logreg_state(blobs, change))
    with pytest.raises(InfluenceError) as err:
        load_fitted_bytes(data, "w.pt", "logreg", blobs)
    assert str(err.value) == f"refused to load {message}"


def test_non_finite_weights_in_safetensors_are_refused_too(blobs):
    data = safetensors_bytes(_logreg_state(blobs, lambda k, v: v.clone().fill_(float("inf")) if k == "linear.weight" else v))
    with pytest.raises(InfluenceError, match=r"^refused to load 'w\.safetensors': entry 'linear\.weight' holds NaN or infinite"):
        load_fitted_bytes(data, "w.safetensors", "logreg", blobs)
