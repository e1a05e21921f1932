"""`langtrainer probe`'s table: what its caption says about a probe at chance, with and without a base model."""

from langtrainer.cli.cmd_probe import render_probe


def _block(mean, std, chance=0.5):
    return {"accuracy_mean": mean, "accuracy_std": std,
            "result": {"chance_accuracy": chance, "recall_per_language": {"de": mean, "en": mean}}}


def _report(mean, std, base=None):
    return {**_block(mean, std), "data": "test", "n_examples": 200, "layer": -1, "feature": "first-token",
            "settings": {"C": 1e-4, "folds": 5}, "languages": ["de", "en"], "n_per_language": {"de": 100, "en": 100},
            "base": base}


def test_caption_tells_a_blind_probe_from_a_model_without_language():
    assert render_probe(_report(0.80, 0.02))[0].caption is None  # above chance: nothing to say
    # the fine-tuned model at chance (0.51 <= 0.5 + 2 x 0.01), the base model above: the model lost the language
    caption = render_probe(_report(0.51, 0.01, base=_block(0.95, 0.01)))[0].caption
    assert caption.startswith("the fine-tuned model's probe is at chance") and "base model's does" in caption
    # the base model at chance too: the probe sees no language at this C, whatever the model
    caption = render_probe(_report(0.51, 0.01, base=_block(0.52, 0.01)))[0].caption
    assert caption.startswith("the base model's probe is at chance") and "measures nothing" in caption
    caption = render_probe(_report(0.51, 0.01))[0].caption  # no base model to tell the two apart
    assert caption.startswith("at chance: at this C the model's first token shows no language")
