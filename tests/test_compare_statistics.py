"""compare's statistics and rules on worked examples: paired SE, bootstrap, verdicts, recommendation, seeds needed."""

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest

from langtrainer.compare import statistics as st
from langtrainer.compare.mitigations import MITIGATIONS, Mitigation, check_sets, parse_variant, resolve_mitigations
from langtrainer.compare.results import METRIC_BY_KEY, Rows, RunValues, compare_metric, macro_f1
from langtrainer.compare.verdicts import recommend
from langtrainer.errors import UserError


def test_mean_and_standard_error_by_hand():
    s = st.mean_se([0.1, 0.3, 0.2])
    assert s.mean == pytest.approx(0.2) and s.n == 3
    assert s.se == pytest.approx(0.1 / math.sqrt(3))  # sample sd 0.1
    assert st.mean_se([0.5]).se is None  # one value: no spread


def test_paired_difference_se_and_verdict_worked_example():
    mitigation = {0: 0.80, 1: 0.84, 2: 0.79}
    baseline = {0: 0.78, 1: 0.80, 2: 0.78}
    d = st.paired_differences(mitigation, baseline)
    assert d == pytest.approx({0: 0.02, 1: 0.04, 2: 0.01})
    s = st.mean_se(list(d.values()))
    # d = 0.02, 0.04, 0.01: mean 0.023333, sd = sqrt(((-1/300)^2 + (1/60)^2 + (-1/75)^2) / 2) = 0.015275
    assert s.mean == pytest.approx(0.0233333, abs=1e-6)
    assert s.se == pytest.approx(0.0152753 / math.sqrt(3), abs=1e-6)
    # t = 0.0233 / 0.00882 = 2.65: past 2 SE, but not past t(0.975, 2 df) = 4.303; three seeds do not decide it
    assert st.verdict(s.mean, s.se, higher_is_better=True, n=3) == st.NOISE
    # Five seeds: d = 0.02, 0.04, 0.01, 0.02, 0.02, mean 0.022, sd sqrt(4.8e-4 / 4) = 0.010954, SE 0.004899;
    # 0.022 > 2.776 x 0.004899 = 0.0136
    mitigation.update({3: 0.82, 4: 0.81})
    baseline.update({3: 0.80, 4: 0.79})
    s = st.mean_se(list(st.paired_differences(mitigation, baseline).values()))
    assert s.mean == pytest.approx(0.022) and s.se == pytest.approx(math.sqrt(1.2e-4 / 5))
    assert st.verdict(s.mean, s.se, higher_is_better=True, n=5) == st.BETTER
    assert st.verdict(s.mean, s.se, higher_is_better=False, n=5) == st.WORSE  # the same rise, lower is better
    # Unpaired, the seeds' own spread (sd 0.0192 vs 0.0100) would hide it: pairing is what decides.
    unpaired_se = math.sqrt(st.mean_se(list(mitigation.values())).se ** 2 + st.mean_se(list(baseline.values())).se ** 2)
    assert unpaired_se == pytest.approx(math.sqrt(3.7e-4 / 5 + 1e-4 / 5))
    assert st.verdict(s.mean, unpaired_se, higher_is_better=True, n=5) == st.NOISE  # 0.022 < 2.776 x 0.0097


def test_verdict_threshold_is_students_t_with_seeds_minus_one_degrees_of_freedom():
    from scipy.stats import t

    assert st.seed_threshold(2) == pytest.approx(12.7062, abs=1e-4)
    assert st.seed_threshold(3) == pytest.approx(4.3027, abs=1e-4)
    assert st.seed_threshold(5) == pytest.approx(2.7764, abs=1e-4)
    assert st.seed_threshold(61) == pytest.approx(2.0003, abs=1e-4)  # 2 SE holds only from about 60 seeds
    assert st.verdict(0.04304, 0.01, True, n=3) == st.BETTER
    assert st.verdict(0.04302, 0.01, True, n=3) == st.NOISE
    assert st.verdict(-0.04304, 0.01, True, n=3) == st.WORSE
    assert st.verdict(0.127, 0.01, True, n=2) == st.NOISE  # 12.7 SE at two seeds
    assert st.verdict(0.1271, 0.01, True, n=2) == st.BETTER
    # The threshold is what it claims: a zero difference is called real 5 % of the time at any seed count.
    for n in (2, 3, 5):
        assert 2 * t.sf(st.seed_threshold(n), n - 1) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="number of seeds"):
        st.verdict(0.05, 0.01, True)  # an SE without its seed count cannot be judged
    assert st.verdict(0.05, None, True) == st.NO_INTERVAL  # one seed and no bootstrap: nothing decided
    assert st.verdict(0.05, None, True, st.Interval(0.01, 0.09, "boot")) == st.BETTER
    assert st.verdict(0.05, None, True, st.Interval(-0.01, 0.09, "boot")) == st.NOISE
    assert st.verdict(0.05, None, False, st.Interval(0.01, 0.09, "boot")) == st.WORSE


def test_seed_interval_is_the_95_percent_t_interval():
    s = st.mean_se([0.02, 0.04, 0.01])
    interval = st.seed_interval(s)
    assert interval.low == pytest.approx(s.mean - 4.30265 * s.se, abs=1e-5)
    assert interval.high == pytest.approx(s.mean + 4.30265 * s.se, abs=1e-5)
    assert interval.low < 0 < interval.high  # it covers 0 exactly when the verdict is "within the noise"
    assert "4.30 SE, 2 df" in interval.kind
    assert st.seed_interval(st.mean_se([0.02])) is None


def test_seeds_needed_is_the_first_n_where_the_t_threshold_falls_below_the_difference():
    from scipy.stats import t

    # t(0.975, n - 1) x 0.02 / sqrt(n) < 0.01: n = 18 (t = 2.110 -> 0.00995), n = 17 not (t = 2.120 -> 0.01028)
    assert st.seeds_needed(0.01, 0.02, have=3) == 18
    assert t.ppf(0.975, 17) * 0.02 / math.sqrt(18) < 0.01 <= t.ppf(0.975, 16) * 0.02 / math.sqrt(17)
    assert st.seeds_needed(-0.01, 0.02, have=3) == 18  # the sign does not matter
    assert st.seeds_needed(0.01, None, have=1) is None  # one seed: no spread to extrapolate
    assert st.seeds_needed(0.0, 0.02, have=3) is None  # no difference: no number of seeds decides it
    assert st.seeds_needed(0.1, 0.01, have=3) == 4  # asked of an undecided difference: at least one more seed
    assert st.seeds_needed(0.001, 1.0, have=3, cap=50) == 50  # far beyond: the cap


def test_paired_bootstrap_matches_the_normal_approximation_of_a_paired_mean():
    rng = np.random.default_rng(1)
    n = 400
    labels = rng.integers(0, 2, n)
    base_correct = rng.random(n) < 0.70
    other_correct = np.where(rng.random(n) < 0.85, base_correct, ~base_correct) | (rng.random(n) < 0.1)
    base_pred = np.where(base_correct, labels, 1 - labels)
    other_pred = np.where(other_correct, labels, 1 - labels)
    observed, interval, se = st.paired_bootstrap(lambda i: np.mean(base_pred[i] == labels[i]),
                                                 lambda i: np.mean(other_pred[i] == labels[i]), n, 4000, seed=0)
    d = other_correct.astype(float) - base_correct.astype(float)
    assert observed == pytest.approx(d.mean())
    # The SE of a mean of n paired row differences: sd(d) / sqrt(n); the percentile interval ~ mean ± 1.96 SE.
    assert se == pytest.approx(d.std(ddof=1) / math.sqrt(n), rel=0.1)
    assert interval.low == pytest.approx(d.mean() - 1.96 * se, abs=0.006)
    assert interval.high == pytest.approx(d.mean() + 1.96 * se, abs=0.006)
    assert "bootstrap" in interval.kind


def test_numpy_macro_f1_equals_the_run_metrics_definition():
    from langtrainer.training.metrics import metric_frame

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 90)
    predicted = np.where(rng.random(90) < 0.6, labels, rng.integers(0, 4, 90))
    languages = np.array(["de", "en", "ja"] * 30)
    predicted[languages == "ja"] = np.where(labels[languages == "ja"] == 3, 0, predicted[languages == "ja"])
    frame = metric_frame(predicted, labels, languages, ["a", "b", "c", "d"])
    rows = Rows(labels, predicted, languages, 4)
    assert rows.score("macro_f1") == pytest.approx(frame["macro_f1"])
    assert rows.score("accuracy") == pytest.approx(frame["accuracy"])
    assert rows.score("worst_language_macro_f1") == pytest.approx(
        min(r["macro_f1"] for r in frame["by_language"].values()))
    assert macro_f1(np.array([0, 0]), np.array([0, 0]), 4) == 1.0  # absent labels never predicted are no error


def _runs(values: dict[str, dict[str, list[float]]], at_chance=()) -> dict[tuple[str, int], RunValues]:
    """RunValues per (mitigation, seed); `at_chance`: the (mitigation, probe metric) pairs whose probe is at chance."""
    out = {}
    for m, metrics in values.items():
        for seed in range(len(next(iter(metrics.values())))):
            out[(m, seed)] = RunValues(m, seed, f"{m}-seed{seed}", {k: v[seed] for k, v in metrics.items()},
                                       {k: 100 for k in metrics}, "ja",
                                       at_chance={k: (m, k) in at_chance for k in metrics if k.startswith("probe_")})
    return out


def _recommend(values, at_chance=()):
    names = list(values)
    plan = SimpleNamespace(names=names, baseline=names[0],
                           mitigations=[MITIGATIONS.get(n) or Mitigation(n, "", {}, rank=9) for n in names])
    runs = _runs(values, at_chance)
    seeds = sorted({s for _, s in runs})
    comparisons = {}
    for key in next(iter(values.values())):
        for m in names:
            c = compare_metric(METRIC_BY_KEY[key], m, {s: runs[(m, s)] for s in seeds},
                               {s: runs[(names[0], s)] for s in seeds}, {}, names[0], 0)
            comparisons.setdefault(key, {})[m] = c
    return recommend(plan, comparisons), comparisons


def test_recommendation_picks_the_better_worst_language_f1_that_costs_no_accuracy():
    rec, comparisons = _recommend({
        "none": {"accuracy": [0.80, 0.82, 0.81], "worst_language_macro_f1": [0.60, 0.62, 0.61],
                 "language_prediction_cmi": [0.10, 0.11, 0.12]},
        # better worst-language F1, but accuracy worse beyond the noise: excluded
        "sampler": {"accuracy": [0.70, 0.71, 0.72], "worst_language_macro_f1": [0.75, 0.76, 0.77],
                    "language_prediction_cmi": [0.01, 0.01, 0.01]},
        "class_weights": {"accuracy": [0.80, 0.83, 0.81], "worst_language_macro_f1": [0.70, 0.71, 0.72],
                          "language_prediction_cmi": [0.05, 0.05, 0.06]},
    })
    assert comparisons["accuracy"]["sampler"].verdict == st.WORSE
    assert comparisons["worst_language_macro_f1"]["class_weights"].verdict == st.BETTER
    assert rec.choice == "class_weights" and rec.decided
    assert "not worse" in rec.rule and "worst-language macro-F1" in rec.rule


def test_recommendation_breaks_a_tie_by_lower_language_dependence_then_simplicity():
    base = {"accuracy": [0.80, 0.82, 0.81], "worst_language_macro_f1": [0.60, 0.62, 0.61]}
    rec, _ = _recommend({
        "none": {**base, "language_prediction_cmi": [0.10, 0.10, 0.10]},
        "class_weights": {"accuracy": [0.80, 0.82, 0.81], "worst_language_macro_f1": [0.70, 0.72, 0.71],
                          "language_prediction_cmi": [0.06, 0.06, 0.06]},
        "entropy": {"accuracy": [0.80, 0.82, 0.81], "worst_language_macro_f1": [0.71, 0.71, 0.72],
                    "language_prediction_cmi": [0.03, 0.03, 0.03]},
    })
    # entropy's gain (+0.103) leads class_weights' (+0.100) within the noise: a tie, entropy is less language-bound
    assert rec.choice == "entropy" and set(rec.tied) == {"entropy", "class_weights"}
    rec, _ = _recommend({
        "none": {**base, "language_prediction_cmi": [0.10, 0.10, 0.10]},
        "entropy": {"accuracy": [0.80, 0.82, 0.81], "worst_language_macro_f1": [0.71, 0.71, 0.72],
                    "language_prediction_cmi": [0.05, 0.05, 0.05]},
        "class_weights": {"accuracy": [0.80, 0.82, 0.81], "worst_language_macro_f1": [0.70, 0.72, 0.71],
                          "language_prediction_cmi": [0.05, 0.05, 0.05]},
    })
    assert rec.choice == "class_weights"  # same dependence: the simpler one


def test_nothing_decided_keeps_the_baseline_and_estimates_the_seeds():
    rec, comparisons = _recommend({
        "none": {"accuracy": [0.80, 0.82, 0.81], "worst_language_macro_f1": [0.60, 0.66, 0.61]},
        "class_weights": {"accuracy": [0.80, 0.82, 0.81], "worst_language_macro_f1": [0.63, 0.64, 0.66]},
    })
    c = comparisons["worst_language_macro_f1"]["class_weights"]
    assert c.verdict == st.NOISE and rec.choice == "none" and not rec.decided
    # d = 0.03, -0.02, 0.05: mean 0.02, sd 0.036056; t(13 df) 2.160 x 0.036056 / sqrt(14) = 0.0208 > 0.02,
    # t(14 df) 2.145 x 0.036056 / sqrt(15) = 0.01997 < 0.02 -> 15
    assert c.difference_mean == pytest.approx(0.02)
    assert rec.undecided == {"class_weights": 15}
    from langtrainer.compare.outputs import CompareResult, render_markdown
    from langtrainer.compare.verdicts import seeds_to_decide

    assert seeds_to_decide(rec.undecided) == 15
    assert seeds_to_decide({"a": None, "b": 7, "c": 1000}) == 7 and seeds_to_decide({"a": None}) is None
    result = CompareResult(
        recipe="r", baseline="none", seeds=[0, 1, 2], split_seed=0,
        mitigations=[{"name": m, "what": "", "overlay": {}} for m in ("none", "class_weights")],
        runs=[{"mitigation": m, "seed": s, "folder": f"{m}-seed{s}", "n": {"accuracy": 100}, "worst_language": "ja"}
              for m in ("none", "class_weights") for s in (0, 1, 2)],
        metrics={}, recommendation=dataclasses.asdict(rec), pretrained_probe={})
    text = render_markdown(result, {})
    assert "**none** (not decided)" in text
    assert "Seeds the observed spread would need to decide worst-language macro-F1: class_weights: 15." in text
    assert "with 15 seeds extends this one: the runs done are kept and only the 12 new seeds per mitigation" in text


def test_unknown_mitigation_names_the_valid_ones():
    with pytest.raises(UserError, match="unknown mitigation 'weights'.*none, class_weights.*sampler"):
        resolve_mitigations(["none", "weights"])


def test_a_set_on_a_key_a_mitigation_owns_is_refused_naming_both():
    chosen = resolve_mitigations(["none", "class_weights"])
    with pytest.raises(UserError, match=r"^sets loss.class_weights touches loss.class_weights.*'none'"):
        check_sets(["loss.class_weights=global"], chosen)
    with pytest.raises(UserError, match="^sets loss touches"):
        check_sets(["loss={}"], chosen)
    check_sets(["training.learning_rate=1e-4"], chosen)  # not owned: fine


def test_user_variant_overlays_any_recipe_key_on_everything_off():
    v = parse_variant("cw_global:loss.class_weights=global,loss.reduction=weighted_mean")
    assert v.overrides["loss.class_weights"] == "global" and v.overrides["loss.reduction"] == "weighted_mean"
    assert v.overrides["loss.mask_entropy"] == 0.0 and v.overrides["data.sampler"] is None
    assert [m.name for m in resolve_mitigations(["none"], ["cw_global:loss.class_weights=global"])] == \
        ["none", "cw_global"]
    with pytest.raises(UserError, match="built-in"):
        parse_variant("sampler:loss.class_weights=global")


def test_probes_at_chance_decide_only_a_difference_to_a_model_above_chance():
    from langtrainer.analysis.probe import at_chance, difference_measured

    # 95 of 182 test texts in en: a probe that says en for every text scores 95 / 182 = 0.522
    assert at_chance(0.522, 0.003, 95 / 182)
    assert at_chance(0.530, 0.005, 95 / 182)  # 0.530 <= 0.522 + 2 x 0.005: within 2 fold standard deviations
    assert not at_chance(0.540, 0.005, 95 / 182)
    assert not at_chance(0.522, 0.0, None)  # no chance level known: no claim
    assert difference_measured([(True, False), (False, False)])  # a floor against a model above it
    assert not difference_measured([(False, False), (True, True)])  # two floors in one seed
    assert not difference_measured([(False, False)], reference_at_chance=True)  # blind even on the pretrained model

    def probe_comparison(flags, reference=False):
        values = {"none": {"probe_test": [0.60, 0.61]}, "sampler": {"probe_test": [0.522, 0.522]}}
        runs = _runs(values, at_chance=flags)
        return compare_metric(METRIC_BY_KEY["probe_test"], "sampler", {s: runs[("sampler", s)] for s in (0, 1)},
                              {s: runs[("none", s)] for s in (0, 1)}, {}, "none", 0, reference)

    # -0.083 ± 0.005 is beyond t(1 df) = 12.7 SE: sampler's first token lost the language the baseline's shows
    c = probe_comparison({("sampler", "probe_test")})
    assert c.difference_mean == pytest.approx(-0.083) and c.difference_se == pytest.approx(0.005)
    assert c.verdict == st.BETTER
    c = probe_comparison({("sampler", "probe_test"), ("none", "probe_test")})
    assert c.verdict == st.AT_CHANCE and c.seeds_needed is None  # two floors
    assert probe_comparison(set(), reference=True).verdict == st.AT_CHANCE  # the probe sees no language at all
    # The tie-break by language dependence (no CMI: the test-split probe) skips a probe difference not decided.
    base = {"accuracy": [0.80, 0.82, 0.81], "worst_language_macro_f1": [0.60, 0.62, 0.61]}
    tied = {
        "none": {**base, "probe_test": [0.70, 0.70, 0.70]},
        "class_weights": {"accuracy": [0.80, 0.82, 0.81], "worst_language_macro_f1": [0.70, 0.72, 0.71],
                          "probe_test": [0.50, 0.50, 0.50]},
        "entropy": {"accuracy": [0.80, 0.82, 0.81], "worst_language_macro_f1": [0.71, 0.71, 0.72],
                    "probe_test": [0.40, 0.40, 0.40]},
    }
    assert _recommend(tied)[0].choice == "entropy"  # the lower probe
    rec, comparisons = _recommend(tied, at_chance={("entropy", "probe_test"), ("none", "probe_test")})
    assert comparisons["probe_test"]["entropy"].verdict == st.AT_CHANCE
    assert comparisons["probe_test"]["class_weights"].verdict == st.BETTER
    assert rec.choice == "class_weights" and set(rec.tied) == {"entropy", "class_weights"}
