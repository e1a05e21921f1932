"""langtrainer: multilingual fine-tuning that does not learn 'language => label'.

Public entry points are imported lazily so that `import langtrainer` (and the
CLI's --help) stays fast and does not load torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "LangTrainer": "langtrainer.training.trainer",
    "LangTrainingArguments": "langtrainer.training.args",
    "Recipe": "langtrainer.recipe",
    "load_recipe": "langtrainer.recipe",
    "finetune": "langtrainer.pipelines.finetune",
    "UserError": "langtrainer.errors",
    "per_language_compute_metrics": "langtrainer.training.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'langtrainer' has no attribute {name!r}")
