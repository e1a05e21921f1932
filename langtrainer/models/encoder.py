"""Loading a model to read its hidden states (the probe, embeddings): any run folder, HF folder,
builtin model or Hub id, in eval mode."""

from __future__ import annotations

from pathlib import Path

from langtrainer.errors import UserError


def resolve_model(name_or_path: str | Path) -> str | Path:
    """A local folder (run directory or HF folder), the cached folder of a `builtin:` model, or a Hub id."""
    from langtrainer.models import resolve_model_path

    resolved = resolve_model_path(str(name_or_path))
    if isinstance(resolved, Path) and resolved.is_dir() and not (resolved / "config.json").is_file():
        raise UserError(
            f"'{name_or_path}' holds no model (no config.json): give a finished run directory, "
            "an HF model folder or builtin:NAME"
        )
    return resolved


def load_encoder(model_dir: str | Path):
    """(model, tokenizer, pooler_trained) from an HF folder, in eval mode.

    A sequence-classification checkpoint is loaded with its head (its
    `base_model` is what gets probed); anything else as a bare `AutoModel`.
    pooler_trained is False when the pooler weights were missing from the
    checkpoint (randomly initialised, e.g. the converted multilingual-e5).
    """
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    from langtrainer.models import check_model_folder, load_tokenizer

    if Path(model_dir).expanduser().is_dir():
        check_model_folder(Path(model_dir).expanduser())  # whole weights before transformers reads them
        load_tokenizer(Path(model_dir).expanduser())  # present, a tokenizer, and within the embeddings
    try:
        config = AutoConfig.from_pretrained(model_dir)
        architectures = config.architectures or []
        loader = (
            AutoModelForSequenceClassification
            if any(a.endswith("ForSequenceClassification") for a in architectures)
            else AutoModel
        )
        model, info = loader.from_pretrained(model_dir, output_loading_info=True)
        tokenizer = load_tokenizer(model_dir)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a model from {model_dir}: {str(exc).splitlines()[0]}") from None
    model.eval()
    pooler_trained = not any("pooler" in key for key in info.get("missing_keys", ()))
    return model, tokenizer, pooler_trained
