"""The group bootstrap against the normal-theory interval of the group means (the closed form it approaches)."""

import numpy as np
import pytest

from unveil.metrics.bootstrap import group_mean_interval, percentile_interval


def test_copies_of_one_item_do_not_narrow_the_interval() -> None:
    rng = np.random.default_rng(0)
    means = rng.normal(0.6, 0.2, 400)  # 400 photos, each occluded four times: four identical scores
    values, groups = np.repeat(means, 4), np.repeat(np.arange(400), 4)
    low, high = group_mean_interval(values, groups, resamples=4000, seed=1)
    half = 1.96 * means.std(ddof=1) / np.sqrt(400)  # 400 independent photos, not 1,600
    assert (low + high) / 2 == pytest.approx(means.mean(), abs=0.1 * half)
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)


def test_a_statistic_undefined_in_most_resamples_has_no_interval() -> None:
    assert np.isnan(percentile_interval(np.array([1.0, np.nan, np.nan]), 0.95)).all()
    assert percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
