"""Language-identification probe: the regression, the fast extraction, run_probe, the callback, the CLI."""

from __future__ import annotations

import json
import shutil
import sys
import types

import numpy as np
import pandas as pd
import pytest

from langtrainer.analysis.embeddings import extract_embeddings
from langtrainer.errors import UserError
from langtrainer.data.stratified import sample_per_language
from langtrainer.analysis.probe import (
    ProbeEvaluator,
    probe_c_sweep,
    probe_language,
    run_probe,
)
from tiny_model import SAMPLE_TEXTS, tiny_test_frame

LANGS = ["de", "en", "es", "fr", "ja", "zh"]


def _clusters(per_language: int, dim: int, separation: float, seed: int = 0):
    """Gaussian blobs, one per language, unit noise, centres `separation` apart on distinct axes."""
    rng = np.random.default_rng(seed)
    rows, langs = [], []
    for i, lang in enumerate(LANGS):
        centre = np.zeros(dim)
        centre[i] = separation
        rows.append(centre + rng.normal(size=(per_language, dim)))
        langs += [lang] * per_language
    return np.vstack(rows).astype(np.float32), langs


def _varied_texts() -> tuple[list[str], list[str]]:
    texts, langs = [], []
    for lang, items in SAMPLE_TEXTS.items():
        for i, text in enumerate(items):
            for repeat in (1, 3):
                texts.append(" ".join([text] * (repeat + i)))
                langs.append(lang)
    return texts, langs


# --------------------------------------------------------------------------- probe_language


def test_separable_languages_are_identified():
    features, langs = _clusters(60, 16, separation=8.0)
    result = probe_language(features, langs, C=1.0, folds=5)
    assert result.accuracy_mean >= 0.99
    assert result.languages == sorted(LANGS)
    assert result.n_per_language == {lang: 60 for lang in LANGS}
    assert all(r >= 0.95 for r in result.recall_per_language.values())
    assert len(result.fold_accuracies) == 5
    assert np.array(result.confusion).sum() == 360
    assert result.chance_accuracy == pytest.approx(1 / 6)
    assert result.converged


def test_shuffled_labels_score_chance():
    features, langs = _clusters(60, 16, separation=8.0)
    shuffled = list(np.random.default_rng(1).permutation(langs))
    result = probe_language(features, shuffled, C=1.0, folds=5)
    assert abs(result.accuracy_mean - 1 / 6) < 0.08


def _signal_under_noise(per_language: int = 40, seed: int = 0):
    """Languages perfectly separable on 6 low-variance axes, plus 10 high-variance noise axes.

    A strongly regularised regression leans on the high-variance axes (its
    weights approach the class-mean differences) and scores near chance; a
    weakly regularised or standardised one finds the signal.
    """
    rng = np.random.default_rng(seed)
    rows, langs = [], []
    for i, lang in enumerate(LANGS):
        signal = rng.normal(scale=0.1, size=(per_language, 6))
        signal[:, i] += 1.0
        rows.append(np.hstack([signal, rng.normal(scale=5.0, size=(per_language, 10))]))
        langs += [lang] * per_language
    return np.vstack(rows), langs


def test_small_c_regularises_and_sweep_shows_it():
    # This is why the paper's numbers (C=1e-4) sit far from 1.0, and why a sweep is reported.
    features, langs = _signal_under_noise()
    sweep = probe_c_sweep(features, langs, Cs=(1e-4, 1.0), folds=4)
    assert [r.settings["C"] for r in sweep] == [1e-4, 1.0]
    assert sweep[0].accuracy_mean < 0.3
    assert sweep[1].accuracy_mean > 0.95
    default = probe_language(features, langs, folds=4)
    assert default.settings["C"] == 1e-4
    assert default.fold_accuracies == sweep[0].fold_accuracies


def test_standardize_option_changes_small_c_result():
    features, langs = _signal_under_noise()
    scaled = probe_language(features, langs, C=1e-4, folds=4, standardize=True)
    assert scaled.settings["standardize"] is True
    assert scaled.accuracy_mean > 0.95


def test_fits_run_on_one_blas_thread_with_the_same_result(monkeypatch):
    """The fits run under a one-thread BLAS limit (the speed-up of bench_probe_blas.py), same numbers."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_info

    features, langs = _clusters(40, 64, separation=1.0, seed=2)
    threads_seen = []
    original_fit = LogisticRegression.fit

    def recording_fit(self, *args, **kwargs):
        threads_seen.append({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"})
        return original_fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", recording_fit)
    limited = probe_language(features, langs, C=0.01, folds=5)
    assert threads_seen == [{1}] * 5
    unlimited = probe_language(features, langs, C=0.01, folds=5, blas_threads=None)
    assert unlimited.fold_accuracies == limited.fold_accuracies
    assert unlimited.confusion == limited.confusion


def test_confusion_and_recall_agree():
    features, langs = _clusters(30, 6, separation=1.5, seed=3)
    result = probe_language(features, langs, C=1.0, folds=3)
    confusion = np.array(result.confusion)
    assert confusion.sum(axis=1).tolist() == [30] * 6
    for i, lang in enumerate(result.languages):
        assert result.recall_per_language[lang] == pytest.approx(confusion[i, i] / 30)
    pooled = np.trace(confusion) / confusion.sum()
    assert result.accuracy_mean == pytest.approx(pooled, abs=1e-9)  # equal-size folds
    assert 0.3 < result.accuracy_mean < 1.0
    again = probe_language(features, langs, C=1.0, folds=3)
    assert again.fold_accuracies == result.fold_accuracies
    json.dumps(result.to_dict())


def test_too_few_examples_per_fold_is_a_user_error():
    features, langs = _clusters(3, 6, separation=5.0)
    with pytest.raises(UserError, match="fewer than folds=5"):
        probe_language(features, langs, folds=5)
    with pytest.raises(UserError, match="at least 2 languages"):
        probe_language(features[:3], langs[:3], folds=2)


def test_sample_per_language_caps_and_is_deterministic():
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(50)], "language": ["en"] * 30 + ["fr"] * 20})
    sample = sample_per_language(frame, 12, seed=4)
    assert sample["language"].value_counts().to_dict() == {"en": 12, "fr": 12}
    assert sample.equals(sample_per_language(frame, 12, seed=4))
    assert not sample.equals(sample_per_language(frame, 12, seed=5))
    assert len(sample_per_language(frame, 25, seed=0, languages=["fr"])) == 20


# --------------------------------------------------------------------------- extraction


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    return model.eval(), AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.parametrize("feature", ["first-token", "mean", "pooler"])
def test_batched_extraction_equals_one_by_one(tiny, feature):
    model, tokenizer = tiny
    texts, _ = _varied_texts()
    lengths = {len(tokenizer(t)["input_ids"]) for t in texts}
    assert len(lengths) > 5  # the batches really are padded
    batched = extract_embeddings(model, tokenizer, texts, feature=feature, batch_size=5)[-1]
    # padding_slack=inf: batches of 5 whatever their lengths, so most rows are padded
    padded = extract_embeddings(model, tokenizer, texts, feature=feature, batch_size=5, padding_slack=np.inf)[-1]
    single = np.stack([extract_embeddings(model, tokenizer, [t], feature=feature)[-1][0] for t in texts])
    assert batched.shape == (len(texts), 64)
    assert batched.dtype == np.float32
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(padded, single, atol=1e-5)
    # rows come back in input order, not in the length-sorted order
    assert np.abs(batched[0] - batched[1]).max() > 1e-3


def test_length_batches_pad_little_and_cover_every_row_once():
    from langtrainer.analysis.embeddings import length_batches

    lengths = [10, 3, 10, 9, 2, 2, 2, 8]
    # longest first; [7] alone: 8 and 3 together would pad 16 for 11 real tokens (> 1.1 x)
    assert length_batches(lengths, batch_size=3, slack=0.1) == [[0, 2, 3], [7], [1], [4, 5, 6]]
    assert length_batches(lengths, batch_size=3, slack=np.inf) == [[0, 2, 3], [7, 1, 4], [5, 6]]
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, size=500).tolist()
    batches = length_batches(lengths, batch_size=64, slack=0.1)
    assert sorted(i for batch in batches for i in batch) == list(range(500))
    for batch in batches:
        width, real = max(lengths[i] for i in batch), sum(lengths[i] for i in batch)
        assert len(batch) <= 64 and len(batch) * width <= 1.1 * real
    assert length_batches([], batch_size=4) == []


def test_first_token_is_the_cls_hidden_state(tiny):
    import torch

    model, tokenizer = tiny
    texts = ["The spreadsheet computes the sum of a column.", "在当前幻灯片之前插入新幻灯片。"]
    features = extract_embeddings(model, tokenizer, texts, layers=[1])[1]
    with torch.no_grad():
        reference = model.bert(**tokenizer(texts[1:], return_tensors="pt"), output_hidden_states=True)
    np.testing.assert_allclose(features[1], reference.hidden_states[1][0, 0].numpy(), atol=1e-5)


def test_all_layers_and_text_pairs(tiny, tiny_model_dir):
    from transformers import AutoModel

    model, tokenizer = tiny
    texts, _ = _varied_texts()
    layers = extract_embeddings(model, tokenizer, texts, layers="all", batch_size=7)
    assert sorted(layers) == [0, 1, 2]  # num_hidden_layers + 1
    last = extract_embeddings(model, tokenizer, texts)[-1]
    np.testing.assert_allclose(layers[2], last, atol=1e-6)
    assert np.abs(layers[0] - layers[2]).max() > 1e-2
    bare = AutoModel.from_pretrained(tiny_model_dir).eval()
    np.testing.assert_allclose(extract_embeddings(bare, tokenizer, texts)[-1], last, atol=1e-5)
    pairs = extract_embeddings(model, tokenizer, texts, text_pairs=texts[::-1], batch_size=4)[-1]
    pairs_single = np.stack(
        [extract_embeddings(model, tokenizer, [a], text_pairs=[b])[-1][0] for a, b in zip(texts, texts[::-1])]
    )
    np.testing.assert_allclose(pairs, pairs_single, atol=1e-5)
    assert np.abs(pairs - last).max() > 1e-3


def test_extraction_errors(tiny):
    from transformers import BertModel

    model, tokenizer = tiny
    with pytest.raises(UserError, match="does not exist"):
        extract_embeddings(model, tokenizer, ["a"], layers=[3])
    with pytest.raises(UserError, match="last layer"):
        extract_embeddings(model, tokenizer, ["a"], layers=[1], feature="pooler")
    no_pooler = BertModel(model.config, add_pooling_layer=False).eval()
    with pytest.raises(UserError, match="needs a model with a pooler"):
        extract_embeddings(no_pooler, tokenizer, ["a"], feature="pooler")
    model.train()
    extract_embeddings(model, tokenizer, ["a"])
    assert model.training
    model.eval()


# --------------------------------------------------------------------------- run_probe


def _test_frame(per_language: int = 10) -> pd.DataFrame:
    return tiny_test_frame(per_language)


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory):
    """A run directory: the tiny checkpoint plus data/ with a test split in de, en, fr."""
    import datasets

    path = tmp_path_factory.mktemp("run") / "run"
    shutil.copytree(tiny_model_dir, path)
    test = datasets.Dataset.from_pandas(_test_frame(), preserve_index=False)
    datasets.DatasetDict({"train_balanced": test, "test": test}).save_to_disk(str(path / "data"))
    return path


def test_run_probe_on_test_split(run_dir, tiny_model_dir):
    calls = []
    report = run_probe(
        run_dir, data="test", layer="all", folds=5, compare_base=str(tiny_model_dir), C=1.0,
        c_sweep=(1e-4, 1.0), progress=lambda done, total: calls.append((done, total)),
    ).to_dict()
    assert report["languages"] == ["de", "en", "fr"]
    assert report["n_per_language"] == {"de": 10, "en": 10, "fr": 10}
    assert report["layer"] == 2
    assert [e["layer"] for e in report["layers"]] == [0, 1, 2]
    assert report["accuracy_mean"] == report["layers"][-1]["accuracy_mean"]
    assert 0.0 <= report["accuracy_mean"] <= 1.0
    assert [e["C"] for e in report["c_sweep"]] == [1e-4, 1.0]
    assert report["c_sweep"][1]["accuracy_mean"] == report["accuracy_mean"]
    # the base is the same weights here: the same texts give the same numbers
    assert report["base"]["accuracy_mean"] == pytest.approx(report["accuracy_mean"])
    assert calls[-1] == (60, 60)
    json.dumps(report)


def test_run_probe_external_samples_fine_tuning_languages(run_dir, monkeypatch):
    corpus = pd.DataFrame(
        [
            {"id": f"{lang}-{i}", "text": f"{SAMPLE_TEXTS[lang][i % 2]} ({i})", "language": lang}
            for lang in ("de", "en", "es", "fr", "ja")
            for i in range(30 if lang != "fr" else 8)
        ]
    )
    requested = []

    def fake_load_builtin(name):
        requested.append(name)
        return corpus

    monkeypatch.setitem(sys.modules, "langtrainer.data.builtin", types.SimpleNamespace(load_builtin=fake_load_builtin))
    report = run_probe(run_dir, data="external", per_language=12, folds=4).to_dict()
    assert requested == ["debian-reference"]
    # languages seen in fine-tuning only (es, ja dropped); fr has only 8
    assert report["n_per_language"] == {"de": 12, "en": 12, "fr": 8}
    assert report["data_source"] == "builtin:debian-reference"
    chosen = run_probe(run_dir, data="external", per_language=5, folds=2, languages=["es", "ja"]).to_dict()
    assert chosen["n_per_language"] == {"es": 5, "ja": 5}
    with pytest.raises(UserError, match="no text in zh"):
        run_probe(run_dir, data="external", languages=["en", "zh"])


def test_run_probe_errors(tiny_model_dir, tmp_path):
    with pytest.raises(UserError, match="^data test needs a run directory"):
        run_probe(tiny_model_dir, data="test")
    with pytest.raises(UserError, match="does not exist"):
        run_probe(tmp_path / "missing", data="test")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"sentence": ["a"], "language": ["en"]}).to_csv(bad, index=False)
    with pytest.raises(UserError, match="the text column 'text' is not in the data"):
        run_probe(tiny_model_dir, data=str(bad))


# --------------------------------------------------------------------------- callback


def test_probe_callback_returns_metric_and_restores_train_mode(tiny_model_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from langtrainer.training.evaluator import Evaluator

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    callback = ProbeEvaluator.from_frame(_test_frame(), per_language=6, folds=3, C=1.0)
    assert isinstance(callback, Evaluator)
    assert len(callback.texts) == 18
    model.train()
    metrics = callback.compute_eval_metrics(model, tokenizer)
    assert set(metrics) == {"lid_accuracy", "lid_accuracy_std"}
    assert 0.0 <= metrics["lid_accuracy"] <= 1.0
    assert model.training
    # same sample, same model: same number
    assert callback.compute_eval_metrics(model, tokenizer) == metrics
    features = extract_embeddings(model, tokenizer, callback.texts)[-1]
    expected = probe_language(features, callback.languages, C=1.0, folds=3)
    assert metrics["lid_accuracy"] == pytest.approx(expected.accuracy_mean)


# --------------------------------------------------------------------------- CLI


def test_cli_probe_writes_json_and_layer_plot(run_dir, tmp_path):
    from typer.testing import CliRunner

    from langtrainer.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["probe", "--ckpt", str(run_dir), "--folds", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "probe_test.json").read_text())
    assert report["settings"]["C"] == 1e-4
    assert "accuracy" in result.output and "de" in result.output

    data = tmp_path / "texts.jsonl"
    _test_frame(4)[["text", "language"]].to_json(data, orient="records", lines=True)
    out = tmp_path / "out" / "probe.json"
    result = runner.invoke(
        app, ["probe", "--ckpt", str(run_dir), "--data", str(data), "--layer", "all", "--folds", "2", "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["n_per_language"] == {"de": 4, "en": 4, "fr": 4}
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"

    result = runner.invoke(app, ["probe", "--ckpt", str(tmp_path / "nope"), "--out", str(out), "--quiet"])
    assert result.exit_code == 2
    assert "does not exist" in result.output


# --------------------------------------------------------------------------- real model


@pytest.mark.slow
def test_real_model_identifies_languages_and_matches_the_pipeline():
    """multilingual-e5-small on Debian Reference paragraphs: languages are near-perfectly identifiable
    with a weak penalty, and the batched features equal the reference pipeline's, one text at a time."""
    from transformers import AutoModel, AutoTokenizer, pipeline

    from langtrainer.models import resolve_model_path

    report = run_probe("builtin:multilingual-e5-small", data="external", per_language=25, C=1.0, folds=5).to_dict()
    assert report["n_per_language"] == {lang: 25 for lang in LANGS}
    assert report["accuracy_mean"] > 0.9

    path = resolve_model_path("builtin:multilingual-e5-small")
    model, tokenizer = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    texts, _ = _varied_texts()
    batched = extract_embeddings(model, tokenizer, texts[:8], batch_size=4)[-1]
    extractor = pipeline("feature-extraction", model=model, tokenizer=tokenizer)
    single = np.stack([np.asarray(extractor(t)[0][0], dtype=np.float32) for t in texts[:8]])
    np.testing.assert_allclose(batched, single, atol=1e-4)
