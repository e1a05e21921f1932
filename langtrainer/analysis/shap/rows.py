"""Masked model rows: token ids substituted directly where that equals shap's string masking.

A masked row is built as a token-id array (mask id substituted) without the
decode / re-tokenise round trip whenever that gives the same ids as shap's
string masking: when no kept/masked boundary falls inside a pre-tokenizer
word, and a per-example probe (alternate words masked, all masked, none
masked) showed the tokenizer agrees. Other rows (e.g. masks that split a
Chinese sentence, which SentencePiece treats as one word) are built as shap
builds them: the masked string, re-tokenised.
"""

from __future__ import annotations

import numpy as np

from langtrainer.analysis.shap.masker import Encoder, MaskerSpec, Prepared, split_pair_string

Row = tuple[np.ndarray, "np.ndarray | None"]


def direct_rows(prep: Prepared, keep: np.ndarray, mask_id: int) -> list[Row]:
    """Rows with the mask id substituted at masked positions (model encoding)."""
    valid = prep.feature_to_model >= 0
    columns = prep.feature_to_model[valid]
    ids = np.tile(prep.model_ids, (len(keep), 1))
    ids[:, columns] = np.where(keep[:, valid], prep.feature_ids[valid], mask_id)
    return [(row, prep.model_type_ids) for row in ids]


def string_inputs(spec: MaskerSpec, prep: Prepared, keep: np.ndarray) -> list[tuple[str, str | None]]:
    out = []
    for row in keep:
        masked = spec.masked_string(prep.segments, row)
        out.append(split_pair_string(masked, spec.sep_token) if prep.text_pair is not None else (masked, None))
    return out


def is_word_aligned(prep: Prepared, keep: np.ndarray) -> np.ndarray:
    """True for masks whose kept/masked boundaries never split a pre-tokenizer word."""
    boundary = keep[:, 1:] != keep[:, :-1]
    same_word = (prep.word[1:] == prep.word[:-1]) & (prep.word[1:] >= 0)
    return ~np.any(boundary & same_word, axis=1)


class RowBuilder:
    """Masks -> model rows, token ids directly where that equals shap's string masking."""

    def __init__(self, spec: MaskerSpec, encoder: Encoder, force_strings: bool = False):
        self.spec = spec
        self.encoder = encoder
        self.force_strings = force_strings
        self.n_direct = 0
        self.n_string = 0

    def build(self, jobs: list[tuple[Prepared, np.ndarray]]) -> list[list[Row]]:
        """For each (example, masks) job, the rows to evaluate, in mask order."""
        results: list[list[Row | None]] = []
        string_single: list[tuple[int, int, str]] = []
        string_pair: list[tuple[int, int, str, str]] = []
        for j, (prep, masks) in enumerate(jobs):
            keep = masks | prep.always_kept
            rows: list[Row | None] = [None] * len(keep)
            direct = (
                is_word_aligned(prep, keep)
                if prep.direct_ok and not self.force_strings
                else np.zeros(len(keep), dtype=bool)
            )
            if direct.any():
                for k, row in zip(np.flatnonzero(direct), direct_rows(prep, keep[direct], self.spec.mask_token_id)):
                    rows[k] = row
            for k in np.flatnonzero(~direct):
                text, pair = string_inputs(self.spec, prep, keep[k : k + 1])[0]
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


def verify_direct(spec: MaskerSpec, encoder: Encoder, preps: list[Prepared]) -> None:
    """Mark examples whose word-aligned masks give the same ids directly as through strings.

    Probes: every other word masked (both parities), everything masked, nothing
    masked. Tokenisation is piecewise between mask tokens, so agreement on
    these covers every word-aligned mask of the example.
    """
    builder = RowBuilder(spec, encoder, force_strings=True)
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
        direct = direct_rows(prep, keep, spec.mask_token_id)
        prep.direct_ok = all(
            np.array_equal(a[0], b[0]) and (a[1] is None or np.array_equal(a[1], b[1])) for a, b in zip(direct, rows)
        )
