"""Nothing in langtrainer runs code it loads, and recipes cannot write outside the output folder.

The source scan reads the AST (so comments and docstrings that say "never
pickle" do not count) of every module in langtrainer/ and cli/.
"""

from __future__ import annotations

import ast
import re

import pytest
from typer.testing import CliRunner

from langtrainer.cli.main import app
from fault_helpers import REPO, error_line, tree, write_dataset, write_recipe

SOURCES = sorted([*(REPO / "langtrainer").rglob("*.py"), *(REPO / "cli").rglob("*.py")])
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
UNSAFE_CALLS = {"yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all",
                "pd.read_pickle", "pandas.read_pickle", "torch.save", "eval", "exec"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_uses(source: str, filename: str = "<string>") -> list[str]:
    """Lines that load or write pickles, run loaded code or trust remote code by default."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where} import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"{where} from {node.module} import")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in UNSAFE_CALLS or name.endswith((".to_pickle", ".read_pickle")):
                found.append(f"{where} {name}(")
            if name.endswith("torch.load") and not _is_true(_keyword(node, "weights_only")):
                found.append(f"{where} {name}( without weights_only=True")
            if name.endswith(("np.load", "numpy.load")) and _is_true(_keyword(node, "allow_pickle")):
                found.append(f"{where} {name}(allow_pickle=True)")
            if _is_true(_keyword(node, "trust_remote_code")):
                found.append(f"{where} {name}(trust_remote_code=True)")
        elif isinstance(node, ast.AnnAssign) and _dotted(node.target) == "trust_remote_code" and _is_true(node.value):
            found.append(f"{where} trust_remote_code default True")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
            found += [f"{where} {node.name}(trust_remote_code=True)" for a, d in pairs
                      if a.arg == "trust_remote_code" and _is_true(d)]
    return found


def test_the_scanner_catches_what_it_should():
    bad = """
import pickle
from dill import loads
import yaml, torch, numpy as np
from dataclasses import dataclass
yaml.load(open("r.yaml"))
yaml.unsafe_load("x: 1")
torch.load("w.bin")
torch.load("w.bin", weights_only=False)
np.load("a.npy", allow_pickle=True)
frame.to_pickle("x.pkl")
AutoModel.from_pretrained("x", trust_remote_code=True)
@dataclass
class C:
    trust_remote_code: bool = True
def load(path, trust_remote_code=True): ...
"""
    assert len(unsafe_uses(bad)) == 11
    fine = """
# never pickle: comments and docstrings do not count
import yaml, torch
yaml.safe_load("x: 1")
torch.load("rng.pth", weights_only=True)
AutoModel.from_pretrained("x", trust_remote_code=recipe.model.trust_remote_code)
def load(path, trust_remote_code=False): '''no pickle here'''
"""
    assert unsafe_uses(fine) == []


def test_package_source_has_no_unsafe_loading():
    assert len(SOURCES) > 20
    found = [hit for path in SOURCES for hit in unsafe_uses(path.read_text(encoding="utf-8"),
                                                            str(path.relative_to(REPO)))]
    assert found == []
    # And as plain text, for anything the AST scan could miss (e.g. code built in strings).
    literal = re.compile(r"trust_remote_code\s*=\s*True|yaml\.(unsafe_)?load\(|allow_pickle\s*=\s*True")
    assert [str(p) for p in SOURCES if literal.search(p.read_text(encoding="utf-8"))] == []


def test_trust_remote_code_is_off_unless_the_recipe_says_so(tiny_model_dir, monkeypatch):
    import transformers

    from langtrainer.models.classifier import load_model_for_classification
    from langtrainer.recipe import Recipe, load_recipe
    from langtrainer.models import clear_tokenizer_cache

    assert Recipe().model.trust_remote_code is False and Recipe().data.trust_remote_code is False
    assert load_recipe("builtin:demo").model.trust_remote_code is False
    seen = []
    for cls in (transformers.AutoTokenizer, transformers.AutoModelForSequenceClassification):
        original = cls.from_pretrained.__func__

        def record(klass, *args, _original=original, **kwargs):
            seen.append((klass.__name__, kwargs.get("trust_remote_code", "missing")))
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(record))

    for flag in (False, True):
        recipe = Recipe()
        recipe.model.name_or_path = str(tiny_model_dir)
        recipe.model.trust_remote_code = flag
        seen.clear()
        clear_tokenizer_cache()  # a tokenizer loaded by an earlier test would not be loaded again
        model, _ = load_model_for_classification(recipe, ["x", "y", "z"])
        assert model.config.id2label == {0: "x", 1: "y", 2: "z"}
        assert seen == [("AutoTokenizer", flag), ("AutoModelForSequenceClassification", flag)]


@pytest.mark.parametrize("name", ["../../evil", "/tmp/evil", "runs/../../evil", "..", ".hidden", "a\\b"])
def test_recipe_name_cannot_leave_the_output_folder(tiny_model_dir, tmp_path, monkeypatch, name):
    """finetune's default run dir is runs/<name>-<subset>-seed<seed>: a name with a path in it is refused."""
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    source = write_dataset(tmp_path / "ds")
    recipe = write_recipe(tmp_path / "evil.yaml", tiny_model_dir, source, name=f"'{name}'")
    monkeypatch.chdir(work)
    before = tree(tmp_path)
    result = CliRunner().invoke(app, ["finetune", str(recipe), "--quiet"])
    assert result.exit_code == 2, result.output
    assert error_line(result.stderr) == (
        f"error: evil.yaml: name {name!r} must be a plain folder name: letters, digits, '.', '_', '+', '-' "
        "(no '/', no '..', not starting with '.'), at most 128 characters"
    )
    assert tree(tmp_path) == before


def test_demo_refuses_a_path_as_name(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--quick", "--quiet",
                                      "--set", "name=../../evil"])
    assert result.exit_code == 2, result.output
    assert "name '../../evil' must be a plain folder name" in error_line(result.stderr)
    assert not (tmp_path / "demo").exists()


def test_plain_names_are_accepted():
    from langtrainer.recipe import load_recipe

    for name in ("demo_imbal", "amazon_imbal_cw_mie", "xnli-bal.v2", "実験1", "run+cw"):
        assert load_recipe("builtin:demo", [f"name={name}"]).name == name
