"""langtrainer.models.tokenizers: the process-wide tokenizer cache, and clipping texts.

Cache: same files -> same object, other files -> a fresh load. Clipping on
XLM-R's real tokenizer is tested in test_models.py (it needs the converted
builtin model).
"""

from __future__ import annotations

import json
import shutil

import pytest

from langtrainer.errors import UserError
from langtrainer.models import CHARS_PER_TOKEN, clear_tokenizer_cache, clip_text, load_tokenizer
from tiny_model import SAMPLE_TEXTS


@pytest.fixture(autouse=True)
def empty_cache():
    clear_tokenizer_cache()
    yield
    clear_tokenizer_cache()


def test_same_files_give_the_same_object_even_in_another_folder(tiny_model_dir, tmp_path):
    first = load_tokenizer(tiny_model_dir)
    assert load_tokenizer(tiny_model_dir) is first
    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    assert load_tokenizer(copy) is first


def test_changed_tokenizer_files_give_a_fresh_load(tiny_model_dir, tmp_path):
    first = load_tokenizer(tiny_model_dir)
    changed = shutil.copytree(tiny_model_dir, tmp_path / "changed")
    config_path = changed / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["model_max_length"] = 7
    config_path.write_text(json.dumps(config), encoding="utf-8")
    second = load_tokenizer(changed)
    assert second is not first
    assert second.model_max_length == 7 and first.model_max_length != 7


def test_remote_code_tokenizers_are_never_shared(tiny_model_dir):
    assert load_tokenizer(tiny_model_dir, trust_remote_code=True) is not load_tokenizer(
        tiny_model_dir, trust_remote_code=True)


def test_a_shared_tokenizer_keeps_no_truncation_between_calls(tiny_model_dir):
    """One caller truncating must not truncate the next caller's texts."""
    text = " ".join(t for texts in SAMPLE_TEXTS.values() for t in texts)
    shared = load_tokenizer(tiny_model_dir)
    full = shared(text)["input_ids"]
    assert len(full) > 12
    assert len(shared(text, truncation=True, max_length=8)["input_ids"]) == 8
    assert load_tokenizer(tiny_model_dir)(text)["input_ids"] == full


def test_clip_text_keeps_short_texts_and_bounds_long_ones():
    assert clip_text("kurz", 8) == "kurz"
    text = "x" * (8 * CHARS_PER_TOKEN + 1)
    assert clip_text(text, 8) == text[:-1]
    assert clip_text(text, 9) == text
    assert len(clip_text("ab" * 10**6, 512)) == 512 * CHARS_PER_TOKEN == 8192
    with pytest.raises(UserError, match="max_length must be >= 1"):
        clip_text("text", 0)
