"""`load_shap_result(path).to_explanation(label=...)` is a shap.Explanation that shap's own plots draw."""

import matplotlib

matplotlib.use("Agg")

import re

import numpy as np
import pytest

from langtrainer.analysis.shap import load_shap_result
from results_fixtures import write_shap_folder

LABELS = ["neg", "pos"]
EXAMPLES = [
    {"id": "a", "language": "en", "label": 1, "text": "good film",
     "tokens": ["<s>", "good", "film", "</s>"],
     "values": [[0.0, 0.0], [-0.30, 0.30], [0.05, -0.05], [0.0, 0.0]], "base_values": [0.5, 0.5]},
    {"id": "b", "language": "de", "label": 0, "text": "schlechter Film <b>",
     "tokens": ["<s>", "schlecht", "er", "Film", "<b>", "</s>"],
     "values": [[0.0, 0.0], [0.25, -0.25], [0.02, -0.02], [-0.01, 0.01], [0.0, 0.0], [0.0, 0.0]],
     "base_values": [0.45, 0.55]},
]


@pytest.fixture
def result(tmp_path):
    return load_shap_result(write_shap_folder(tmp_path / "shap", EXAMPLES, LABELS))


def test_explanation_of_one_label_holds_the_stored_values(result):
    explanation = result.to_explanation(label="pos")
    assert len(explanation) == 2 and explanation.output_names == "pos"
    for k, example in enumerate(EXAMPLES):
        np.testing.assert_allclose(explanation[k].values, np.asarray(example["values"])[:, 1], atol=1e-6)
        assert list(explanation[k].data) == example["tokens"]
        assert explanation[k].base_values == pytest.approx(example["base_values"][1], abs=1e-6)
    # label index and name give the same explanation
    np.testing.assert_array_equal(result.to_explanation(label=1)[1].values, explanation[1].values)


def test_explanation_of_all_labels_has_a_class_axis(result):
    explanation = result.to_explanation()
    assert explanation.output_names == LABELS
    assert explanation[1].values.shape == (6, 2)
    np.testing.assert_allclose(explanation[1].values, np.asarray(EXAMPLES[1]["values"]), atol=1e-6)
    np.testing.assert_allclose(explanation.base_values, [e["base_values"] for e in EXAMPLES], atol=1e-6)


def test_shap_text_plot_draws_the_stored_values(result):
    import shap

    html = shap.plots.text(result.to_explanation(label="pos")[0], display=False)
    assert isinstance(html, str) and "good" in html
    # shap labels each token's bar with its value: the stored +0.30 ("good") and -0.05 ("film")
    assert re.search(r">0\.3</text>", html) and re.search(r">-0\.05</text>", html)
    # several examples, several labels: shap draws them all without raising
    assert isinstance(shap.plots.text(result.to_explanation(label=0), display=False), str)


def test_shap_bar_plot_draws_the_stored_values(result):
    import matplotlib.pyplot as plt
    import shap

    plt.close("all")  # shap draws on the current figure: start from a new one
    explanation = result.to_explanation(label="pos")[0]
    shap.plots.bar(explanation, show=False)
    widths = sorted(round(abs(p.get_width()), 4) for p in plt.gcf().axes[0].patches if abs(p.get_width()) > 0)
    # the non-zero token values of example a for "pos": |+0.30| and |-0.05|
    assert widths == [0.05, 0.3]
    plt.close("all")
