"""Training-step overhead of LangTrainer's per-language weighted loss.

Same model (builtin:multilingual-e5-small + a 4-label head), same batches
(16 x demo-corpus texts), same optimiser: a plain transformers.Trainer vs
LangTrainer with class_weights=per_language. Runs alternate so that machine
load hits both alike; the result is the ratio of median step times.

    python bench/bench_trainer.py [--steps 12] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from demo_texts import demo_training_texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per round (after 2 warm-up steps)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=96)
    cli = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    from langtrainer import LangTrainer, LangTrainingArguments
    from langtrainer.training.encoding import tokenize
    from langtrainer.models import resolve_model_path

    torch.set_num_threads(max(1, torch.get_num_threads()))
    path = str(resolve_model_path("builtin:multilingual-e5-small"))
    tokenizer = AutoTokenizer.from_pretrained(path)
    dataset = demo_training_texts(16 * (cli.steps + 2))
    train = tokenize(dataset, tokenizer, cli.max_length)

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self._t = [], 0.0

        def on_step_begin(self, args, state, control, **kw):
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self._t)

    common = dict(per_device_train_batch_size=16, max_steps=cli.steps + 2, report_to="none", use_cpu=True,
                  save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0,
                  dataloader_num_workers=0)

    def run(kind: str) -> float:
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=4)
        model.get_input_embeddings().weight.requires_grad_(False)
        timer = StepTimer()
        with tempfile.TemporaryDirectory() as out:
            if kind == "plain":
                # the plain Trainer drops the language column itself (remove_unused_columns)
                trainer = Trainer(model=model, args=TrainingArguments(output_dir=out, **common),
                                  train_dataset=train, processing_class=tokenizer, callbacks=[timer])
            else:
                trainer = LangTrainer(model=model, args=LangTrainingArguments(output_dir=out, class_weights="per_language", **common),
                                      train_dataset=train, processing_class=tokenizer, callbacks=[timer])
            trainer.train()
        return statistics.median(timer.times[2:])

    results: dict[str, list[float]] = {"plain": [], "langtrainer": []}
    for _ in range(cli.rounds):
        for kind in ("plain", "langtrainer"):
            results[kind].append(run(kind))
    plain, ours = statistics.median(results["plain"]), statistics.median(results["langtrainer"])
    summary = {
        "benchmark": "trainer_step_overhead",
        "median_step_s_plain": round(plain, 4),
        "median_step_s_langtrainer": round(ours, 4),
        "ratio": round(ours / plain, 4),
        "overhead_percent": round(100 * (ours / plain - 1), 2),
        "rounds": results,
        "steps": cli.steps,
        "batch": 16,
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(summary))
    print(f"plain Trainer {plain:.3f} s/step, LangTrainer (per-language weights) {ours:.3f} s/step, "
          f"ratio {ours / plain:.3f} ({summary['overhead_percent']:+.1f} %)")


if __name__ == "__main__":
    main()
