"""The demo corpus's training paragraphs as a labelled `datasets.Dataset`, for the training benchmarks."""

from __future__ import annotations

LABELS = ["scalc", "swriter", "simpress", "sbasic"]


def demo_training_texts(n: int, seed: int = 0):
    """`n` random training paragraphs of builtin:libreoffice-help (text, label id, language)."""
    import datasets

    from langtrainer.data.builtin import load_builtin

    corpus = load_builtin("libreoffice-help")
    corpus = corpus[(corpus["split"] == "train") & corpus["label"].isin(LABELS)]
    frame = corpus.sample(n=n, random_state=seed)
    return datasets.Dataset.from_dict({
        "text": frame["text"].tolist(),
        "label": [LABELS.index(x) for x in frame["label"]],
        "language": frame["language"].tolist(),
    })
