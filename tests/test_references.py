"""One rule decides 'local path or Hub id?' for recipes, data sources and models."""

import os

import pytest

from langtrainer.data import source_tables
from langtrainer.models import looks_like_local_path
from langtrainer.recipe import resolve_recipe_path
from langtrainer.references import is_local_reference


@pytest.mark.parametrize("value, local", [
    ("imdb", False), ("org/name", False), ("builtin:debian-reference", False), ("", False),
    ("./data", True), ("../x", True), ("~/x", True), ("/abs/x", True), ("runs/", True),
    ("a/b/c", True), ("data.jsonl", True), ("data.CSV", True), ("shard.arrow", True), ("a\\b", True),
    ("here/name", True),  # its first component exists under the base folder
    ("present", True),  # exists under the base folder
])
def test_one_rule_everywhere(tmp_path, monkeypatch, value, local):
    (tmp_path / "here").mkdir()
    (tmp_path / "present").write_text("x")
    assert is_local_reference(value, tmp_path) is local
    monkeypatch.chdir(tmp_path)  # the data reader and the model resolver read relative to the working folder
    assert source_tables.is_local_reference is is_local_reference  # the data reader asks the one rule
    assert looks_like_local_path(value) is local
    resolved = resolve_recipe_path(value, tmp_path)  # a recipe's path fields: relative to the recipe's folder
    if not local or not value:
        assert resolved == value
    elif not value.startswith(("/", "~")):
        assert resolved == os.path.normpath(tmp_path / value)
