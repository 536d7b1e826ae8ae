"""Pretrained torchvision backbones, offline: random-init weights written to a file and read through the same path
as downloaded ones (torch hub's cache), embeddings checked against an independent forward pass, cached embeddings
reused, every method scoring the frozen head, and last-block fine-tuning leaving the rest of the network unchanged."""

from __future__ import annotations

import io
import urllib.error
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

from influence_core.api import compute_scores
from influence_core.data.prepare import raw_images, with_label_noise
from influence_core.data.originals import source_rows
from influence_core.data.uploads import load_image_zip
from influence_core.errors import InfluenceError
from influence_core.export import images_uint8
from influence_core.grads import select_params
from influence_core.methods import METHODS
from influence_core.models import backbones
from influence_core.models.backbones import BackboneSpec, embed_dataset, finetune_last_block
from influence_core.models.train import TrainConfig, train_model
from tests.models.autograd_reference import brute_force_ip

SIZE = 32
FAST = {"lissa": {"depth": 50}, "self_lissa": {"depth": 20}}


def _image_zip(path, per_class: int = 12, size: int = 40) -> str:
    """Three classes of noisy images around a red, a green and a blue tint."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as z:
        for c, name in enumerate(("red", "green", "blue")):
            for i in range(per_class):
                px = rng.integers(0, 90, size=(size, size, 3))
                px[..., c] += 140
                buf = io.BytesIO()
                Image.fromarray(px.astype(np.uint8)).save(buf, format="PNG")
                z.writestr(f"{name}/{i}.png", buf.getvalue())
    return str(path)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backbone-images")
    return load_image_zip(_image_zip(folder / "tints.zip"), image_size=SIZE, on_disk=False)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """resnet18 with random weights (seed 7, not the spec's seed 0) as safetensors: the file must be what is used."""
    torch.manual_seed(7)
    state = {k: v.contiguous() for k, v in torchvision.models.resnet18().state_dict().items()}
    path = tmp_path_factory.mktemp("weights") / "resnet18.safetensors"
    save_file(state, str(path))
    return path


def _reference_embeddings(weights_path, pixels: np.ndarray) -> torch.Tensor:
    """torchvision's resnet18 with the file's weights, its own forward pass on ImageNet-normalised pixels."""
    from safetensors.torch import load_file

    net = torchvision.models.resnet18()
    net.load_state_dict(load_file(str(weights_path)))
    net.fc = torch.nn.Identity()
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(backbones.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(backbones.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return net.eval()(x)


def test_embeddings_equal_an_independent_forward_pass(images, weights_file, tmp_path):
    spec = BackboneSpec("resnet18", "mine", weights_file=str(weights_file))
    embedded = embed_dataset(images, spec, store=tmp_path, batch_size=5)  # batches that do not divide the split
    for split in ("train", "val", "test"):
        expected = _reference_embeddings(weights_file, raw_images(images, split))
        got = getattr(embedded, split).x
        assert got.shape == (len(getattr(images, split)), 512)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
        assert torch.equal(getattr(embedded, split).y, getattr(images, split).y)
    assert embedded.kind == "image" and embedded.meta["backbone"]["dim"] == 512
    # The Review cards still show the pictures, row for row, also after relabelling and subsets.
    rows = [3, 0, 7]
    assert np.array_equal(images_uint8(embedded, rows), images_uint8(images, rows))
    assert np.array_equal(raw_images(embedded, "val"), raw_images(images, "val"))
    sub = embedded.train.subset(torch.tensor([5, 2]))
    assert torch.equal(sub.x, embedded.train.x[[5, 2]]) and torch.equal(sub.pixels.x, images.train.x[[5, 2]])


def test_downloaded_weights_come_from_torch_hubs_cache(images, weights_file, tmp_path, monkeypatch):
    """A weights enum name reads the file torch hub keeps (downloaded once), through the same safe reader."""
    from safetensors.torch import load_file

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    downloads = []

    def fake_download(url, dest):  # what the network would deliver: a torch state_dict file under the URL's name
        downloads.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        torch.save(load_file(str(weights_file)), dest)

    monkeypatch.setattr(backbones, "_download", fake_download)
    spec = BackboneSpec("resnet18", "IMAGENET1K_V1")
    first = embed_dataset(images, spec, store=tmp_path / "a")
    second = embed_dataset(images, spec, store=tmp_path / "b")  # a fresh store: computed again, not downloaded again
    assert downloads == [torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url]
    assert (tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth").is_file()
    expected = _reference_embeddings(weights_file, raw_images(images, "train"))
    torch.testing.assert_close(first.train.x, expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(first.train.x, second.train.x)


def test_offline_without_cached_weights_is_one_line(images, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, dest):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(backbones, "_download", offline)
    with pytest.raises(InfluenceError) as err:
        embed_dataset(images, BackboneSpec("resnet50", "IMAGENET1K_V2"), store=tmp_path)
    text = str(err.value)
    assert "\n" not in text and text.startswith("the resnet50 weights IMAGENET1K_V2 are not in torch's cache")
    with pytest.raises(InfluenceError, match=r"^unknown weights 'IMAGENET9K' for resnet18; choose one of: random, IMAGENET1K_V1"):
        embed_dataset(images, BackboneSpec("resnet18", "IMAGENET9K"), store=tmp_path)
    with pytest.raises(InfluenceError, match=r"^unknown backbone 'alexnet'"):
        embed_dataset(images, BackboneSpec("alexnet"), store=tmp_path)


def test_cached_embeddings_are_reused(images, weights_file, tmp_path, monkeypatch):
    calls = []
    real = backbones.compute_embeddings

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(backbones, "compute_embeddings", counted)
    spec = BackboneSpec("resnet18", "mine", weights_file=str(weights_file))
    first = embed_dataset(images, spec, store=tmp_path)
    assert len(calls) == 3  # train, val, test
    again = embed_dataset(images, spec, store=tmp_path)
    assert len(calls) == 3 and torch.equal(again.train.x, first.train.x)
    embed_dataset(images, BackboneSpec("resnet18", "random"), store=tmp_path)  # other weights: computed
    assert len(calls) == 6


@pytest.fixture(scope="module")
def noisy_head(images, weights_file, tmp_path_factory):
    embedded = embed_dataset(images, BackboneSpec("resnet18", "mine", weights_file=str(weights_file)),
                             store=tmp_path_factory.mktemp("emb"))
    noisy = with_label_noise(embedded, 0.1, seed=1, include_val=False)
    return noisy, train_model(noisy, "logreg", TrainConfig(checkpoint_every=1))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_scores_the_frozen_head(noisy_head, method):
    dataset, fitted = noisy_head
    scores = compute_scores(dataset, fitted, method, **FAST.get(method, {}))
    assert scores.shape == (len(dataset.train),) and np.isfinite(scores).all() and np.ptp(scores) > 0


def test_head_ip_equals_the_whole_networks_ip_on_its_head(noisy_head, images, weights_file):
    """IP of the head trained on embeddings = IP of backbone + head on the images, over the head's parameters
    (plain autograd, one image at a time): the embeddings are exactly what the network computes."""
    dataset, fitted = noisy_head
    from safetensors.torch import load_file

    net = torchvision.models.resnet18()
    net.load_state_dict(load_file(str(weights_file)))
    net.fc = torch.nn.Identity()
    mean = torch.tensor(images.meta["pixel_mean"]).view(1, 3, 1, 1)
    std = torch.tensor(images.meta["pixel_std"]).view(1, 3, 1, 1)
    imagenet = (torch.tensor(backbones.IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(backbones.IMAGENET_STD).view(1, 3, 1, 1))

    class Whole(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone, self.head = net.eval(), fitted.module

        def forward(self, x):
            x = (x * std + mean - imagenet[0]) / imagenet[1]
            return self.head(self.backbone(x))

    noisy_images = images.with_train(images.train.with_labels(dataset.train.y))
    rows = [0, 4, 9, 15]
    names = {f"head.{n}" for n, _ in fitted.module.named_parameters()}
    expected = brute_force_ip(Whole(), noisy_images, rows, names)
    scores = compute_scores(dataset, fitted, "ip")
    np.testing.assert_allclose(scores[rows], expected.tolist(), rtol=2e-3, atol=1e-6 * float(np.abs(expected).max()))


def test_last_block_mode_trains_only_that_block(images, weights_file):
    from safetensors.torch import load_file

    spec = BackboneSpec("resnet18", "mine", weights_file=str(weights_file))
    fitted = finetune_last_block(images, spec, TrainConfig(epochs=1, batch_size=16, patience=0))
    assert fitted.arch == backbones.arch_name(spec) and fitted.arch.startswith("tv:resnet18?weights=mine&file=")
    start = load_file(str(weights_file))
    state = fitted.module.state_dict()
    for name, value in start.items():
        if name.startswith("fc."):
            continue
        if name.startswith("layer4.") and name.endswith(("weight", "bias")) and "bn" not in name and "downsample.1" not in name:
            assert not torch.equal(state[f"net.{name}"], value), name  # trained
        elif not name.startswith("layer4."):
            assert torch.equal(state[f"net.{name}"], value), name  # frozen, running statistics included
    chosen = select_params(fitted.module, "last_block")
    assert chosen and all(n.startswith(("net.layer4.", "net.fc.")) for n in chosen)
    assert set(select_params(fitted.module, "head", fitted.head_prefix)) == {"net.fc.weight", "net.fc.bias"}
    scores = compute_scores(images, fitted, "ip", params="last_block")
    assert scores.shape == (len(images.train),) and np.isfinite(scores).all()


def test_zip_with_a_backbone_loads_at_the_networks_size(tmp_path, weights_file, monkeypatch):
    config = tmp_path / "server.toml"
    config.write_text(f'[server]\nmax_image_size = 300\n[server.backbone_weights]\n"r18-local" = "{weights_file}"\n')
    monkeypatch.setenv("INFLUENCE_CONFIG", str(config))
    monkeypatch.setenv("INFLUENCE_DATA_DIR", str(tmp_path / "data"))
    path = _image_zip(tmp_path / "tints.zip", per_class=4, size=50)
    ds = load_image_zip(path, backbone="resnet18", backbone_weights="r18-local")
    assert ds.meta["image_size"] == 224 and ds.train.pixels.feature_shape == (3, 224, 224)
    assert ds.input_shape == (512,) and ds.meta["backbone"]["weights"] == "r18-local"
    expected = _reference_embeddings(weights_file, raw_images(ds, "test"))
    torch.testing.assert_close(ds.test.x, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(InfluenceError, match=r"^image size must be a whole number from 8 to 300 \(this server's cap\), not 400$"):
        load_image_zip(path, image_size=400)


def test_project_switches_an_uploaded_zip_to_a_frozen_backbone(tmp_path, weights_file, monkeypatch):
    from influence_core.project import Project

    config = tmp_path / "server.toml"
    config.write_text(f'[server.backbone_weights]\n"r18-local" = "{weights_file}"\n')
    monkeypatch.setenv("INFLUENCE_CONFIG", str(config))
    proj = Project("imgs", root=tmp_path / "ws")
    data = open(_image_zip(tmp_path / "tints.zip", per_class=6), "rb").read()
    images = proj.upload_dataset(data, "tints.zip", image_size=SIZE)
    assert "r18-local" in proj.backbone_choices()["resnet18"]
    with pytest.raises(InfluenceError, match=r"^unknown weights '/etc/passwd' for resnet18"):
        proj.use_backbone("resnet18", "/etc/passwd", from_browser=True)
    embedded = proj.use_backbone("resnet18", "r18-local", from_browser=True)
    assert proj.dataset().input_shape == (512,) and proj.state().dataset_kwargs["backbone"] == "resnet18"
    # read again at the network's own size, not at the 32 the zip was uploaded at; then the images' embeddings equal
    # those of the same zip loaded at 224 by the library
    assert embedded.meta["image_size"] == 224 == proj.backbone_image_size("resnet18", "r18-local")
    direct = load_image_zip(proj.state().dataset, backbone="resnet18", backbone_weights="r18-local")
    torch.testing.assert_close(embedded.test.x, direct.test.x, rtol=0, atol=0)
    assert proj.use_backbone("resnet18", "r18-local", image_size=64).meta["image_size"] == 64
    proj.use_backbone("resnet18", "r18-local")
    proj.train("logreg")
    rows = [0, 5]
    assert np.array_equal(proj.images(rows), images_uint8(direct, rows))  # Review shows the images at 224
    assert images_uint8(direct, rows).shape[1:] == (224, 224, 3) and images_uint8(images, rows).shape[1:] == (32, 32, 3)
    assert list((proj.folder / "arrays" / "embeddings").glob("resnet18-*-train.npy"))  # stored in the project
    assert proj.use_backbone(None).input_shape == (3, SIZE, SIZE)
    assert embedded.num_classes == 3


def test_cli_scores_a_zip_through_a_frozen_backbone(tmp_path, weights_file, monkeypatch, capsys):
    """`score --backbone resnet18 --backbone-weights NAME`: the head is trained on the embeddings and its IP scores
    equal those the library computes on the same embedded data set."""
    from influence_core import cli
    from influence_core.api import compute_scores

    config = tmp_path / "server.toml"
    config.write_text(f'[server.backbone_weights]\n"r18-local" = "{weights_file}"\n')
    monkeypatch.setenv("INFLUENCE_CONFIG", str(config))
    monkeypatch.setenv("INFLUENCE_DATA_DIR", str(tmp_path / "data"))
    path = _image_zip(tmp_path / "tints.zip", per_class=6)
    out = tmp_path / "scores.csv"
    assert cli.main(["score", "--dataset", path, "--backbone", "resnet18", "--backbone-weights", "r18-local",
                     "--image-size", str(SIZE), "--model", "logreg", "--method", "ip", "--quiet",
                     "--workspace", str(tmp_path / "ws"), "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    ds = load_image_zip(path, image_size=SIZE, backbone="resnet18", backbone_weights="r18-local")
    assert ds.input_shape == (512,) and len(frame) == len(ds.train)
    fitted = train_model(ds, "logreg", TrainConfig())
    expected = compute_scores(ds, fitted, "ip")
    assert frame["index"].tolist() == source_rows(ds, "train").tolist()  # rows in training order
    np.testing.assert_allclose(frame["score"].to_numpy(), expected, rtol=1e-3, atol=1e-5 * float(np.abs(expected).max()))


def _other_weights(path, seed: int):
    torch.manual_seed(seed)
    save_file({k: v.contiguous() for k, v in torchvision.models.resnet18().state_dict().items()}, str(path))
    return path


def test_fine_tuned_models_are_keyed_by_their_pretrained_weights_content(images, weights_file, tmp_path, monkeypatch):
    """tv:<arch> from pretrained weights and from random weights never share a cache entry; nor do two weights
    files, nor one name whose file changed; the store trains once per weights and reopens the model."""
    import shutil

    from influence_core.engine import Engine
    from influence_core.keys import model_key
    from influence_core.workspace import Workspace

    a, b = tmp_path / "a.safetensors", _other_weights(tmp_path / "b.safetensors", 8)
    shutil.copy(weights_file, a)
    config = tmp_path / "server.toml"
    config.write_text(f'[server.backbone_weights]\n"a" = "{a}"\n"b" = "{b}"\n')
    monkeypatch.setenv("INFLUENCE_CONFIG", str(config))
    arch_a, arch_b = (backbones.arch_name(BackboneSpec("resnet18", w)) for w in ("a", "b"))
    assert arch_a == "tv:resnet18?weights=a"
    keys = {model_key(images, arch, TrainConfig(epochs=1)) for arch in ("tv:resnet18", arch_a, arch_b)}
    assert len(keys) == 3
    before = model_key(images, arch_a, TrainConfig(epochs=1))
    shutil.copy(b, a)  # the administrator points the same name at other weights
    assert model_key(images, arch_a, TrainConfig(epochs=1)) != before
    shutil.copy(weights_file, a)
    assert model_key(images, arch_a, TrainConfig(epochs=1)) == before

    engine = Engine(Workspace(tmp_path / "ws"))
    config_1 = TrainConfig(epochs=1, batch_size=16, patience=0)
    fitted = engine.model(images, arch_a, config_1)
    start = backbones.load_backbone(BackboneSpec("resnet18", "a")).state_dict()
    state = fitted.module.state_dict()
    assert torch.equal(state["net.conv1.weight"], start["conv1.weight"])  # trained from the file's weights
    assert not torch.equal(state["net.conv1.weight"], backbones.load_backbone(BackboneSpec("resnet18", "b")).state_dict()["conv1.weight"])
    monkeypatch.setattr(backbones, "last_block_state", lambda *a: pytest.fail("trained again"))
    again = engine.model(images, arch_a, config_1)  # from the store, built without reading the weights
    assert again.fingerprint() == fitted.fingerprint()


def test_fine_tuning_from_downloaded_weights_reads_torch_hubs_cache(images, weights_file, tmp_path, monkeypatch):
    """tv:resnet18?weights=IMAGENET1K_V1: the file torch hub keeps (a random-weights file here), read through the
    same safe reader; the frozen layers are the file's, the network's inputs normalised as the weights say."""
    from safetensors.torch import load_file

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(backbones, "_download", lambda url, dest: (dest.parent.mkdir(parents=True, exist_ok=True),
                                                                   torch.save(load_file(str(weights_file)), dest)))
    fitted = train_model(images, "tv:resnet18?weights=IMAGENET1K_V1", TrainConfig(epochs=1, batch_size=16, patience=0))
    start = load_file(str(weights_file))
    assert torch.equal(fitted.module.state_dict()["net.layer1.0.conv1.weight"], start["layer1.0.conv1.weight"])
    module = fitted.module.eval()
    x = images.test.x[:4]
    net = torchvision.models.resnet18(num_classes=fitted.module.net.fc.out_features)
    net.load_state_dict({k.removeprefix("net."): v for k, v in module.state_dict().items() if k.startswith("net.")})
    raw = torch.from_numpy(raw_images(images, "test")[:4]).permute(0, 3, 1, 2).float() / 255.0
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (backbones.IMAGENET_MEAN, backbones.IMAGENET_STD))
    with torch.no_grad():
        torch.testing.assert_close(module(x), net.eval()((raw - mean) / std), rtol=1e-4, atol=1e-4)


def test_the_project_fine_tunes_only_offered_weights(tmp_path, weights_file, monkeypatch):
    from influence_core.project import Project, ScoreRun

    config = tmp_path / "server.toml"
    config.write_text(f'[server.backbone_weights]\n"r18-local" = "{weights_file}"\n')
    monkeypatch.setenv("INFLUENCE_CONFIG", str(config))
    proj = Project("ft", root=tmp_path / "ws")
    proj.upload_dataset(open(_image_zip(tmp_path / "tints.zip", per_class=6), "rb").read(), "tints.zip", image_size=SIZE)
    for weights in (str(weights_file), "../r18-local", "IMAGENET9K"):
        with pytest.raises(InfluenceError, match=r"^'resnet18' with weights '.*' is not offered here"):
            proj.backbone_finetune_arch("resnet18", weights)
    arch = proj.backbone_finetune_arch("resnet18", "r18-local")
    assert arch == "tv:resnet18?weights=r18-local"
    fitted = proj.train(arch, {"epochs": 1, "batch_size": 16, "patience": 0})
    assert proj.state().arch == arch and proj.model().fingerprint() == fitted.fingerprint()
    scores = proj.score(ScoreRun("ip", params="last_block"))
    assert scores.shape == (len(proj.dataset().train),) and np.isfinite(scores).all()


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_b0"])
def test_the_inference_network_folds_batch_norms_and_computes_the_same(arch):
    """Batch norms folded into their convolutions (channels-last weights): the same embeddings to float rounding."""
    module = backbones.load_backbone(BackboneSpec(arch))
    fast = backbones.inference_network(backbones.load_backbone(BackboneSpec(arch)))
    assert not [m for m in fast.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    x = torch.randn(3, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = module(x)
        got = fast(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


from tests.test_distributed import client  # noqa: E402,F401 - the LocalCluster fixture (forkserver workers)


def test_embeddings_sharded_on_dask_equal_the_local_ones(images, weights_file, tmp_path, client):  # noqa: F811
    """One task per shard of 5 images (uint8 pixels sent, the network scattered once): the same embeddings, in
    order, computed by the workers."""
    spec = BackboneSpec("resnet18", "mine", weights_file=str(weights_file))
    local = embed_dataset(images, spec, store=tmp_path / "local")
    sharded = embed_dataset(images, spec, store=tmp_path / "dask", client=client, shard_rows=5, batch_size=3)
    for split in ("train", "val", "test"):
        expected = getattr(local, split).x  # float32 sums in other batch sizes: equal to rounding
        torch.testing.assert_close(getattr(sharded, split).x, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
    built = client.run(lambda: backbones._worker_network.cache_info().currsize)
    assert sum(built.values()) >= 1  # the workers built the network: they computed the shards
