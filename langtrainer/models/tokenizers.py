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


# Files that hold a vocabulary: a folder without any of them yields no usable tokenizer.
VOCABULARY_FILES = ("tokenizer.json", "sentencepiece.bpe.model", "spiece.model", "vocab.txt", "vocab.json")


def check_tokenizer_files(folder: Path) -> None:
    """UserError unless `folder` holds a vocabulary file (else transformers may build an empty tokenizer
    that turns every word into [UNK]) and its tokenizer.json, when there, is a tokenizer's JSON."""
    if not any((folder / name).is_file() for name in VOCABULARY_FILES):
        raise UserError(f"model folder '{folder}' has no tokenizer files ({', '.join(VOCABULARY_FILES[:4])}, ...): "
                        "copy the whole run folder, tokenizer included")
    path = folder / "tokenizer.json"
    if path.is_file():
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UserError(f"tokenizer file '{path}' is not valid JSON ({str(exc).splitlines()[0][:80]}): "
                            "copy it again") from None
        if not isinstance(value, dict) or not isinstance(value.get("model"), dict):
            raise UserError(f"tokenizer file '{path}' is JSON but not a tokenizer (no 'model' object): "
                            "copy it again with the model it belongs to")


def check_tokenizer_fits(tokenizer, folder: Path) -> None:
    """UserError when the tokenizer can produce ids beyond the model's embedding rows (config vocab_size)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    rows = config.get("vocab_size") if isinstance(config, dict) else None
    if not isinstance(rows, int) or isinstance(rows, bool) or rows <= 0:
        return
    vocabulary = tokenizer.get_vocab()
    largest = max(vocabulary.values(), default=-1)
    if largest >= rows:
        raise UserError(f"the tokenizer in '{folder}' has token ids up to {largest} but the model's embeddings hold "
                        f"{rows} rows (config.json vocab_size): the tokenizer belongs to another model")
    if len(vocabulary) < 2:
        raise UserError(f"the tokenizer in '{folder}' has an empty vocabulary: copy the tokenizer files again")


def load_tokenizer(name_or_path: str | Path, trust_remote_code: bool = False):
    """AutoTokenizer.from_pretrained, reusing the object of a folder with the same tokenizer files.

    Hub ids and tokenizers with remote code are loaded afresh every time.
    """
    from transformers import AutoTokenizer

    folder = Path(name_or_path)
    if trust_remote_code or not folder.is_dir():
        return AutoTokenizer.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
    check_tokenizer_files(folder)
    key = tokenizer_fingerprint(folder)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    except Exception as exc:  # transformers / tokenizers fail in many ways on files that are not a tokenizer
        if isinstance(exc, (MemoryError, RecursionError, ImportError)):
            raise
        text = str(exc).strip()
        cause = text.splitlines()[0][:120] if text else type(exc).__name__
        raise UserError(f"the tokenizer files in '{folder}' cannot be loaded ({cause}): copy them again with the "
                        "model they belong to") from None
    check_tokenizer_fits(tokenizer, folder)
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

