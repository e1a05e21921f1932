"""Default run folder names tell the mitigations apart."""

import pytest

from langtrainer.recipe import load_recipe
from langtrainer.rundir.naming import default_run_name


@pytest.mark.parametrize("sets, expected", [
    ([], "demo-imbalanced-none-seed0"),
    (["loss.class_weights=per_language"], "demo-imbalanced-cw-seed0"),
    (["loss.class_weights=global", "loss.weight_scheme=sqrt_inverse"], "demo-imbalanced-gcw_sqrt-seed0"),
    (["data.sampler=per_language_balanced", "training.train_sampling_strategy=random", "seed=3"], "demo-imbalanced-sampler-seed3"),
    (["loss.class_weights=per_language", "loss.mask_entropy=0.1", "imbalance.subset=none"],
     "demo-none-cw+mie-seed0"),
    (["loss.language_adversary.method=gradient_reversal"], "demo-imbalanced-adversary-seed0"),
])
def test_default_run_name(sets, expected):
    recipe = load_recipe("builtin:demo", ["name=demo", "loss.class_weights=none", *sets])
    assert default_run_name(recipe) == expected
