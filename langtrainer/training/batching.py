"""What a training batch holds and in which order: language codes as ids beside the padded inputs, and the
per-language balanced sampler's draws, reproducible per epoch."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.utils.data import WeightedRandomSampler
from transformers import DataCollatorWithPadding

from langtrainer.errors import UserError

LANGUAGE_COLUMN = "language"  # the default of LangTrainingArguments.language_column


class EpochWeightedSampler(WeightedRandomSampler):
    """WeightedRandomSampler whose draws depend on (seed, epoch) only.

    accelerate calls `set_epoch` before each epoch, so a run resumed at
    epoch k draws exactly what an uninterrupted run draws there.
    """

    def __init__(self, weights, num_samples: int, seed: int):
        super().__init__(weights, num_samples=num_samples, replacement=True, generator=torch.Generator())
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed + 10_007 * int(epoch))


class LanguageCollator:
    """Pads like `DataCollatorWithPadding` and turns language codes into ids."""

    def __init__(self, tokenizer, languages: Sequence[str], column: str = LANGUAGE_COLUMN):
        self.pad = DataCollatorWithPadding(tokenizer)
        self.language_ids = {lang: i for i, lang in enumerate(languages)}
        self.column = column

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        column = self.column
        languages = [f.pop(column) for f in features] if column in features[0] else None
        batch = self.pad(features)
        if languages is not None:
            try:
                batch[column] = torch.tensor([self.language_ids[lang] for lang in languages])
            except KeyError as exc:
                raise UserError(f"language {exc.args[0]!r} is not one of the trainer's languages") from None
        return batch
