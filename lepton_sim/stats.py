"""Confidence intervals for evaluation reports.

Which interval a metric gets, without domain special cases in the evaluator: the env's registration says what
its info metrics are (:class:`lepton_sim.envs.registration.LeptonEnvSpec`), and :func:`metric_interval` follows:

- ``binary_metrics`` (0/1 flags: collision, off_road, a part dropped) and success rates: Wilson score interval
  on the share of episodes with 1. Student-t leaves [0, 1] and collapses to zero width at 0% and 100%.
- ``metric_bounds`` (the range a value lies in: route completion in [0, 1], counts and times in [0, inf)):
  Student-t clipped to that range, so a 95% CI of route completion never exceeds 1.0 or goes below 0.
- anything else: plain Student-t (:func:`mean_interval`).

Why declared, not guessed from the values: values cannot tell a 0/1 flag from a count that was 0 or 1 in every
episode (``never_inserted``, a count of vehicles here, not a rate), nor from a fraction that sat at a bound
(route completion 1.0 in every episode), and they never reveal a bound that was not reached. Guessing would also
switch the interval type between near-identical samples ([1, 1, 1] vs [1, 1, 0.999]). The env knows what its
info values mean, so it declares it once. Only intervals depend on this; per-episode values never change.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

Bounds = tuple[float, float]


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a success rate: well-behaved at 0%, 100% and small n (unlike the normal one)."""
    if n == 0:
        return (math.nan, math.nan)
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact bounds at 0% and 100% (no rounding error)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (float(low), float(high))


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) with a Student-t interval; NaN values (metric not applicable) are ignored."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size == 1:
        return (mean, mean, mean)
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return (mean, mean - half, mean + half)


def metric_interval(
    values: Sequence[float], bounds: Bounds | None = None, binary: bool = False, confidence: float = 0.95
) -> tuple[float, float, float]:
    """(mean, low, high) of one metric over episodes (NaN values ignored): Wilson for a ``binary`` (0/1) metric,
    Student-t clipped to ``bounds`` for a bounded one, else Student-t.

    Raises ValueError for a value that contradicts the declaration (a wrong declaration would otherwise report
    an interval that excludes the mean)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if binary:
        bounds = (0.0, 1.0)
        if np.any((x != 0.0) & (x != 1.0)):
            raise ValueError(f"declared binary (0/1) but got {x[(x != 0.0) & (x != 1.0)][0]:g}")
    if bounds is not None and np.any((x < bounds[0]) | (x > bounds[1])):
        raise ValueError(
            f"value {x[(x < bounds[0]) | (x > bounds[1])][0]:g} lies outside the declared bounds "
            f"[{bounds[0]:g}, {bounds[1]:g}]"
        )
    if binary:
        if x.size == 0:
            return (math.nan, math.nan, math.nan)
        low, high = wilson_interval(int(np.count_nonzero(x)), int(x.size), confidence)
        return (float(x.mean()), low, high)
    mean, low, high = mean_interval(x, confidence)
    if bounds is None or math.isnan(mean):
        return (mean, low, high)
    return (mean, float(min(max(low, bounds[0]), bounds[1])), float(min(max(high, bounds[0]), bounds[1])))
