"""Bootstrap confidence intervals that resample what is independent: whole groups (a photo's occluded copies),
or subjects and then their blocks of frames (neighbouring video frames are not independent samples)."""

from __future__ import annotations

import numpy as np


def group_mean_interval(values: np.ndarray, groups: np.ndarray, resamples: int = 2000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` (one per item), resampling whole groups with replacement.
    ``groups`` numbers each item's group 0..n-1."""
    n = int(groups.max()) + 1
    sums, counts = np.bincount(groups, values, n), np.bincount(groups, minlength=n).astype(float)
    draws = np.random.default_rng(seed).integers(0, n, (resamples, n))
    return percentile_interval(sums[draws].sum(1) / counts[draws].sum(1), level)


def hierarchical_weights(subjects: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, blocks) counts of a hierarchical bootstrap: draw subjects with replacement, then each drawn
    subject's blocks with replacement. ``subjects`` names each block's subject."""
    rng = np.random.default_rng(seed)
    names = np.unique(subjects)
    members = [np.flatnonzero(subjects == s) for s in names]
    weights = np.zeros((resamples, len(subjects)))
    for b in range(resamples):
        for s in rng.integers(0, len(names), len(names)):
            np.add.at(weights[b], rng.choice(members[s], len(members[s])), 1.0)
    return weights


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of the finite bootstrap values; NaNs when fewer than half are
    finite (a statistic undefined in most resamples has no interval)."""
    finite = values[np.isfinite(values)]
    if finite.size < 0.5 * values.size or not finite.size:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)
