"""Hugging Face sequence classifiers (influence_core/models/hf.py), offline: a tiny BERT built from a config with
random weights and a word-level tokenizer trained on the test's own sentences, saved to a folder and loaded through
the same ``hf:<folder>`` path a user's model takes."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from influence_core.api import compute_scores  # noqa: E402
from influence_core.data import Dataset  # noqa: E402
from influence_core.data.text import text_dataset  # noqa: E402
from influence_core.errors import InfluenceError  # noqa: E402
from influence_core.grads import select_params  # noqa: E402
from influence_core.models import TrainConfig, get_model_spec, train_model  # noqa: E402
from influence_core.models.hf import HFSettings, TokenSettings, arch_name, parse_arch, token_ids  # noqa: E402
from influence_core.keys import model_key  # noqa: E402
from influence_core.workspace import Workspace  # noqa: E402

from tests.reference import per_sample_grad_loop, relative_error, validation_loss_grad  # noqa: E402

MAX_TOKENS = 10
POSITIVE = ["good", "great", "fine", "lovely"]
NEGATIVE = ["bad", "awful", "poor", "dull"]
FILLER = ["the", "film", "was", "a", "plot", "and", "very", "cast", "story", "really"]


def _sentences(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Short reviews whose label follows a sentiment word (10% flipped); a binary attribute for the fairness impact."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    texts = []
    for label in y:
        words = list(rng.choice(FILLER, rng.integers(2, 9))) + [rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        texts.append(" ".join(words))
    flipped = rng.random(n) < 0.1
    sensitive = (rng.random(n) < 0.5).astype(np.int64)
    return texts, np.where(flipped, 1 - y, y), sensitive


def _write_tiny_bert(folder, config=None, texts: list[str] | None = None, hidden_size: int = 16) -> None:
    """A word-level tokenizer trained on ``texts`` (default: this file's sentences) and a BERT (``config``'s sizes,
    else tiny with ``hidden_size``) with random weights, saved to ``folder`` as a user's model would be (also
    bench/reproduce.py's transformer for the Section 6 experiment and bench/hf_text.py's)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts or _sentences(200, 99)[0], trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]")
    torch.manual_seed(0)
    config = config or BertConfig(hidden_size=hidden_size, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=2 * hidden_size, max_position_embeddings=32, hidden_dropout_prob=0.1)
    config.vocab_size = len(fast)
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-bert")
    _write_tiny_bert(folder)
    return str(folder)


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at import
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.getbasetemp() / "empty-hf-home"))


def _frame(n: int, seed: int) -> pd.DataFrame:
    texts, y, s = _sentences(n, seed)
    return pd.DataFrame({"review": texts, "label": np.array(["negative", "positive"])[y], "group": s})


def _dataset(folder: str) -> Dataset:
    """Loaded as a user's text would be: data/text.py's `text_dataset` with the "hf" featurizer."""
    return text_dataset(_frame(40, 0), _frame(16, 1), _frame(12, 2), text_columns=["review"], label_column="label",
                        sensitive_column="group", features="hf", featurizer_settings=TokenSettings(folder, MAX_TOKENS),
                        name="tiny-reviews")


@pytest.fixture(scope="module")
def reviews(tiny_bert):
    return _dataset(tiny_bert)


@pytest.fixture(scope="module")
def fitted(tiny_bert, reviews):
    return train_model(reviews, f"hf:{tiny_bert}", TrainConfig(epochs=2, lr=1e-3, checkpoint_every=1, seed=0))


@pytest.fixture(scope="module")
def lora_fitted(tiny_bert, reviews):
    return train_model(reviews, arch_name(tiny_bert, HFSettings(lora_rank=4, lora_alpha=8)),
                       TrainConfig(epochs=1, lr=1e-2, seed=0))


def test_token_ids_are_the_tokenizers_own_padded_and_truncated(tiny_bert):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    texts = ["the film was good", "a very very very very very very very very long dull plot"]
    ids = token_ids(tiny_bert, texts, MAX_TOKENS)
    assert ids.dtype == np.float32 and ids.shape == (2, MAX_TOKENS)
    first = tokenizer(texts[0])["input_ids"]
    assert ids[0, : len(first)].tolist() == first and (ids[0, len(first):] == tokenizer.pad_token_id).all()
    assert ids[1].tolist() == tokenizer(texts[1], truncation=True, max_length=MAX_TOKENS)["input_ids"]
    pair = token_ids(tiny_bert, [("the film", "was good")], MAX_TOKENS)[0]
    assert pair[:7].tolist() == tokenizer("the film", "was good")["input_ids"]


def test_the_hf_featurizer_reads_two_text_columns_as_a_sentence_pair(tiny_bert, reviews):
    frame = pd.DataFrame({"premise": ["the film was good", "a dull plot"], "hypothesis": ["good", "the cast was fine"],
                          "label": ["yes", "no"]})
    pairs = text_dataset(frame, frame, frame, text_columns=["premise", "hypothesis"], label_column="label",
                         features="hf", featurizer_settings=TokenSettings(tiny_bert, MAX_TOKENS))
    expected = token_ids(tiny_bert, list(zip(frame.premise, frame.hypothesis)), MAX_TOKENS)
    np.testing.assert_array_equal(pairs.train.x.numpy(), expected)
    assert pairs.texts["train"][0].startswith("the film was good") and pairs.kind == "text"
    np.testing.assert_array_equal(reviews.train.x.numpy(), token_ids(tiny_bert, reviews.texts["train"], MAX_TOKENS))
    with pytest.raises(InfluenceError, match="need the model whose tokenizer"):
        text_dataset(frame, frame, frame, text_columns=["premise"], label_column="label", features="hf")


def test_training_refuses_text_tokenized_for_another_model_or_tf_idf(tiny_bert, reviews):
    frame = _frame(12, 3)
    tfidf = text_dataset(frame, frame, frame, text_columns=["review"], label_column="label")
    with pytest.raises(InfluenceError, match="reads token ids; load the text with features 'hf'"):
        train_model(tfidf, f"hf:{tiny_bert}", TrainConfig(epochs=1))
    other = text_dataset(frame, frame, frame, text_columns=["review"], label_column="label", features="hf",
                         featurizer_settings={"model": tiny_bert + "/", "max_tokens": MAX_TOKENS})
    with pytest.raises(InfluenceError, match="was tokenized for"):
        train_model(other, f"hf:{tiny_bert}", TrainConfig(epochs=1))


def test_the_wrapper_gives_the_models_own_logits_with_its_mask_and_segments(tiny_bert, reviews):
    module = get_model_spec(f"hf:{tiny_bert}").builder(reviews.input_shape, 2).eval()
    x = torch.as_tensor(token_ids(tiny_bert, [("the film", "was good"), "bad"], MAX_TOKENS))
    ids = x.long()
    pad = module.pad_id
    sep_seen = (ids == module.sep_id).long().cumsum(1)
    types = ((sep_seen - (ids == module.sep_id).long()) > 0).long()
    expected = module.model(input_ids=ids, attention_mask=(ids != pad).long(), token_type_ids=types).logits
    assert types[0].tolist()[:7] == [0, 0, 0, 0, 1, 1, 1]
    torch.testing.assert_close(module(x), expected, atol=1e-6, rtol=1e-5)
    assert module(x).shape == (2, 1)  # a binary task: one logit, as every built-in model


def _columns(module, names) -> torch.Tensor:
    """Positions of the parameters ``names`` in the flat gradient over ``module.parameters()``."""
    out, start = [], 0
    for name, p in module.named_parameters():
        if name in names:
            out.append(torch.arange(start, start + p.numel()))
        start += p.numel()
    return torch.cat(out)


@pytest.mark.parametrize("group", ["head", "last:1", "all"])
def test_ip_on_a_parameter_group_equals_an_autograd_loop(fitted, reviews, group):
    module = copy.deepcopy(fitted.module).eval()
    cols = _columns(module, select_params(module, group))
    target = validation_loss_grad(module, reviews.val.x, reviews.val.y)[cols]
    expected = per_sample_grad_loop(module, reviews.train.x, reviews.train.y)[:, cols] @ target
    got = compute_scores(reviews, fitted, "ip", params=group, batch_size=16, impact_settings={"val_trim": 0.0})
    assert relative_error(got, expected) < 1e-5


def test_parameter_groups_select_the_head_and_the_last_layers(fitted):
    names = [n for n, _ in fitted.module.named_parameters()]
    assert sorted(select_params(fitted.module, "head")) == ["model.classifier.bias", "model.classifier.weight"]
    last = select_params(fitted.module, "last:1")
    assert sorted(last) == sorted([n for n in names if ".layer.1." in n] + ["model.classifier.bias", "model.classifier.weight"])
    assert len(select_params(fitted.module, "all")) == len(names)
    with pytest.raises(InfluenceError, match="no LoRA adapters"):
        select_params(fitted.module, "lora")


METHODS = [("ip", "all", {}), ("ip_ensemble", "all", {"ensemble_size": 2}), ("tracin", "last:1", {}),
           ("self_tracin", "head", {}), ("exact", "head", {}), ("lissa", "head", {"depth": 20}),
           ("ekfac", "head", {}), ("datainf", "head", {}), ("tda", "head", {}), ("gex", "head", {"steps": 2}),
           ("loss", "all", {}), ("margin", "all", {}), ("confident_learning", "all", {}),
           ("ip_combined", "all", {}), ("ip_classwise", "head", {})]
UTILITY_ONLY = {"ip_combined", "ip_classwise"}  # class-conditional targets are means over validation samples


@pytest.mark.parametrize("method, params, settings", METHODS, ids=[m[0] for m in METHODS])
def test_every_method_and_impact_runs(fitted, reviews, method, params, settings):
    from influence_core.methods import METHODS as REGISTRY

    impacts = ["utility", "fairness"] if REGISTRY[method].uses_impact and method not in UTILITY_ONLY else ["utility"]
    results = {}
    for impact in impacts:
        scores = compute_scores(reviews, fitted, method, impact, params=params, batch_size=16, **settings)
        assert scores.shape == (len(reviews.train),) and np.isfinite(scores).all(), (method, impact)
        assert np.abs(scores).max() > 0, (method, impact)
        results[impact] = scores
    if len(results) == 2:  # the impact reaches the scores
        assert not np.allclose(results["utility"], results["fairness"])


def test_the_robustness_impact_refuses_token_ids_in_one_line(fitted, reviews):
    with pytest.raises(InfluenceError, match="reads token ids") as err:
        compute_scores(reviews, fitted, "ip", "robustness", params="head")
    assert "\n" not in str(err.value)


def test_robustness_is_not_offered_for_token_ids_and_the_cli_refuses_it_before_training(fitted, reviews, tiny_bert,
                                                                                       tmp_path, capsys, monkeypatch):
    """Issue 18: the attack has no gradient step on integer token ids, so the impact is refused (an attack on the
    input embeddings would score another model's inputs): the Scores page does not list it, the CLI says so in one
    line before training; a model on TF-IDF features keeps it."""
    from influence_core.cli import main
    from influence_core.data.text import generated_text_frame, text_dataset
    from influence_core.project import Project

    offered = Project.impacts_offered(reviews, fitted)
    assert "robustness" not in offered and "utility" in offered and "fairness" in offered
    tfidf = text_dataset(generated_text_frame(80, num_classes=2, seed=0), text_columns=["text"], label_column="label")
    assert "robustness" in Project.impacts_offered(tfidf, train_model(tfidf, "text-linear"))
    path = tmp_path / "reviews.csv"
    pd.DataFrame({"text": reviews.texts["train"], "label": reviews.train.y.numpy()}).to_csv(path, index=False)
    capsys.readouterr()
    monkeypatch.setattr(Project, "train", lambda *a, **k: pytest.fail("trained before refusing"))
    code = main(["score", "--dataset", str(path), "--text-column", "text", "--model", f"hf:{tiny_bert}",
                 "--impact", "robustness", "--method", "ip", "--no-cache", "--quiet", "--out", str(tmp_path / "s.csv")])
    assert code == 2 and capsys.readouterr().err == ("error: the robustness impact perturbs continuous inputs; "
                                                     "this model reads token ids\n")
    assert not (tmp_path / "s.csv").exists()


def _state(module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_lora_trains_only_the_adapters_and_the_head(tiny_bert, reviews, lora_fitted):
    arch = lora_fitted.arch
    assert parse_arch(arch) == (tiny_bert, HFSettings(lora_rank=4, lora_alpha=8))
    torch.manual_seed(0)
    before = _state(get_model_spec(arch).builder(reviews.input_shape, 2))  # the same seed as training: same init
    after = _state(lora_fitted.module)
    assert before.keys() == after.keys()
    changed = {n for n in after if not torch.equal(before[n], after[n])}
    lora = set(select_params(lora_fitted.module, "lora"))
    head = set(select_params(lora_fitted.module, "head"))
    assert lora == {n for n in after if "lora_A" in n or "lora_B" in n} and lora
    assert head == {n for n in after if "classifier.modules_to_save" in n}
    assert changed <= lora | head and any("lora_B" in n for n in changed) and head & changed


def test_ip_on_the_lora_matrices_equals_an_autograd_loop(lora_fitted, reviews):
    module = copy.deepcopy(lora_fitted.module).eval().requires_grad_(True)
    cols = _columns(module, select_params(module, "lora"))
    target = validation_loss_grad(module, reviews.val.x, reviews.val.y)[cols]
    expected = per_sample_grad_loop(module, reviews.train.x, reviews.train.y)[:, cols] @ target
    got = compute_scores(reviews, lora_fitted, "ip", params="lora", batch_size=16, impact_settings={"val_trim": 0.0})
    assert relative_error(got, expected) < 1e-5


def test_scoring_runs_the_model_without_dropout(fitted, reviews):
    """The tiny BERT has dropout 0.1: scores computed twice agree, and equal the eval-mode loss."""
    from influence_core.grads import per_sample_loss

    first = compute_scores(reviews, fitted, "loss")
    module = copy.deepcopy(fitted.module).eval()
    with torch.no_grad():
        expected = per_sample_loss(module(reviews.train.x), reviews.train.y).numpy()
    np.testing.assert_allclose(compute_scores(reviews, fitted, "loss"), first, rtol=0, atol=0)
    assert np.allclose(np.abs(first), expected, rtol=1e-5)


def test_the_store_saves_and_reopens_the_fitted_model(tmp_path, fitted, lora_fitted, reviews):
    store = Workspace(tmp_path)
    for model in (fitted, lora_fitted):
        key = model_key(reviews, model.arch, model.config)
        store.save_model(key, model)
        reopened = store.load_model(key, reviews)
        assert reopened is not None and reopened.arch == model.arch
        assert reopened.fingerprint() == model.fingerprint()
        torch.testing.assert_close(reopened.module(reviews.test.x), model.module.eval()(reviews.test.x))
        assert len(reopened.checkpoints) == len(model.checkpoints)


def test_a_stored_model_whose_base_is_out_of_reach_is_kept(tmp_path, tiny_bert, reviews, fitted):
    """The store does not drop a fine-tuned model because its base model cannot be read right now."""
    import shutil

    from influence_core.models import registry

    moved = tmp_path / "bert"
    shutil.copytree(tiny_bert, moved)
    model = copy.copy(fitted)
    model.arch = f"hf:{moved}"
    store = Workspace(tmp_path / "ws")
    key = model_key(reviews, model.arch, model.config)
    store.save_model(key, model)
    shutil.move(moved, tmp_path / "elsewhere")
    registry._RESOLVED.clear()
    with pytest.raises(InfluenceError, match="no model folder|cannot load"):
        store.load_model(key, reviews)
    shutil.move(tmp_path / "elsewhere", moved)
    assert store.load_model(key, reviews).fingerprint() == model.fingerprint()


def test_an_uncached_hub_id_offline_is_one_line():
    with pytest.raises(InfluenceError, match="not in the local Hugging Face cache and this machine is offline") as err:
        get_model_spec("hf:someone/not-downloaded").builder((MAX_TOKENS,), 2)
    assert "\n" not in str(err.value)
    with pytest.raises(InfluenceError, match="no model folder"):
        get_model_spec("hf:./no/such/folder").builder((MAX_TOKENS,), 2)
    with pytest.raises(InfluenceError, match="unknown setting 'rank'"):
        get_model_spec("hf:x?rank=4")


def test_pickle_weights_load_only_from_a_model_the_administrator_configured(tmp_path, monkeypatch, tiny_bert):
    import shutil

    from transformers import AutoModelForSequenceClassification

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_bert, folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    monkeypatch.setenv("INFLUENCE_CONFIG", str(tmp_path / "server.toml"))
    with pytest.raises(InfluenceError, match=r"no \.safetensors weights; pickle \(\.bin\) weights are loaded only"):
        get_model_spec(f"hf:{folder}").builder((MAX_TOKENS,), 2)
    (tmp_path / "server.toml").write_text(f'[server.hf_models]\npickled = "{folder}"\n')
    module = get_model_spec(f"hf:{folder}").builder((MAX_TOKENS,), 2)
    torch.testing.assert_close(module.model.bert.embeddings.word_embeddings.weight, model.bert.embeddings.word_embeddings.weight)


def test_a_project_trains_and_scores_an_hf_model_on_a_text_upload(tmp_path, monkeypatch, tiny_bert):
    from influence_core.project import Project, ScoreRun

    monkeypatch.setenv("INFLUENCE_CONFIG", str(tmp_path / "server.toml"))
    (tmp_path / "server.toml").write_text(f'[server.hf_models]\ntiny = "{tiny_bert}"\n')
    project = Project.open("reviews", tmp_path / "workspace")
    csv = tmp_path / "reviews.csv"
    pd.concat([_frame(30, 4), _frame(30, 5)]).to_csv(csv, index=False)
    project.use_dataset(str(csv), label_column="label", text_columns=["review"], feature_columns=[])
    with pytest.raises(InfluenceError, match="not a model offered here; choose one of: tiny"):
        project.use_hf_model(tiny_bert, from_browser=True)  # a browser names a configured model, never a folder
    assert project.hf_models() == {"tiny": f"hf:{tiny_bert}"}
    arch = project.use_hf_model("tiny", max_tokens=MAX_TOKENS, from_browser=True)
    dataset = project.dataset()
    assert arch == f"hf:{tiny_bert}" and dataset.input_shape == (MAX_TOKENS,)
    np.testing.assert_array_equal(dataset.train.x.numpy(), token_ids(tiny_bert, dataset.texts["train"], MAX_TOKENS))
    fitted = project.train(arch, {"epochs": 1})
    scores = project.score(ScoreRun("ip", params="head"))
    assert scores.shape == (len(dataset.train),) and np.isfinite(scores).all()
    reopened = Project.open("reviews", tmp_path / "workspace")  # a new session: the model comes from the store
    assert reopened.model().fingerprint() == fitted.fingerprint()


def test_the_cli_scores_a_text_csv_with_an_hf_model(tmp_path, tiny_bert):
    from influence_core.cli import main

    csv, out = tmp_path / "reviews.csv", tmp_path / "scores.csv"
    _frame(40, 6).to_csv(csv, index=False)
    assert main(["score", "--dataset", str(csv), "--text-column", "review", "--label-column", "label",
                 "--model", f"hf:{tiny_bert}", "--max-tokens", str(MAX_TOKENS), "--epochs", "1", "--params", "head",
                 "--workspace", str(tmp_path / "ws"), "--out", str(out), "--quiet"]) == 0
    scores = pd.read_csv(out)
    assert len(scores) > 0 and np.isfinite(scores.select_dtypes("number").to_numpy()).all()


def test_the_feature_map_reads_the_models_pooled_embedding(fitted, reviews):
    from influence_core.analysis import penultimate_features

    module = fitted.module.eval()
    ids = reviews.train.x.long()
    with torch.no_grad():
        pooled = module.model.bert(input_ids=ids, attention_mask=(ids != module.pad_id).long()).pooler_output
    np.testing.assert_allclose(penultimate_features(fitted, reviews.train), pooled.double().numpy(), atol=1e-5)


def test_a_browser_chooses_only_an_offered_hf_model():
    from influence_core.models.hf import choose_arch

    offered = {"tiny": "hf:/srv/models/tiny"}
    assert choose_arch("tiny", 64, 0, offered) == ("hf:/srv/models/tiny", TokenSettings("/srv/models/tiny", 64))
    arch, settings = choose_arch("some/hub-id", 32, lora_rank=4)
    assert settings == TokenSettings("some/hub-id", 32)
    assert parse_arch(arch) == ("some/hub-id", HFSettings(lora_rank=4, lora_alpha=8.0))
    with pytest.raises(InfluenceError, match="is not a model offered here; choose one of: tiny"):
        choose_arch("/srv/models/tiny", offered=offered)
    with pytest.raises(InfluenceError, match="max_tokens must be a whole number"):
        choose_arch("tiny", 64.0, 0, offered)
