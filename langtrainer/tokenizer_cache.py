"""One tokenizer object per set of tokenizer files, per process.

Loading XLM-R's fast tokenizer (a 17 MB tokenizer.json, parsed once in
Python and once in Rust) takes about 1.6 s on 2 CPU cores, and the demo used
to load the same files 14 times: once per fine-tune, probe and SHAP run. A
tokenizer whose files have the same content as one already loaded is now
that same object. Callers only call it and must not change its attributes;
each call sets its own truncation and padding.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

# Files that AutoTokenizer reads from a folder (config.json: only the fields below).
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "sentencepiece.bpe.model", "spiece.model", "vocab.txt", "vocab.json", "merges.txt",
)
CONFIG_FIELDS = ("model_type", "tokenizer_class")
MAX_CACHED = 4

_cache: OrderedDict[str, Any] = OrderedDict()


def tokenizer_fingerprint(folder: Path) -> str:
    """Digest of what decides the tokenizer a folder loads into (names and contents)."""
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        path = folder / name
        if path.is_file():
            digest.update(f"{name}\0".encode())
            digest.update(path.read_bytes())
    config = folder / "config.json"
    if config.is_file():
        try:
            fields = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            fields = {}
        chosen = {key: fields.get(key) for key in CONFIG_FIELDS} if isinstance(fields, dict) else {}
        digest.update(json.dumps(chosen, sort_keys=True).encode())
    return digest.hexdigest()


def load_tokenizer(name_or_path: str | Path, trust_remote_code: bool = False):
    """AutoTokenizer.from_pretrained, reusing the object of a folder with the same tokenizer files.

    Hub ids and tokenizers with remote code are loaded afresh every time.
    """
    from transformers import AutoTokenizer

    folder = Path(name_or_path)
    if trust_remote_code or not folder.is_dir():
        return AutoTokenizer.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
    key = tokenizer_fingerprint(folder)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    _cache[key] = tokenizer
    while len(_cache) > MAX_CACHED:
        _cache.popitem(last=False)
    return tokenizer


def clear_tokenizer_cache() -> None:
    _cache.clear()
