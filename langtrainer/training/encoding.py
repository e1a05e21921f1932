"""A split as model inputs: tokenized rows, and their evaluation order."""

from __future__ import annotations

import numpy as np


def tokenize(dataset, tokenizer, max_length: int):
    """input_ids/attention_mask/labels + language; text columns dropped."""
    has_pair = "text_pair" in dataset.column_names

    from langtrainer.models.tokenizers import clip_text

    def encode(batch):
        # Clipped by characters first: the memory of one text is bounded by max_length, not by the text.
        texts = [clip_text(t, max_length) for t in batch["text"]]
        pairs = [clip_text(t, max_length) for t in batch["text_pair"]] if has_pair else None
        enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
        enc["labels"] = batch["label"]
        return enc

    keep = {"language"}
    drop = [c for c in dataset.column_names if c not in keep]
    return dataset.map(encode, batched=True, remove_columns=drop, desc=None)


def sort_by_length(tokenized, raw):
    """Both datasets in the same (stable) order of token count, shortest first.

    Predictions come back in dataset order, so the untokenized rows that the
    metrics read (label, language) are reordered with the tokenized ones.
    """
    lengths = np.fromiter((len(ids) for ids in tokenized["input_ids"]), dtype=np.int64, count=len(tokenized))
    order = np.argsort(lengths, kind="stable")
    return tokenized.select(order), raw.select(order)
