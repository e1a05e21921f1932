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
