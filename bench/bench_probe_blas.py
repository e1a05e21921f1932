"""Probe fits with one BLAS thread vs the BLAS library's default thread count.

`probe_language` fits a logistic regression per fold on a few hundred to a
few thousand 384-dimensional embeddings. The matrices are small, and on the
2-core machines this project targets, OpenBLAS's extra threads cost more than
they give. Same features, same folds, same function: `blas_threads=None` (the
library default, the baseline) vs `blas_threads=1` (langtrainer's default).
Rounds alternate; ratios are of medians. The accuracies must be equal.

Features: first-token embeddings of builtin:multilingual-e5-small (pretrained)
for demo-corpus paragraphs, as many in each of the 6 languages.

    python bench/bench_probe_blas.py [--examples 720] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from demo_texts import demo_training_texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=720, help="texts to embed and probe (the demo's test set: 720)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--Cs", type=float, nargs="+", default=[1e-4, 1e-2, 1.0], help="the demo's C sweep")
    cli = parser.parse_args()

    from threadpoolctl import threadpool_info

    from langtrainer.analysis.embeddings import extract_embeddings
    from langtrainer.models import resolve_model_path
    from langtrainer.analysis.probe import probe_language
    from langtrainer.models.encoder import load_encoder

    # As many texts per language, as in the demo's test set and external corpus.
    pool = demo_training_texts(4 * cli.examples).to_pandas()
    per_language = cli.examples // pool["language"].nunique()
    texts = pool.groupby("language", sort=True).head(per_language)
    model, tokenizer, _ = load_encoder(resolve_model_path("builtin:multilingual-e5-small"))
    features = extract_embeddings(model, tokenizer, texts["text"].tolist(), max_length=96)[-1]
    languages = texts["language"].tolist()

    def fit_all(blas_threads: int | None) -> tuple[float, list[float]]:
        started = time.perf_counter()
        accuracies = [probe_language(features, languages, C=c, seed=0, blas_threads=blas_threads).accuracy_mean
                      for c in cli.Cs]
        return time.perf_counter() - started, accuracies

    fit_all(1)  # warm-up (imports, first allocations)
    seconds: dict[str, list[float]] = {"default": [], "one": []}
    accuracies: dict[str, list[float]] = {}
    for _ in range(cli.rounds):
        for name, threads in (("default", None), ("one", 1)):
            took, accuracies[name] = fit_all(threads)
            seconds[name].append(took)
    default_s, one_s = statistics.median(seconds["default"]), statistics.median(seconds["one"])
    result = {
        "examples": len(texts),
        "Cs": cli.Cs,
        "folds": 5,
        "blas_default_threads": sorted({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}),
        "default_threads_s": round(default_s, 3),
        "one_thread_s": round(one_s, 3),
        "speedup": round(default_s / one_s, 2),
        "accuracies_equal": accuracies["default"] == accuracies["one"],
        "accuracies": accuracies["one"],
        "rounds_s": seconds,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
