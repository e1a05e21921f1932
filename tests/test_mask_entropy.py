"""The masked-input entropy term (Annex A.3, eq. 3): both normalisations and both masked inputs."""

import math
from pathlib import Path

import pytest
import torch

from langtrainer.recipe import load_recipe
from test_trainer import make_trainer

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


class FixedLogits(torch.nn.Module):
    """A stand-in model: always the same logits; remembers what it was given."""

    def __init__(self, probabilities):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.logits = torch.log(torch.tensor([probabilities]))
        self.calls = []

    def forward(self, input_ids, **kwargs):
        self.calls.append({"input_ids": input_ids, **kwargs})
        return {"logits": self.logits.expand(input_ids.shape[0], -1) + 0 * self.weight}


def _batch(tok):
    encoded = tok(["ein langer satz mit vielen worten hier", "kurz"], padding=True, return_tensors="pt")
    return dict(encoded)


@pytest.mark.parametrize("masked_input", ["drawn", "last_row"])
def test_worked_example_sum_and_mean(tiny_model_dir, tmp_path, masked_input):
    # p = (1/2, 1/4, 1/8, 1/8): sum_c p log p = -(1/2 ln 2 + 1/4 ln 4 + 2/8 ln 8) = -1.75 ln 2
    fake = FixedLogits([0.5, 0.25, 0.125, 0.125])
    values = {}
    for normalisation in ("sum", "mean"):
        trainer = make_trainer(tiny_model_dir, tmp_path / normalisation, mask_entropy=1.0,
                               mask_entropy_normalisation=normalisation, mask_entropy_input=masked_input)
        values[normalisation] = float(trainer.masked_input_neg_entropy(fake, _batch(trainer.processing_class)).detach())
    assert values["sum"] == pytest.approx(-1.75 * math.log(2), abs=1e-6)
    assert values["mean"] == pytest.approx(-1.75 * math.log(2) / 4, abs=1e-6)  # the released code's: sum / C


def test_last_row_masks_every_non_pad_position(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path, mask_entropy=1.0, mask_entropy_input="last_row")
    tok = trainer.processing_class
    batch = _batch(tok)
    last = batch["input_ids"][-1]
    real = int(batch["attention_mask"][-1].sum())
    assert 2 < real < len(last)  # the last row is padded: a real test of "non-pad only"
    assert last[0] == tok.cls_token_id and last[real - 1] == tok.sep_token_id
    fake = FixedLogits([0.25] * 4)
    trainer.masked_input_neg_entropy(fake, batch)
    (call,) = fake.calls
    ids = call["input_ids"][0].tolist()
    # [CLS] and [SEP] are masked too; padding stays padding under the row's own attention mask
    assert ids == [tok.mask_token_id] * real + [tok.pad_token_id] * (len(last) - real)
    assert call["attention_mask"][0].tolist() == batch["attention_mask"][-1].tolist()
    if "token_type_ids" in batch:
        assert call["token_type_ids"][0].tolist() == batch["token_type_ids"][-1].tolist()


def test_drawn_keeps_cls_and_sep(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path, mask_entropy=1.0)
    tok = trainer.processing_class
    fake = FixedLogits([0.25] * 4)
    trainer.masked_input_neg_entropy(fake, _batch(tok))
    ids = fake.calls[0]["input_ids"][0].tolist()
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert set(ids[1:-1]) == {tok.mask_token_id}


def test_last_row_mean_trains_on_the_real_model(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path, per_device_train_batch_size=4, max_steps=3, logging_steps=1,
                           mask_entropy=1.0, mask_entropy_normalisation="mean", mask_entropy_input="last_row")
    trainer.train()
    logged = [h["mask_neg_entropy"] for h in trainer.state.log_history if "mask_neg_entropy" in h]
    assert len(logged) == 3
    # mean over 4 classes of p log p lies in [-ln(4)/4, 0)
    assert all(-math.log(4) / 4 - 1e-6 <= v < 0 for v in logged)


@pytest.mark.parametrize("dataset", ["amazon", "xnli"])
@pytest.mark.parametrize("variant", ["bal_mie", "imbal_mie", "imbal_cw_mie"])
def test_mie_recipes_use_the_released_codes_term_and_reach_the_trainer(dataset, variant, tmp_path):
    from langtrainer.training.args import build_training_args

    recipe = load_recipe(RECIPES / f"{dataset}_{variant}.yaml")
    assert recipe.loss.mask_entropy == 1.0
    assert (recipe.loss.mask_entropy_normalisation, recipe.loss.mask_entropy_input) == ("mean", "last_row")
    args = build_training_args(recipe, tmp_path, has_eval=True)
    assert (args.mask_entropy, args.mask_entropy_normalisation, args.mask_entropy_input) == (1.0, "mean", "last_row")
