"""Token SHAP engine: additivity, equality with shap's own explainer, resumable runs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tiny_model import SAMPLE_TEXTS

TEXTS = [t for texts in SAMPLE_TEXTS.values() for t in texts]
LANGS = [lang for lang, texts in SAMPLE_TEXTS.items() for _ in texts]
# 40+ tokens: shap's 498-evaluation budget runs out before the tree is fully expanded.
LONG_TEXT = (
    "Die Tabelle berechnet die Summe einer Spalte und fügt eine neue Folie vor der aktuellen Folie ein, "
    "danach wird die Tabelle gespeichert und die Folie angezeigt."
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and the machine's cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _load(model_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    return model, tokenizer


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return _load(tiny_model_dir)


@pytest.fixture(scope="module")
def tiny_pair(tiny_pair_model_dir):
    return _load(tiny_pair_model_dir)


def _softmax(model, tokenizer, texts, pairs=None):
    import torch

    enc = tokenizer(list(texts), list(pairs), padding=True, return_tensors="pt") if pairs else tokenizer(
        list(texts), padding=True, return_tensors="pt"
    )
    with torch.inference_mode():
        return torch.softmax(model(**enc).logits, -1).numpy().astype(np.float64)


@pytest.fixture(scope="module")
def explained(tiny):
    from langtrainer.analysis.shap import explain

    model, tokenizer = tiny
    return explain(model, tokenizer, TEXTS + [LONG_TEXT])


# --------------------------------------------------------------------------- the engine


def test_additivity_and_baseline(tiny, explained):
    model, tokenizer = tiny
    probs = _softmax(model, tokenizer, TEXTS + [LONG_TEXT])
    for attribution, p in zip(explained, probs):
        assert attribution.values.dtype == np.float32
        assert attribution.values.shape == (len(attribution.token_ids), 4)
        np.testing.assert_allclose(attribution.values.sum(0) + attribution.base_values, attribution.probabilities, atol=1e-5)
        np.testing.assert_allclose(attribution.probabilities, p, atol=1e-5)
        # base value: the same length of mask tokens, [CLS]/[SEP] kept
        n = len(attribution.token_ids)
        masked = [tokenizer.cls_token_id] + [tokenizer.mask_token_id] * (n - 2) + [tokenizer.sep_token_id]
        import torch

        with torch.inference_mode():
            base = torch.softmax(model(input_ids=torch.tensor([masked])).logits, -1)[0].numpy()
        np.testing.assert_allclose(attribution.base_values, base, atol=1e-5)
        assert attribution.tokens[0] == "[CLS]" and attribution.tokens[-1] == "[SEP]"


def test_equals_shap_partition_explainer_single_texts(tiny, explained):
    import shap

    model, tokenizer = tiny
    chosen = [0, 5, 9, len(TEXTS)]  # en, fr... ja, and the long text (budget binds)
    texts = [(TEXTS + [LONG_TEXT])[i] for i in chosen]
    reference = shap.Explainer(lambda s: _softmax(model, tokenizer, s), shap.maskers.Text(tokenizer))(texts)
    assert len(explained[len(TEXTS)].token_ids) > 30
    for k, i in enumerate(chosen):
        ours = explained[i]
        assert ours.values.shape == reference.values[k].shape
        np.testing.assert_allclose(ours.values, reference.values[k], atol=1e-4)
        np.testing.assert_allclose(ours.base_values, reference.base_values[k], atol=1e-5)


def test_equals_shap_with_string_rows_and_small_batches(tiny, explained):
    """Every row through shap's string masking, 7 rows per forward pass: same values."""
    from langtrainer.analysis.shap import explain

    model, tokenizer = tiny
    slow = explain(model, tokenizer, [TEXTS[9], LONG_TEXT], batch_size=7, force_strings=True)
    np.testing.assert_allclose(slow[0].values, explained[9].values, atol=1e-6)
    np.testing.assert_allclose(slow[1].values, explained[len(TEXTS)].values, atol=1e-6)


def test_equals_shap_for_text_pairs(tiny_pair):
    import shap

    from langtrainer.analysis.shap import explain, split_pair_string

    model, tokenizer = tiny_pair
    premises = [SAMPLE_TEXTS["en"][0], SAMPLE_TEXTS["ja"][1]]
    hypotheses = [SAMPLE_TEXTS["fr"][0], SAMPLE_TEXTS["de"][1]]
    ours = explain(model, tokenizer, premises, hypotheses)

    def f(strings):
        a, b = zip(*[split_pair_string(s, tokenizer.sep_token) for s in strings])
        return _softmax(model, tokenizer, a, b)

    joined = [a + tokenizer.sep_token + b for a, b in zip(premises, hypotheses)]
    reference = shap.Explainer(f, shap.maskers.Text(tokenizer))(joined)
    for k in range(2):
        np.testing.assert_allclose(ours[k].values, reference.values[k], atol=1e-4)
        np.testing.assert_allclose(ours[k].base_values, reference.base_values[k], atol=1e-5)
        # one separator between the sides, and the model saw the pair with token types
        assert ours[k].tokens.count("[SEP]") == 2
        np.testing.assert_allclose(ours[k].probabilities, _softmax(model, tokenizer, [premises[k]], [hypotheses[k]])[0], atol=1e-5)
        np.testing.assert_allclose(ours[k].values.sum(0) + ours[k].base_values, ours[k].probabilities, atol=1e-5)


def test_masked_strings_equal_shap_text_masker(tiny):
    import shap

    from langtrainer.analysis.shap.masker import MaskerSpec

    _, tokenizer = tiny
    spec = MaskerSpec(tokenizer)
    masker = shap.maskers.Text(tokenizer)
    rng = np.random.default_rng(0)
    for text in [TEXTS[3], TEXTS[8], TEXTS[11], LONG_TEXT]:
        segments, _ = masker.token_segments(text)
        for _ in range(20):
            mask = rng.random(len(segments)) < 0.5
            keep = mask.copy()
            keep[0] = keep[-1] = True  # the prefix/suffix shap keeps
            assert spec.masked_string(segments, keep) == masker(mask, text)[0][0]


def test_direct_token_rows_are_used_and_verified(tiny):
    from langtrainer.analysis.shap.masker import Encoder, MaskerSpec, prepare
    from langtrainer.analysis.shap.rows import RowBuilder, verify_direct

    _, tokenizer = tiny
    spec = MaskerSpec(tokenizer)
    encoder = Encoder(tokenizer, 128)
    preps = [prepare(spec, encoder, t, None) for t in TEXTS]
    verify_direct(spec, encoder, preps)
    assert all(p.direct_ok for p in preps)
    # word-aligned random masks: direct rows equal the re-tokenised strings
    rng = np.random.default_rng(1)
    masks = rng.random((30, preps[0].n_features)) < 0.5
    direct = RowBuilder(spec, encoder).build([(preps[0], masks)])[0]
    strings = RowBuilder(spec, encoder, force_strings=True).build([(preps[0], masks)])[0]
    for a, b in zip(direct, strings):
        np.testing.assert_array_equal(a[0], b[0])


def test_batch_size_does_not_change_values(tiny, explained):
    from langtrainer.analysis.shap import explain

    model, tokenizer = tiny
    again = explain(model, tokenizer, TEXTS[:4], batch_size=5)
    for a, b in zip(again, explained[:4]):
        np.testing.assert_allclose(a.values, b.values, atol=1e-6)


def test_max_evals_bounds_forward_rows(tiny):
    from langtrainer.analysis.shap import ModelRunner, explain

    model, tokenizer = tiny
    runner = ModelRunner(model, tokenizer, batch_size=64)
    explain(model, tokenizer, [LONG_TEXT, TEXTS[0]], max_evals=100, runner=runner)
    # the long text uses its whole budget of 100; the short one (11 tokens) at most 100;
    # repeated inputs are answered from the cache
    assert 100 < runner.n_requested <= 200
    assert runner.n_rows < runner.n_requested


def test_forward_chunks_trade_padding_for_calls(tiny):
    from langtrainer.analysis.shap import ModelRunner

    model, tokenizer = tiny
    runner = ModelRunner(model, tokenizer, batch_size=256)
    lengths = [10] * 5 + [100] * 5
    # one batch: 256 + 10 x 100 = 1256 padded-token units; two: 2 x 256 + 50 + 500 = 1062
    assert [sorted(np.asarray(lengths)[c].tolist()) for c in runner.chunks(lengths)] == [[10] * 5, [100] * 5]
    assert len(runner.chunks([10] * 5 + [12] * 5)) == 1
    chunks = runner.chunks([20] * 600)
    assert [len(c) for c in chunks] == [256, 256, 88]
    assert sorted(np.concatenate(chunks).tolist()) == list(range(600))


def test_edge_cases_empty_one_word_and_truncated(tiny):
    from langtrainer.analysis.shap import explain

    model, tokenizer = tiny
    long_text = " ".join([LONG_TEXT] * 6)  # > 128 tokens: cut to the model's 128 positions
    empty, word, cut = explain(model, tokenizer, ["", "Folie", long_text], max_evals=60)
    assert empty.tokens == ["[CLS]", "[SEP]"]
    np.testing.assert_allclose(empty.values, 0.0, atol=1e-7)
    np.testing.assert_allclose(empty.base_values, empty.probabilities, atol=1e-6)
    assert len(word.tokens) == 3
    np.testing.assert_allclose(word.values[1], word.probabilities - word.base_values, atol=1e-6)
    assert len(cut.token_ids) == 128 and cut.tokens[-1] == "[SEP]"
    np.testing.assert_allclose(cut.values.sum(0) + cut.base_values, cut.probabilities, atol=1e-5)


def test_bad_arguments_are_user_errors(tiny):
    from langtrainer.analysis.shap import explain
    from langtrainer.errors import UserError

    model, tokenizer = tiny
    with pytest.raises(UserError):
        explain(model, tokenizer, ["a"], text_pairs=["b", "c"])
    with pytest.raises(UserError):
        explain(model, tokenizer, ["a"], max_evals=2)


# --------------------------------------------------------------------------- sampling and the callback


def test_stratified_subsample_spreads_over_cells():
    import pandas as pd

    from langtrainer.data.stratified import stratified_subsample

    frame = pd.DataFrame(
        {"id": [str(i) for i in range(60)], "language": ["en", "fr", "de"] * 20, "label": [0] * 30 + [1] * 30}
    )
    sample = stratified_subsample(frame, 12, seed=3)
    counts = sample.groupby(["language", "label"]).size()
    assert len(counts) == 6 and counts.min() == 2 and counts.max() == 2
    assert sample["id"].tolist() == stratified_subsample(frame, 12, seed=3)["id"].tolist()
    assert sample["id"].tolist() != stratified_subsample(frame, 12, seed=4)["id"].tolist()


def test_shap_callback_metrics(tiny):
    from langtrainer.analysis.shap import ShapEvaluator, explain

    model, tokenizer = tiny
    callback = ShapEvaluator(TEXTS[:4], LANGS[:4], max_evals=40, threshold=0.01)
    model.train()
    metrics = callback.compute_eval_metrics(model, tokenizer)
    assert model.training  # restored
    assert set(metrics) == {"shap_neutral_abs_en", "shap_neutral_abs_fr", "shap_base_value_spread"}
    attributions = explain(model, tokenizer, TEXTS[:4], max_evals=40, fast=False)  # the callback runs eager
    en = np.concatenate([a.values.ravel() for a in attributions[:2]])
    expected = np.abs(en[np.abs(en) <= 0.01]).mean()
    assert metrics["shap_neutral_abs_en"] == pytest.approx(expected, rel=1e-5)
    spread = np.mean([a.base_values.max() - a.base_values.min() for a in attributions])
    assert metrics["shap_base_value_spread"] == pytest.approx(spread, rel=1e-5)
    assert 0 < metrics["shap_neutral_abs_en"] <= 0.01


# --------------------------------------------------------------------------- runs on disk


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory):
    """A run directory: the tiny checkpoint + data/ (DatasetDict with test) + recipe.yaml."""
    import datasets

    run = tmp_path_factory.mktemp("run") / "imbal"
    shutil.copytree(tiny_model_dir, run)
    rows = {
        "id": [f"ex{i:02d}" for i in range(len(TEXTS))],
        "text": TEXTS,
        "label": [i % 4 for i in range(len(TEXTS))],
        "language": LANGS,
    }
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(str(run / "data"))
    (run / "recipe.yaml").write_text("seed: 3\nimbalance:\n  groups: {A: [fr, es, ja], B: [de, en, zh]}\n")
    return run


def _arrays(result):
    return [(r.id, r.values, r.base_values, r.probabilities) for r in result.examples.itertuples()]


def _same(a, b):
    assert [x[0] for x in a] == [x[0] for x in b]
    for x, y in zip(a, b):
        for u, v in zip(x[1:], y[1:]):
            np.testing.assert_array_equal(u, v)


def test_run_shap_resumes_to_the_same_result(run_dir, tmp_path, monkeypatch):
    import langtrainer.analysis.shap.sharded as sharded
    from langtrainer.analysis.shap import ShapOptions, load_shap_result, run_shap
    from langtrainer.errors import UserError

    options = ShapOptions(subsample=10, max_evals=40, shard_size=3)
    full = load_shap_result(run_shap(run_dir, options, out=tmp_path / "full"))
    assert len(full) == 10 and full.label_names == ["label0", "label1", "label2", "label3"]
    assert full.examples["values"][0].shape == (len(full.examples["token_ids"][0]), 4)
    assert set(full.examples["language"]) == set(SAMPLE_TEXTS)

    class Interrupt(Exception):
        pass

    def interrupt_after_seven(done, total):
        if done >= 7:
            raise Interrupt

    out = tmp_path / "resumed"
    with pytest.raises(Interrupt):
        run_shap(run_dir, options, out=out, progress=interrupt_after_seven)
    assert sorted(p.name for p in (out / "shards").glob("*.parquet")) == ["shard-00000.parquet", "shard-00001.parquet"]
    assert not json.loads((out / "manifest.json").read_text())["complete"]
    with pytest.raises(UserError):
        load_shap_result(out)

    explained = []
    real_explain = sharded.explain

    def counting_explain(model, tokenizer, texts, *args, **kw):
        explained.extend(texts)
        return real_explain(model, tokenizer, texts, *args, **kw)

    monkeypatch.setattr(sharded, "explain", counting_explain)
    run_shap(run_dir, options, out=out)
    assert len(explained) == 4  # shards 2 and 3 only
    _same(_arrays(load_shap_result(out)), _arrays(full))

    # a lost last shard is recomputed, the others are kept
    (out / "shards" / "shard-00003.parquet").unlink()
    explained.clear()
    run_shap(run_dir, options, out=out)
    assert len(explained) == 1
    _same(_arrays(load_shap_result(out)), _arrays(full))


def test_run_shap_refuses_other_arguments(run_dir, tmp_path):
    from langtrainer.analysis.shap import ShapOptions, run_shap
    from langtrainer.errors import UserError

    out = tmp_path / "shap"
    run_shap(run_dir, ShapOptions(subsample=4, max_evals=20, shard_size=4), out=out)
    with pytest.raises(UserError, match="max_evals"):
        run_shap(run_dir, ShapOptions(subsample=4, max_evals=30, shard_size=4), out=out)
    run_shap(run_dir, ShapOptions(subsample=4, max_evals=30, shard_size=4, overwrite=True), out=out)
    with pytest.raises(UserError, match="validation"):
        run_shap(run_dir, ShapOptions(split="validation"), out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_cli_shap_and_shap_diff(run_dir, tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from langtrainer.cli.main import app

    runner = CliRunner()
    bal = tmp_path / "bal"
    shutil.copytree(run_dir, bal)
    # another model on the same examples (the same model twice is refused: its difference is 0 by construction)
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(bal / "model.safetensors"))
    rng = np.random.default_rng(0)
    save_file({k: (v + 0.1 * rng.standard_normal(v.shape) * (v.std() or 1.0)).astype(v.dtype)
               for k, v in weights.items()}, str(bal / "model.safetensors"), metadata={"format": "pt"})
    for run in (run_dir, bal):
        result = runner.invoke(app, ["shap", "--ckpt", str(run), "--subsample", "6", "--max-evals", "30", "--quiet"])
        assert result.exit_code == 0, result.output
        assert (run / "shap" / "manifest.json").is_file()
    result = runner.invoke(app, ["shap-diff", "--bal", str(bal), "--imbal", str(run_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(run_dir / "shap_diff.csv")
    # two models: a difference, finite where a category has tokens; groups came from recipe.yaml
    assert np.nanmax(np.abs(table["mean"])) > 1e-6 and np.isfinite(table["mean"].dropna()).all()
    assert set(table["group"].dropna()) == {"A", "B"}
    report = json.loads((run_dir / "shap_diff.json").read_text())
    assert set(report["token_split"]) == {"0.001", "0.01", "0.05"}
    assert (run_dir / "shap_diff.png").read_bytes()[:4] == b"\x89PNG"

    other = tmp_path / "other"
    result = runner.invoke(app, ["shap", "--ckpt", str(run_dir), "--subsample", "5", "--max-evals", "30", "--out", str(other), "-q"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["shap-diff", "--bal", str(other), "--imbal", str(run_dir), "--out", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert "the examples do not match" in result.output
    result = runner.invoke(app, ["shap", "--ckpt", str(tmp_path / "missing")])
    assert result.exit_code == 2


@pytest.mark.slow
def test_real_model_equals_shap_and_direct_rows_are_exact():
    """multilingual-e5-small (SentencePiece, '<mask>' with lstrip): same values as shap, token-id rows verified."""
    import shap
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from langtrainer.analysis.shap import explain, split_pair_string
    from langtrainer.analysis.shap.masker import Encoder, MaskerSpec, prepare
    from langtrainer.analysis.shap.rows import RowBuilder, verify_direct
    from langtrainer.models import resolve_model_path

    path = resolve_model_path("builtin:multilingual-e5-small")
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=4).eval()
    texts = [SAMPLE_TEXTS["en"][1], SAMPLE_TEXTS["zh"][1], SAMPLE_TEXTS["fr"][1]]
    ours = explain(model, tokenizer, texts, max_evals=80)
    reference = shap.Explainer(lambda s: _softmax(model, tokenizer, s), shap.maskers.Text(tokenizer))(texts, max_evals=80)
    for k in range(len(texts)):
        np.testing.assert_allclose(ours[k].values, reference.values[k], atol=1e-4)
    pair = explain(model, tokenizer, texts[:1], texts[1:2], max_evals=80)[0]

    def f(strings):
        a, b = zip(*[split_pair_string(s, tokenizer.sep_token) for s in strings])
        return _softmax(model, tokenizer, a, b)

    reference = shap.Explainer(f, shap.maskers.Text(tokenizer))([texts[0] + tokenizer.sep_token + texts[1]], max_evals=80)
    np.testing.assert_allclose(pair.values, reference.values[0], atol=1e-4)

    spec, encoder = MaskerSpec(tokenizer), Encoder(tokenizer, 512)
    preps = [prepare(spec, encoder, t, None) for t in TEXTS]
    verify_direct(spec, encoder, preps)
    rng = np.random.default_rng(0)
    n_direct = 0
    for prep in preps:
        # word-aligned masks: whole SentencePiece words kept or masked together
        _, rank = np.unique(prep.word, return_inverse=True)
        masks = (rng.random((40, rank.max() + 1)) < 0.5)[:, rank]
        builder = RowBuilder(spec, encoder)
        direct = builder.build([(prep, masks)])[0]
        strings = RowBuilder(spec, encoder, force_strings=True).build([(prep, masks)])[0]
        for a, b in zip(direct, strings):
            np.testing.assert_array_equal(a[0], b[0])
        n_direct += builder.n_direct
    assert n_direct >= 6 * 40  # the space-separated languages take the token-id path
