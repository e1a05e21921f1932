"""Local folders in the exact layout and schema of the paper's Hub datasets.

`datasets.load_dataset(folder, config)` loads them offline as it would load
the Hub ids, so the paper recipes can run end to end without the Hub
(`--set data.source=FOLDER`, `--set analysis.probe.external=FOLDER`):

- `mteb/amazon_reviews_multi`: a config per language (de en es fr ja zh),
  splits train / validation / test, columns id, text, label (0-4), label_text;
- `facebook/xnli`: a config per language, splits train / validation / test,
  columns premise, hypothesis, label (ClassLabel entailment/neutral/contradiction);
- `wikimedia/wikipedia`: a config `20231101.<lang>` per language, split
  train, columns id, url, title, text.

The texts are the tiny fixture's sample sentences with a running number, so
the tiny tokenizer covers most of them; they exercise plumbing, not learning.
"""

from __future__ import annotations

from pathlib import Path

from tiny_model import SAMPLE_TEXTS

AMAZON_LANGUAGES = ("de", "en", "es", "fr", "ja", "zh")
XNLI_LANGUAGES = ("en", "fr")
XNLI_LABELS = ("entailment", "neutral", "contradiction")
STARS = ("1 star", "2 stars", "3 stars", "4 stars", "5 stars")


def _text(lang: str, k: int) -> str:
    pool = SAMPLE_TEXTS[lang]
    return f"{pool[k % len(pool)]} {pool[(k // len(pool)) % len(pool)]} {k}"


def _write_config_readme(root: Path, configs: dict[str, list[str]]) -> None:
    """The dataset card header that maps each config to its Parquet files, as on the Hub."""
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        lines += [f"- config_name: {config}", "  data_files:"]
        for split in splits:
            lines += [f"  - split: {split}", f"    path: {config}/{split}-*.parquet"]
    lines += ["---", "", "Local copy for offline tests.", ""]
    (root / "README.md").write_text("\n".join(lines), encoding="utf-8")


def _write_split(root: Path, config: str, split: str, dataset) -> None:
    folder = root / config
    folder.mkdir(parents=True, exist_ok=True)
    dataset.to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))


def _cell_sizes(n, n_labels: int) -> list[int]:
    """Rows per label of one split: one number for every label, or one per label."""
    return [int(n)] * n_labels if isinstance(n, int) else [int(x) for x in n]


def write_amazon_like(root: str | Path, per_cell: dict | None = None) -> Path:
    """mteb/amazon_reviews_multi's layout; `per_cell` rows per (language, star) and split
    (a number, or a list with one number per star)."""
    import datasets

    root = Path(root)
    per_cell = per_cell or {"train": 24, "validation": 6, "test": 4}
    for lang in AMAZON_LANGUAGES:
        for split, n in per_cell.items():
            rows = {"id": [], "text": [], "label": [], "label_text": []}
            for label, size in enumerate(_cell_sizes(n, len(STARS))):
                rows["id"] += [f"{lang}_{split}_{label}_{k:06d}" for k in range(size)]
                rows["text"] += [_text(lang, label * 1000 + k) for k in range(size)]
                rows["label"] += [label] * size
                rows["label_text"] += [STARS[label]] * size
            _write_split(root, lang, split, datasets.Dataset.from_dict(rows))
    _write_config_readme(root, {lang: list(per_cell) for lang in AMAZON_LANGUAGES})
    return root


def write_xnli_like(root: str | Path, per_cell: dict | None = None) -> Path:
    """facebook/xnli's layout: premise/hypothesis pairs with a ClassLabel label; `per_cell` as
    in write_amazon_like, per (language, label)."""
    import datasets

    root = Path(root)
    per_cell = per_cell or {"train": 24, "validation": 6, "test": 4}
    features = datasets.Features({
        "premise": datasets.Value("string"),
        "hypothesis": datasets.Value("string"),
        "label": datasets.ClassLabel(names=list(XNLI_LABELS)),
    })
    for lang in XNLI_LANGUAGES:
        for split, n in per_cell.items():
            rows = {"premise": [], "hypothesis": [], "label": []}
            for label, size in enumerate(_cell_sizes(n, len(XNLI_LABELS))):
                rows["premise"] += [_text(lang, label * 1000 + k) for k in range(size)]
                rows["hypothesis"] += [_text(lang, label * 1000 + k + 1) for k in range(size)]
                rows["label"] += [label] * size
            _write_split(root, lang, split, datasets.Dataset.from_dict(rows, features=features))
    _write_config_readme(root, {lang: list(per_cell) for lang in XNLI_LANGUAGES})
    return root


def write_wikipedia_like(root: str | Path, languages=AMAZON_LANGUAGES, articles: int = 30) -> Path:
    """wikimedia/wikipedia's layout: config 20231101.<lang>, split train; id, url, title, text."""
    import datasets

    root = Path(root)
    configs = {}
    for lang in languages:
        config = f"20231101.{lang}"
        rows = {"id": [], "url": [], "title": [], "text": []}
        for k in range(articles):
            rows["id"].append(str(1000 + k))
            rows["url"].append(f"https://{lang}.wikipedia.org/wiki?curid={1000 + k}")
            rows["title"].append(f"{lang} {k}")
            # Long articles: the probe keeps only the first tokens of each.
            rows["text"].append(" ".join(_text(lang, k + j) for j in range(40)))
        _write_split(root, config, "train", datasets.Dataset.from_dict(rows))
        configs[config] = ["train"]
    _write_config_readme(root, configs)
    return root
