"""A tiny randomly initialised BERT with a WordPiece tokenizer trained on the fly.

It exercises plumbing (shapes, columns, losses, SHAP bookkeeping), not learning:
tests of learning use the real builtin weights.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_TEXTS = {
    "en": ["The spreadsheet computes the sum of a column.", "Insert a new slide before the current one."],
    "fr": ["Le tableur calcule la somme d'une colonne.", "Insérez une nouvelle diapositive avant la diapositive actuelle."],
    "de": ["Die Tabelle berechnet die Summe einer Spalte.", "Fügen Sie vor der aktuellen Folie eine neue Folie ein."],
    "es": ["La hoja de cálculo calcula la suma de una columna.", "Inserte una diapositiva nueva antes de la actual."],
    "ja": ["表計算は列の合計を計算します。", "現在のスライドの前に新しいスライドを挿入します。"],
    "zh": ["电子表格计算一列的总和。", "在当前幻灯片之前插入新幻灯片。"],
}


def build_tiny_model(out_dir: str | Path, num_labels: int = 4, seed: int = 0) -> Path:
    """Write a tiny BERT classifier + fast tokenizer to `out_dir`; return it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    corpus = [t for texts in SAMPLE_TEXTS.values() for t in texts] * 4
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    )
    tok.train_from_iterator(corpus, trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece()
    # Tests read token-level results (SHAP per token, masking) of these texts:
    # the vocabulary must cover them without [UNK].
    unk_id = tok.token_to_id("[UNK]")
    uncovered = [text for texts in SAMPLE_TEXTS.values() for text in texts if unk_id in tok.encode(text).ids]
    assert not uncovered, f"the tiny vocabulary leaves [UNK] in {uncovered}"
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
        num_labels=num_labels,
        id2label={i: f"label{i}" for i in range(num_labels)},
        label2id={f"label{i}": i for i in range(num_labels)},
    )
    model = BertForSequenceClassification(config)
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir


def tiny_test_frame(per_language: int = 10, languages=("de", "en", "fr")):
    """A test split of sample texts: per language `per_language` rows, labels cycling over 4."""
    import pandas as pd

    rows = []
    for lang in languages:
        items = SAMPLE_TEXTS[lang]
        for i in range(per_language):
            rows.append({"id": f"{lang}{i}", "text": f"{items[i % 2]} {i}", "label": i % 4, "language": lang})
    return pd.DataFrame(rows)


def write_tiny_shap_run(model_dir, run) -> Path:
    """A run folder to explain: the tiny checkpoint plus data/ with a test split of every sample text."""
    import shutil

    import datasets

    shutil.copytree(model_dir, run)
    texts = [f"{t} {i}" for i, t in enumerate(t for ts in SAMPLE_TEXTS.values() for t in ts)]
    langs = [lang for lang, ts in SAMPLE_TEXTS.items() for _ in ts]
    rows = {"id": [f"ex{i:02d}" for i in range(len(texts))], "text": texts,
            "label": [i % 4 for i in range(len(texts))], "language": langs}
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(str(Path(run) / "data"))
    return Path(run)
