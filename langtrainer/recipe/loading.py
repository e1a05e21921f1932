"""Reading a recipe: YAML (through `safe_yaml`), `extends:`, `--set` overrides, relative paths, writing it back.

`extends: other.yaml` lets sibling recipes share a base; an override
`a.b=c` changes any field. Relative paths in a recipe resolve against the
recipe's folder, so a recipe means the same from any working directory.
"""

from __future__ import annotations

import copy
import os
import re
import typing
from pathlib import Path
from typing import Any

import yaml

from langtrainer import atomic, safe_yaml
from langtrainer.errors import SettingError, UserError, setting_error
from langtrainer.recipe.parsing import build
from langtrainer.recipe.rules import check_recipe
from langtrainer.recipe.schema import Recipe
from langtrainer.references import is_local_reference


def _deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise UserError(f"recipe '{path}' is a folder: give a YAML file")
    if not path.is_file():
        from langtrainer.preflight import user_path

        user_path(path, "recipe")  # '$HOME/r.yaml' quoted: say so rather than "does not exist"
        raise UserError(f"recipe '{path}' does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"recipe '{path}' is not UTF-8 text") from None
    try:
        raw = safe_yaml.parse(text)
    except UserError as exc:
        raise UserError(f"recipe '{path}' is not valid YAML: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"recipe '{path}' is not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"recipe '{path}' must be a YAML mapping, got {type(raw).__name__}")
    return raw


def builtin_recipe_path(name: str) -> Path:
    """`builtin:demo` -> the recipe shipped inside the package."""
    from importlib import resources

    stem = name.removeprefix("builtin:")
    path = Path(str(resources.files("langtrainer") / "builtin_recipes" / f"{stem}.yaml"))
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise UserError(f"unknown builtin recipe '{name}' (known: {', '.join('builtin:' + k for k in known)})")
    return path


# Recipe fields that may name a local file or folder.
PATH_FIELDS = (("data", "source"), ("model", "name_or_path"), ("analysis", "probe", "external"))


def resolve_recipe_path(value: Any, folder: Path) -> Any:
    """A path field's value made absolute against `folder`; `builtin:...` and Hub ids unchanged.

    A relative value is local when `references.is_local_reference` says so
    against `folder`; then it becomes folder/value, so a missing file is
    reported with the place it was looked for. Anything else ('imdb',
    'org/name') is a Hub id.
    """
    if not isinstance(value, str) or not value.strip() or value.startswith("builtin:"):
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return os.path.normpath(path)
    candidate = Path(os.path.normpath(Path(folder).absolute() / path))
    return str(candidate) if is_local_reference(value, folder) else value


def _resolve_path_fields(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    for keys in PATH_FIELDS:
        node: Any = raw
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and keys[-1] in node:
            node[keys[-1]] = resolve_recipe_path(node[keys[-1]], folder)
    return raw


# A recipe extends a few others (a shared base, a paper setting); a deeper chain is a mistake or an attack.
MAX_EXTENDS_DEPTH = 32


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe as a dict, with `extends:` bases merged in (child wins).

    Relative paths in each file resolve against that file's folder, so a
    recipe means the same from any working directory.
    """
    if str(path).startswith("builtin:"):
        path = builtin_recipe_path(str(path))
    path = Path(path).resolve()
    if path in _seen:
        raise UserError(f"recipe '{path}' extends itself (cycle through {', '.join(p.name for p in _seen)})")
    raw = _resolve_path_fields(_read_yaml(path), path.parent)
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise UserError(f"recipe '{path}': extends must be a file name, got {parent!r}")
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", parent):
        raise UserError(f"recipe '{path}': extends {parent!r} is a URL, and recipes are never fetched: download it "
                        "and give its local path")
    if len(_seen) + 1 >= MAX_EXTENDS_DEPTH:
        raise UserError(f"recipe '{path}': the extends chain is more than {MAX_EXTENDS_DEPTH} recipes deep: "
                        "merge some of them")
    base_path = parent if parent.startswith("builtin:") else path.parent / parent
    base = load_raw(base_path, _seen + (path,))
    return _deep_merge(base, raw)


def parse_override(item: str) -> tuple[list[str], Any]:
    """'training.num_train_epochs=1' -> (['training', 'num_train_epochs'], 1)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise setting_error(f"{{overrides}} expects KEY=VALUE with a dotted key, e.g. training.num_train_epochs=1; "
                            f"got {item!r}", "overrides")
    try:
        value = safe_yaml.parse(text) if text.strip() else ""
    except UserError as exc:
        raise setting_error(f"{{overrides}} {key}: {exc}", "overrides") from None
    except yaml.YAMLError:
        value = text
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    for item in overrides:
        keys, value = parse_override(item)
        node = raw
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise setting_error(f"{{overrides}} {item!r}: '{key}' is not a mapping", "overrides")
            node = child
        if tuple(keys) in PATH_FIELDS:
            value = resolve_recipe_path(value, Path.cwd())  # typed on the command line: relative to here
        node[keys[-1]] = value
    return raw


def recipe_from_dict(raw: dict[str, Any]) -> Recipe:
    recipe = build(Recipe, raw, "")
    check_recipe(recipe)
    return recipe


def load_recipe(path: str | Path, overrides: typing.Sequence[str] = ()) -> Recipe:
    """Read, merge `extends`, apply `--set` overrides, type-check."""
    raw = apply_overrides(load_raw(path), overrides)
    try:
        return recipe_from_dict(raw)
    except SettingError as exc:
        raise exc.prefixed(f"{Path(path).name}: ") from None
    except UserError as exc:
        raise UserError(f"{Path(path).name}: {exc}") from None


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True)


def save_recipe(recipe: Recipe, path: str | Path) -> Path:
    """Write the resolved recipe (every default filled in) atomically."""
    return atomic.write_text(path, dump_recipe(recipe))
