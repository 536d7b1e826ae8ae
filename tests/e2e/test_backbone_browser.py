"""Images through a pretrained backbone in a real browser (issue 18 §3): upload an image zip at 224×224, switch to a
frozen torchvision resnet18 whose weights are a file the server's administrator named (random weights written to
safetensors: no download), train a logistic-regression head, score with IP and see the flagged list.

Skipped like tests/e2e/test_browser.py when Chromium or Playwright is missing."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

from influence_core.project import Project
from tests.e2e.test_browser import _goto, _idle, _shot, _step, _until_finished, served_page

PER_CLASS = 8


def _zip(path) -> str:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as z:
        for c, name in enumerate(("red", "green", "blue")):
            for i in range(PER_CLASS):
                px = rng.integers(0, 90, size=(40, 40, 3))
                px[..., c] += 140
                buf = io.BytesIO()
                Image.fromarray(px.astype(np.uint8)).save(buf, format="PNG")
                z.writestr(f"{name}/{name}-photo-taken-on-a-sunny-afternoon-{i:03d}.png", buf.getvalue())  # long
    return str(path)


def _choose(page, label: str, option: str) -> None:
    page.get_by_test_id("stMain").get_by_test_id("stSelectbox").filter(has_text=label).first.click()
    page.get_by_role("option").filter(has_text=option).first.click()
    _idle(page)


def test_image_zip_at_224_through_a_frozen_backbone(tmp_path):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    torch.manual_seed(3)
    weights = tmp_path / "resnet18-random.safetensors"
    save_file({k: v.contiguous() for k, v in torchvision.models.resnet18().state_dict().items()}, str(weights))
    (workspace / "server.toml").write_text(f'[server.backbone_weights]\n"resnet18-test" = "{weights}"\n')
    Project.open("imgs", workspace)  # a URL opens a project, never makes one (issue 21)
    with served_page(workspace, timeout_ms=180_000) as (server, page):  # a shared, loaded test machine
        page.goto(f"{server.url}/?project=imgs")
        page.get_by_role("heading", name="Data", exact=True).wait_for()
        _step("upload at 224")
        _choose(page, "Data set", "Upload a file")
        _choose(page, "Image size", "224")
        page.locator("input[type=file]").set_input_files(_zip(tmp_path / "tints.zip"))
        page.get_by_text("training samples in 3 classes from tints.zip").wait_for(timeout=120_000)
        page.get_by_role("button", name="Use this upload").click()
        page.get_by_text("This upload is the current data set.").wait_for(timeout=120_000)
        _shot(page, "backbone-1-data")

        _goto(page, "Model")
        page.get_by_role("tab", name="Pretrained backbone").click()
        _choose(page, "Backbone", "resnet18")
        _choose(page, "Weights of the backbone", "resnet18-test")
        _step("embed")
        page.get_by_role("button", name="Use the backbone's embeddings").click()
        page.get_by_text("the embeddings of a frozen resnet18").wait_for(timeout=300_000)
        _shot(page, "backbone-2-embedded")
        page.get_by_role("tab", name="Train a model").click()
        _idle(page)
        _step("train the head")  # a head on vectors is offered first: logreg
        page.get_by_role("button", name="Train", exact=True).click()
        _until_finished(page, "Training finished.")
        page.get_by_text("Current model: logreg").wait_for()
        _shot(page, "backbone-3-head")

        _goto(page, "Scores")
        page.get_by_role("button", name="Compute scores").click()
        _until_finished(page, "training samples — lower = more detrimental")
        text = page.get_by_test_id("stMain").inner_text()
        assert "Scores of all" in text and "training samples" in text
        assert page.get_by_test_id("stDataFrame").count() >= 1
        _shot(page, "backbone-4-scores")

        _goto(page, "Review")
        cards = page.get_by_test_id("review-card")
        cards.first.wait_for(timeout=120_000)
        assert page.locator("[data-testid=review-card] img").count() >= 1  # the pictures, not the embeddings
        # a file name too long for its card is cut at its start: its end (the file's own name) is what shows
        shown = page.locator("[data-testid=review-card] .rg-file").first.evaluate("""el => {
            const text = el.querySelector("bdi").firstChild, box = el.getBoundingClientRect(), range = document.createRange();
            const inside = (i) => { range.setStart(text, i); range.setEnd(text, i + 1);
                                    const r = range.getBoundingClientRect(); return r.left >= box.left - 1 && r.right <= box.right + 1; };
            return {cut: el.scrollWidth > el.clientWidth, first: inside(0), last: inside(text.length - 1), title: el.title}; }""")
        assert shown["cut"] and shown["last"] and not shown["first"], shown
        assert re.fullmatch(r"(red|green|blue)/\1-photo-taken-on-a-sunny-afternoon-\d{3}\.png", shown["title"])
        _shot(page, "backbone-5-review")
