"""shap's Text masker, mirrored: which strings and partition trees `shap.maskers.Text` builds.

`MaskerSpec` holds the masker settings that decide masked rows (kept prefix /
suffix, mask token, collapsing, SentencePiece spaces); `prepare` computes,
once per example, everything the Owen recursion needs (segments, partition
tree, leaves under each node, the model encoding and how masker tokens map
onto it).

Text pairs (NLI premise/hypothesis). shap's Text masker knows one string; its
only pair support is the separator token: a segment equal to `sep_token` is
never masked and the partition tree joins the two sides of it late. So the
masker sees `text + sep_token + text_pair` (no spaces, so the separator's
segment is exactly the sep token), and the model sees the proper pair
encoding `tokenizer(text, text_pair)` with its own separators (e.g. XLM-R's
`</s></s>`) and token_type_ids. Attributions are reported per masker token
(one separator). `split_pair_string` is the one place that maps a masked
string back to the pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from langtrainer.defaults import SHAP_QUEUE_BATCH
from langtrainer.errors import UserError


class MaskerSpec:
    """The settings of `shap.maskers.Text(tokenizer)` that decide masked rows and trees."""

    def __init__(self, tokenizer):
        import shap
        from shap.utils import safe_isinstance
        from shap.utils.transformers import SENTENCEPIECE_TOKENIZERS

        self.masker = shap.maskers.Text(tokenizer)
        self.tokenizer = tokenizer
        self.keep_prefix = int(self.masker.keep_prefix)
        self.keep_suffix = int(self.masker.keep_suffix)
        self.mask_token = self.masker.mask_token
        self.mask_token_id = int(self.masker.mask_token_id)
        self.collapse = bool(self.masker.collapse_mask_token)
        self.sep_token = getattr(tokenizer, "sep_token", None)
        self.sentencepiece = bool(safe_isinstance(tokenizer, SENTENCEPIECE_TOKENIZERS))
        self.queue_batch = int(getattr(self.masker, "default_batch_size", SHAP_QUEUE_BATCH))

    def masked_string(self, segments: Sequence[str], keep: np.ndarray) -> str:
        """The string shap's Text masker hands the model for this mask (output_type='string')."""
        parts = []
        previous_was_mask = False
        for segment, kept in zip(segments, keep):
            if kept or segment == self.sep_token:
                parts.append(segment)
                previous_was_mask = False
            elif not self.collapse or not previous_was_mask:
                parts.append(" " + self.mask_token)
                previous_was_mask = True
        out = "".join(parts)
        if self.sentencepiece:
            out = out.replace("▁", " ")
        return re.sub(r"[\s]+", " ", out).strip()


def split_pair_string(masked: str, sep_token: str) -> tuple[str, str]:
    """Map a masked `text + sep + text_pair` string back to the (text, text_pair) pair."""
    head, _, tail = masked.partition(sep_token)
    return head.strip(), tail.strip()


@dataclass
class Prepared:
    """Everything about one example that does not change while it is explained."""

    masker_string: str
    text_pair: str | None
    feature_ids: np.ndarray  # (M,) masker token ids
    segments: list[str]
    clustering: np.ndarray  # (M-1, 4) shap's partition tree
    mask_matrix: np.ndarray  # (2M-1, M) bool: the leaves under each tree node
    always_kept: np.ndarray  # (M,) bool: prefix/suffix special tokens and separators
    word: np.ndarray  # (M,) int: pre-tokenizer word of each token, -1 for special tokens
    model_ids: np.ndarray  # (L,) the model's encoding of the unmasked input
    model_type_ids: np.ndarray | None
    feature_to_model: np.ndarray  # (M,) model position of each masker token, -1 if none
    direct_ok: bool = False  # token-id substitution verified equal to shap's string masking

    @property
    def n_features(self) -> int:
        return len(self.feature_ids)


def mask_matrix_of(clustering: np.ndarray, n: int) -> np.ndarray:
    """Dense version of shap.utils.make_masks: row i = leaves under node i."""
    out = np.zeros((2 * n - 1, n), dtype=bool)
    out[np.arange(n), np.arange(n)] = True
    for row, (left, right) in enumerate(clustering[:, :2].astype(int)):
        out[n + row] = out[left] | out[right]
    return out


class Encoder:
    """Tokenisation for the model (single texts or pairs), without padding."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.uses_type_ids = "token_type_ids" in getattr(tokenizer, "model_input_names", [])

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None):
        if not texts:
            return [], []
        kwargs = dict(truncation=True, max_length=self.max_length, return_token_type_ids=self.uses_type_ids)
        enc = self.tokenizer(list(texts), list(pairs), **kwargs) if pairs is not None else self.tokenizer(
            list(texts), **kwargs
        )
        ids = [np.asarray(x, dtype=np.int64) for x in enc["input_ids"]]
        if self.uses_type_ids:
            types = [np.asarray(x, dtype=np.int64) for x in enc["token_type_ids"]]
        else:
            types = [None] * len(ids)
        return ids, types


def model_max_length(config, tokenizer) -> int:
    """The longest input the model takes: its positions (less RoBERTa's offset) and the tokenizer's limit."""
    limits = []
    tok_max = getattr(tokenizer, "model_max_length", None)
    if tok_max and tok_max < 100_000:
        limits.append(int(tok_max))
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        offset = 2 if getattr(config, "model_type", "") in ("xlm-roberta", "roberta", "camembert") else 0
        limits.append(int(positions) - offset)
    return min(limits) if limits else 512


def truncate_to_fit(spec: MaskerSpec, text: str, text_pair: str | None, max_length: int):
    """Cut the text (the longer side of a pair) at a token boundary until every encoding fits."""
    tokenizer = spec.tokenizer
    for _ in range(64):
        joined = text if text_pair is None else text + spec.sep_token + text_pair
        n_masker = len(tokenizer(joined)["input_ids"])
        if text_pair is None:
            n_model = n_masker
        else:
            n_model = len(tokenizer(text, text_pair)["input_ids"])
        excess = max(n_masker, n_model) - max_length
        if excess <= 0:
            return text, text_pair
        cut_pair = text_pair is not None and len(tokenizer(text_pair)["input_ids"]) > len(
            tokenizer(text)["input_ids"]
        )
        side = text_pair if cut_pair else text
        enc = tokenizer(side, return_offsets_mapping=True, add_special_tokens=False)
        n_keep = max(0, len(enc["input_ids"]) - excess)
        new_side = side[: enc["offset_mapping"][n_keep - 1][1]] if n_keep > 0 else ""
        if cut_pair:
            text_pair = new_side
        else:
            text = new_side
    raise UserError(f"cannot truncate an example to {max_length} tokens")


def prepare(spec: MaskerSpec, encoder: Encoder, text: str, text_pair: str | None) -> Prepared:
    tokenizer = spec.tokenizer
    if text_pair is not None and not spec.sep_token:
        raise UserError("text pairs need a tokenizer with a sep_token")
    from langtrainer.models.tokenizers import clip_text

    # Clipped by characters first: truncate_to_fit tokenises the whole text, whatever its length.
    text = clip_text(text, encoder.max_length)
    text_pair = clip_text(text_pair, encoder.max_length) if text_pair is not None else None
    text, text_pair = truncate_to_fit(spec, text, text_pair, encoder.max_length)
    joined = text if text_pair is None else text + spec.sep_token + text_pair
    segments, feature_ids = spec.masker.token_segments(joined)
    segments = [str(s) for s in segments]
    feature_ids = np.asarray(feature_ids, dtype=np.int64)
    n = len(feature_ids)
    clustering = np.asarray(spec.masker.clustering(joined), dtype=float)

    word_ids = tokenizer(joined).word_ids()
    word = np.array([-1 if w is None else w for w in word_ids], dtype=np.int64)
    always_kept = np.zeros(n, dtype=bool)
    always_kept[: spec.keep_prefix] = True
    if spec.keep_suffix:
        always_kept[n - spec.keep_suffix :] = True
    always_kept |= np.array([s == spec.sep_token for s in segments], dtype=bool)

    if text_pair is None:
        model_ids, model_types = encoder.encode([joined])
        feature_to_model = np.arange(n)
    else:
        model_ids, model_types = encoder.encode([text], [text_pair])
        feature_to_model = pair_feature_map(tokenizer, text, text_pair, segments, spec.sep_token, n)
    return Prepared(
        masker_string=joined,
        text_pair=text_pair,
        feature_ids=feature_ids,
        segments=segments,
        clustering=clustering,
        mask_matrix=mask_matrix_of(clustering, n),
        always_kept=always_kept,
        word=word,
        model_ids=model_ids[0],
        model_type_ids=model_types[0],
        feature_to_model=feature_to_model,
    )


def pair_feature_map(tokenizer, text, text_pair, segments, sep_token, n) -> np.ndarray:
    """Masker position -> pair-encoding position for the tokens of both sides (-1: special)."""
    enc = tokenizer(text, text_pair)
    sequence_ids = enc.sequence_ids()
    first = [i for i, s in enumerate(sequence_ids) if s == 0]
    second = [i for i, s in enumerate(sequence_ids) if s == 1]
    masker_special = tokenizer(text + sep_token + text_pair, return_special_tokens_mask=True)["special_tokens_mask"]
    sep_at = segments.index(sep_token) if sep_token in segments else n
    out = np.full(n, -1, dtype=np.int64)
    left = [i for i in range(n) if not masker_special[i] and i < sep_at]
    right = [i for i in range(n) if not masker_special[i] and i > sep_at]
    if len(left) == len(first) and len(right) == len(second):
        out[left] = first
        out[right] = second
    return out
