"""The run folder's model card (RUN/README.md) in the Hugging Face Hub's format.

A YAML header (languages, `library_name: transformers`, base model, tags,
metrics and a `model-index` with the test accuracies) and a body a reader of
a shared model needs: how it was trained (class weights, entropy term,
learning rates), its languages and labels, accuracy and prediction shares per
language, and, when they exist, the language-ID probe and the SHAP
difference. Everything comes from the run folder (recipe.yaml, metrics.json,
probe_*.json, shap_diff.json); `finetune` writes the card, `report` refreshes it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from langtrainer import atomic
from langtrainer.artifacts import RunMetrics
from langtrainer.defaults import SHAP_THRESHOLD
from langtrainer.errors import UserError
from langtrainer.names import is_language_code
from langtrainer.reporting.markdown import md_list, md_text
from langtrainer.reporting.tables import MetricTable, cmi_sentence, metric_table, share_note, to_markdown
from langtrainer.rundir import RunDir

# Builtin models are conversions of Hub models: the card names the Hub original.
BUILTIN_BASES = {"builtin:multilingual-e5-small": "intfloat/multilingual-e5-small"}
TAGS = ["langtrainer", "text-classification", "multilingual", "class-imbalance"]
PAPER = "Jung & van der Plas, EACL Findings 2024"


def _hub_id(name: str | None) -> str | None:
    """`name` when it reads as a Hub repo id (owner/name or name), not a local path or builtin."""
    if not name:
        return None
    if name in BUILTIN_BASES:
        return BUILTIN_BASES[name]
    if name.startswith(("builtin:", "/", ".", "~")) or os.path.exists(name) or name.count("/") > 1:
        return None
    return name


def dataset_name(recipe: Mapping[str, Any]) -> str:
    """The dataset as its user names it: the recipe's `data.name`, else the Hub id or builtin name,
    else the file's (or folder's) name; never a local path, which means nothing to a card's reader."""
    data = recipe.get("data") or {}
    if data.get("name"):
        return str(data["name"])
    source = str(data.get("source") or "")
    if not source:
        return "–"
    if source.startswith("builtin:"):
        return source
    return _hub_id(source) or Path(source.rstrip("/")).name or source


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def card_metadata(recipe: Mapping[str, Any], metrics: Mapping[str, Any],
                  languages_table: MetricTable | None) -> dict[str, Any]:
    """The YAML header: what the Hub indexes (languages, base model, metrics)."""
    model = recipe.get("model") or {}
    data = recipe.get("data") or {}
    test = metrics.get("test") or {}
    # The Hub reads `language:` as codes: a run folder from before codes were checked may hold other strings.
    languages = [code for code in metrics.get("languages") or data.get("languages") or [] if is_language_code(code)]
    meta: dict[str, Any] = {}
    if languages:
        meta["language"] = languages
    meta["library_name"] = "transformers"
    meta["pipeline_tag"] = "text-classification"
    base = _hub_id(model.get("name_or_path"))
    if base:
        meta["base_model"] = base
    source = _hub_id(data.get("source"))
    if source:
        meta["datasets"] = [source]
    meta["tags"] = list(TAGS)
    meta["metrics"] = ["accuracy", "f1"]
    results = []
    for key, name in (("accuracy", "test accuracy"), ("macro_f1", "test macro-F1")):
        if isinstance(test.get(key), (int, float)):
            results.append({"type": "accuracy" if key == "accuracy" else "f1", "value": round(float(test[key]), 4),
                            "name": name})
    if languages_table is not None:
        for lang, row in languages_table.frame.iterrows():
            if not math.isnan(row["accuracy"]):
                results.append({"type": "accuracy", "value": round(float(row["accuracy"]), 4),
                                "name": f"test accuracy ({lang})"})
    if results:
        meta["model-index"] = [{
            "name": str(recipe.get("name") or metrics.get("recipe") or "model"),
            "results": [{
                "task": {"type": "text-classification", "name": "Text Classification"},
                "dataset": {"name": dataset_name(recipe), "type": source or "local",
                            "split": "test"},
                "metrics": results,
            }],
        }]
    return meta


def _setup_rows(recipe: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    model = recipe.get("model") or {}
    data = recipe.get("data") or {}
    imbalance = recipe.get("imbalance") or {}
    loss = recipe.get("loss") or {}
    training = recipe.get("training") or {}
    train = metrics.get("train") or {}
    mode = loss.get("class_weights", metrics.get("class_weights_mode", "none"))
    weights = mode if mode == "none" else (
        f"{mode} ({loss.get('weight_scheme', 'inverse')}, reduction {loss.get('reduction', 'mean')})")
    entropy = float(loss.get("mask_entropy") or 0.0)
    from langtrainer.training.args import training_value  # the run's values, never Hugging Face's retyped

    encoder_lr = float(training_value(training, "learning_rate"))
    batch = training_value(training, "per_device_train_batch_size")
    accumulation = training_value(training, "gradient_accumulation_steps")
    epochs = training_value(training, "num_train_epochs")
    rows = [
        ("base model", str(model.get("name_or_path", "–"))),
        ("data", dataset_name(recipe)),
        ("training subset", str(imbalance.get("subset") or metrics.get("subset") or "–")),
        ("class weights", weights),
        ("masked-input entropy term", f"coefficient {entropy:g}" if entropy > 0 else "off"),
        ("encoder learning rate", f"{encoder_lr:g}"),
        ("head learning rate", f"{float(training_value(training, 'head_learning_rate') or encoder_lr):g}"),
        ("schedule", str(training_value(training, "lr_scheduler_type"))),
        ("epochs", f"{epochs:g}" if isinstance(epochs, (int, float)) else str(epochs)),
        ("batch size", f"{batch} × {accumulation} accumulation" if accumulation != 1 else str(batch)),
        ("max length (tokens)", str(model.get("max_length", "–"))),
        ("seed", str(recipe.get("seed", metrics.get("seed", "–")))),
    ]
    if data.get("sampler"):
        rows.insert(4, ("sampler", str(data["sampler"])))
    if train:
        rows.append(("optimizer steps", str(train.get("steps", "–"))))
        if isinstance(train.get("examples"), int):
            rows.append(("training examples", str(train["examples"])))
    return rows


def _skew_lines(recipe: Mapping[str, Any], label_names: list[str]) -> list[str]:
    imbalance = recipe.get("imbalance") or {}
    groups, distribution = imbalance.get("groups") or {}, imbalance.get("distribution") or {}
    if not distribution or imbalance.get("subset") != "imbalanced":
        return []
    lines = ["Label distribution of the imbalanced training data (%):", ""]
    header = ["group", "languages"] + [md_text(n) for n in label_names]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for name, row in distribution.items():
        members = md_list(groups.get(name, [name]), ",")
        lines.append("| " + " | ".join([md_text(name), members] + [f"{float(v):g}" for v in row]) + " |")
    return lines + [""]


def _class_weight_lines(metrics: Mapping[str, Any], label_names: list[str]) -> list[str]:
    weights, languages = metrics.get("class_weights"), metrics.get("languages") or []
    if not weights or len(weights) != len(languages):
        return []
    header = ["language"] + [md_text(n) for n in label_names]
    lines = ["Class weights per language (the loss multiplies each example's cross-entropy by its cell):", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for lang, row in zip(languages, weights):
        lines.append("| " + " | ".join([md_text(lang)] + [f"{float(w):.3f}" for w in row]) + " |")
    return lines + [""]


def _probe_lines(probes: Mapping[str, Mapping[str, Any]]) -> list[str]:
    from langtrainer.analysis.probe.core import at_chance

    rows, any_at_chance = [], False
    for data, probe in sorted(probes.items()):
        if "accuracy_mean" not in probe:
            continue
        settings = probe.get("settings") or {}
        base = (probe.get("base") or {}).get("accuracy_mean")
        chance = (probe.get("result") or {}).get("chance_accuracy")
        flag = at_chance(probe["accuracy_mean"], probe.get("accuracy_std"), chance)
        any_at_chance |= flag
        rows.append(f"| {data} | {_fmt(probe['accuracy_mean'])} ± {_fmt(probe.get('accuracy_std'))}"
                    f"{' (at chance)' if flag else ''} | {_fmt(chance)} | {_fmt(base)} | {settings.get('C', '–')} | "
                    f"{settings.get('folds', '–')} |")
    if not rows:
        return []
    note = (["A probe at chance scores within 2 fold standard deviations of always guessing the commonest "
             "language: at this C the model's first token shows no language the probe can use. If the pretrained "
             "model's probe is at chance too, the probe cannot see language on this many texts at all."]
            if any_at_chance else [])
    return ["## Language identification probe", "",
            "How well a logistic regression tells the input's language from the model's "
            "embeddings: higher after fine-tuning means the model separates languages more "
            "(the paper finds this with label imbalance, less so with per-language class weights).", "",
            "| data | accuracy (mean ± std over folds) | chance (the commonest language's share) | pretrained model "
            "| C | folds |",
            "|---|---|---|---|---|---|", *rows, "", *([*note, ""] if note else [])]


def _shap_diff_lines(diff: Mapping[str, Any]) -> list[str]:
    by_group = diff.get("by_group") or {}
    by_language = diff.get("by_language") or {}
    table, kind = (by_group, "group") if by_group else (by_language, "language")
    if not table:
        return []
    units = sorted({unit for per_label in table.values() for unit in per_label})
    header = ["label"] + [f"{kind} {md_text(u)}" if kind == "group" else md_text(u) for u in units]
    lines = ["## SHAP difference", "",
             f"Mean cumulative SHAP difference of neutral tokens ({diff.get('comparison', 'compared − balanced')}), "
             f"per label and {kind}: tokens whose balanced-model SHAP value is within ±{diff.get('threshold', SHAP_THRESHOLD):g}. "
             "Positive values mean uninformative tokens push this model towards the label more than in the "
             "balanced model.", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for label, per_unit in table.items():
        cells = []
        for unit in units:
            value = ((per_unit.get(unit) or {}).get("neutral") or {}).get("mean")
            cells.append(_fmt(value, 4) if isinstance(value, (int, float)) else "–")
        lines.append("| " + " | ".join([md_text(label)] + cells) + " |")
    return lines + [""]


def _intended_use_lines(recipe: Mapping[str, Any], metrics: Mapping[str, Any], label_names: list[str],
                        languages: list[str]) -> list[str]:
    return ["## Intended use", "",
            f"Sorting texts in {md_list(languages) or 'the training languages'} into the labels "
            f"{md_list(label_names)}, for texts like those of {md_text(dataset_name(recipe))}, the data it was trained "
            "and tested on. It was not tested on other languages, other label sets or other kinds of text; check it on a "
            "sample of your own labelled texts, per language, before relying on it.", ""]


def run_small_sample_warnings(run: RunDir, metrics: RunMetrics) -> list[str]:
    """data.small_samples' warnings for a finished run: its test rows per language, its training cells
    (data/distribution.json) and, when it trained with class weights, the weights it used."""
    from langtrainer.data.small_samples import small_sample_warnings

    test_rows = {lang: row.n for lang, row in metrics.test.by_language.items() if isinstance(row.n, int)}
    subset = metrics.subset or "none"
    distribution = run.read_distribution()
    counts = (distribution.counts if distribution else {}).get("train" if subset == "none" else f"train_{subset}")
    train_counts = counts if isinstance(counts, Mapping) else None
    weights = None
    table, languages = metrics.class_weights, metrics.languages
    label_names = [str(n) for n in metrics.label_names]
    if table and len(table) == len(languages):
        weights = {str(lang): dict(zip(label_names, map(float, row))) for lang, row in zip(languages, table)}
    return small_sample_warnings(train_counts, test_rows, weights)


def _limitations_lines(run: RunDir, recipe: Mapping[str, Any], metrics: Mapping[str, Any],
                       by_language: MetricTable | None, finished: RunMetrics) -> list[str]:
    test = metrics.get("test") or {}
    lines = ["## Limitations", ""]
    if by_language is not None and len(by_language.frame) > 1:
        worst = by_language.frame["accuracy"].idxmin()
        row = by_language.frame.loc[worst]
        low, high = row.get("accuracy_low", math.nan), row.get("accuracy_high", math.nan)
        interval = "" if math.isnan(low) else f" (95 % interval {low:.2f}–{high:.2f})"
        best = by_language.frame.loc[by_language.frame["accuracy"].idxmax()]
        # Separate intervals (the worst's upper bound below the best's lower one) show a difference; else not shown.
        apart = not math.isnan(high) and high < best.get("accuracy_low", math.nan)
        verdict = ("below the best language's interval" if apart else
                   "its interval overlaps the best language's, so this test split does not show that accuracy "
                   "differs by language" if not math.isnan(high) else "no intervals recorded")
        lines.append(f"- Lowest accuracy: {md_text(worst)}, {row['accuracy']:.3f}{interval} on "
                     f"{int(row['n']) if not math.isnan(row['n']) else '?'} test rows ({verdict}).")
    p = test.get("language_prediction_cmi_p_value")
    if isinstance(p, (int, float)) and p < 0.05:
        lines.append("- Its predictions depend on the language beyond each language's label mix (see "
                     "language_prediction_cmi above): the same text may be labelled differently by language.")
    if (recipe.get("imbalance") or {}).get("subset") in (None, "none"):
        lines.append("- It was trained on the data as it is: where the label mix differs by language, the model can "
                     "learn the language as a cue for the label.")
    warnings = run_small_sample_warnings(run, finished)
    if warnings:
        lines.append("- Small samples (each line limits the per-language numbers it names):")
        lines += [f"  - {md_text(line)}" for line in warnings]
    if len(lines) == 2:
        lines.append("- None found in the numbers above; they hold for this test split only.")
    return lines + [""]


def render_model_card(run: RunDir | str | os.PathLike, probes: Mapping[str, Mapping[str, Any]] | None = None,
                      shap_diff: Mapping[str, Any] | None = None) -> str:
    """README.md text for a finished run (probe and SHAP-diff results read from the run unless given)."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    finished = run.read_metrics()
    if finished is None:
        raise UserError(f"'{run.path}' holds no finished run (no {RunDir.METRICS} with test results)")
    # The sections below render the files' JSON shapes (artifacts.*.to_dict), as the Hub card shows them.
    metrics = finished.to_dict()
    recipe = run.raw_recipe() or {}
    probes = run.read_probes() if probes is None else probes
    probes = {data: _as_dict(probe) for data, probe in probes.items()}
    shap_diff = _as_dict(run.read_shap_diff() if shap_diff is None else shap_diff)
    label_names = [str(n) for n in metrics.get("label_names") or []]
    languages = list(metrics.get("languages") or [])
    groups = metrics.get("groups") or {}
    test = metrics["test"]
    by_language = metric_table(test, label_names, "language", languages)
    by_group = metric_table(test, label_names, "group", list(groups)) if groups else None
    header = yaml.safe_dump(card_metadata(recipe, metrics, by_language), sort_keys=False, allow_unicode=True)
    name = str(recipe.get("name") or metrics.get("recipe") or run.path.name)
    description = recipe.get("description")
    md = ["---", header.rstrip("\n"), "---", "", f"# {md_text(name)}", ""]
    md += [f"A {len(label_names)}-label text classifier for {len(languages)} languages "
           f"({md_list(languages)}), fine-tuned with langtrainer, which implements {PAPER}: "
           "per-language class weights and a masked-input entropy term against a model that learns "
           "'this language => this label' from training data whose label mix differs by language.", ""]
    if description:
        md += [md_text(description), ""]
    md += ["## Training setup", "", "| setting | value |", "|---|---|"]
    md += [f"| {md_text(key)} | {md_text(value)} |" for key, value in _setup_rows(recipe, metrics)]
    md += [""]
    md += _skew_lines(recipe, label_names)
    md += _class_weight_lines(metrics, label_names)
    md += ["## Languages and labels", "", f"Languages: {md_list(languages) or '–'}.", "",
           "Labels (id: name): " + ", ".join(f"{i}: {md_text(n)}" for i, n in enumerate(label_names)) + ".", ""]
    md += ["## Test results", ""]
    overall = [f"accuracy {_fmt(test.get('accuracy'))}", f"macro-F1 {_fmt(test.get('macro_f1'))}"]
    n = test.get("n", metrics.get("test_examples"))
    if n is not None:
        overall.append(f"{n} examples")
    if isinstance(test.get("skew_index"), (int, float)):
        overall.append(f"skew index {_fmt(test['skew_index'])}")
    md += ["Overall: " + ", ".join(overall) + ".", ""]
    cmi = cmi_sentence(test)
    if cmi:
        md += [cmi, ""]
    shares = test.get("prediction_shares")
    if isinstance(shares, Mapping) and shares:
        true = test.get("label_shares") or {}
        md += ["Share of predictions per label"
               + (" (true share of the test rows in brackets): " if true else ": ")
               + ", ".join(f"{md_text(k)} {100 * float(v):.1f} %"
                           + (f" ({100 * float(true[k]):.1f} %)" if k in true else "")
                           for k, v in shares.items()) + ".", ""]
    favoured = metrics.get("favoured_labels") or {}
    by_language_favoured = favoured if metrics.get("favoured_labels_by") == "language" else None
    if by_language is not None:
        md += ["Per language (accuracy with its 95 % Wilson interval, macro-F1 with a 95 % bootstrap interval over "
               "the language's test rows" + ("; bold: labels the language's training rows over-represent"
                                             if by_language_favoured else "") + "). " + share_note(by_language), "",
               to_markdown(by_language, favoured=by_language_favoured), ""]
    if by_group is not None:
        md += ["Per language group (bold: labels the group's imbalanced training data over-represents). "
               + share_note(by_group), "",
               to_markdown(by_group, favoured=favoured if not by_language_favoured else None, members=groups), ""]
    md += _probe_lines(probes)
    if shap_diff:
        md += _shap_diff_lines(shap_diff)
    md += _intended_use_lines(recipe, metrics, label_names, languages)
    md += _limitations_lines(run, recipe, metrics, by_language, finished)
    md += ["## How to use", "", "```python", "from transformers import pipeline", "",
           'classifier = pipeline("text-classification", model="PATH_OR_REPO_OF_THIS_MODEL")',
           "```", "", f"Written by langtrainer from the run folder ({RunDir.RECIPE}, {RunDir.METRICS}).", ""]
    return "\n".join(md)


def _as_dict(value: Any) -> Any:
    return value.to_dict() if hasattr(value, "to_dict") else value


def write_model_card(run: RunDir | str | os.PathLike, **kwargs) -> Path:
    """Write (or refresh) RUN/README.md atomically; see `render_model_card`."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    return atomic.write_text(run.model_card_path, render_model_card(run, **kwargs))


def read_card_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The YAML header of a model card (UserError when it has none)."""
    text = Path(path).read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise UserError(f"'{path}' has no YAML header")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise UserError(f"'{path}' has an unterminated YAML header")
    meta = yaml.safe_load(text[4:end])
    if not isinstance(meta, dict):
        raise UserError(f"'{path}' has a YAML header that is not a mapping")
    return meta
