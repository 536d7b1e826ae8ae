"""Model page, "Pretrained backbone" tab: fine-tuning the last block from weights the administrator named (a name,
never a path) runs as the project's training job and becomes the current model."""

from __future__ import annotations

import torch
import torchvision
from safetensors.torch import save_file

from .conftest import no_errors, open_page, project_of, settle


def _zip(folder) -> bytes:
    from tests.models.test_backbones import _image_zip

    return open(_image_zip(folder / "tints.zip", per_class=8, size=32), "rb").read()


def _configured_tiny_vit(workspace, tmp_path, monkeypatch):
    """A tiny random ViT saved to a folder the administrator names "tiny-vit" (offline), and a project on an image zip;
    returns the folder."""
    from transformers import ViTConfig

    from tests.models.test_hf_image import _write

    folder = _write(tmp_path / "tiny-vit", ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32))
    config = tmp_path / "server.toml"
    config.write_text(f'[server.hf_models]\n"tiny-vit" = "{folder}"\n')
    monkeypatch.setenv("INFLUENCE_CONFIG", str(config))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    project_of(workspace).upload_dataset(_zip(tmp_path), "tints.zip", image_size=32)
    return folder


def test_fine_tuning_the_last_block_from_named_weights(workspace, tmp_path, monkeypatch):
    torch.manual_seed(3)
    weights = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in torchvision.models.resnet18().state_dict().items()}, str(weights))
    config = tmp_path / "server.toml"
    config.write_text(f'[server.backbone_weights]\n"r18-ours" = "{weights}"\n')
    monkeypatch.setenv("INFLUENCE_CONFIG", str(config))
    proj = project_of(workspace)
    proj.upload_dataset(_zip(tmp_path), "tints.zip", image_size=32)
    at = open_page("2_Model.py")
    no_errors(at)
    at.selectbox(key="backbone-weights").select("r18-ours")
    at.radio(key="backbone-mode").set_value("Fine-tune the last block").run()
    assert "/" not in "".join(at.selectbox(key="backbone-weights").options)  # names, never paths
    next(n for n in at.number_input if n.label == "Epochs" and n.max == 100).set_value(1)
    next(b for b in at.button if b.label == "Fine-tune the last block").click().run()
    no_errors(settle(at))
    state = project_of(workspace).state()
    assert state.arch == "tv:resnet18?weights=r18-ours"
    start = proj.model().module.state_dict()["net.conv1.weight"]
    from safetensors.torch import load_file

    assert torch.equal(start, load_file(str(weights))["conv1.weight"])  # the named file's weights, frozen


def test_a_configured_hugging_face_image_classifier_trains_by_name(workspace, tmp_path, monkeypatch):
    folder = _configured_tiny_vit(workspace, tmp_path, monkeypatch)
    at = open_page("2_Model.py")
    no_errors(at)
    choice = next(s for s in at.selectbox if s.label == "Architecture")
    assert "tiny-vit — Hugging Face model, fine-tuned" in choice.options and not [o for o in choice.options if "/" in o]
    choice.select(f"hf:{folder}").run()
    next(n for n in at.number_input if n.label == "Epochs").set_value(1)
    next(b for b in at.button if b.label == "Train").click().run()
    no_errors(settle(at))
    assert project_of(workspace).state().arch == f"hf:{folder}"
    assert any("tiny-vit" in s.value for s in at.subheader)  # the model by its configured name


def test_a_hugging_face_image_classifier_trains_lora_adapters_from_the_page(workspace, tmp_path, monkeypatch):
    folder = _configured_tiny_vit(workspace, tmp_path, monkeypatch)
    at = open_page("2_Model.py")
    next(s for s in at.selectbox if s.label == "Architecture").select(f"hf:{folder}").run()
    next(n for n in at.number_input if n.label == "Epochs").set_value(1)
    next(n for n in at.number_input if n.label == "LoRA rank").set_value(2)
    next(b for b in at.button if b.label == "Train").click().run()
    no_errors(settle(at))
    proj = project_of(workspace)
    assert proj.state().arch == f"hf:{folder}?lora=2&alpha=4"
    fitted = proj.require_model()
    lora_a = [p for n, p in fitted.module.named_parameters() if "lora_A" in n]
    assert lora_a and all(p.shape[0] == 2 for p in lora_a)  # rank-2 adapters, as chosen on the page


def test_a_frozen_backbone_reads_the_zip_again_at_its_own_size(workspace, tmp_path, monkeypatch):
    """Uploaded at 32 (the Data page's default), the zip goes through the backbone at 224, the network's own input
    size, unless the user picks another; the page says so before anything runs."""
    weights = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in torchvision.models.resnet18().state_dict().items()}, str(weights))
    config = tmp_path / "server.toml"
    config.write_text(f'[server.backbone_weights]\n"r18-ours" = "{weights}"\n')
    monkeypatch.setenv("INFLUENCE_CONFIG", str(config))
    project_of(workspace).upload_dataset(_zip(tmp_path), "tints.zip", image_size=32)
    at = open_page("2_Model.py")
    at.selectbox(key="backbone-weights").select("r18-ours").run()
    size = next(s for s in at.selectbox if s.label.startswith("Image size for the backbone"))
    assert size.value == 224 and max(size.options, key=int) == "512"  # up to the server's default cap
    assert any("read again from the upload at 224×224 (now 32×32)" in c.value for c in at.caption)
    at.radio(key="backbone-mode").set_value("Fine-tune the last block").run()
    assert any("upload the zip again on Data with Image size 224" in c.value for c in at.caption)
    at.radio(key="backbone-mode").set_value("Frozen backbone + head").run()
    next(b for b in at.button if b.label == "Use the backbone's embeddings").click().run()
    no_errors(at)
    state = project_of(workspace).state()
    assert state.dataset_kwargs["image_size"] == 224 and state.dataset_kwargs["backbone_weights"] == "r18-ours"
    assert project_of(workspace).dataset().input_shape == (512,)
