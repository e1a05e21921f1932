"""Token SHAP values of a sequence classifier, fast (paper Section 2.3).

What is computed is exactly what the paper's reference computes with
`shap.Explainer(f, shap.maskers.Text(tokenizer))` on softmax probabilities:
shap's PartitionExplainer (Owen values over the Text masker's partition
tree), a mask-token baseline (base value = f(input of mask tokens of the same
length, special tokens kept)), `max_evals=500`, shap's own queue batch of 5.
Values equal shap's own explainer within float noise (tests check 1e-4).

What makes it fast (the reference pads every row to 512 tokens and runs one
example at a time):
- the Owen recursion of many examples runs side by side: each step gathers
  the masked rows that every active example asks for and runs them as one
  forward pass; examples of similar length share a pool, rows are padded only
  to the longest row of their chunk, under `torch.inference_mode`;
- masked rows are built as token-id arrays directly (mask id substituted),
  without the decode / re-tokenise round trip, whenever that gives the same
  ids as shap's string masking: when no kept/masked boundary falls inside a
  pre-tokenizer word, and a per-example probe (alternate words masked, all
  masked, none masked) showed the tokenizer agrees. Other rows (e.g. masks
  that split a Chinese sentence, which SentencePiece treats as one word) are
  built as shap builds them: the masked string, re-tokenised;
- the recursion asks for the same model input again and again (~30 % of its
  rows on the demo corpus): each example answers repeats from a cache;
- forward batches are cut by length so as to trade padding against calls.

Text pairs (NLI premise/hypothesis). shap's Text masker knows one string; its
only pair support is the separator token: a segment equal to `sep_token` is
never masked and the partition tree joins the two sides of it late. So the
masker sees `text + sep_token + text_pair` (no spaces, so the separator's
segment is exactly the sep token), and the model sees the proper pair
encoding `tokenizer(text, text_pair)` with its own separators (e.g. XLM-R's
`</s></s>`) and token_type_ids. Attributions are reported per masker token
(one separator). `split_pair_string` is the one place that maps a masked
string back to the pair.

The module also holds the results on disk (`run_shap`, `load_shap_result`:
Parquet shards, resumable) and `ShapCallback`, a training-time evaluator.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import os
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from langtrainer.atomic import atomic_path, write_json
from langtrainer.data.stratified import stratified_subsample
from langtrainer.errors import UserError

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

DEFAULT_MAX_EVALS = 500
SHAP_QUEUE_BATCH = 5  # shap.maskers.Text.default_batch_size: what batch_size="auto" means in shap


# --------------------------------------------------------------------------- results in memory


@dataclass
class TokenAttribution:
    """SHAP values of one example: one row per masker token, one column per class."""

    token_ids: np.ndarray  # (n_tokens,) int64, the masker's tokens (special tokens included)
    tokens: list[str]
    values: np.ndarray  # (n_tokens, n_classes) float32
    base_values: np.ndarray  # (n_classes,) float32: f(all-mask input)
    probabilities: np.ndarray  # (n_classes,) float32: f(input) = values.sum(0) + base_values


# --------------------------------------------------------------------------- shap's Text masker, mirrored


class _MaskerSpec:
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


# --------------------------------------------------------------------------- one example, prepared


@dataclass
class _Prepared:
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


def _mask_matrix(clustering: np.ndarray, n: int) -> np.ndarray:
    """Dense version of shap.utils.make_masks: row i = leaves under node i."""
    out = np.zeros((2 * n - 1, n), dtype=bool)
    out[np.arange(n), np.arange(n)] = True
    for row, (left, right) in enumerate(clustering[:, :2].astype(int)):
        out[n + row] = out[left] | out[right]
    return out


class _Encoder:
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


def _model_max_length(model, tokenizer) -> int:
    limits = []
    tok_max = getattr(tokenizer, "model_max_length", None)
    if tok_max and tok_max < 100_000:
        limits.append(int(tok_max))
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions:
        offset = 2 if getattr(model.config, "model_type", "") in ("xlm-roberta", "roberta", "camembert") else 0
        limits.append(int(positions) - offset)
    return min(limits) if limits else 512


def _truncate_to_fit(spec: _MaskerSpec, text: str, text_pair: str | None, max_length: int):
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


def _prepare(spec: _MaskerSpec, encoder: _Encoder, text: str, text_pair: str | None) -> _Prepared:
    tokenizer = spec.tokenizer
    if text_pair is not None and not spec.sep_token:
        raise UserError("text pairs need a tokenizer with a sep_token")
    text, text_pair = _truncate_to_fit(spec, text, text_pair, encoder.max_length)
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
        feature_to_model = _pair_feature_map(tokenizer, text, text_pair, segments, spec.sep_token, n)
    return _Prepared(
        masker_string=joined,
        text_pair=text_pair,
        feature_ids=feature_ids,
        segments=segments,
        clustering=clustering,
        mask_matrix=_mask_matrix(clustering, n),
        always_kept=always_kept,
        word=word,
        model_ids=model_ids[0],
        model_type_ids=model_types[0],
        feature_to_model=feature_to_model,
    )


def _pair_feature_map(tokenizer, text, text_pair, segments, sep_token, n) -> np.ndarray:
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


# --------------------------------------------------------------------------- masked rows


Row = tuple[np.ndarray, "np.ndarray | None"]


def _direct_rows(prep: _Prepared, keep: np.ndarray, mask_id: int) -> list[Row]:
    """Rows with the mask id substituted at masked positions (model encoding)."""
    valid = prep.feature_to_model >= 0
    columns = prep.feature_to_model[valid]
    ids = np.tile(prep.model_ids, (len(keep), 1))
    ids[:, columns] = np.where(keep[:, valid], prep.feature_ids[valid], mask_id)
    return [(row, prep.model_type_ids) for row in ids]


def _string_inputs(spec: _MaskerSpec, prep: _Prepared, keep: np.ndarray) -> list[tuple[str, str | None]]:
    out = []
    for row in keep:
        masked = spec.masked_string(prep.segments, row)
        out.append(split_pair_string(masked, spec.sep_token) if prep.text_pair is not None else (masked, None))
    return out


def _is_word_aligned(prep: _Prepared, keep: np.ndarray) -> np.ndarray:
    """True for masks whose kept/masked boundaries never split a pre-tokenizer word."""
    boundary = keep[:, 1:] != keep[:, :-1]
    same_word = (prep.word[1:] == prep.word[:-1]) & (prep.word[1:] >= 0)
    return ~np.any(boundary & same_word, axis=1)


class _RowBuilder:
    """Masks -> model rows, token ids directly where that equals shap's string masking."""

    def __init__(self, spec: _MaskerSpec, encoder: _Encoder, force_strings: bool = False):
        self.spec = spec
        self.encoder = encoder
        self.force_strings = force_strings
        self.n_direct = 0
        self.n_string = 0

    def build(self, jobs: list[tuple[_Prepared, np.ndarray]]) -> list[list[Row]]:
        """For each (example, masks) job, the rows to evaluate, in mask order."""
        results: list[list[Row | None]] = []
        string_single: list[tuple[int, int, str]] = []
        string_pair: list[tuple[int, int, str, str]] = []
        for j, (prep, masks) in enumerate(jobs):
            keep = masks | prep.always_kept
            rows: list[Row | None] = [None] * len(keep)
            direct = (
                _is_word_aligned(prep, keep)
                if prep.direct_ok and not self.force_strings
                else np.zeros(len(keep), dtype=bool)
            )
            if direct.any():
                for k, row in zip(np.flatnonzero(direct), _direct_rows(prep, keep[direct], self.spec.mask_token_id)):
                    rows[k] = row
            for k in np.flatnonzero(~direct):
                text, pair = _string_inputs(self.spec, prep, keep[k : k + 1])[0]
                if pair is None:
                    string_single.append((j, k, text))
                else:
                    string_pair.append((j, k, text, pair))
            self.n_direct += int(direct.sum())
            self.n_string += int((~direct).sum())
            results.append(rows)
        ids, types = self.encoder.encode([t for _, _, t in string_single])
        for (j, k, _), i, t in zip(string_single, ids, types):
            results[j][k] = (i, t)
        ids, types = self.encoder.encode([t for _, _, t, _ in string_pair], [p for _, _, _, p in string_pair])
        for (j, k, _, _), i, t in zip(string_pair, ids, types):
            results[j][k] = (i, t)
        return results  # type: ignore[return-value]


def _verify_direct(spec: _MaskerSpec, encoder: _Encoder, preps: list[_Prepared]) -> None:
    """Mark examples whose word-aligned masks give the same ids directly as through strings.

    Probes: every other word masked (both parities), everything masked, nothing
    masked. Tokenisation is piecewise between mask tokens, so agreement on
    these covers every word-aligned mask of the example.
    """
    builder = _RowBuilder(spec, encoder, force_strings=True)
    jobs = []
    for prep in preps:
        if np.any((prep.feature_to_model < 0) & ~prep.always_kept):
            prep.direct_ok = False  # a pair whose sides did not map onto the pair encoding
            continue
        _, rank = np.unique(prep.word, return_inverse=True)
        even = (rank % 2 == 0) & (prep.word >= 0)
        odd = (rank % 2 == 1) & (prep.word >= 0)
        n = prep.n_features
        probes = np.stack([even, odd, np.zeros(n, bool), np.ones(n, bool)])
        jobs.append((prep, probes))
    by_strings = builder.build(jobs)
    for (prep, probes), rows in zip(jobs, by_strings):
        keep = probes | prep.always_kept
        direct = _direct_rows(prep, keep, spec.mask_token_id)
        prep.direct_ok = all(
            np.array_equal(a[0], b[0]) and (a[1] is None or np.array_equal(a[1], b[1])) for a, b in zip(direct, rows)
        )


# --------------------------------------------------------------------------- forward passes


class ModelRunner:
    """Softmax probabilities of padded batches of token-id rows (the only model calls)."""

    def __init__(self, model, tokenizer, batch_size: int = 256):
        import torch

        self.model = model
        self.batch_size = int(batch_size)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.device = next(model.parameters()).device
        self.torch = torch
        self.n_rows = 0  # rows run through the model
        self.n_requested = 0  # rows the recursion asked for (repeats answered from a cache)
        self.n_tokens = 0
        self.seconds = 0.0

    # What one forward call costs beyond its padded tokens, in tokens. Rows of
    # one step come from examples of different lengths: one big batch wastes
    # padding, many small ones pay this overhead (measured ~250-450 tokens for
    # e5-small on a CPU core; more on a GPU, where fewer bigger batches win).
    CALL_OVERHEAD_TOKENS = 256

    def chunks(self, lengths: Sequence[int]) -> list[np.ndarray]:
        """Row indices sorted by length, cut into batches of at most `batch_size` rows.

        The cuts minimise sum over batches of (overhead + rows x widest row),
        by dynamic programming over the distinct lengths.
        """
        lengths = np.asarray(lengths, dtype=np.int64)
        order = np.argsort(lengths, kind="stable")
        widths, counts = np.unique(lengths, return_counts=True)
        starts = np.concatenate([[0], np.cumsum(counts)])
        n_groups = len(widths)
        best = np.zeros(n_groups + 1)
        cut = np.zeros(n_groups + 1, dtype=np.int64)
        for j in range(1, n_groups + 1):
            rows = starts[j] - starts[:j]  # rows in groups i..j-1 for every i < j
            calls = -(-rows // self.batch_size)
            cost = best[:j] + calls * self.CALL_OVERHEAD_TOKENS + rows * widths[j - 1]
            cut[j] = int(np.argmin(cost))
            best[j] = cost[cut[j]]
        bounds = []
        j = n_groups
        while j > 0:
            bounds.append((starts[cut[j]], starts[j]))
            j = cut[j]
        out = []
        for begin, end in reversed(bounds):
            for piece in range(begin, end, self.batch_size):
                out.append(order[piece : min(piece + self.batch_size, end)])
        return out

    def __call__(self, rows: list[Row]) -> np.ndarray:
        torch = self.torch
        start = time.perf_counter()
        out = np.zeros((len(rows), self.model.config.num_labels), dtype=np.float64)
        with torch.inference_mode():
            for chunk in self.chunks([len(r[0]) for r in rows]):
                width = max(len(rows[i][0]) for i in chunk)
                ids = np.full((len(chunk), width), self.pad_id, dtype=np.int64)
                attention = np.zeros((len(chunk), width), dtype=np.int64)
                with_types = rows[chunk[0]][1] is not None
                types = np.zeros((len(chunk), width), dtype=np.int64) if with_types else None
                for r, i in enumerate(chunk):
                    row_ids, row_types = rows[i]
                    ids[r, : len(row_ids)] = row_ids
                    attention[r, : len(row_ids)] = 1
                    if types is not None:
                        types[r, : len(row_ids)] = row_types
                inputs = {
                    "input_ids": torch.from_numpy(ids).to(self.device),
                    "attention_mask": torch.from_numpy(attention).to(self.device),
                }
                if types is not None:
                    inputs["token_type_ids"] = torch.from_numpy(types).to(self.device)
                logits = self.model(**inputs).logits
                out[chunk] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
                self.n_tokens += int(attention.sum())
        self.n_rows += len(rows)
        self.seconds += time.perf_counter() - start
        return out


# --------------------------------------------------------------------------- the Owen recursion


def _owen(prep: _Prepared, max_evals: int, queue_batch: int) -> Iterator[np.ndarray]:
    """shap's PartitionExplainer.explain_row + owen (fixed_context=None) as a generator.

    Yields arrays of masks (rows of booleans, True = token kept) and receives
    the model outputs for them; returns (values, base_values, probabilities).
    Ties in the priority queue are broken first-in first-out where shap
    draws np.random.randn(): only exact ties can differ.
    """
    n = prep.n_features
    clustering = prep.clustering
    mask_matrix = prep.mask_matrix
    m00 = np.zeros(n, dtype=bool)
    out = yield np.stack([m00, ~m00])
    f00, f11 = out[0].copy(), out[1].copy()
    base_value, full_value = f00, f11
    dvalues = np.zeros((2 * n - 1, len(f00)))
    budget = max_evals - 2  # explain_row spends two evaluations on f00 and f11
    counter = 1
    queue: list = [(0, 0, (m00, f00, f11, 2 * n - 2, 1.0))]
    eval_count = 0
    while queue:
        if eval_count >= budget:
            while queue:
                m_lo, f_lo, f_hi, ind, weight = heapq.heappop(queue)[2]
                dvalues[ind] += (f_hi - f_lo) * weight
            break
        batch_args = []
        batch_masks = []
        while queue and len(batch_masks) < queue_batch and eval_count + len(batch_masks) < budget:
            m_lo, f_lo, f_hi, ind, weight = heapq.heappop(queue)[2]
            distance = -1.0 if ind < n else clustering[ind - n, 2]
            if distance < 0:
                dvalues[ind] += (f_hi - f_lo) * weight
                continue
            lind, rind = int(clustering[ind - n, 0]), int(clustering[ind - n, 1])
            m10 = m_lo | mask_matrix[lind]
            m01 = m_lo | mask_matrix[rind]
            batch_args.append((m_lo, m10, m01, f_lo, f_hi, lind, rind, weight))
            batch_masks.append(m10)
            batch_masks.append(m01)
        if batch_args:
            fout = yield np.array(batch_masks)
            eval_count += len(batch_masks)
        for i, (m_lo, m10, m01, f_lo, f_hi, lind, rind, weight) in enumerate(batch_args):
            f10, f01 = fout[2 * i], fout[2 * i + 1]
            new_weight = weight / 2
            for item in (
                (-np.max(np.abs(f10 - f_lo)) * new_weight, (m_lo, f_lo, f10, lind, new_weight)),
                (-np.max(np.abs(f01 - f_lo)) * new_weight, (m_lo, f_lo, f01, rind, new_weight)),
                (-np.max(np.abs(f_hi - f01)) * new_weight, (m01, f01, f_hi, lind, new_weight)),
                (-np.max(np.abs(f_hi - f10)) * new_weight, (m10, f10, f_hi, rind, new_weight)),
            ):
                heapq.heappush(queue, (item[0], counter, item[1]))
                counter += 1
    values = dvalues.copy()
    _lower_credit(values, clustering, n)
    return values[:n], base_value, full_value


def _lower_credit(values: np.ndarray, clustering: np.ndarray, n: int) -> None:
    """shap's lower_credit: push each internal node's value down to its leaves by size."""
    stack = [(2 * n - 2, 0.0)]
    while stack:
        i, value = stack.pop()
        values[i] += value
        if i < n:
            continue
        left, right = int(clustering[i - n, 0]), int(clustering[i - n, 1])
        size = int(clustering[i - n, 3])
        left_size = int(clustering[left - n, 3]) if left >= n else 1
        right_size = int(clustering[right - n, 3]) if right >= n else 1
        stack.append((right, values[i] * right_size / size))
        stack.append((left, values[i] * left_size / size))


# --------------------------------------------------------------------------- public entry point


def explain(
    model,
    tokenizer,
    texts: Sequence[str],
    text_pairs: Sequence[str] | None = None,
    max_evals: int = DEFAULT_MAX_EVALS,
    batch_size: int = 256,
    progress: Progress | None = None,
    max_length: int | None = None,
    force_strings: bool = False,
    runner: ModelRunner | None = None,
) -> list[TokenAttribution]:
    """Token SHAP values of softmax probabilities for every class, one per text.

    Equal to `shap.Explainer(f, shap.maskers.Text(tokenizer))(texts,
    max_evals=max_evals)` with f = softmax(model(tokenizer(strings))).
    `batch_size` is the number of masked rows per forward pass (it does not
    change the values). `force_strings` builds every row through shap's
    string masking (slower; for checking). `runner` lets a caller count or
    time the forward passes.
    """
    if text_pairs is not None and len(text_pairs) != len(texts):
        raise UserError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
    if max_evals < 4:
        raise UserError(f"max_evals must be at least 4 (got {max_evals})")
    if batch_size < 1:
        raise UserError(f"batch_size must be positive (got {batch_size})")
    n_examples = len(texts)
    if n_examples == 0:
        return []
    was_training = model.training
    model.eval()
    try:
        spec = _MaskerSpec(tokenizer)
        encoder = _Encoder(tokenizer, max_length or _model_max_length(model, tokenizer))
        preps = [
            _prepare(spec, encoder, str(texts[i]), None if text_pairs is None else str(text_pairs[i]))
            for i in range(n_examples)
        ]
        if not force_strings:
            _verify_direct(spec, encoder, preps)
        builder = _RowBuilder(spec, encoder, force_strings=force_strings)
        runner = runner or ModelRunner(model, tokenizer, batch_size)
        results = _run_pool(preps, spec, builder, runner, max_evals, progress)
    finally:
        model.train(was_training)
    log.info(
        "explained %d examples: %d rows asked for (%d as token ids, %d via strings), %d run, %.1f s in forward passes",
        n_examples, runner.n_requested, builder.n_direct, builder.n_string, runner.n_rows, runner.seconds,
    )
    out = []
    for prep, (values, base, full) in zip(preps, results):
        out.append(
            TokenAttribution(
                token_ids=prep.feature_ids.copy(),
                tokens=list(tokenizer.convert_ids_to_tokens(prep.feature_ids.tolist())),
                values=values.astype(np.float32),
                base_values=np.asarray(base, dtype=np.float32),
                probabilities=np.asarray(full, dtype=np.float32),
            )
        )
    return out


def _row_key(row: Row) -> bytes:
    ids, types = row
    return ids.tobytes() if types is None else ids.tobytes() + b"|" + types.tobytes()


def _run_pool(preps, spec, builder, runner, max_evals, progress):
    """Run the Owen recursions of all examples side by side, one forward pass per step.

    Each example keeps the outputs of the rows it has seen: the recursion asks
    for the same model input more than once (about 30 % of its rows on the
    demo corpus), and a repeat is answered from that cache, not re-run.
    """
    n_examples = len(preps)
    rows_per_step = spec.queue_batch + 1
    pool_size = max(1, runner.batch_size // rows_per_step)
    pending = deque(sorted(range(n_examples), key=lambda i: (len(preps[i].model_ids), i)))
    active: dict[int, tuple[Iterator, np.ndarray]] = {}
    caches: dict[int, dict[bytes, np.ndarray]] = {}
    results: list[Any] = [None] * n_examples
    done = 0
    if progress:
        progress(0, n_examples)
    while pending or active:
        while pending and len(active) < pool_size:
            i = pending.popleft()
            generator = _owen(preps[i], max_evals, spec.queue_batch)
            active[i] = (generator, next(generator))
            caches[i] = {}
        keys = list(active)
        rows_per_job = builder.build([(preps[i], active[i][1]) for i in keys])
        to_run: list[Row] = []
        slots: dict[tuple[int, bytes], int] = {}
        row_keys = []
        for i, rows in zip(keys, rows_per_job):
            job_keys = [_row_key(row) for row in rows]
            row_keys.append(job_keys)
            runner.n_requested += len(rows)
            for row, key in zip(rows, job_keys):
                if key not in caches[i] and (i, key) not in slots:
                    slots[(i, key)] = len(to_run)
                    to_run.append(row)
        outputs = runner(to_run) if to_run else np.zeros((0, 0))
        for (i, key), slot in slots.items():
            caches[i][key] = outputs[slot]
        for i, job_keys in zip(keys, row_keys):
            generator, _ = active[i]
            try:
                masks = generator.send(np.stack([caches[i][key] for key in job_keys]))
                active[i] = (generator, masks)
            except StopIteration as stop:
                results[i] = stop.value
                del active[i], caches[i]
                done += 1
                if progress:
                    progress(done, n_examples)
    return results


# --------------------------------------------------------------------------- results on disk

FORMAT = "langtrainer-shap"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_DIR = "shards"
REQUIRED_COLUMNS = ("id", "text", "label", "language")


@dataclass
class ShapResult:
    """A finished `langtrainer shap` run: one row per example.

    `examples` columns: id, language, label, text, text_pair, token_ids
    (int64 array), tokens (list of str), values (float32 array, tokens x
    classes), base_values, probabilities (float32 arrays, classes).
    """

    examples: Any  # pandas.DataFrame
    label_names: list[str]
    manifest: dict = field(default_factory=dict)
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def n_classes(self) -> int:
        return len(self.label_names)


def _shard_path(out: Path, k: int) -> Path:
    return out / SHARD_DIR / f"shard-{k:05d}.parquet"


def _model_fingerprint(ckpt: Path) -> str:
    """Changes when the checkpoint's config or weights change (size + mtime of weight files)."""
    digest = hashlib.sha256()
    config = ckpt / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for weights in sorted(ckpt.glob("*.safetensors")) + sorted(ckpt.glob("*.bin")):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _arguments_hash(arguments: dict) -> str:
    return hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()[:16]


def _load_split(data: Path, split: str):
    import datasets

    if not data.exists():
        raise UserError(f"data path {data} does not exist (give --data PATH to a save_to_disk dataset)")
    try:
        loaded = datasets.load_from_disk(str(data))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"cannot load a dataset saved with save_to_disk from {data}: {exc}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise UserError(f"split '{split}' not in {data}; it has: {', '.join(loaded)}")
        loaded = loaded[split]
    frame = loaded.to_pandas()
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"{data} ({split}) lacks column(s) {', '.join(missing)}; need {', '.join(REQUIRED_COLUMNS)}")
    frame["id"] = frame["id"].astype(str)
    if frame["id"].duplicated().any():
        raise UserError(f"{data} ({split}) has duplicate ids, e.g. {frame['id'][frame['id'].duplicated()].iloc[0]!r}")
    return frame


def _recipe_value(run_dir: Path, *keys: str):
    """A value from a run directory's recipe.yaml, or None."""
    import yaml

    path = run_dir / "recipe.yaml"
    if not path.is_file():
        return None
    try:
        node = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return None
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _shard_table(rows, attributions: list[TokenAttribution]):
    import pyarrow as pa

    has_pair = "text_pair" in rows.columns
    return pa.table(
        {
            "id": pa.array(rows["id"].astype(str).tolist(), pa.string()),
            "language": pa.array(rows["language"].astype(str).tolist(), pa.string()),
            "label": pa.array([int(x) for x in rows["label"]], pa.int64()),
            "text": pa.array(rows["text"].astype(str).tolist(), pa.string()),
            "text_pair": pa.array(rows["text_pair"].astype(str).tolist() if has_pair else [None] * len(rows), pa.string()),
            "token_ids": pa.array([a.token_ids.tolist() for a in attributions], pa.list_(pa.int64())),
            "tokens": pa.array([list(a.tokens) for a in attributions], pa.list_(pa.string())),
            "n_classes": pa.array([a.values.shape[1] for a in attributions], pa.int32()),
            "values": pa.array([a.values.reshape(-1).tolist() for a in attributions], pa.list_(pa.float32())),
            "base_values": pa.array([a.base_values.tolist() for a in attributions], pa.list_(pa.float32())),
            "probabilities": pa.array([a.probabilities.tolist() for a in attributions], pa.list_(pa.float32())),
        }
    )


def _write_shard(path: Path, table) -> None:
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _read_shard_ids(path: Path) -> list[str] | None:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=["id"]).column("id").to_pylist()
    except Exception:  # a foreign or damaged file: recompute the shard
        return None


def run_shap(
    ckpt: str | os.PathLike,
    data: str | os.PathLike | None = None,
    split: str = "test",
    subsample: int | None = None,
    max_evals: int = DEFAULT_MAX_EVALS,
    batch_size: int = 256,
    out: str | os.PathLike | None = None,
    seed: int | None = None,
    shard_size: int = 16,
    overwrite: bool = False,
    progress: Progress | None = None,
    rank: int | None = None,
    world_size: int | None = None,
) -> Path:
    """Explain (a subsample of) a run's split and write the result in resumable shards.

    Writes OUT/manifest.json and OUT/shards/shard-NNNNN.parquet (each shard
    atomically). Rerun with the same arguments and finished shards are kept:
    an interrupted run continues where it stopped. `batch_size` is not part of
    the arguments' identity (it only sets rows per forward pass).

    Under a multi-process launch (rank/world_size, default from the
    launcher's environment) every process computes the shards assigned to it
    by `assign_shards` (balanced by token count); the shards are the same as
    in one process, so the result is identical. Rank 0 alone writes the
    manifest.
    """
    from langtrainer.training import distributed as launch

    if rank is None or world_size is None:
        rank, world_size = launch.process_rank(), launch.world_size()
    is_main = rank == 0
    import torch
    from transformers import AutoModelForSequenceClassification

    from langtrainer.models import load_tokenizer

    ckpt = Path(ckpt).expanduser()
    if not (ckpt / "config.json").is_file():
        raise UserError(f"--ckpt {ckpt} is not a model folder (no config.json)")
    data_path = Path(data).expanduser() if data is not None else ckpt / "data"
    out_dir = Path(out).expanduser() if out is not None else ckpt / "shap"
    if shard_size < 1:
        raise UserError(f"shard size must be positive (got {shard_size})")
    if seed is None:
        recipe_seed = _recipe_value(ckpt, "seed")
        seed = int(recipe_seed) if isinstance(recipe_seed, int) else 0

    frame = _load_split(data_path, split)
    sample = stratified_subsample(frame, subsample, seed)
    tokenizer = load_tokenizer(ckpt)
    pairs = sample["text_pair"].astype(str).tolist() if "text_pair" in sample.columns else None
    if pairs is None:
        lengths = [len(x) for x in tokenizer(sample["text"].astype(str).tolist())["input_ids"]]
    else:
        lengths = [len(x) for x in tokenizer(sample["text"].astype(str).tolist(), pairs)["input_ids"]]
    sample = sample.assign(_length=lengths).sort_values(["_length", "id"], kind="stable")
    token_counts = sample["_length"].tolist()
    sample = sample.drop(columns="_length").reset_index(drop=True)
    ids = sample["id"].tolist()

    arguments = {
        "ckpt": str(ckpt.resolve()),
        "model_fingerprint": _model_fingerprint(ckpt),
        "data": str(data_path.resolve()),
        "split": split,
        "subsample": subsample,
        "seed": seed,
        "max_evals": max_evals,
        "shard_size": shard_size,
        "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16],
    }
    arguments_hash = _arguments_hash(arguments)
    manifest_path = out_dir / MANIFEST
    cpu = not torch.cuda.is_available()
    if not is_main:
        # rank 0 validates / cleans the folder and writes the manifest first
        launch.wait_for_everyone(cpu)
    elif manifest_path.is_file() and not overwrite:
        previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        if previous.get("arguments_hash") != arguments_hash:
            changed = [k for k in arguments if previous.get("arguments", {}).get(k) != arguments[k]]
            raise UserError(
                f"{out_dir} holds SHAP results for other arguments ({', '.join(changed) or 'format'} differ); "
                "use another --out or --overwrite"
            )
    elif overwrite and out_dir.exists():  # (rank 0 only: the branch above caught the others)
        import shutil

        for stale in (out_dir / SHARD_DIR, manifest_path):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()

    config = json.loads((ckpt / "config.json").read_text(encoding="utf-8"))
    id2label = config.get("id2label") or {}
    label_names = [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(len(id2label))]
    n_shards = (len(sample) + shard_size - 1) // shard_size
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "arguments": arguments,
        "arguments_hash": arguments_hash,
        "label_names": label_names,
        "n_examples": len(sample),
        "n_shards": n_shards,
        "ids": ids,
        "complete": False,
    }
    if is_main:
        write_json(manifest_path, manifest)
        launch.wait_for_everyone(cpu)

    mine = set(assign_shards(token_counts, shard_size, world_size)[rank])
    todo = []
    for k in range(n_shards):
        if k not in mine:
            continue
        expected = ids[k * shard_size : (k + 1) * shard_size]
        path = _shard_path(out_dir, k)
        if path.is_file() and _read_shard_ids(path) == expected:
            continue
        todo.append(k)
    def shard_len(k: int) -> int:
        return len(ids[k * shard_size : (k + 1) * shard_size])

    my_total = sum(shard_len(k) for k in mine)  # this process's share (all of it in one process)
    done_examples = my_total - sum(shard_len(k) for k in todo)
    if todo:
        log.info("%d of %d shards to compute (%d examples already done)", len(todo), n_shards, done_examples)
        model = AutoModelForSequenceClassification.from_pretrained(ckpt)
        if torch.cuda.is_available():
            model = model.to("cuda")
        model.eval()
        if progress:
            progress(done_examples, my_total)
        for k in todo:
            rows = sample.iloc[k * shard_size : (k + 1) * shard_size]
            base = done_examples

            def shard_progress(done: int, total: int, base: int = base) -> None:
                if progress:
                    progress(base + done, my_total)

            attributions = explain(
                model,
                tokenizer,
                rows["text"].astype(str).tolist(),
                rows["text_pair"].astype(str).tolist() if pairs is not None else None,
                max_evals=max_evals,
                batch_size=batch_size,
                progress=shard_progress,
            )
            _write_shard(_shard_path(out_dir, k), _shard_table(rows, attributions))
            done_examples += len(rows)
    elif progress:
        progress(my_total, my_total)
    launch.wait_for_everyone(cpu)
    if is_main:
        missing = [k for k in range(n_shards) if _read_shard_ids(_shard_path(out_dir, k)) != ids[k * shard_size:(k + 1) * shard_size]]
        if missing:
            raise RuntimeError(f"shards {missing[:5]} are missing after every process finished")
        manifest["complete"] = True
        write_json(manifest_path, manifest)
    return out_dir


def assign_shards(lengths: Sequence[int], shard_size: int, world_size: int) -> list[list[int]]:
    """Shard indices per process, balanced by token count (longest first, to the least loaded).

    Cost of a shard = sum of its examples' token counts (forward cost per
    masked row is about linear in length at these sizes, and max_evals rows
    per example). Deterministic, so every process computes the same split.
    """
    n_shards = (len(lengths) + shard_size - 1) // shard_size
    costs = [sum(lengths[k * shard_size:(k + 1) * shard_size]) for k in range(n_shards)]
    loads = [0] * world_size
    assignment: list[list[int]] = [[] for _ in range(world_size)]
    for k in sorted(range(n_shards), key=lambda k: (-costs[k], k)):
        target = min(range(world_size), key=lambda r: (loads[r], r))
        assignment[target].append(k)
        loads[target] += costs[k]
    return [sorted(a) for a in assignment]


def find_shap_dir(path: str | os.PathLike) -> Path:
    """A shap output folder, given it or a run directory that holds `shap/`."""
    path = Path(path).expanduser()
    if (path / MANIFEST).is_file():
        return path
    if (path / "shap" / MANIFEST).is_file():
        return path / "shap"
    raise UserError(f"{path} holds no SHAP results (no {MANIFEST}, no shap/{MANIFEST}); run `langtrainer shap` first")


def load_shap_result(path: str | os.PathLike) -> ShapResult:
    """Read a finished `langtrainer shap` output folder (or a run dir with `shap/`)."""
    import pandas as pd
    import pyarrow.parquet as pq

    folder = find_shap_dir(path)
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise UserError(f"{folder / MANIFEST} is not a langtrainer SHAP manifest")
    if not manifest.get("complete"):
        raise UserError(
            f"the SHAP run in {folder} is incomplete; rerun `langtrainer shap` with the same arguments to finish it"
        )
    frames = []
    for k in range(manifest["n_shards"]):
        shard = _shard_path(folder, k)
        if not shard.is_file():
            raise UserError(f"{shard} is missing; rerun `langtrainer shap` with the same arguments")
        frames.append(pq.read_table(shard).to_pandas())
    examples = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if examples["id"].tolist() != manifest["ids"]:
        raise UserError(f"the shards in {folder} do not match its manifest; rerun `langtrainer shap` with --overwrite")
    examples["token_ids"] = [np.asarray(x, dtype=np.int64) for x in examples["token_ids"]]
    examples["tokens"] = [list(x) for x in examples["tokens"]]
    examples["values"] = [
        np.asarray(v, dtype=np.float32).reshape(-1, int(c)) for v, c in zip(examples["values"], examples["n_classes"])
    ]
    for column in ("base_values", "probabilities"):
        examples[column] = [np.asarray(x, dtype=np.float32) for x in examples[column]]
    examples = examples.drop(columns="n_classes")
    return ShapResult(examples=examples, label_names=list(manifest["label_names"]), manifest=manifest, path=folder)


# --------------------------------------------------------------------------- training-time evaluator

try:
    from transformers import TrainerCallback as _TrainerCallback
except ImportError:  # pragma: no cover - transformers is a dependency
    _TrainerCallback = object


class ShapCallback(_TrainerCallback):
    """SHAP numbers as evaluation metrics during fine-tuning, on a small fixed sample.

    Reports `shap_neutral_abs_<lang>` (mean |SHAP| of the neutral token
    values, |S| <= threshold, of the model being trained: with no balanced
    reference at training time, neutral is judged by the model itself) and
    `shap_base_value_spread` (mean over examples of max - min over classes
    of the base value, which the masked-input entropy term of Annex A.3
    drives towards 0). LangTrainer logs them with the `eval_` prefix.
    """

    def __init__(
        self,
        texts: Sequence[str],
        languages: Sequence[str],
        text_pairs: Sequence[str] | None = None,
        max_evals: int = 64,
        batch_size: int = 256,
        threshold: float = 0.01,
        metric_prefix: str = "shap",
    ):
        if len(texts) != len(languages):
            raise UserError(f"{len(texts)} texts but {len(languages)} languages")
        if not texts:
            raise UserError("ShapCallback needs at least one text")
        self.texts = [str(t) for t in texts]
        self.languages = [str(x) for x in languages]
        self.text_pairs = [str(t) for t in text_pairs] if text_pairs is not None else None
        self.max_evals, self.batch_size, self.threshold = int(max_evals), int(batch_size), float(threshold)
        self.metric_prefix = metric_prefix

    @classmethod
    def from_frame(cls, frame, per_language: int = 4, seed: int = 0, **kwargs) -> "ShapCallback":
        """A callback on `per_language` rows per language (label-stratified) of a DataFrame or Dataset."""
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            frame = frame.to_pandas()
        n_languages = frame["language"].nunique()
        by = ("language", "label") if "label" in frame.columns else ("language",)
        sample = stratified_subsample(frame, per_language * n_languages, seed, by=by)
        pairs = sample["text_pair"].tolist() if "text_pair" in sample.columns else None
        return cls(sample["text"].tolist(), sample["language"].tolist(), text_pairs=pairs, **kwargs)

    def compute_eval_metrics(self, model, tokenizer) -> dict[str, float]:
        if tokenizer is None:
            raise UserError("ShapCallback needs the tokenizer (pass processing_class to the trainer)")
        attributions = explain(
            model, tokenizer, self.texts, self.text_pairs, max_evals=self.max_evals, batch_size=self.batch_size
        )
        return shap_summary_metrics(attributions, self.languages, self.threshold, self.metric_prefix)


def shap_summary_metrics(
    attributions: Sequence[TokenAttribution], languages: Sequence[str], threshold: float = 0.01, prefix: str = "shap"
) -> dict[str, float]:
    """Mean |SHAP| of neutral token values per language and the mean base-value spread."""
    metrics: dict[str, float] = {}
    for language in sorted(set(languages)):
        values = np.concatenate(
            [a.values.reshape(-1) for a, lang in zip(attributions, languages) if lang == language]
        )
        neutral = np.abs(values[np.abs(values) <= threshold])
        metrics[f"{prefix}_neutral_abs_{language}"] = float(neutral.mean()) if neutral.size else 0.0
    spreads = [float(a.base_values.max() - a.base_values.min()) for a in attributions]
    metrics[f"{prefix}_base_value_spread"] = float(np.mean(spreads))
    return metrics
