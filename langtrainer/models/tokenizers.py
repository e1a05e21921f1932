"""Tokenising: one tokenizer object per set of tokenizer files, and texts clipped before it.

Loading XLM-R's fast tokenizer parses a 17 MB tokenizer.json (in Python and
in Rust), and a pipeline asks for the same tokenizer in every fine-tune,
probe and SHAP step; a tokenizer whose files have the same content as one
already loaded is that same object. Callers only call it and must not change
its attributes; each call sets its own truncation and padding.

Texts are clipped by characters before they reach the tokenizer
(`clip_text`), so the memory one text needs is bounded by `max_length`, not
by the length of the text.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

from langtrainer.errors import UserError

# Files that AutoTokenizer reads from a folder (config.json: only the fields below).
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "sentencepiece.bpe.model", "spiece.model", "vocab.txt", "vocab.json", "merges.txt",
)
CONFIG_FIELDS = ("model_type", "tokenizer_class")
MAX_CACHED = 4
# Characters kept per token of max_length: XLM-R's longest piece has 16 characters.
CHARS_PER_TOKEN = 16

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


def clip_text(text: str, max_length: int) -> str:
    """The first `max_length * CHARS_PER_TOKEN` characters of `text`.

    No piece of XLM-R's vocabulary (the builtin model's tokenizer) is longer
    than 16 characters, its leading '▁' counting for the space before it, so
    `max_length` tokens never cover more than `16 * max_length` characters of
    normalised text, and tokenising the clipped text with
    `truncation=True, max_length=max_length` gives the same ids as
    tokenising the whole text. The bound is on normalised text: it can be
    exceeded where the normaliser removes characters (control characters,
    runs of spaces, NFKC compositions) or a tokenizer fuses a long run into
    one token (consecutive unknown characters; a BERT word over 100
    characters becomes one [UNK]). Such a text loses tokens at its end; no
    text costs more memory than `16 * max_length` characters.
    """
    if max_length < 1:
        raise UserError(f"max_length must be >= 1, got {max_length}")
    limit = max_length * CHARS_PER_TOKEN
    return text if len(text) <= limit else text[:limit]

