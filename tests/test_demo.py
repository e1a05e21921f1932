"""`langtrainer demo --quick` end to end on the real model and corpus (slow)."""

import json
import re
import subprocess
import sys

import pytest

from langtrainer.pipelines.demo import QUICK_OVERRIDES, VARIANTS, plan_demo


def test_plan_resolves_three_variants_per_seed(tmp_path):
    plan = plan_demo(tmp_path, seeds=2, quick=True)
    assert plan.seeds == [0, 1]
    assert set(plan.recipes) == {(s, v) for s in (0, 1) for v in VARIANTS}
    cw = plan.recipes[(1, "imbal_cw")]
    assert cw.seed == 1 and cw.loss.class_weights == "per_language" and cw.imbalance.subset == "imbalanced"
    assert plan.recipes[(0, "bal")].imbalance.subset == "balanced"
    assert cw.data.train_per_language == 120 and "data.train_per_language=120" in QUICK_OVERRIDES
    assert cw.training["num_train_epochs"] == 1 and cw.training["train_sampling_strategy"] == "group_by_length"


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "langtrainer", "demo", "--quick", "--quiet", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (out / "report" / "report.md").read_text()
    for heading in ("## Verdicts", "## Task accuracy (Table 3)", "## Test-set predictions per language group (Table 2)",
                    "## Language identification probe (Table 4)", "## Cumulative SHAP difference (Figure 1)"):
        assert heading in report
    summary = json.loads((out / "report" / "report.json").read_text())
    for role in ("balanced", "imbalanced", "imbalanced+cw"):
        accuracy = summary["roles"][role]["accuracy"][0]
        assert 0.3 < accuracy <= 1.0  # 4 labels: chance is 0.25
        probe = summary["roles"][role]["probe_test"][0]
        assert 1 / 6 < probe <= 1.0
    # measured at quick's C = 0.01: pretrained 0.987 (test) and 0.997 (external); chance is 1/6
    assert 0.9 < summary["roles"]["pretrained"]["probe_test"][0] <= 1.0
    assert 0.9 < summary["roles"]["pretrained"]["probe_external"][0] <= 1.0
    assert summary["roles"]["imbalanced"]["probe_test"][0] > 0.5
    table3 = re.search(r"\| balanced \| (0\.\d{3})", report)
    assert table3 and abs(float(table3.group(1)) - summary["roles"]["balanced"]["accuracy"][0]) < 1e-3
    assert (out / "report" / "accuracy_probe.png").stat().st_size > 10_000
    assert list((out / "report").glob("shap_diff_*.png"))
    first_timings = json.loads((out / "timings.json").read_text())
    stages = {"seed0/data", "report"} | {f"seed0/train/{v}" for v in VARIANTS} | {f"seed0/shap/{v}" for v in VARIANTS}
    stages |= {f"seed0/probe/{m}/{d}" for m in ("pretrained", *VARIANTS) for d in ("test", "external")}
    assert set(first_timings) == stages
    # a second run finds every stage done and only rewrites the report
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    timings = json.loads((out / "timings.json").read_text())
    assert {k: v for k, v in timings.items() if k != "report"} == {k: v for k, v in first_timings.items() if k != "report"}


def test_plan_with_mie_adds_entropy_variants_and_their_diff(tmp_path):
    from langtrainer.pipelines.demo import DIFFS, MIE_DIFFS, MIE_VARIANTS

    plain = plan_demo(tmp_path, seeds=1)
    assert plain.variants == tuple(VARIANTS) and plain.diffs == DIFFS  # the default demo is unchanged
    plan = plan_demo(tmp_path, seeds=2, quick=True, mie=True)
    assert plan.variants == (*VARIANTS, *MIE_VARIANTS)
    assert plan.diffs == {**DIFFS, "imbal_vs_bal_mie": ("bal_mie", "imbal_mie")} and "imbal_vs_bal_mie" in MIE_DIFFS
    for seed in (0, 1):
        for variant, subset in (("bal_mie", "balanced"), ("imbal_mie", "imbalanced")):
            recipe = plan.recipes[(seed, variant)]
            assert recipe.imbalance.subset == subset and recipe.loss.class_weights == "none"
            assert recipe.loss.mask_entropy == 1.0
            assert (recipe.loss.mask_entropy_normalisation, recipe.loss.mask_entropy_input) == ("mean", "last_row")
            assert recipe.name == f"demo_{variant}" and recipe.seed == seed
            # the same data as the plain variants: only the loss differs
            plain_twin = plan.recipes[(seed, variant.removesuffix("_mie"))]
            assert recipe.data == plain_twin.data and recipe.training == plain_twin.training
        assert plan.recipes[(seed, "bal")].loss.mask_entropy == 0.0
