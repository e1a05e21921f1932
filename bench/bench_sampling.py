"""Benchmark: building the five subsets from a large pool (6 languages x 5 labels).

    python bench/bench_sampling.py [--rows 1000000] [--naive-rows 1000000]

Reports seconds for build_subsets end to end (selection, DataFrame slicing,
Arrow conversion) and, for the row selection alone, the speed-up over a naive
sampler that walks the shuffled rows one by one in Python filling per-cell
quotas.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from langtrainer.data.counts import balanced_counts, imbalanced_counts
from langtrainer.data.sampling import build_subsets, select_nested

LANGUAGES = ["de", "en", "es", "fr", "ja", "zh"]
TABLE_1A = {"A": [6.6, 13.3, 20.0, 26.7, 33.3], "B": [33.3, 26.7, 20.0, 13.3, 6.6]}
GROUPS = {"A": ["fr", "es", "ja"], "B": ["de", "en", "zh"]}


def synthetic_pool(n: int, seed: int, prefix: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": pd.Series(np.arange(n)).map(lambda i: f"{prefix}{i}"),
        "text": "some text",
        "label": rng.integers(0, 5, n),
        "language": np.asarray(LANGUAGES)[rng.integers(0, len(LANGUAGES), n)],
    })


def naive_sample(pool: pd.DataFrame, counts: np.ndarray, seed: int) -> list[int]:
    """Per-row Python loop: shuffle, then take a row while its cell still has room."""
    order = np.random.default_rng(seed).permutation(len(pool))
    taken = np.zeros_like(counts)
    chosen = []
    languages = pool["language"].tolist()
    labels = pool["label"].tolist()
    for row in order:
        lang, label = LANGUAGES.index(languages[row]), labels[row]
        if taken[lang, label] < counts[lang, label]:
            taken[lang, label] += 1
            chosen.append(int(row))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    train = synthetic_pool(args.rows, 0, "t")
    pools = {"train": train, "validation": synthetic_pool(args.rows // 10, 1, "v"),
             "test": synthetic_pool(args.rows // 10, 2, "s")}
    per_language = args.rows // 30  # a fifth of the rows per language: the 33.3% cells need most of their pool
    build_subsets(pools, LANGUAGES, 5, 10, 5, 1, TABLE_1A, GROUPS, seed=0)  # warm-up: imports
    times = []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        subsets, report = build_subsets(pools, LANGUAGES, 5, per_language, per_language // 10, per_language // 50,
                                        TABLE_1A, GROUPS, seed=repeat)
        times.append(time.perf_counter() - start)
    print(f"build_subsets on {args.rows:,} train rows (+{2 * (args.rows // 10):,} validation/test): "
          f"best {min(times):.2f} s, median {np.median(times):.2f} s over {args.repeats} "
          f"(train_per_language {per_language:,}; train subsets {report['totals']['train_balanced']:,} rows each, "
          f"overlap {100 * report['overlap']['train']:.1f}%)")

    # Row selection alone (both training subsets) against a naive per-row Python loop, same table.
    small = synthetic_pool(args.naive_rows, 3, "n")
    n_small = args.naive_rows // 30
    counts = {"train_balanced": balanced_counts(n_small, len(LANGUAGES), 5),
              "train_imbalanced": imbalanced_counts(n_small, LANGUAGES, 5, TABLE_1A, GROUPS)}
    start = time.perf_counter()
    for name, table in counts.items():
        naive_sample(small, table, 0)
    naive = time.perf_counter() - start
    start = time.perf_counter()
    select_nested(small, LANGUAGES, 5, counts, 0, "train")
    fast = time.perf_counter() - start
    print(f"row selection, both training subsets, {args.naive_rows:,} rows: naive per-row loop {naive:.2f} s, "
          f"select_nested {fast:.3f} s ({naive / fast:.0f}x faster)")

if __name__ == "__main__":
    main()
