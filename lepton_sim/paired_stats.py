"""Statistics for comparing policies: paired differences on shared episode seeds, and the probability of
improvement across training seeds.

Why paired: two policies evaluated on the same suite and split run the same episode seeds, so episode k of one
faces the same road, parts or traffic as episode k of the other. The difference per seed removes the variation
between scenarios that both face, which two independent intervals would count twice; the mean difference gets a
percentile bootstrap interval over the pairs and the Wilcoxon signed-rank test a p-value (no normality assumed:
success differences are -1/0/1, returns are skewed).

Why the probability of improvement (Agarwal et al. 2021, rliable): across training seeds, the chance that a run
of X scores above a run of Y, P(X > Y) = U / (n m) with the Mann-Whitney U statistic (ties count 1/2). It says how
often X beats Y, not by how much, and it does not hinge on one lucky seed. Its interval resamples the training
seeds of X and Y independently (rliable's stratified bootstrap).

Every bootstrap draws from ``numpy.random.default_rng(seed)`` with a fixed seed, so a comparison gives the same
intervals every time it is run.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

Values = Sequence[float] | np.ndarray  # a sample; NaN marks a value that does not exist (metric not applicable)

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
# with fewer non-zero differences the two-sided exact Wilcoxon p-value is at least 2 / 2**5 = 0.0625 whatever
# the data, so a test could never show a difference at the 5% level; a note says so instead of a p-value
MIN_WILCOXON_PAIRS = 6
_CHUNK = 10_000_000  # numbers per bootstrap block: memory stays bounded at 100000 episodes per row


@dataclass(frozen=True)
class PairedDifference:
    """``other - baseline`` over the pairs where both values exist (a NaN metric did not apply)."""

    pairs: int
    mean: float
    low: float  # 95% percentile bootstrap interval of the mean difference
    high: float
    p_value: float  # two-sided Wilcoxon signed-rank; NaN where ``note`` says why there is none
    note: str | None = None


def complete_pairs(baseline: Values, other: Values) -> tuple[np.ndarray, np.ndarray]:
    """The two samples without the pairs where either value is NaN; one length is required (same seeds)."""
    a, b = np.asarray(baseline, dtype=float), np.asarray(other, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples need one length, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep], b[keep]


def bootstrap_mean_interval(
    values: Values,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """(mean, low, high): the percentile bootstrap interval of the mean, resampling the values with
    replacement; NaN for no values, the value itself for one."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size == 1 or np.all(x == x[0]):
        return (mean, mean, mean)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    block = max(1, _CHUNK // x.size)
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        means[start:stop] = x[rng.integers(0, x.size, size=(stop - start, x.size))].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return (mean, float(low), float(high))


def wilcoxon_p(differences: Values) -> tuple[float, str | None]:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (scipy.stats.wilcoxon, zero differences
    dropped as Wilcoxon did), or NaN and a short note where the test cannot say anything."""
    d = np.asarray(differences, dtype=float)
    nonzero = int(np.count_nonzero(d))
    if d.size == 0:
        return (math.nan, "no pairs")
    if nonzero == 0:
        return (math.nan, f"all {d.size} differences 0")
    if nonzero < MIN_WILCOXON_PAIRS:
        return (math.nan, f"only {nonzero} non-zero pairs")
    with warnings.catch_warnings():  # scipy warns when ties or zeros make it use the normal approximation
        warnings.simplefilter("ignore")
        return (float(stats.wilcoxon(d).pvalue), None)


def paired_difference(
    baseline: Values,
    other: Values,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> PairedDifference:
    """The mean of ``other - baseline`` on shared seeds with its bootstrap interval and Wilcoxon p-value."""
    a, b = complete_pairs(baseline, other)
    d = b - a
    mean, low, high = bootstrap_mean_interval(d, confidence, resamples, seed)
    p, note = wilcoxon_p(d)
    return PairedDifference(pairs=int(d.size), mean=mean, low=low, high=high, p_value=p, note=note)


def probability_of_improvement(x: Values, y: Values) -> float:
    """P(X > Y) = U / (n m): the share of (x, y) pairs with x above y, ties counted 1/2 (Mann-Whitney U of x);
    NaN values are ignored, NaN if either sample is empty."""
    xs, ys = _finite(x), _finite(y)
    if xs.size == 0 or ys.size == 0:
        return math.nan
    return float(_u_share(xs[None, :], ys[None, :])[0])


def probability_of_improvement_interval(
    x: Values,
    y: Values,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """(P(X > Y), low, high), the interval a percentile bootstrap that resamples x and y independently."""
    return average_probability_of_improvement([(x, y)], confidence, resamples, seed)


def average_probability_of_improvement(
    samples: Sequence[tuple[Values, Values]],
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """rliable's average probability of improvement over tasks (here suite rows): the mean of each row's
    P(X > Y), with a stratified bootstrap interval (each row's x and y seeds resampled on their own)."""
    pairs = [(_finite(x), _finite(y)) for x, y in samples]
    pairs = [(x, y) for x, y in pairs if x.size and y.size]
    if not pairs:
        return (math.nan, math.nan, math.nan)
    point = float(np.mean([_u_share(x[None, :], y[None, :])[0] for x, y in pairs]))
    rng = np.random.default_rng(seed)
    total = np.zeros(resamples)
    for x, y in pairs:
        block = max(1, _CHUNK // (x.size * y.size))
        for start in range(0, resamples, block):
            stop = min(resamples, start + block)
            xb = x[rng.integers(0, x.size, size=(stop - start, x.size))]
            yb = y[rng.integers(0, y.size, size=(stop - start, y.size))]
            total[start:stop] += _u_share(xb, yb)
    alpha = 1.0 - confidence
    low, high = np.quantile(total / len(pairs), [alpha / 2, 1 - alpha / 2])
    return (point, float(low), float(high))


def _finite(values: Values) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return x[~np.isnan(x)]


def _u_share(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per row of x (k, n) and y (k, m): (#x > y + #x == y / 2) / (n m)."""
    diff = x[:, :, None] - y[:, None, :]
    return ((diff > 0).sum(axis=(1, 2)) + 0.5 * (diff == 0).sum(axis=(1, 2))) / (x.shape[1] * y.shape[1])
