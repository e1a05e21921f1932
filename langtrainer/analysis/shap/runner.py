"""Forward passes: softmax probabilities of padded batches of token-id rows (the only model calls).

The forward is `langtrainer.models.inference`'s: an ONNX Runtime session of
the model where it is available and checked exact, else the eager model.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from langtrainer.analysis.shap.rows import Row
from langtrainer.models.inference import inference_forward


class ModelRunner:
    """Softmax probabilities of padded batches of token-id rows (the only model calls)."""

    def __init__(self, model, tokenizer, batch_size: int = 256, fast: bool = True):
        import torch

        self.model = model
        self.fast = fast
        self._forward = None
        self.batch_size = int(batch_size)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
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

    @property
    def route(self) -> str | None:
        """"onnxruntime" or "eager" once rows have run, else None."""
        return getattr(self._forward, "route", None)

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
        if self._forward is None:
            # resolved at the first call (not in __init__): exporting costs once, and only when rows are run
            self._forward = inference_forward(self.model, "logits", fast=self.fast)
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
            (logits,) = self._forward(ids, attention, types)
            out[chunk] = torch.softmax(torch.from_numpy(logits).float(), dim=-1).numpy()
            self.n_tokens += int(attention.sum())
        self.n_rows += len(rows)
        self.seconds += time.perf_counter() - start
        return out
