"""Hand-made run folders in metrics.json's tidy shape (a user's 3-label, 3-language run)."""

from __future__ import annotations

import json

import yaml

LABELS3 = ["negative", "neutral", "positive"]
LANGS3 = ["de", "pt", "sw"]
GROUPS3 = {"north": ["de"], "south": ["pt"], "east": ["sw"]}
FAVOURED3 = {"north": [0], "south": [1], "east": [2]}


def tidy_block(accuracy_by_lang: dict[str, float], shares_by_lang: dict[str, list[float]],
               n_per_lang: int = 90, groups: dict[str, list[str]] | None = None, skew: float | None = None) -> dict:
    """metrics.json["test"] as the contract has it; overall numbers are the means of the languages."""
    def block(acc, shares, n):
        return {"n": n, "accuracy": acc, "macro_f1": round(acc - 0.02, 6),
                "prediction_shares": dict(zip(LABELS3, shares))}

    by_language = {lang: block(accuracy_by_lang[lang], shares_by_lang[lang], n_per_lang) for lang in accuracy_by_lang}
    accs = list(accuracy_by_lang.values())
    overall_shares = [sum(s[c] for s in shares_by_lang.values()) / len(shares_by_lang) for c in range(len(LABELS3))]
    test = {
        "n": n_per_lang * len(accuracy_by_lang), "accuracy": sum(accs) / len(accs),
        "macro_f1": sum(accs) / len(accs) - 0.02, "loss": 0.9, "ce": 0.8,
        "prediction_shares": dict(zip(LABELS3, overall_shares)),
        "by_language": by_language,
        "difference": {"accuracy": max(accs) - min(accs), "macro_f1": max(accs) - min(accs)},
    }
    if groups:
        test["by_group"] = {g: by_language[langs[0]] for g, langs in groups.items()}
    if skew is not None:
        test["skew_index"] = skew
    return test


def write_tidy_run(path, name: str, subset: str, class_weights: str, seed: int, accuracy_by_lang, shares_by_lang,
                   groups=GROUPS3, skew: float | None = 0.2, recipe_extra: dict | None = None):
    path.mkdir(parents=True, exist_ok=True)
    recipe = {
        "name": name, "seed": seed,
        "model": {"name_or_path": "builtin:multilingual-e5-small", "max_length": 64},
        "data": {"source": "/data/mine.jsonl", "languages": LANGS3, "labels": LABELS3},
        "imbalance": {"subset": subset, "groups": groups,
                      "distribution": {"north": [60, 20, 20], "south": [20, 60, 20], "east": [20, 20, 60]}},
        "loss": {"class_weights": class_weights, "weight_scheme": "inverse", "reduction": "mean",
                 "mask_entropy": 0.5 if class_weights != "none" else 0.0},
        "training": {"learning_rate": 3e-5, "head_learning_rate": 1e-3, "num_train_epochs": 2},
        **(recipe_extra or {}),
    }
    (path / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    metrics = {
        "recipe": name, "subset": subset, "class_weights_mode": class_weights, "seed": seed,
        "groups": groups, "favoured_labels": FAVOURED3 if groups else None,
        "languages": LANGS3, "label_names": LABELS3, "test_examples": 270,
        "test": tidy_block(accuracy_by_lang, shares_by_lang, groups=groups, skew=skew),
        "train": {"steps": 40, "seconds": 12.0, "loss": 0.7, "examples": 320},
        "class_weights": [[1.0, 2.0, 3.0], [2.0, 1.0, 2.0], [3.0, 2.0, 1.0]] if class_weights != "none" else None,
        "log_history": [],
    }
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def write_shap_folder(folder, examples: list[dict], label_names: list[str]):
    """A finished `langtrainer shap` output (manifest + one shard) from hand-made values.

    examples: dicts with id, language, label, text, tokens (list of str), values (tokens x classes),
    base_values (classes); special marks the first and last token; probabilities = values.sum(0) + base.
    """
    import numpy as np
    import pandas as pd

    from langtrainer.analysis.shap.engine import TokenAttribution
    from langtrainer.analysis.shap.store import (FORMAT, MANIFEST, arguments_hash, shard_path, shard_table,
                                                 write_shard)

    folder.mkdir(parents=True, exist_ok=True)
    attributions = []
    for example in examples:
        values = np.asarray(example["values"], dtype=np.float32)
        base = np.asarray(example["base_values"], dtype=np.float32)
        special = np.zeros(len(example["tokens"]), dtype=bool)
        special[[0, -1]] = True
        attributions.append(TokenAttribution(
            token_ids=np.arange(len(example["tokens"]), dtype=np.int64) + 5, tokens=list(example["tokens"]),
            values=values, base_values=base, probabilities=values.sum(0) + base, special=special))
    rows = pd.DataFrame([{k: e[k] for k in ("id", "language", "label", "text")} for e in examples])
    arguments = {"made_by": "tests.results_fixtures"}
    write_shard(shard_path(folder, 0), shard_table(rows, attributions, arguments_hash(arguments)))
    manifest = {"format": FORMAT, "complete": True, "n_shards": 1, "ids": [str(e["id"]) for e in examples],
                "n_examples": len(examples), "label_names": list(label_names), "arguments": arguments,
                "arguments_hash": arguments_hash(arguments)}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder
