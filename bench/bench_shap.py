"""How fast is langtrainer's token SHAP engine? Three timings in one run, same model, same texts.

    python bench/bench_shap.py [--n 32] [--max-evals 500] [--ref-n 2] [--batch-size 256]

- ours: `langtrainer.analysis.shap.explain` on N demo-corpus texts, its
  forward passes through `models.inference` (ONNX Runtime where exact);
- floor: the very same masked rows, sorted by length and run in batches of
  --batch-size through the eager fp32 model with no SHAP bookkeeping at all
  (the floor of any engine built on the eager forward);
- reference: the paper's approach, a transformers text-classification
  pipeline padded to max_length 512 inside `shap.Explainer`, one example at a
  time. It is slow, so it runs on the first --ref-n texts and is compared per
  example (seconds per example).

Model: builtin:multilingual-e5-small with a freshly initialised 4-label head
(seed 0); texts: the libreoffice-help test split, 4 labels, stratified by
language and label (seed 0). Prints a table and one JSON line.

Timing: each phase is timed in wall-clock seconds and in this process's CPU
seconds. The ratios use CPU seconds: on a machine shared with other jobs the
wall clock also counts time spent waiting for a core, and that load drifts
between phases. Torch runs on one thread by default (--threads), so CPU
seconds are compute seconds; with more threads, spin-waiting inflates them.
Ours and the floor run --reps times, interleaved, and each keeps its best;
the one-off export of the model (per weights, then cached) is timed apart.
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
    from langtrainer.data.stratified import stratified_subsample
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


class Clock:
    """Wall-clock and process CPU seconds of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def time_reference(model, tokenizer, texts: list[str], max_evals: int) -> tuple[Clock, list[np.ndarray]]:
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
    with Clock() as clock:
        for text in texts:
            explanation = explainer([text], max_evals=max_evals, silent=True)
            values.append(np.asarray(explanation.values[0]))
    return clock, values


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="texts explained by our engine and the floor")
    parser.add_argument("--max-evals", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=256, help="rows per forward pass (ours and floor)")
    parser.add_argument("--ref-n", type=int, default=2, help="texts explained the reference way (slow)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--reps", type=int, default=2, help="interleaved repetitions of ours and the floor")
    args = parser.parse_args(argv)

    import torch

    from langtrainer.analysis.shap import ModelRunner, explain

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

    started = time.perf_counter()
    explain(model, tokenizer, texts[:1], max_evals=20)  # warm-up (export or cache load, allocator, kernels)
    warmup_s = time.perf_counter() - started
    explain(model, tokenizer, texts[:1], max_evals=20, runner=ModelRunner(model, tokenizer, fast=False))
    ours_clocks, floor_clocks = [], []
    for _ in range(max(1, args.reps)):
        runner = RecordingRunner(model, tokenizer, batch_size=args.batch_size)
        with Clock() as clock:
            ours = explain(model, tokenizer, texts, max_evals=args.max_evals, batch_size=args.batch_size,
                           runner=runner)
        ours_clocks.append(clock)
        floor_runner = ModelRunner(model, tokenizer, batch_size=args.batch_size, fast=False)
        with Clock() as clock:
            floor_runner(runner.rows)
        floor_clocks.append(clock)
    ours_clock = min(ours_clocks, key=lambda c: c.cpu)
    floor_clock = min(floor_clocks, key=lambda c: c.cpu)

    ref_n = min(args.ref_n, len(texts))
    if ref_n:
        ref_clock, ref_values = time_reference(model, tokenizer, texts[:ref_n], args.max_evals)
    else:
        ref_clock, ref_values = None, []
    max_diff = max((float(np.abs(a.values - r).max()) for a, r in zip(ours, ref_values)), default=float("nan"))

    n = len(texts)
    report = {
        "bench": "shap",
        "model": "builtin:multilingual-e5-small (4-label head, seed 0)",
        "n": n,
        "max_evals": args.max_evals,
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "forward_route": runner.route,
        "floor_route": floor_runner.route,
        "warmup_s_incl_export": round(warmup_s, 2),
        "reps": args.reps,
        "load_average": list(os.getloadavg()),
        "tokens_mean": float(np.mean(lengths)),
        "tokens_max": int(np.max(lengths)),
        "rows_asked": runner.n_requested,
        "rows_run": runner.n_rows,
        "row_tokens_run": runner.n_tokens,
        "ours_cpu_s": round(ours_clock.cpu, 2),
        "ours_wall_s": round(ours_clock.wall, 2),
        "ours_examples_per_s": round(n / ours_clock.cpu, 4),
        "floor_cpu_s": round(floor_clock.cpu, 2),
        "floor_wall_s": round(floor_clock.wall, 2),
        "floor_examples_per_s": round(n / floor_clock.cpu, 4),
        "ratio_ours_vs_floor": round(ours_clock.cpu / floor_clock.cpu, 3),
        "ratio_ours_vs_floor_wall": round(ours_clock.wall / floor_clock.wall, 3),
        "reference_examples": ref_n,
        "reference_cpu_s_per_example": round(ref_clock.cpu / ref_n, 2) if ref_n else None,
        "reference_wall_s_per_example": round(ref_clock.wall / ref_n, 2) if ref_n else None,
        "ours_cpu_s_per_example": round(ours_clock.cpu / n, 3),
        "speedup_vs_reference": round((ref_clock.cpu / ref_n) / (ours_clock.cpu / n), 2) if ref_n else None,
        "speedup_vs_reference_wall": round((ref_clock.wall / ref_n) / (ours_clock.wall / n), 2) if ref_n else None,
        "max_abs_diff_vs_reference": max_diff,
        "targets": {"speedup_vs_reference": ">= 30", "ratio_ours_vs_floor": "<= 1.0"},
    }
    print(f"{'':30}{'CPU s':>9}{'wall s':>9}{'examples/s':>12}{'CPU s/example':>15}")
    print(f"{'ours':30}{ours_clock.cpu:>9.1f}{ours_clock.wall:>9.1f}{n / ours_clock.cpu:>12.3f}{ours_clock.cpu / n:>15.2f}")
    print(f"{'floor (same rows, bare)':30}{floor_clock.cpu:>9.1f}{floor_clock.wall:>9.1f}{n / floor_clock.cpu:>12.3f}"
          f"{floor_clock.cpu / n:>15.2f}")
    if ref_n:
        print(f"{f'reference ({ref_n} examples)':30}{ref_clock.cpu:>9.1f}{ref_clock.wall:>9.1f}{ref_n / ref_clock.cpu:>12.3f}"
              f"{ref_clock.cpu / ref_n:>15.2f}")
        print(f"reference / ours per example = {report['speedup_vs_reference']:.1f}x CPU, "
              f"{report['speedup_vs_reference_wall']:.1f}x wall   (target >= 30)")
    print(f"ours / floor = {report['ratio_ours_vs_floor']:.2f} CPU, {report['ratio_ours_vs_floor_wall']:.2f} wall   (target <= 1.0; ours: {runner.route}, floor: eager)")
    print(f"rows asked {runner.n_requested}, run {runner.n_rows} (repeats answered from the cache)")
    print(f"max |ours - reference| = {max_diff:.2e}")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
