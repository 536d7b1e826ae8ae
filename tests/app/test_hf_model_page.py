"""Model page with Hugging Face models (issue 18): a browser is offered only the administrator's configured names
(never the folder behind them), and training one reads the text again as that model's token ids."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from influence_core.project import Project  # noqa: E402
from tests.models.test_hf import MAX_TOKENS, _frame, _write_tiny_bert  # noqa: E402

from .conftest import no_errors, open_page, settle  # noqa: E402


def test_a_configured_hf_model_is_offered_by_name_and_trains_on_token_ids(workspace, tmp_path, monkeypatch):
    folder = tmp_path / "tiny-bert"
    _write_tiny_bert(folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("INFLUENCE_CONFIG", str(tmp_path / "server.toml"))
    (tmp_path / "server.toml").write_text(f'[server.hf_models]\ntiny = "{folder}"\n')
    csv = tmp_path / "reviews.csv"
    _frame(40, 7).to_csv(csv, index=False)
    Project.open("default", workspace).use_dataset(str(csv), label_column="label", text_columns=["review"])

    at = open_page("2_Model.py")
    no_errors(at)
    choice = next(s for s in at.selectbox if s.label == "Architecture")
    assert "tiny — Hugging Face model, fine-tuned" in choice.options
    assert not [o for o in choice.options if str(folder) in o]  # the server's folder never reaches the browser
    choice.set_value(f"hf:{folder}").run()
    next(w for w in at.number_input if w.label == "Epochs").set_value(1)
    next(w for w in at.number_input if w.label == "Max tokens").set_value(MAX_TOKENS)
    next(b for b in at.button if b.label == "Train").click().run()
    at = settle(at)
    no_errors(at)
    project = Project.open("default", workspace)
    assert project.state().arch == f"hf:{folder}" and project.dataset().input_shape == (MAX_TOKENS,)
    assert any("Current model: tiny" in h.value for h in at.subheader)
