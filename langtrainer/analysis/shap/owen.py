"""shap's Owen-value recursion over the Text masker's partition tree, as a generator.

The recursion yields the masks it wants evaluated and receives the model
outputs, so that many examples can run side by side (see `engine.run_pool`).
"""

from __future__ import annotations

import heapq
from typing import Iterator

import numpy as np

from langtrainer.analysis.shap.masker import Prepared


def owen(prep: Prepared, max_evals: int, queue_batch: int) -> Iterator[np.ndarray]:
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
    lower_credit(values, clustering, n)
    return values[:n], base_value, full_value


def lower_credit(values: np.ndarray, clustering: np.ndarray, n: int) -> None:
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
