"""The numbers behind a compare's verdicts: paired differences, their SE, the bootstrap, seeds needed.

Every mitigation is trained on the same data split with the same seeds, so
the difference to the baseline is taken seed by seed (run m, seed k minus
baseline, seed k): what the two runs share (the split, the initialisation of
the encoder, the data order) cancels, and the SE of the mean paired
difference is sd(d_k) / sqrt(K) over the K seeds (sample sd, ddof = 1).

With one seed there is no spread over seeds: the interval then comes from a
paired bootstrap over the shared test rows (the same resampled rows scored
for both models), which covers the test sample's noise only, not the
training's: it is labelled as such wherever it is shown.

Verdict rule (one rule everywhere): a paired t test at 95 %. A mean
difference beyond t·SE in the metric's good direction is "better", beyond
t·SE in the bad direction "worse", otherwise "within the noise", where t is
Student's 97.5 % quantile with K − 1 degrees of freedom
(`training.intervals.seed_threshold`: 12.71 at 2 seeds, 4.30 at 3, 2.78 at
5). The SE is estimated from the K seeds themselves, so a fixed 2 SE would
call a zero difference real 30 % of the time at 2 seeds. With one seed,
"better" / "worse" when the bootstrap's 95 % interval excludes 0; a metric
that cannot be bootstrapped over test rows (the probes) is then "not
decided".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from langtrainer.training.intervals import seed_threshold

BETTER, WORSE, NOISE = "better", "worse", "within the noise"
NO_INTERVAL = "not decided (one seed, no interval)"
# Two probes at chance, or any when the pretrained model's is at chance (analysis.probe.difference_measured).
AT_CHANCE = "not decided (probes at chance)"


@dataclass(frozen=True)
class Summary:
    """Mean ± SE of values (SE None with fewer than two values)."""

    mean: float
    se: float | None
    n: int


def mean_se(values: Sequence[float]) -> Summary:
    """Mean and standard error sd / sqrt(n) (sample sd, ddof = 1) of the finite values."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return Summary(float("nan"), None, 0)
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else None
    return Summary(float(x.mean()), se, int(x.size))


def paired_differences(values: dict[int, float], baseline: dict[int, float]) -> dict[int, float]:
    """Per seed present in both: value − baseline value (seeds are the pairing)."""
    return {seed: float(values[seed] - baseline[seed]) for seed in sorted(values)
            if seed in baseline and values[seed] is not None and baseline[seed] is not None
            and math.isfinite(values[seed]) and math.isfinite(baseline[seed])}


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    kind: str  # "95 % t interval over seeds (...)" or "95 % paired bootstrap over test rows"


def seed_interval(summary: Summary) -> Interval | None:
    """mean ± t·SE (t: `seed_threshold` of the summary's seeds), None without an SE."""
    if summary.se is None:
        return None
    t = seed_threshold(summary.n)
    return Interval(summary.mean - t * summary.se, summary.mean + t * summary.se,
                    f"95 % t interval over seeds (mean ± {t:.2f} SE, {summary.n - 1} df)")


def paired_bootstrap(metric: Callable[[np.ndarray], float], other: Callable[[np.ndarray], float], n_rows: int,
                     resamples: int = 2000, seed: int = 0) -> tuple[float, Interval, float]:
    """(observed difference, 95 % percentile interval, bootstrap SE) of other − metric.

    `metric(idx)` / `other(idx)` score the baseline / the mitigation on the test rows `idx` (indices
    into the shared test split). Each resample draws n_rows row indices with replacement and scores
    both models on the same rows, so the interval is that of the paired difference.
    """
    rng = np.random.default_rng(seed)
    everything = np.arange(n_rows)
    observed = other(everything) - metric(everything)
    draws = np.empty(resamples, dtype=np.float64)
    for b in range(resamples):
        idx = rng.integers(0, n_rows, n_rows)
        draws[b] = other(idx) - metric(idx)
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(observed), Interval(float(low), float(high), "95 % paired bootstrap over test rows"), \
        float(draws.std(ddof=1))


def verdict(mean: float, se: float | None, higher_is_better: bool, interval: Interval | None = None,
            n: int | None = None) -> str:
    """'better' / 'worse' / 'within the noise' of a mean over `n` seeds with standard error `se` (module
    docstring); without an SE, a bootstrap interval decides when given."""
    if mean is None or not math.isfinite(mean):
        return NOISE
    sign = 1.0 if higher_is_better else -1.0
    if interval is not None and se is None:
        if interval.low > 0 or interval.high < 0:
            return BETTER if sign * mean > 0 else WORSE
        return NOISE
    if se is None:
        return NO_INTERVAL
    if n is None or n < 2:
        raise ValueError(f"a verdict with a standard error needs the number of seeds behind it (>= 2), got {n}")
    t = seed_threshold(n)
    if sign * mean > t * se:
        return BETTER
    if sign * mean < -t * se:
        return WORSE
    return NOISE


def seeds_needed(mean: float, sd: float | None, have: int, cap: int = 1000) -> int | None:
    """The fewest seeds n at which t_{n-1} · sd / sqrt(n) falls below |mean| (the observed difference and spread).

    That is how many seeds the verdict rule would need to call the observed
    difference, were its mean and spread to stay as they are. None when it
    cannot be estimated (one seed: no spread; a zero difference: never);
    `cap` bounds the answer. At least have + 1: the question is asked of an
    undecided difference.
    """
    if sd is None or not math.isfinite(sd) or mean is None or not math.isfinite(mean) or mean == 0:
        return None
    for n in range(max(have + 1, 2), cap + 1):
        if seed_threshold(n) * sd / math.sqrt(n) < abs(mean):
            return n
    return cap
