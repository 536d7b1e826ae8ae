"""Hugging Face image classifiers (influence_core/models/hf_image.py), offline: a tiny ViT and a tiny ConvNeXt built
from configs with random weights, saved to folders with their image processors and loaded through the same
``hf:<folder>`` path a user's model takes."""

from __future__ import annotations

import copy
import re
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from influence_core.api import compute_scores  # noqa: E402
from influence_core.data.prepare import raw_images  # noqa: E402
from influence_core.data.uploads import load_image_zip  # noqa: E402
from influence_core.errors import InfluenceError  # noqa: E402
from influence_core.grads import select_params  # noqa: E402
from influence_core.keys import model_key  # noqa: E402
from influence_core.models import TrainConfig, get_model_spec, train_model  # noqa: E402
from influence_core.models.hf import HFSettings, arch_name  # noqa: E402
from influence_core.models.hf_image import HFImageClassifier  # noqa: E402
from influence_core.workspace import Workspace  # noqa: E402

from tests.models.test_backbones import _image_zip  # noqa: E402
from tests.reference import per_sample_grad_loop, relative_error, validation_loss_grad  # noqa: E402

SIZE = 32
MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _write(folder, config, seed: int = 0) -> str:
    from transformers import AutoModelForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    AutoModelForImageClassification.from_config(config).save_pretrained(folder, safe_serialization=True)
    ViTImageProcessor(size={"height": SIZE, "width": SIZE}, image_mean=list(MEAN),
                      image_std=list(STD)).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    from transformers import ViTConfig

    return _write(tmp_path_factory.mktemp("tiny-vit"), ViTConfig(
        image_size=SIZE, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, num_labels=7))


@pytest.fixture(scope="module")
def tiny_convnext(tmp_path_factory):
    from transformers import ConvNextConfig

    return _write(tmp_path_factory.mktemp("tiny-convnext"), ConvNextConfig(
        hidden_sizes=[8, 16], depths=[1, 2], num_stages=2, patch_size=4, image_size=SIZE, num_labels=7))


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.getbasetemp() / "empty-hf-home"))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return load_image_zip(_image_zip(tmp_path_factory.mktemp("hf-images") / "tints.zip", per_class=8),
                          image_size=SIZE, on_disk=False)


@pytest.fixture(scope="module")
def fitted(tiny_vit, images):
    return train_model(images, f"hf:{tiny_vit}", TrainConfig(epochs=2, lr=1e-3, seed=0))


@pytest.fixture(scope="module")
def lora_fitted(tiny_vit, images):
    return train_model(images, arch_name(tiny_vit, HFSettings(lora_rank=4, lora_alpha=8)),
                       TrainConfig(epochs=2, lr=1e-2, seed=0))


def test_the_wrapper_gives_the_models_own_logits_on_its_processors_pixels(tiny_vit, images):
    """hf:<folder> of an image classifier is this module's wrapper; on the data set's images it returns what the
    model returns on the pixels its own image processor makes of the same pictures."""
    from transformers import AutoImageProcessor

    arch = f"hf:{tiny_vit}"
    assert get_model_spec(arch).input_kinds == ("image",)
    fitted = train_model(images, arch, TrainConfig(epochs=1, seed=0))
    module = fitted.module.eval()
    assert isinstance(module, HFImageClassifier) and module.model.classifier.out_features == 3  # a new head
    pictures = list(raw_images(images, "test")[:5])
    pixels = AutoImageProcessor.from_pretrained(tiny_vit)(images=pictures, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        torch.testing.assert_close(module(images.test.x[:5]), module.model(pixel_values=pixels).logits,
                                   rtol=1e-4, atol=1e-5)


def test_images_of_another_size_are_resized_to_the_processors(tiny_vit, tmp_path):
    big = load_image_zip(_image_zip(tmp_path / "big.zip", per_class=4, size=48), image_size=48, on_disk=False)
    fitted = train_model(big, f"hf:{tiny_vit}", TrainConfig(epochs=1, seed=0))
    seen = []
    fitted.module.model.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs["pixel_values"].shape),
                                                  with_kwargs=True)
    with torch.no_grad():
        fitted.module.eval()(big.test.x[:2])
    assert seen == [torch.Size([2, 3, SIZE, SIZE])]


@pytest.mark.parametrize("model, group", [("fitted", "head"), ("fitted", "last:1"), ("fitted", "all"),
                                          ("lora_fitted", "lora"), ("lora_fitted", "head")])
def test_ip_on_a_parameter_group_equals_an_autograd_loop(request, images, model, group):
    """Every parameter, or LoRA's adapters (the base frozen by peft; the loop differentiates it all the same)."""
    fitted = request.getfixturevalue(model)
    module = copy.deepcopy(fitted.module).eval().requires_grad_(True)
    chosen = set(select_params(module, group))
    cols = torch.cat([torch.full((p.numel(),), n in chosen) for n, p in module.named_parameters()])
    target = validation_loss_grad(module, images.val.x, images.val.y)[cols]
    expected = per_sample_grad_loop(module, images.train.x, images.train.y)[:, cols] @ target
    got = compute_scores(images, fitted, "ip", params=group, batch_size=8, impact_settings={"val_trim": 0.0})
    assert relative_error(got, expected) < 1e-5


def test_last_k_counts_blocks_across_stages(fitted, tiny_convnext, images):
    head = ["model.classifier.bias", "model.classifier.weight"]
    assert sorted(select_params(fitted.module, "head")) == head
    last = select_params(fitted.module, "last:1")
    assert last and all(re.search(r"\.layers?\.1\.", n) for n in last if n not in head) and set(head) <= set(last)
    convnext = train_model(images, f"hf:{tiny_convnext}", TrainConfig(epochs=1, seed=0))
    names = [n for n, _ in convnext.module.named_parameters()]
    one, two = (set(select_params(convnext.module, f"last:{k}")) - set(head) for k in (1, 2))
    assert one == {n for n in names if ".stages.1.layers.1." in n}
    assert two == {n for n in names if ".stages.1.layers." in n}
    scores = compute_scores(images, convnext, "ip", params="last:1")
    assert scores.shape == (len(images.train),) and np.isfinite(scores).all()


@pytest.mark.parametrize("method, settings", [("ip_ensemble", {"ensemble_size": 2}), ("exact", {}),
                                              ("lissa", {"depth": 10}), ("ekfac", {}), ("loss", {})])
def test_other_methods_and_the_robustness_impact_run(fitted, images, method, settings):
    scores = compute_scores(images, fitted, method, params="head", **settings)
    assert scores.shape == (len(images.train),) and np.isfinite(scores).all() and np.ptp(scores) > 0
    robust = compute_scores(images, fitted, "ip", params="head", impact="robustness")
    assert np.isfinite(robust).all()


def test_model_keys_hold_the_folders_weights_and_the_store_reopens_the_model(tiny_vit, images, fitted, tmp_path):
    from transformers import ViTConfig

    arch = f"hf:{tiny_vit}"
    other = tmp_path / "copy"
    shutil.copytree(tiny_vit, other)
    same = model_key(images, f"hf:{other}", TrainConfig(epochs=2, lr=1e-3, seed=0))
    assert same != model_key(images, arch, TrainConfig(epochs=2, lr=1e-3, seed=0))  # another folder: another name
    before = same
    _write(other, ViTConfig(image_size=SIZE, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=32, num_labels=7), seed=5)
    assert model_key(images, f"hf:{other}", TrainConfig(epochs=2, lr=1e-3, seed=0)) != before  # other weights
    store = Workspace(tmp_path / "ws")
    key = model_key(images, arch, fitted.config)
    store.save_model(key, fitted)
    again = store.load_model(key, images)
    assert again.fingerprint() == fitted.fingerprint()
    with torch.no_grad():
        torch.testing.assert_close(again.module.eval()(images.val.x), fitted.module.eval()(images.val.x))


def test_text_data_is_refused_in_one_line(tiny_vit, images):
    from influence_core.data import load_dataset

    with pytest.raises(InfluenceError, match=r"^model 'hf:.*' needs image data"):
        train_model(load_dataset("moons", seed=0), f"hf:{tiny_vit}", TrainConfig(epochs=1))


def test_an_uncached_hub_id_offline_is_one_line(images):
    with pytest.raises(InfluenceError) as err:
        train_model(images, "hf:google/vit-base-patch16-224", TrainConfig(epochs=1))
    assert "\n" not in str(err.value) and "offline" in str(err.value)


@pytest.mark.parametrize("suffix, params", [("", "head"), ("?lora=4&alpha=8", "lora")])
def test_the_cli_scores_an_image_zip_with_an_hf_image_classifier(tiny_vit, tmp_path, suffix, params):
    """`score --dataset photos.zip --model hf:<folder>[?lora=4]`: the images stay images (no tokenizing); the IP on
    the head (or the LoRA adapters) equals the library's on the same data and model."""
    import pandas as pd

    from influence_core import cli

    path = _image_zip(tmp_path / "tints.zip", per_class=6)
    out = tmp_path / "scores.csv"
    assert cli.main(["score", "--dataset", path, "--image-size", str(SIZE), "--model", f"hf:{tiny_vit}{suffix}",
                     "--epochs", "1", "--method", "ip", "--params", params, "--quiet",
                     "--workspace", str(tmp_path / "ws"), "--out", str(out)]) == 0
    ds = load_image_zip(path, image_size=SIZE)
    fitted = train_model(ds, f"hf:{tiny_vit}{suffix}", TrainConfig(epochs=1))
    expected = compute_scores(ds, fitted, "ip", params=params)
    got = pd.read_csv(out)["score"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5 * float(np.abs(expected).max()))


# ------------------------------------------------------------------------------------------------ LoRA (peft)
def _base_name(name: str) -> str:
    """A fitted LoRA model's parameter name as the saved transformers model names it."""
    return name.removeprefix("model.base_model.model.").replace(".base_layer.", ".")


def test_lora_trains_the_adapters_on_query_and_value_and_the_head_and_leaves_the_base_frozen(tiny_vit, lora_fitted):
    from transformers import AutoModelForImageClassification

    module = lora_fitted.module
    lora, head = set(select_params(module, "lora")), set(select_params(module, "head"))
    assert module.parameter_groups == ("head", "lora", "last:1", "last:2")
    assert lora and {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in lora} == {"q_proj", "v_proj"}
    assert head == {n for n, _ in module.named_parameters() if ".classifier.modules_to_save." in n}
    assert {n for n, p in module.named_parameters() if p.requires_grad} == lora | head
    assert all(p.abs().max() > 0 for n, p in module.named_parameters() if "lora_B" in n)  # peft starts B at zero
    saved = dict(AutoModelForImageClassification.from_pretrained(tiny_vit).named_parameters())
    base = {n: p for n, p in module.named_parameters()
            if n not in lora | head and ".classifier." not in n}  # the new head has another shape
    assert len(base) == len(saved) - 2
    for name, p in base.items():
        assert torch.equal(p, saved[_base_name(name)]), name


def test_lora_targets_may_be_named_and_the_store_reopens_the_model(tiny_vit, images, lora_fitted, tmp_path):
    named = train_model(images, f"hf:{tiny_vit}?lora=2&targets=fc1", TrainConfig(epochs=1, seed=0))
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in select_params(named.module, "lora")} == {"fc1"}
    with pytest.raises(InfluenceError, match=r"^cannot add LoRA adapters: "):
        get_model_spec(f"hf:{tiny_vit}?lora=2&targets=nowhere").builder(images.input_shape, 3)
    store = Workspace(tmp_path / "ws")
    key = model_key(images, lora_fitted.arch, lora_fitted.config)
    store.save_model(key, lora_fitted)
    again = store.load_model(key, images)
    assert again.fingerprint() == lora_fitted.fingerprint()
    with torch.no_grad():
        torch.testing.assert_close(again.module.eval()(images.val.x), lora_fitted.module.eval()(images.val.x))
