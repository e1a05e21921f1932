"""The README's "Your own data" recipe and commands, on a CSV with other column names."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from langtrainer.cli.main import app
from langtrainer.recipe import load_recipe
from langtrainer.rundir import RunDir
from tiny_model import SAMPLE_TEXTS

README = Path(__file__).resolve().parents[1] / "README.md"


def own_data_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index("## Your own data"):text.index("## The demo")]


def write_reviews(folder: Path) -> Path:
    """reviews.csv: review/stars/lang, 3 languages, stars 1..3 skewed by language (some cells tiny)."""
    rng = np.random.default_rng(0)
    mix = {"en": [70, 35, 15], "de": [15, 35, 70], "fr": [50, 50, 20]}  # 360 rows
    rows = []
    for lang, counts in mix.items():
        words = " ".join(SAMPLE_TEXTS[lang]).split()
        for stars, n in enumerate(counts, start=1):
            rows += [{"review": " ".join(rng.choice(words, 5)), "stars": stars, "lang": lang} for _ in range(n)]
    path = folder / "reviews.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_readme_recipe_and_commands(tmp_path, monkeypatch, tiny_model_dir):
    section = own_data_section()
    recipe_text = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    assert len(recipe_text.strip().splitlines()) == 6
    write_reviews(tmp_path)
    (tmp_path / "reviews.yaml").write_text(recipe_text, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the recipe's relative source resolves against its own folder
    recipe = load_recipe(tmp_path / "reviews.yaml")
    assert recipe.data.source == str(tmp_path / "reviews.csv")
    assert recipe.imbalance.subset == "none" and recipe.loss.class_weights == "per_language"

    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1).splitlines()
    audit = commands[0].split("#")[0].split()[1:]
    assert audit[:3] == ["data", "audit", "reviews.csv"]
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, audit)
    assert result.exit_code == 0, result.output
    assert "per-language class weights" in result.output
    result = runner.invoke(app, commands[1].split("#")[0].split()[1:])  # recipe check
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["data", "plan", "reviews.yaml"])
    assert result.exit_code == 0, result.output
    assert "every row of every split is used" in result.output

    # finetune, probe, shap as written, with the tiny model in place of the default one
    finetune = commands[2].split("#")[0].split()[1:]
    run = tmp_path / "runs" / "reviews-none-cw-seed0"
    assert commands[2].split("#")[1].strip() == f"-> runs/{run.name}"
    result = runner.invoke(app, [*finetune, "--set", f"model.name_or_path={tiny_model_dir}",
                                 "--set", "training.num_train_epochs=1", "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = RunDir(run).read_metrics().to_dict()
    # as-is: every row is used. Validation and test each take round(10 %) of every (language, label) cell:
    # 70 -> 7, 35 -> 4, 15 -> 2, 50 -> 5, 20 -> 2, so 2 * (13 + 13 + 12) = 76 rows; train keeps 284
    assert metrics["train"]["examples"] == 284
    import datasets

    splits = datasets.load_from_disk(str(RunDir(run).data_path))
    assert {name: len(split) for name, split in splits.items()} == {"train": 284, "validation": 38, "test": 38}
    assert set(metrics["test"]["by_language"]) == {"de", "en", "fr"}
    for command in commands[3:5]:
        args = command.split("#")[0].split()[1:]
        assert args[1:] == ["--ckpt", f"runs/{run.name}"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    assert (run / "shap" / "manifest.json").is_file()
