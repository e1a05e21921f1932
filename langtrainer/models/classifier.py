"""A classifier to fine-tune: the recipe's model with a fresh head for its labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from langtrainer.errors import UserError

if TYPE_CHECKING:
    from langtrainer.recipe import Recipe


def load_model_for_classification(recipe: "Recipe", label_names: list[str]):
    """Resolve `model.name_or_path` (builtin, local, Hub) and add a fresh head."""
    from transformers import AutoModelForSequenceClassification

    from langtrainer.models import resolve_model_path
    from langtrainer.models import load_tokenizer

    path = resolve_model_path(recipe.model.name_or_path, arch=recipe.model.arch)
    remote = recipe.model.trust_remote_code
    try:
        tokenizer = load_tokenizer(path, trust_remote_code=remote)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(path),
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            # A checkpoint that already has a head for another label set gets a fresh one.
            ignore_mismatched_sizes=True,
            trust_remote_code=remote,
        )
    except OSError as exc:
        if not Path(str(path)).exists():
            raise UserError(
                f"model '{recipe.model.name_or_path}' needs the Hugging Face Hub, which is unreachable: "
                f"use a local folder or builtin:multilingual-e5-small ({str(exc).splitlines()[0][:120]})"
            ) from None
        raise UserError(f"cannot load model from '{path}': {str(exc).splitlines()[0]}") from None
    if recipe.model.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    return model, tokenizer


def check_local_model(recipe: "Recipe") -> None:
    """A local model path that does not exist fails at once, before any import or output."""
    name = recipe.model.name_or_path
    if not name.startswith("builtin:"):
        from langtrainer.models import check_model_folder, load_tokenizer, resolve_model_path

        resolved = resolve_model_path(name)
        folder = Path(str(resolved)).expanduser()
        if folder.is_dir() and (folder / "config.json").is_file():
            check_model_folder(folder)  # whole weights and a tokenizer that fits them, before a run folder is made
            if not recipe.model.trust_remote_code:
                load_tokenizer(folder)
