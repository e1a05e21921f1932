"""The exported inference forward (models.inference): exact or not used, cached by weights, eager fallback."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from langtrainer.models import inference
from langtrainer.models.inference import inference_forward
from tiny_model import SAMPLE_TEXTS

TEXTS = [t for texts in SAMPLE_TEXTS.values() for t in texts]
needs_ort = pytest.mark.skipif(not inference.onnxruntime_available(), reason="onnxruntime not installed")


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LANGTRAINER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(inference.ENV_SWITCH, raising=False)
    return tmp_path / "cache" / "onnx"


@pytest.fixture()
def tiny(tiny_model_dir):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(1)
    return AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).eval(), \
        AutoTokenizer.from_pretrained(tiny_model_dir)


def padded(tokenizer, texts):
    enc = tokenizer(texts, padding=True, return_tensors="np")
    return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)


@needs_ort
def test_onnx_logits_equal_eager_and_the_export_is_cached_by_weights(tiny, cache, tiny_model_dir):
    import torch

    model, tokenizer = tiny
    ids, attention = padded(tokenizer, TEXTS)
    fast = inference_forward(model, "logits")
    assert fast.route == "onnxruntime"
    eager = inference_forward(model, "logits", fast=False)
    assert eager.route == "eager"
    np.testing.assert_allclose(fast(ids, attention)[0], eager(ids, attention)[0], atol=1e-5, rtol=0)
    assert inference_forward(model, "logits") is fast  # one session per model while its weights are unchanged
    files = sorted(cache.glob("*.onnx"))
    assert len(files) == 1 and files[0].name.endswith("-logits.onnx")
    assert not list(tiny_model_dir.glob("*.onnx"))  # never next to the model's own files

    with torch.no_grad():
        model.classifier.weight.mul_(-2.0)  # in place: same storage, new version
    changed = inference_forward(model, "logits")
    assert changed is not fast and len(list(cache.glob("*.onnx"))) == 2
    np.testing.assert_allclose(changed(ids, attention)[0], eager(ids, attention)[0], atol=1e-5, rtol=0)
    assert np.abs(changed(ids, attention)[0] - fast(ids, attention)[0]).max() > 0.01


@needs_ort
def test_features_equal_eager_extract_embeddings(tiny, cache, monkeypatch):
    from langtrainer.analysis.embeddings import extract_embeddings

    model, tokenizer = tiny
    fast = {f: extract_embeddings(model, tokenizer, TEXTS, layers="all", feature=f, batch_size=3)
            for f in ("first-token", "mean")}
    assert inference_forward(model.base_model, "features").route == "onnxruntime"
    monkeypatch.setenv(inference.ENV_SWITCH, "0")
    for feature, layers in fast.items():
        eager = extract_embeddings(model, tokenizer, TEXTS, layers="all", feature=feature, batch_size=3)
        for layer, values in layers.items():
            np.testing.assert_allclose(values, eager[layer], atol=1e-5, rtol=0)


@needs_ort
def test_shap_values_through_onnx_equal_the_eager_engine(tiny, cache):
    from langtrainer.analysis.shap import ModelRunner, explain

    model, tokenizer = tiny
    fast_runner = ModelRunner(model, tokenizer, batch_size=64)
    eager_runner = ModelRunner(model, tokenizer, batch_size=64, fast=False)
    ours = explain(model, tokenizer, TEXTS[:6], runner=fast_runner)
    eager = explain(model, tokenizer, TEXTS[:6], runner=eager_runner)
    assert (fast_runner.route, eager_runner.route) == ("onnxruntime", "eager")
    assert fast_runner.n_rows == eager_runner.n_rows
    for a, b in zip(ours, eager):
        np.testing.assert_allclose(a.values, b.values, atol=1e-6, rtol=0)


def test_eager_when_switched_off_missing_or_inexact(tiny, cache, monkeypatch, caplog):
    model, tokenizer = tiny
    ids, attention = padded(tokenizer, TEXTS[:3])
    expected = inference_forward(model, "logits", fast=False)(ids, attention)[0]

    monkeypatch.setenv(inference.ENV_SWITCH, "0")
    assert inference_forward(model, "logits").route == "eager"
    monkeypatch.delenv(inference.ENV_SWITCH)

    monkeypatch.setattr(inference, "onnxruntime_available", lambda: False)
    missing = inference_forward(model, "features")
    assert missing.route == "eager"
    monkeypatch.undo()
    monkeypatch.setenv("LANGTRAINER_CACHE", str(cache.parent))

    if inference.onnxruntime_available():
        monkeypatch.setattr(inference, "TOLERANCE", -1.0)  # no export can pass: it must not be used
        inference._sessions.pop(model, None)
        with caplog.at_level(logging.WARNING, logger="langtrainer.models.inference"):
            inexact = inference_forward(model, "logits")
        assert inexact.route == "eager"
        assert "differs from the eager model" in caplog.text
        np.testing.assert_array_equal(inexact(ids, attention)[0], expected)


def test_weights_hash_follows_every_weight_but_the_word_embeddings(tiny):
    import torch

    model, _ = tiny
    before = inference.weights_hash(model)
    with torch.no_grad():
        model.get_input_embeddings().weight[7, 0] += 1.0  # not in the exported graph
    assert inference.weights_hash(model) == before
    with torch.no_grad():
        next(model.base_model.encoder.parameters()).view(-1)[0] += 1e-3
    assert inference.weights_hash(model) != before


@needs_ort
def test_trainer_predictions_through_onnx_equal_the_eager_ones(tiny_model_dir, cache, tmp_path, monkeypatch):
    """The test split's predictions (finetune's test block, predictions.parquet) through the exported
    forward: the same predicted labels, probabilities and losses as the eager model's."""
    import torch

    from test_trainer import make_dataset, make_trainer

    torch.set_num_threads(1)
    dataset = make_dataset(n=24, seed=3)
    trainer = make_trainer(tiny_model_dir, tmp_path, dataset=dataset, per_device_eval_batch_size=5,
                           class_weights="per_language")
    with torch.no_grad():  # a fresh head's logits are ~0.01: larger ones, whose rows differ by ~0.05
        head = trainer.model.classifier
        head.weight.copy_(torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(0)) * 5)
    eager = trainer.predict(trainer.eval_dataset, metric_key_prefix="test")
    with trainer.inference_predictions() as route:
        fast = trainer.predict(trainer.eval_dataset, metric_key_prefix="test")
    assert route == "onnxruntime" and trainer._inference_forward is None  # used inside only
    assert len(list(cache.glob("*-logits.onnx"))) == 1
    assert not np.array_equal(fast.predictions, eager.predictions)  # the other route really ran
    np.testing.assert_allclose(fast.predictions, eager.predictions, atol=1e-5, rtol=0)
    # rows that differ far beyond the tolerance: predictions paired with the wrong rows would show
    assert np.abs(np.diff(eager.predictions, axis=0)).max(axis=1).min() > 1e-3
    assert (fast.predictions.argmax(-1) == eager.predictions.argmax(-1)).all()

    def probabilities(logits):
        return torch.softmax(torch.as_tensor(logits, dtype=torch.float64), -1).numpy()

    np.testing.assert_allclose(probabilities(fast.predictions), probabilities(eager.predictions), atol=1e-6, rtol=0)
    for key in ("test_loss", "test_ce"):
        assert fast.metrics[key] == pytest.approx(eager.metrics[key], rel=1e-6)

    monkeypatch.setenv(inference.ENV_SWITCH, "0")  # the switch: the eager model, bit for bit
    with trainer.inference_predictions() as route:
        off = trainer.predict(trainer.eval_dataset, metric_key_prefix="test")
    assert route == "eager"
    np.testing.assert_array_equal(off.predictions, eager.predictions)


def test_the_same_weights_loaded_from_another_folder_share_the_export(tiny_model_dir, tmp_path):
    """finetune exports the trained model in memory for its test predictions; SHAP then loads the
    saved model from the run folder: the same weights, the same cached export."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    model.save_pretrained(tmp_path / "run")
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run")
    assert again.config._name_or_path != model.config._name_or_path
    assert inference.weights_hash(again) == inference.weights_hash(model)
    import torch

    with torch.no_grad():
        again.classifier.bias.add_(1e-3)
    assert inference.weights_hash(again) != inference.weights_hash(model)
    model.config.hidden_act = "relu"  # a setting of the computation is part of the key
    assert inference.weights_hash(model) != inference.weights_hash(
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "run"))
