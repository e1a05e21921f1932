"""How fast is langtrainer's token SHAP engine? Three timings in one run, same model, same texts.

    python bench/bench_shap.py [--n 32] [--max-evals 500] [--ref-n 2] [--batch-size 256]

- ours: `langtrainer.attribution.explain` on N demo-corpus texts;
- floor: the very same masked rows, sorted by length and run in batches of
  --batch-size with no SHAP bookkeeping at all (the physical floor);
- reference: the paper's approach, a transformers text-classification
  pipeline padded to max_length 512 inside `shap.Explainer`, one example at a
  time. It is slow, so it runs on the first --ref-n texts and is compared per
  example (seconds per example).

Model: builtin:multilingual-e5-small with a freshly initialised 4-label head
(seed 0); texts: the libreoffice-help test split, 4 labels, stratified by
language and label (seed 0). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

LABELS = ["scalc", "swriter", "simpress", "sbasic"]


def load_texts(n: int) -> list[str]:
    from langtrainer.attribution import stratified_subsample
    from langtrainer.data.builtin import load_builtin

    frame = load_builtin("libreoffice-help")
    frame = frame[(frame["split"] == "test") & frame["label"].isin(LABELS)].reset_index(drop=True)
    return stratified_subsample(frame, n, seed=0)["text"].tolist()


def load_model():
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from langtrainer.models import resolve_model_path

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = resolve_model_path("builtin:multilingual-e5-small")
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=4).eval()
    return model, tokenizer


def time_reference(model, tokenizer, texts: list[str], max_evals: int) -> tuple[float, list[np.ndarray]]:
    """The paper's approach: pipeline padded to 512 inside shap.Explainer, one example at a time."""
    import shap
    from transformers import pipeline

    pipe = pipeline(
        "text-classification", model=model, tokenizer=tokenizer, top_k=None,
        padding="max_length", max_length=512, truncation=True, device="cpu",
    )
    explainer = shap.Explainer(pipe)
    # warm-up outside the clock: numba compiles shap's helpers on first use
    shap.Explainer(lambda s: np.zeros((len(s), 2)), shap.maskers.Text(tokenizer))(["a b c"], max_evals=10, silent=True)
    values = []
    start = time.perf_counter()
    for text in texts:
        explanation = explainer([text], max_evals=max_evals, silent=True)
        values.append(np.asarray(explanation.values[0]))
    return time.perf_counter() - start, values


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="texts explained by our engine and the floor")
    parser.add_argument("--max-evals", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=256, help="rows per forward pass (ours and floor)")
    parser.add_argument("--ref-n", type=int, default=2, help="texts explained the reference way (slow)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)

    import torch

    from langtrainer.attribution import ModelRunner, explain

    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load_model()
    texts = load_texts(args.n)
    lengths = [len(x) for x in tokenizer(texts)["input_ids"]]

    class RecordingRunner(ModelRunner):
        """Our forward passes, keeping every row so the floor can replay them."""

        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.rows = []

        def __call__(self, rows):
            self.rows.extend(rows)
            return super().__call__(rows)

    explain(model, tokenizer, texts[:1], max_evals=20)  # warm-up (allocator, kernels)
    runner = RecordingRunner(model, tokenizer, batch_size=args.batch_size)
    start = time.perf_counter()
    ours = explain(model, tokenizer, texts, max_evals=args.max_evals, batch_size=args.batch_size, runner=runner)
    ours_s = time.perf_counter() - start

    floor_runner = ModelRunner(model, tokenizer, batch_size=args.batch_size)
    start = time.perf_counter()
    floor_runner(runner.rows)
    floor_s = time.perf_counter() - start

    ref_n = min(args.ref_n, len(texts))
    ref_s, ref_values = time_reference(model, tokenizer, texts[:ref_n], args.max_evals) if ref_n else (float("nan"), [])
    max_diff = max((float(np.abs(a.values - r).max()) for a, r in zip(ours, ref_values)), default=float("nan"))

    ours_per_example = ours_s / len(texts)
    ref_per_example = ref_s / ref_n if ref_n else float("nan")
    report = {
        "bench": "shap",
        "model": "builtin:multilingual-e5-small (4-label head, seed 0)",
        "n": len(texts),
        "max_evals": args.max_evals,
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "tokens_mean": float(np.mean(lengths)),
        "tokens_max": int(np.max(lengths)),
        "rows": len(runner.rows),
        "row_tokens": runner.n_tokens,
        "ours_s": round(ours_s, 3),
        "ours_examples_per_s": round(len(texts) / ours_s, 4),
        "ours_forward_s": round(runner.seconds, 3),
        "floor_s": round(floor_s, 3),
        "floor_examples_per_s": round(len(texts) / floor_s, 4),
        "ratio_ours_vs_floor": round(ours_s / floor_s, 3),
        "reference_examples": ref_n,
        "reference_s_per_example": round(ref_per_example, 3),
        "ours_s_per_example": round(ours_per_example, 3),
        "speedup_vs_reference": round(ref_per_example / ours_per_example, 2),
        "max_abs_diff_vs_reference": max_diff,
        "targets": {"speedup_vs_reference": ">= 20", "ratio_ours_vs_floor": "<= 1.3"},
    }
    print(f"{'':28}{'seconds':>10}{'examples/s':>12}{'s/example':>11}")
    print(f"{'ours':28}{ours_s:>10.1f}{len(texts) / ours_s:>12.3f}{ours_per_example:>11.2f}")
    print(f"{'floor (bare forwards)':28}{floor_s:>10.1f}{len(texts) / floor_s:>12.3f}{floor_s / len(texts):>11.2f}")
    if ref_n:
        print(f"{f'reference ({ref_n} examples)':28}{ref_s:>10.1f}{ref_n / ref_s:>12.3f}{ref_per_example:>11.2f}")
    print(f"ours / floor = {report['ratio_ours_vs_floor']:.2f}   (target <= 1.3)")
    print(f"reference / ours per example = {report['speedup_vs_reference']:.1f}x   (target >= 20)")
    print(f"max |ours - reference| = {max_diff:.2e}")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
