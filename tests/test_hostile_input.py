"""Hostile and careless input, one table: every row exits 2 with one short line and writes nothing.

Each row builds its inputs in a fresh folder (a small local dataset, a
recipe on the tiny BERT, whatever files the row needs), lists the folder,
runs the real CLI in process, and asserts: exit code 2, exactly one
non-empty stderr line, shorter than 300 characters, starting with
'error: ', no traceback, and the folder listed exactly as before. A row
may also name a fragment the line must contain, so that a row cannot pass
by failing for some other reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from langtrainer.cli.main import app
from fault_helpers import make_rows, tree, write_dataset, write_jsonl, write_recipe


@dataclass
class Env:
    tmp: Path
    model: Path
    ds: Path
    recipe: Path

    def finetune(self, *sets: str) -> list:
        return ["finetune", self.recipe, "-o", self.tmp / "run", "--quiet", *[x for s in sets for x in ("--set", s)]]

    def recipe_file(self, text: str, name: str = "bad.yaml") -> Path:
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return path

    def edited(self, old: str, new: str) -> Path:
        text = self.recipe.read_text()
        assert old in text, old
        return self.recipe_file(text.replace(old, new))

    def source(self, rows_of: Callable[[str, int], list], name: str = "ds2") -> Path:
        folder = self.tmp / name
        for split, n in {"train": 12, "validation": 4, "test": 3}.items():
            write_jsonl(folder / f"{split}.jsonl", rows_of(split, n))
        return folder

    def build(self, source: Path) -> list:
        return ["data", "build", write_recipe(self.tmp / "src.yaml", self.model, source), "--out",
                self.tmp / "out", "--quiet"]


def _bomb(depth: int = 8) -> str:
    lines = ["name: bomb", "description: &l0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, depth):
        lines.append(f"x{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _with_field(row: int, key: str, value):
    """make_rows with one cell replaced: row `row`'s `key` set to `value` in every split."""
    def rows(split, n):
        out = make_rows(split, n)
        out[row][key] = value
        return out
    return rows


def _with_text(value):
    return _with_field(0, "text", value)


def _with_language(value):
    return _with_field(1, "language", value)


def _same_ids(split, n):
    return [{**row, "id": "same"} for row in make_rows(split, n)]


def _mkfile(env: Env, name: str = "afile") -> Path:
    path = env.tmp / name
    path.write_text("mine")
    return path


def _mkdir(env: Env, name: str = "adir") -> Path:
    path = env.tmp / name
    path.mkdir()
    (path / "keep.txt").write_text("mine")
    return path


def _run_folder(env: Env, recipe_text: str | None = None, metrics: bool = False, checkpoint: bool = False) -> Path:
    """A run folder as a killed or damaged run leaves it: recipe.yaml (the recipe's, or `recipe_text`),
    optionally metrics.json (finished) without any model, optionally an empty checkpoint."""
    from langtrainer.recipe import dump_recipe, load_recipe

    run = env.tmp / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text(recipe_text if recipe_text is not None else dump_recipe(load_recipe(env.recipe)))
    if metrics:
        (run / "metrics.json").write_text('{"seed": 0}')
    if checkpoint:
        (run / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    return run


def _built_data(env: Env, seed: int) -> Path:
    """run/data built by `data build` with `seed`."""
    result = CliRunner().invoke(app, ["data", "build", str(env.recipe), "--out", str(env.tmp / "run" / "data"),
                                      "--quiet", "--set", f"seed={seed}"])
    assert result.exit_code == 0, result.output
    return env.tmp / "run"


def _shap_dir(env: Env, name: str) -> Path:
    """A folder that looks like a SHAP output only by name (it has no manifest)."""
    return _mkdir(env, name)


# (case id, args builder, a fragment the error line must contain)
CASES: list[tuple[str, Callable[[Env], list], str]] = [
    # ---- training: fields langtrainer owns or that leave the run folder
    ("output_dir", lambda e: e.finetune(f"training.output_dir={e.tmp / 'elsewhere'}"), "--output-dir"),
    ("push_to_hub", lambda e: e.finetune("training.push_to_hub=true"), "never uploads"),
    ("hub_model_id", lambda e: e.finetune("training.hub_model_id=me/model"), "never uploads"),
    ("hub_token", lambda e: e.finetune("training.hub_token=hf_x"), "never uploads"),
    ("hub_strategy", lambda e: e.finetune("training.hub_strategy=end"), "never uploads"),
    ("hub_private_repo", lambda e: e.finetune("training.hub_private_repo=true"), "never uploads"),
    ("resume_from_checkpoint", lambda e: e.finetune("training.resume_from_checkpoint=/tmp/x"), "--resume"),
    ("logging_dir", lambda e: e.finetune(f"training.logging_dir={e.tmp / 'logs'}"), "logging_dir"),
    ("overwrite_output_dir", lambda e: e.finetune("training.overwrite_output_dir=true"), "overwrite_output_dir"),
    ("training_seed", lambda e: e.finetune("training.seed=3"), "top-level 'seed'"),
    ("hub_always_push", lambda e: e.finetune("training.hub_always_push=true"), "never uploads"),
    ("hub_revision", lambda e: e.finetune("training.hub_revision=main"), "never uploads"),
    ("local_rank", lambda e: e.finetune("training.local_rank=0"), "--num-processes"),
    ("label_names", lambda e: e.finetune("training.label_names=[x]"), "label_names"),
    ("trackio", lambda e: e.finetune("training.trackio_space_id=me/space"), "trackio_space_id"),
    ("unknown_training_key", lambda e: e.finetune("training.learning_rat=1e-4"), "did you mean 'learning_rate'"),
    # ---- training: numbers that type-check but cannot train
    ("lr_inf", lambda e: e.finetune("training.learning_rate=.inf"), "training.learning_rate"),
    ("lr_nan", lambda e: e.finetune("training.learning_rate=.nan"), "training.learning_rate"),
    ("lr_negative", lambda e: e.finetune("training.learning_rate=-5e-5"), "training.learning_rate"),
    ("lr_zero", lambda e: e.finetune("training.learning_rate=0"), "training.learning_rate"),
    ("lr_word", lambda e: e.finetune("training.learning_rate=fast"), "training.learning_rate"),
    ("head_lr_inf", lambda e: e.finetune("training.head_learning_rate=.inf"), "head_learning_rate"),
    ("head_lr_negative", lambda e: e.finetune("training.head_learning_rate=-1"), "head_learning_rate"),
    ("epochs_negative", lambda e: e.finetune("training.num_train_epochs=-1"), "num_train_epochs"),
    ("epochs_zero", lambda e: e.finetune("training.num_train_epochs=0"), "num_train_epochs"),
    ("epochs_nan", lambda e: e.finetune("training.num_train_epochs=.nan"), "num_train_epochs"),
    ("max_steps_zero", lambda e: e.finetune("training.max_steps=0"), "max_steps"),
    ("max_steps_negative", lambda e: e.finetune("training.max_steps=-5"), "max_steps"),
    ("train_batch_zero", lambda e: e.finetune("training.per_device_train_batch_size=0"), "per_device_train_batch"),
    ("eval_batch_zero", lambda e: e.finetune("training.per_device_eval_batch_size=0"), "per_device_eval_batch"),
    ("batch_float", lambda e: e.finetune("training.per_device_train_batch_size=2.5"), "per_device_train_batch"),
    ("grad_accum_zero", lambda e: e.finetune("training.gradient_accumulation_steps=0"), "gradient_accumulation"),
    ("warmup_negative", lambda e: e.finetune("training.warmup_steps=-1"), "warmup_steps"),
    ("weight_decay_nan", lambda e: e.finetune("training.weight_decay=.nan"), "weight_decay"),
    ("adam_beta1_big", lambda e: e.finetune("training.adam_beta1=1.5"), "adam_beta1"),
    ("label_smoothing_one", lambda e: e.finetune("training.label_smoothing_factor=1"), "label_smoothing"),
    ("logging_steps_zero", lambda e: e.finetune("training.logging_steps=0"), "logging_steps"),
    ("save_total_limit_zero", lambda e: e.finetune("training.save_total_limit=0"), "save_total_limit"),
    ("workers_negative", lambda e: e.finetune("training.dataloader_num_workers=-1"), "dataloader_num_workers"),
    ("data_seed_negative", lambda e: e.finetune("training.data_seed=-1"), "data_seed"),
    ("max_grad_norm_inf", lambda e: e.finetune("training.max_grad_norm=.inf"), "max_grad_norm"),
    ("lr_scheduler_word", lambda e: e.finetune("training.lr_scheduler_type=sometimes"), "lr_scheduler_type"),
    ("optim_word", lambda e: e.finetune("training.optim=magic"), "optim"),
    ("eval_strategy_word", lambda e: e.finetune("training.eval_strategy=sometimes"), "eval_strategy"),
    ("best_metric_unknown", lambda e: e.finetune("training.metric_for_best_model=bleu"), "bleu"),
    ("training_not_mapping", lambda e: e.finetune("training=[1, 2]"), "training"),
    # ---- recipe values
    ("seed_negative", lambda e: e.finetune("seed=-1"), "seed"),
    ("seed_2_32", lambda e: e.finetune("seed=4294967296"), "seed"),
    ("seed_word", lambda e: e.finetune("seed=abc"), "seed"),
    ("seed_float", lambda e: e.finetune("seed=1.5"), "seed"),
    ("max_length_huge", lambda e: e.finetune("model.max_length=100000"), "128 positions"),
    ("max_length_129", lambda e: e.finetune("model.max_length=129"), "128 positions"),
    ("max_length_tiny", lambda e: e.finetune("model.max_length=4"), "max_length"),
    ("train_per_language_zero", lambda e: e.finetune("data.train_per_language=0"), "train_per_language"),
    ("train_per_language_negative", lambda e: e.finetune("data.train_per_language=-3"), "train_per_language"),
    ("test_per_cell_zero", lambda e: e.finetune("data.test_per_cell=0"), "test_per_cell"),
    ("validation_fraction_nan", lambda e: e.finetune("data.validation_fraction=.nan"), "validation_fraction"),
    ("fractions_sum_one", lambda e: e.finetune("data.validation_fraction=0.5", "data.test_fraction=0.5"), "below 1"),
    ("language_blank", lambda e: e.finetune("data.languages=['', en]"), "data.languages"),
    ("language_spaced", lambda e: e.finetune("data.languages=[' en', de]"), "data.languages"),
    ("language_twice", lambda e: e.finetune("data.languages=[de, de]"), "twice"),
    ("language_null", lambda e: e.finetune("data.languages=[null]"), "data.languages"),
    ("distribution_nan", lambda e: e.finetune("imbalance.distribution.A=[.nan, 50, 50]"), "distribution.A"),
    ("distribution_negative", lambda e: e.finetune("imbalance.distribution.A=[-10, 60, 50]"), "distribution.A"),
    ("distribution_unknown_key", lambda e: e.finetune("imbalance.distribution.Z=[50, 25, 25]"), "'Z'"),
    ("group_language_twice", lambda e: e.finetune("imbalance.groups.B=[en, de]"), "in both"),
    ("mask_entropy_negative", lambda e: e.finetune("loss.mask_entropy=-1"), "mask_entropy"),
    ("beta_one", lambda e: e.finetune("loss.effective_number_beta=1"), "effective_number_beta"),
    ("class_weights_word", lambda e: e.finetune("loss.class_weights=sometimes"), "class_weights"),
    ("probe_C_nan", lambda e: e.finetune("analysis.probe.C=.nan"), "analysis.probe.C"),
    ("probe_C_zero", lambda e: e.finetune("analysis.probe.C=0"), "analysis.probe.C"),
    ("probe_folds_one", lambda e: e.finetune("analysis.probe.folds=1"), "folds"),
    ("shap_threshold_nan", lambda e: e.finetune("analysis.shap.threshold=.nan"), "threshold"),
    ("shap_max_evals_zero", lambda e: e.finetune("analysis.shap.max_evals=0"), "max_evals"),
    ("shap_batch_zero", lambda e: e.finetune("analysis.shap.batch_size=0"), "batch_size"),
    ("name_escapes", lambda e: e.finetune("name=../../escape"), "plain folder name"),
    ("name_huge", lambda e: e.finetune("name=" + "x" * 20000), "name"),
    ("unknown_top_key", lambda e: e.finetune("trainig.num_train_epochs=1"), "did you mean 'training'"),
    ("subset_word", lambda e: e.finetune() + ["--subset", "both"], "--subset"),
    ("set_no_equals", lambda e: e.finetune("training.num_train_epochs"), "--set expects KEY=VALUE"),
    # ---- YAML documents
    ("yaml_alias_bomb", lambda e: ["recipe", "show", e.recipe_file(_bomb())], "nested aliases"),
    ("yaml_alias_bomb_check", lambda e: ["recipe", "check", e.recipe_file(_bomb(6))], "nested aliases"),
    ("yaml_bomb_in_training", lambda e: ["finetune", e.recipe_file(_bomb().replace("description:", "training:\n  label_names:")),
                                         "-o", e.tmp / "run", "--quiet"], "nested aliases"),
    ("yaml_bomb_in_set", lambda e: e.finetune("description=[&a [1,1,1,1,1,1,1,1,1,1], " + ", ".join(
        [f"&b{i} [{', '.join(['*a' if i == 0 else f'*b{i - 1}'] * 10)}]" for i in range(6)]) + "]"), "nested aliases"),
    ("yaml_python_tag", lambda e: ["recipe", "check", e.recipe_file("name: !!python/object/apply:os.system ['echo hi']\n")],
     "not allowed"),
    ("yaml_custom_tag", lambda e: ["recipe", "check", e.recipe_file("name: !shell rm -rf /\n")], "not allowed"),
    ("yaml_syntax", lambda e: ["recipe", "check", e.recipe_file("name: [unclosed\n")], "not valid YAML"),
    ("yaml_list", lambda e: ["recipe", "check", e.recipe_file("- a\n- b\n")], "must be a YAML mapping"),
    ("yaml_not_utf8", lambda e: ["recipe", "check", _latin1(e)], "not UTF-8"),
    ("recipe_missing", lambda e: ["recipe", "check", e.tmp / "nope.yaml"], "does not exist"),
    ("recipe_is_folder", lambda e: ["recipe", "check", _mkdir(e)], "is a folder"),
    ("extends_cycle", lambda e: ["recipe", "check", _cycle(e)], "extends itself"),
    ("extends_missing", lambda e: ["recipe", "check", e.recipe_file("extends: nowhere.yaml\nname: x\n")], "does not exist"),
    ("extends_not_string", lambda e: ["recipe", "check", e.recipe_file("extends: [a, b]\n")], "extends must be"),
    # ---- the run folder and other output paths
    ("output_dir_is_file", lambda e: ["finetune", e.recipe, "-o", _mkfile(e), "--quiet"], "is a file"),
    ("output_dir_under_file", lambda e: ["finetune", e.recipe, "-o", _mkfile(e) / "run", "--quiet"], "is a file"),
    ("output_dir_foreign", lambda e: ["finetune", e.recipe, "-o", _mkdir(e), "--quiet"], "not a langtrainer run"),
    ("model_path_missing", lambda e: ["finetune", e.edited(str(e.model), str(e.tmp / "typo")), "-o", e.tmp / "run",
                                      "--quiet"], "does not exist"),
    ("model_path_is_file", lambda e: ["finetune", e.edited(str(e.model), str(_mkfile(e))), "-o", e.tmp / "run",
                                      "--quiet"], "is a file"),
    ("data_source_missing", lambda e: ["data", "build", e.edited(str(e.ds), str(e.tmp / "nodata")), "--out",
                                       e.tmp / "out", "--quiet"], "does not exist"),
    ("data_out_is_file", lambda e: ["data", "build", e.recipe, "--out", _mkfile(e), "--quiet"], "is a file"),
    ("data_out_foreign", lambda e: ["data", "build", e.recipe, "--out", _mkdir(e), "--quiet"], "not a data build"),
    ("finished_run_without_model", lambda e: ["finetune", e.recipe, "-o", _run_folder(e, metrics=True), "--quiet",
                                              "--resume"], "no model"),
    ("unreadable_saved_recipe", lambda e: ["finetune", e.recipe, "-o", _run_folder(e, "a: [\n", checkpoint=True),
                                           "--quiet", "--resume"], "cannot be read"),
    ("saved_recipe_of_other_seed", lambda e: ["finetune", e.recipe, "-o", _run_folder(e, checkpoint=True),
                                              "--quiet", "--resume", "--set", "seed=5"], "seed differs"),
    ("data_of_another_seed", lambda e: ["finetune", e.recipe, "-o", _built_data(e, seed=1), "--quiet"],
     "built with another seed"),
    ("resume_inexact_finished_without_model", lambda e: ["finetune", e.recipe, "-o", _run_folder(e, metrics=True),
                                                         "--quiet", "--resume-inexact"], "no model"),
    # ---- data that needs reading to be found wrong
    ("language_upper_case", lambda e: e.finetune("data.languages=[DE, en, fr]", "imbalance.groups.A=[DE, fr]"),
     "write 'de'"),
    ("groups_not_in_data", lambda e: e.finetune("data.languages=[]", "imbalance.groups.B=[en, ja]"), "'ja'"),
    ("text_is_list", lambda e: e.build(e.source(_with_text(["a", "b"]))), "text"),
    ("text_is_dict", lambda e: e.build(e.source(_with_text({"a": 1}))), "text"),
    ("duplicate_ids", lambda e: e.build(e.source(_same_ids)), "duplicate id"),
    ("language_absent", lambda e: e.finetune("data.languages=[de, en, fr, ja]"), "'ja' is not in the data"),
    ("language_null_in_rows", lambda e: e.build(e.source(_with_language(None))), "language"),
    ("language_blank_in_rows", lambda e: e.build(e.source(_with_language("  "))), "language"),
    ("audit_missing", lambda e: ["data", "audit", e.tmp / "nothing.jsonl"], "nothing.jsonl"),
    ("audit_json_is_folder", lambda e: ["data", "audit", e.recipe, "--json", _mkdir(e), "--quiet"], "is a folder"),
    ("audit_unknown_split", lambda e: ["data", "audit", e.ds, "--split", "dev", "--quiet"], "dev"),
    # ---- model prepare
    ("prepare_unknown_builtin", lambda e: ["model", "prepare", "builtin:gpt-5", "--out", e.tmp / "m"], "gpt-5"),
    ("prepare_unknown_arch", lambda e: ["model", "prepare", "--arch", "gpt", "--out", e.tmp / "m"], "gpt"),
    ("prepare_out_is_file", lambda e: ["model", "prepare", "--out", _mkfile(e)], "is a file"),
    # ---- probe
    ("probe_C_nan_flag", lambda e: ["probe", "--ckpt", e.model, "--C", "nan", "--out", e.tmp / "p.json"], "--C"),
    ("probe_C_inf_flag", lambda e: ["probe", "--ckpt", e.model, "--C", "inf", "--out", e.tmp / "p.json"], "--C"),
    ("probe_C_zero_flag", lambda e: ["probe", "--ckpt", e.model, "--C", "0", "--out", e.tmp / "p.json"], "--C"),
    ("probe_folds_flag", lambda e: ["probe", "--ckpt", e.model, "--folds", "1", "--out", e.tmp / "p.json"], "--folds"),
    ("probe_per_language_flag", lambda e: ["probe", "--ckpt", e.model, "--per-language", "0", "--out", e.tmp / "p.json"],
     "--per-language"),
    ("probe_batch_flag", lambda e: ["probe", "--ckpt", e.model, "--batch-size", "0", "--out", e.tmp / "p.json"],
     "--batch-size"),
    ("probe_seed_flag", lambda e: ["probe", "--ckpt", e.model, "--seed", "-1", "--out", e.tmp / "p.json"], "--seed"),
    ("probe_out_folder", lambda e: ["probe", "--ckpt", e.model, "--out", _mkdir(e)], "is a folder"),
    ("probe_out_under_file", lambda e: ["probe", "--ckpt", e.model, "--out", _mkfile(e) / "p.json"], "is a file"),
    ("probe_layer_word", lambda e: ["probe", "--ckpt", e.model, "--layer", "top", "--out", e.tmp / "p.json"], "--layer"),
    ("probe_ckpt_missing", lambda e: ["probe", "--ckpt", e.tmp / "nothing", "--out", e.tmp / "p.json"], "nothing"),
    # ---- shap and shap-diff
    ("shap_max_evals_flag", lambda e: ["shap", "--ckpt", e.model, "--max-evals", "0", "--quiet"], "--max-evals must be at least 4"),
    ("shap_subsample_flag", lambda e: ["shap", "--ckpt", e.model, "--subsample", "0", "--quiet"], "--subsample must be at least 1"),
    ("shap_batch_flag", lambda e: ["shap", "--ckpt", e.model, "--batch-size", "0", "--quiet"], "--batch-size must be at least 1"),
    ("shap_seed_flag", lambda e: ["shap", "--ckpt", e.model, "--seed", "-1", "--quiet"], "--seed must be in [0, 2**32)"),
    ("shap_out_is_file", lambda e: ["shap", "--ckpt", e.model, "--out", _mkfile(e), "--quiet"], "is a file"),
    ("shap_ckpt_empty", lambda e: ["shap", "--ckpt", _mkdir(e), "--quiet"], "config.json"),
    ("shap_diff_threshold_nan", lambda e: ["shap-diff", "--bal", _shap_dir(e, "bal"), "--imbal", _shap_dir(e, "imb"),
                                           "--threshold", "nan"], "--threshold must be a finite number >= 0"),
    ("shap_diff_threshold_negative", lambda e: ["shap-diff", "--bal", _shap_dir(e, "bal"), "--imbal",
                                                _shap_dir(e, "imb"), "--threshold", "-1"], "--threshold must be a finite number >= 0"),
    ("shap_diff_missing", lambda e: ["shap-diff", "--bal", e.tmp / "nobal", "--imbal", e.tmp / "noimbal"], "nobal"),
    # ---- report and demo
    ("report_on_nothing", lambda e: ["report", _mkdir(e, "empty"), "--out", e.tmp / "report"], "no finished runs"),
    ("report_out_is_file", lambda e: ["report", _mkdir(e, "empty"), "--out", _mkfile(e)], "is a file"),
    ("report_missing_run", lambda e: ["report", e.tmp / "norun", "--out", e.tmp / "report"], "norun"),
    ("demo_out_is_file", lambda e: ["demo", "--out", _mkfile(e), "--quiet"], "is a file"),
    ("demo_lr_nan", lambda e: ["demo", "--out", e.tmp / "demo", "--quiet", "--set", "training.learning_rate=.nan"],
     "learning_rate"),
    ("demo_output_dir", lambda e: ["demo", "--out", e.tmp / "demo", "--quiet", "--set", "training.output_dir=/tmp/x"],
     "output_dir"),
]


# ------------------------------------------------------------------ round 2 of the hunt (issue 27)


def _labels(*names: str):
    """Rows whose labels are `names` (3 languages x len(names) labels)."""
    def rows(split, n):
        return make_rows(split, n, labels=names)
    return rows


def _label_only_in(split_name: str):
    def rows(split, n):
        out = make_rows(split, n)
        if split == split_name:
            out[0]["label"] = "d"
        return out
    return rows


def _with_label(value):
    return _with_field(2, "label", value)


def _raw_source(env: Env, files: dict[str, str], name: str = "raw") -> Path:
    """A source folder of hand-written split files ({file name: text})."""
    folder = env.tmp / name
    folder.mkdir()
    for file, text in files.items():
        (folder / file).write_text(text, encoding="utf-8")
    return folder


def _jsonl(split: str, n: int) -> str:
    return "".join(json.dumps(r) + "\n" for r in make_rows(split, n))


def _jsonl_with_line(bad: str, at: int = 4) -> Callable[[Env], Path]:
    def build(env: Env) -> Path:
        lines = _jsonl("train", 12).splitlines()
        lines.insert(at, bad)
        return _raw_source(env, {"train.jsonl": "\n".join(lines) + "\n", "validation.jsonl": _jsonl("validation", 4),
                                 "test.jsonl": _jsonl("test", 3)})
    return build


def _csv_source(header: str, row: str) -> Callable[[Env], Path]:
    def build(env: Env) -> Path:
        text = header + "\n" + "\n".join(row.format(i=i, lang=lang, label=label)
                                         for i, (lang, label) in enumerate([(x, y) for x in ("de", "en", "fr")
                                                                            for y in ("a", "b", "c")] * 12)) + "\n"
        return _raw_source(env, {"train.csv": text})
    return build


def _extends_chain(env: Env, depth: int) -> Path:
    env.recipe_file("name: base\n", "c0.yaml")
    for i in range(1, depth + 1):
        env.recipe_file(f"extends: c{i - 1}.yaml\nname: c{i}\n", f"c{i}.yaml")
    return env.tmp / f"c{depth}.yaml"


def _model_copy(env: Env, drop: tuple[str, ...] = (), edit: Callable[[Path], None] | None = None) -> Path:
    import shutil

    folder = env.tmp / "copied_model"
    shutil.copytree(env.model, folder)
    for name in drop:
        (folder / name).unlink()
    if edit is not None:
        edit(folder)
    return folder


def _tokenizer_text(text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / "tokenizer.json").write_text(text)


def _tokenizer_beyond_embeddings(folder: Path) -> None:
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["model"]["vocab"]["zzzextra"] = 5000  # an id past the 400 embedding rows
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))


def _truncate_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def _with_base_model(env: Env, model: Path) -> Path:
    return env.edited(str(env.model), str(model))


def _resumable_without_identity(env: Env) -> Path:
    """A killed run: recipe.yaml, data/, a checkpoint, but identity.json deleted."""
    run = _built_data(env, seed=0)
    from langtrainer.recipe import dump_recipe, load_recipe

    (run / "recipe.yaml").write_text(dump_recipe(load_recipe(env.recipe)))
    (run / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint-3" / "trainer_state.json").write_text("{}")
    return run


# the data as it is, every label it holds (no recipe label list, no skew design)
AS_IS = ["--set", "data.labels=null", "--set", "imbalance.subset=none", "--set", "imbalance.distribution=null",
         "--set", "imbalance.groups=null"]


def _recipe_labels(labels: str) -> Callable[[Env], list]:
    return lambda e: ["recipe", "check", e.edited("labels: [a, b, c]", f"labels: {labels}")]


CASES += [
    # ---- class 3: degenerate data, refused before any work (in `recipe check` where the recipe shows it)
    ("labels_duplicate", _recipe_labels("[a, a, b]"), "given twice"),
    ("labels_duplicate_finetune", lambda e: e.finetune("data.labels=[a, b, b]"), "given twice"),
    ("labels_duplicate_quoted", _recipe_labels("[a, b, 'a']"), "given twice"),
    ("labels_single", _recipe_labels("[a]"), "at least 2"),
    ("labels_single_finetune", lambda e: e.finetune("data.labels=[a]"), "at least 2"),
    ("test_fraction_zero", lambda e: e.finetune("data.test_fraction=0"), "data.test_fraction"),
    ("test_fraction_zero_check", lambda e: ["recipe", "check", e.recipe, "--set", "data.test_fraction=0"],
     "data.test_fraction"),
    ("validation_fraction_zero", lambda e: e.finetune("data.validation_fraction=0.0"), "data.validation_fraction"),
    ("test_fraction_zero_build", lambda e: e.build(e.source(lambda s, n: make_rows(s, n)))
     + ["--set", "data.test_fraction=0"], "data.test_fraction"),
    ("data_single_class", lambda e: e.build(e.source(_labels("a"))) + AS_IS, "at least 2"),
    ("data_single_class_finetune", lambda e: ["finetune", e.edited(str(e.ds), str(e.source(_labels("a")))),
                                              "-o", e.tmp / "run", "--quiet", *AS_IS], "at least 2"),
    ("label_only_in_test", lambda e: e.build(e.source(_label_only_in("test"))) + AS_IS, "not in train"),
    ("label_only_in_validation", lambda e: e.build(e.source(_label_only_in("validation"))) + AS_IS, "not in train"),
    ("recipe_label_only_in_test", lambda e: e.build(e.source(_label_only_in("test")))
     + ["--set", "data.labels=[a, b, d]"], "not in train"),
    # ---- class 4: bounded resources
    ("num_processes_64", lambda e: e.finetune() + ["--num-processes", "64"], "--num-processes 64"),
    ("num_processes_million", lambda e: e.finetune() + ["--num-processes", "1000000"], "--num-processes 1000000"),
    ("num_processes_zero", lambda e: e.finetune() + ["--num-processes", "0"], "--num-processes"),
    ("workers_more_than_cores", lambda e: e.finetune("training.dataloader_num_workers=4096"),
     "dataloader_num_workers 4096"),
    ("shap_num_processes_64", lambda e: ["shap", "--ckpt", e.model, "--num-processes", "64", "--quiet"],
     "--num-processes 64"),
    ("extends_40_deep", lambda e: ["recipe", "check", _extends_chain(e, 40)], "more than 32 recipes deep"),
    ("extends_1500_deep", lambda e: ["recipe", "check", _extends_chain(e, 1500)], "more than 32 recipes deep"),
    ("extends_https", lambda e: ["recipe", "check", e.recipe_file("extends: https://example.org/r.yaml\nname: x\n")],
     "is a URL"),
    ("extends_http_in_finetune", lambda e: ["finetune", e.recipe_file("extends: http://example.org/base.yaml\n"),
                                            "-o", e.tmp / "run", "--quiet"], "is a URL"),
    ("extends_file_url", lambda e: ["recipe", "check", e.recipe_file(f"extends: file://{e.recipe}\nname: x\n")],
     "is a URL"),
    # ---- class 5: labels that cannot be shown, language codes, group names
    ("label_newline", _recipe_labels('["a\\nb", b, c]'), "cannot be shown"),
    ("label_bell", _recipe_labels('["a\\x07", b, c]'), "U+0007"),
    ("label_rtl_override", _recipe_labels('["\\u202ecba", b, c]'), "U+202E"),
    ("label_zero_width", _recipe_labels('["a\\u200b", b, c]'), "U+200B"),
    ("label_blank", _recipe_labels('["  ", b, c]'), "blank"),
    ("label_padded", _recipe_labels('[" a", b, c]'), "starts or ends with a space"),
    ("label_huge", _recipe_labels(f'[{"x" * 300}, b, c]'), "longer than 100"),
    ("data_label_newline", lambda e: e.build(e.source(_with_label("a\nb"))) + AS_IS, "cannot be shown"),
    ("data_label_tab", lambda e: e.build(e.source(_with_label("a\tb"))) + AS_IS, "U+0009"),
    ("data_label_html_is_shown_escaped_not_refused_but_padded", lambda e: e.build(e.source(_with_label(" <b>")))
     + AS_IS, "starts or ends with a space"),
    ("language_html", lambda e: e.finetune("data.languages=['<script>', en]"), "not a language code"),
    ("language_word", lambda e: e.finetune("data.languages=[english, de]"), "not a language code"),
    ("language_digits", lambda e: e.finetune("data.languages=['12', de]"), "not a language code"),
    ("group_language_html", lambda e: e.finetune("data.languages=[]", "imbalance.groups.B=['\"><img src=x>']"),
     "not a language code"),
    ("data_language_html", lambda e: e.build(e.source(_with_language("<img src=x onerror=alert(1)>"))),
     "not a language code"),
    ("data_language_sentence", lambda e: e.build(e.source(_with_language("en; rm -rf"))), "not a language code"),
    ("group_name_newline", lambda e: ["recipe", "check", e.edited("groups: {A: [de, fr], B: [en]}",
                                                                  'groups: {"A\\nB": [de, fr], B: [en]}')],
     "cannot be shown"),
    # ---- class 7: messages
    ("unknown_flag", lambda e: e.finetune() + ["--frob"], "No such option: --frob"),
    ("unknown_flag_probe", lambda e: ["probe", "--ckpt", e.model, "--nope"], "No such option: --nope"),
    ("demo_seeds_zero", lambda e: ["demo", "--seeds", "0", "--out", e.tmp / "d"], "--seeds"),
    ("unknown_command", lambda e: ["finetunes", e.recipe], "No such command"),
    ("missing_argument", lambda e: ["finetune"], "Missing argument"),
    ("flag_not_a_number", lambda e: ["probe", "--ckpt", e.model, "--folds", "many"], "--folds"),
    ("jsonl_bad_line", lambda e: e.build(_jsonl_with_line("{not json")(e)), "line 5"),
    ("jsonl_line_is_list", lambda e: e.build(_jsonl_with_line('["a", "b"]', at=0)(e)), "line 1 is a JSON list"),
    ("jsonl_truncated_line", lambda e: e.build(_jsonl_with_line('{"text": "abc", "lab', at=9)(e)), "line 10"),
    ("jsonl_duplicate_key", lambda e: e.build(_jsonl_with_line(
        '{"id": "x1", "text": "a b", "text": "c d", "label": "a", "language": "de"}', at=2)(e)), "'text' appears twice"),
    ("csv_duplicate_text_column", lambda e: e.build(_csv_source("id,text,label,language,text",
                                                                "r{i},w{i} x,{label},{lang},other {i}")(e)),
     "'text' appears twice"),
    ("csv_duplicate_label_column", lambda e: e.build(_csv_source("id,text,label,label,language",
                                                                 "r{i},w{i} x,{label},b,{lang}")(e)),
     "'label' appears twice"),
    ("label_is_list", lambda e: e.build(e.source(_with_label(["a"]))), "label column holds a list"),
    ("label_is_dict", lambda e: e.build(e.source(_with_label({"name": "a"}))), "label column holds a dict"),
    ("language_is_list", lambda e: e.build(e.source(_with_language(["en"]))), "language column holds a list"),
    ("out_dollar_home", lambda e: ["data", "build", e.recipe, "--out", "$HOME/x", "--quiet"], "did not expand"),
    ("output_dir_dollar_brace", lambda e: ["finetune", e.recipe, "-o", "${HOME}/run", "--quiet"], "did not expand"),
    ("probe_out_dollar", lambda e: ["probe", "--ckpt", e.model, "--out", "$HOME/p.json"], "did not expand"),
    ("shap_out_dollar", lambda e: ["shap", "--ckpt", e.model, "--out", "$TMPDIR/s", "--quiet"], "did not expand"),
    ("report_out_dollar", lambda e: ["report", e.tmp, "--out", "$HOME/r"], "did not expand"),
    ("recipe_path_dollar", lambda e: ["recipe", "check", "$HOME/r.yaml"], "did not expand"),
    ("shap_ckpt_dollar", lambda e: ["shap", "--ckpt", "$HOME/run", "--quiet"], "did not expand"),
    ("probe_ckpt_dollar", lambda e: ["probe", "--ckpt", "${HOME}/run", "--out", e.tmp / "p.json"], "did not expand"),
    # ---- class 2 and 6: model folders checked before use, input errors as one line
    ("probe_without_tokenizer", lambda e: ["probe", "--ckpt", _model_copy(e, ("tokenizer.json", "tokenizer_config.json")),
                                           "--out", e.tmp / "p.json"], "no tokenizer files"),
    ("shap_without_tokenizer", lambda e: ["shap", "--ckpt", _model_copy(e, ("tokenizer.json",)), "--out",
                                          e.tmp / "s", "--quiet"], "no tokenizer files"),
    ("finetune_base_without_tokenizer", lambda e: ["finetune", _with_base_model(e, _model_copy(e, ("tokenizer.json",))),
                                                   "-o", e.tmp / "run", "--quiet"], "no tokenizer files"),
    ("tokenizer_json_not_a_tokenizer", lambda e: ["probe", "--ckpt", _model_copy(e, edit=_tokenizer_text('{"a": 1}')),
                                                  "--out", e.tmp / "p.json"], "not a tokenizer"),
    ("tokenizer_json_list", lambda e: ["shap", "--ckpt", _model_copy(e, edit=_tokenizer_text("[1, 2]")),
                                       "--out", e.tmp / "s", "--quiet"], "not a tokenizer"),
    ("tokenizer_json_garbage", lambda e: ["probe", "--ckpt", _model_copy(e, edit=_tokenizer_text("{oops")),
                                          "--out", e.tmp / "p.json"], "not valid JSON"),
    ("tokenizer_model_broken", lambda e: ["probe", "--ckpt", _model_copy(
        e, edit=_tokenizer_text('{"model": {"type": "NoSuchModel"}}')), "--out", e.tmp / "p.json"], "cannot be loaded"),
    ("tokenizer_beyond_embeddings", lambda e: ["probe", "--ckpt", _model_copy(e, edit=_tokenizer_beyond_embeddings),
                                               "--out", e.tmp / "p.json"], "belongs to another model"),
    ("tokenizer_beyond_embeddings_shap", lambda e: ["shap", "--ckpt", _model_copy(e, edit=_tokenizer_beyond_embeddings),
                                                    "--out", e.tmp / "s", "--quiet"], "belongs to another model"),
    ("probe_truncated_weights", lambda e: ["probe", "--ckpt", _model_copy(e, edit=_truncate_weights),
                                           "--out", e.tmp / "p.json"], "truncated"),
    ("probe_without_weights", lambda e: ["probe", "--ckpt", _model_copy(e, ("model.safetensors",)),
                                         "--out", e.tmp / "p.json"], "holds no weights"),
    ("finetune_base_truncated", lambda e: ["finetune", _with_base_model(e, _model_copy(e, edit=_truncate_weights)),
                                           "-o", e.tmp / "run", "--quiet"], "truncated"),
    ("resume_without_identity", lambda e: ["finetune", e.recipe, "-o", _resumable_without_identity(e), "--quiet",
                                           "--resume"], "no identity.json"),
    ("resume_inexact_without_identity", lambda e: ["finetune", e.recipe, "-o", _resumable_without_identity(e),
                                                   "--quiet", "--resume-inexact"], "no identity.json"),
]


def test_a_bom_jsonl_builds_like_the_same_file_without_it(tiny_model_dir, tmp_path):
    """Editors on Windows start UTF-8 files with a byte-order mark: a jsonl with one is read like one without."""
    import datasets

    from fault_helpers import split_hashes

    plain = write_dataset(tmp_path / "plain")
    bom = tmp_path / "bom"
    bom.mkdir()
    for file in plain.iterdir():
        (bom / file.name).write_bytes(b"\xef\xbb\xbf" + file.read_bytes())
    built = {}
    for name, source in (("plain", plain), ("bom", bom)):
        recipe = write_recipe(tmp_path / f"{name}.yaml", tiny_model_dir, source)
        result = CliRunner().invoke(app, ["data", "build", str(recipe), "--out", str(tmp_path / f"out_{name}"),
                                          "--quiet"])
        assert result.exit_code == 0, result.output
        built[name] = split_hashes(datasets.load_from_disk(str(tmp_path / f"out_{name}")))
    assert built["bom"] == built["plain"]


def test_a_label_with_markup_is_shown_escaped_in_the_card_and_report(tmp_path):
    """`<script>` and `|` in label, group and description reach report.md and README.md as text, not markup."""
    from results_fixtures import write_tidy_run

    from langtrainer.reporting.model_card import render_model_card
    from langtrainer.reporting.report import write_report

    labels = ["<script>alert(1)</script>", "a|b", '"><img src=x onerror=alert(1)>']
    even = {lang: [1 / 3] * 3 for lang in ("de", "pt", "sw")}
    run = write_tidy_run(tmp_path / "runs" / "r", "mine", "imbalanced", "none", 0, {"de": .7, "pt": .6, "sw": .6},
                         even, recipe_extra={"description": "<b>bold</b>\n| not | a | table |"})
    for name in ("metrics.json",):
        metrics = json.loads((run / name).read_text())
        metrics["label_names"] = labels
        for block in [metrics["test"], *metrics["test"]["by_language"].values(),
                      *metrics["test"].get("by_group", {}).values()]:
            block["prediction_shares"] = dict(zip(labels, block["prediction_shares"].values()))
        (run / name).write_text(json.dumps(metrics))
    from langtrainer.rundir import RunDir

    card = render_model_card(RunDir(run))
    report = write_report([tmp_path / "runs"], tmp_path / "rep").read_text()
    for text in (card, report):
        assert "<script>" not in text and "<img" not in text and "<b>" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "a\\|b" in card and "&lt;b&gt;bold&lt;/b&gt; \\| not \\| a \\| table \\|" in card
    for line in card.splitlines() + report.splitlines():  # every table row keeps its cell count
        if line.startswith("| predicted") or line.startswith("| language |"):
            assert line.count(" | ") == line.replace("\\|", "").count(" | ")


def _latin1(env: Env) -> Path:
    path = env.tmp / "latin1.yaml"
    path.write_bytes("name: Größe\n".encode("latin-1"))
    return path


def _cycle(env: Env) -> Path:
    env.recipe_file("extends: b.yaml\nname: a\n", "a.yaml")
    env.recipe_file("extends: a.yaml\nname: b\n", "b.yaml")
    return env.tmp / "a.yaml"


def test_the_table_is_large_and_unique():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 150


@pytest.mark.parametrize("name, build, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_short_line_and_writes_nothing(tiny_model_dir, tmp_path, name, build, fragment):
    ds = write_dataset(tmp_path / "ds")
    env = Env(tmp_path, tiny_model_dir, ds, write_recipe(tmp_path / "r.yaml", tiny_model_dir, ds))
    args = [str(a) for a in build(env)]
    before = tree(tmp_path)
    model_before = tree(tiny_model_dir)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output[-2000:], result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-3000:]
    line = lines[0]
    assert line.startswith("error: ") and len(line) < 300, line
    assert "Traceback" not in result.output
    assert fragment in line, line
    assert tree(tmp_path) == before, "the failed command left files behind"
    assert tree(tiny_model_dir) == model_before


# ------------------------------------------------------------------ what must still be accepted


def test_exponent_floats_and_anchors_within_the_budget_are_read(tmp_path):
    """`5e-5` is a number (YAML 1.1 would give the string '5e-5'); a few anchors and merge keys are fine."""
    from langtrainer.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text(
        "name: ok\n"
        "training:\n  <<: &base {num_train_epochs: 2, per_device_train_batch_size: 4}\n"
        "  learning_rate: 5e-5\n  head_learning_rate: 1E-3\n"
        "analysis: {probe: {C: '1e-4'}}\n"
        "description: &d text\nimbalance: {groups: {A: [de, fr], B: [en]}}\n"
    )
    recipe = load_recipe(path, ["loss.mask_entropy=2.5e-1"])
    assert recipe.training == {"num_train_epochs": 2.0, "per_device_train_batch_size": 4,
                               "learning_rate": 5e-5, "head_learning_rate": 1e-3}
    assert recipe.analysis.probe.C == 1e-4
    assert recipe.loss.mask_entropy == 0.25


def test_the_node_budget_counts_expanded_aliases():
    from langtrainer import safe_yaml
    from langtrainer.errors import UserError

    nine = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    # a: 10 nodes, b: 1 + 9 * 10 = 91, keys 2, the mapping 1: 104.
    assert safe_yaml.parse(nine, budget=104)["b"][8] == [1] * 9
    with pytest.raises(UserError, match="more than 103 values"):
        safe_yaml.parse(nine, budget=103)


def test_error_lines_are_capped():
    from langtrainer.cli.common import MAX_MESSAGE, one_line

    line = one_line("start " + "x" * 5000 + " end\nsecond line")
    assert len(line) <= MAX_MESSAGE and line.startswith("start ") and line.endswith(" end") and " ... " in line
    assert one_line("short\nmore") == "short"
