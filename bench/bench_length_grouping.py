"""Time per training epoch and per evaluation with length-grouped batches.

Dynamic padding pads each batch to its longest text. Random batches of the
demo corpus (median 26 tokens, a long tail to the 96-token cut) pad to the
tail; batches of similar length pad little. Same model
(builtin:multilingual-e5-small + a 4-label head, frozen word embeddings),
same texts, same LangTrainer:

- training: one epoch with train_sampling_strategy=random (the baseline)
  vs group_by_length (what the demo recipe uses);
- evaluation: trainer.predict on the texts in corpus order (the baseline)
  vs sorted by length (what finetune does with validation and test).

Rounds alternate so that machine load hits both alike; ratios are of medians.

    python bench/bench_length_grouping.py [--examples 384] [--rounds 2]
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
    parser.add_argument("--examples", type=int, default=384, help="training texts (one epoch, batch 16)")
    parser.add_argument("--eval-examples", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=96)
    cli = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from langtrainer import LangTrainer, LangTrainingArguments
    from langtrainer.training.encoding import sort_by_length, tokenize
    from langtrainer.models import resolve_model_path

    path = str(resolve_model_path("builtin:multilingual-e5-small"))
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = demo_training_texts(cli.examples + cli.eval_examples)
    train = tokenize(texts.select(range(cli.examples)), tokenizer, cli.max_length)
    evaluation = tokenize(texts.select(range(cli.examples, len(texts))), tokenizer, cli.max_length)
    evaluation_sorted, _ = sort_by_length(evaluation, evaluation)

    def trainer_for(strategy: str, out: str) -> LangTrainer:
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=4)
        model.get_input_embeddings().weight.requires_grad_(False)
        args = LangTrainingArguments(
            output_dir=out, per_device_train_batch_size=16, per_device_eval_batch_size=64, num_train_epochs=1,
            train_sampling_strategy=strategy, report_to="none", use_cpu=True, save_strategy="no",
            logging_strategy="no", disable_tqdm=True, seed=0, dataloader_num_workers=0,
        )
        return LangTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)

    def timed(fn) -> float:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    results: dict[str, list[float]] = {"train_random": [], "train_grouped": [], "eval_unsorted": [], "eval_sorted": []}
    for _ in range(cli.rounds):
        with tempfile.TemporaryDirectory() as out:
            for strategy, key in (("random", "train_random"), ("group_by_length", "train_grouped")):
                trainer = trainer_for(strategy, out)
                results[key].append(timed(trainer.train))
            results["eval_unsorted"].append(timed(lambda: trainer.predict(evaluation)))
            results["eval_sorted"].append(timed(lambda: trainer.predict(evaluation_sorted)))
    median = {key: statistics.median(values) for key, values in results.items()}
    summary = {
        "benchmark": "length_grouping",
        "train_epoch_s_random": round(median["train_random"], 2),
        "train_epoch_s_grouped": round(median["train_grouped"], 2),
        "train_speedup": round(median["train_random"] / median["train_grouped"], 3),
        "eval_s_unsorted": round(median["eval_unsorted"], 2),
        "eval_s_sorted": round(median["eval_sorted"], 2),
        "eval_speedup": round(median["eval_unsorted"] / median["eval_sorted"], 3),
        "rounds": results,
        "examples": cli.examples,
        "eval_examples": cli.eval_examples,
        "max_length": cli.max_length,
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(summary))
    print(f"training epoch: random {median['train_random']:.1f} s, length-grouped {median['train_grouped']:.1f} s "
          f"({summary['train_speedup']:.2f}x); evaluation: unsorted {median['eval_unsorted']:.1f} s, "
          f"sorted {median['eval_sorted']:.1f} s ({summary['eval_speedup']:.2f}x)")


if __name__ == "__main__":
    main()
