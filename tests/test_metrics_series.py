"""Time-series distances: DTW against a textbook dynamic programme, MAPE shift search against a plain loop."""

import numpy as np
import pytest

from unveil.errors import UnveilError
from unveil.metrics.series import (SeriesOptions, best_shift_mape, compare_series, dtw_distance, mape_shifts,
                                   mape_shifts_loop, prepare_series)


def _dtw_textbook(a: np.ndarray, b: np.ndarray, window: int | None = None) -> float:
    n, m = len(a), len(b)
    cost = np.full((n + 1, m + 1), np.inf)
    cost[0, 0] = 0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            if window is not None and abs(i - j) > window:
                continue
            cost[i, j] = (a[i - 1] - b[j - 1]) ** 2 + min(cost[i - 1, j], cost[i, j - 1], cost[i - 1, j - 1])
    return float(np.sqrt(cost[n, m]))


def test_dtw_closed_forms() -> None:
    assert dtw_distance(np.array([0.0, 1, 2]), np.array([0.0, 1, 1, 1, 2])) == 0.0  # pure time warp
    assert dtw_distance(np.zeros(4), np.full(4, 2.0)) == pytest.approx(4.0)  # sqrt(4 * 2^2)


@pytest.mark.parametrize("window", [None, 5])
def test_dtw_matches_textbook(window: int | None) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=40), rng.normal(size=33)
    assert dtw_distance(a, b, window) == pytest.approx(_dtw_textbook(a, b, max(window, 8) if window else None))


def test_mape_finds_a_known_delay() -> None:
    rng = np.random.default_rng(0)
    signal = 1 + np.abs(np.cumsum(rng.normal(size=700)))
    reference, delayed = signal[100:600], signal[70:570]  # delayed[t + 30] == reference[t]
    value, shift = best_shift_mape(reference, delayed, 60)
    assert shift == 30 and value == 0.0


@pytest.mark.parametrize("denominator", ["reference", "symmetric"])
@pytest.mark.parametrize("lengths", [(500, 500), (480, 530), (530, 470), (40, 90), (90, 40)])
def test_vectorised_equals_loop(denominator: str, lengths: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(lengths))
    a = np.abs(rng.normal(size=lengths[0]))
    b = np.abs(rng.normal(size=lengths[1]))
    a[::17] = 0.0  # exact zeros exercise the eps rule
    fast = mape_shifts(a, b, 300, denominator=denominator, chunk=37, workers=2)
    slow = mape_shifts_loop(a, b, 300, denominator=denominator)
    np.testing.assert_array_equal(fast, mape_shifts(a, b, 300, denominator=denominator, chunk=37, workers=1))
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
    np.testing.assert_allclose(fast, slow, rtol=1e-12, equal_nan=True)
    assert np.nanargmin(fast) == np.nanargmin(slow)


def test_mape_closed_form() -> None:
    # every reference value 2, every estimate 3: |2 - 3| / 2 = 0.5 at every shift with enough overlap
    values = mape_shifts(np.full(10, 2.0), np.full(10, 3.0), 8, min_overlap=0.5)
    assert np.isnan(values[:3]).all() and np.isnan(values[-3:]).all()  # overlaps of 2..4 frames < 5
    np.testing.assert_allclose(values[3:-3], 0.5)


def test_prepare_series_fills_gaps_and_normalises() -> None:
    x = np.array([np.nan, 1.0, np.nan, 3.0, np.nan])
    np.testing.assert_allclose(prepare_series(x), [1, 1, 2, 3, 3])
    z = prepare_series(np.array([1.0, 2, 3]), "zscore")
    assert z.mean() == pytest.approx(0) and z.std() == pytest.approx(1)
    with pytest.raises(UnveilError, match="no finite values"):
        prepare_series(np.full(3, np.nan))


def test_compare_series_reports_the_delay_in_seconds() -> None:
    t = np.arange(0, 60, 1 / 15)
    signal = 1.5 + np.sin(t)
    result = compare_series(signal[:600], signal[45:645], fps=15, options=SeriesOptions())
    assert result["shift_s"] == pytest.approx(-3.0) and result["mape"] == pytest.approx(0, abs=1e-12)
    assert "z-normalised" in SeriesOptions(normalise="zscore").describe()


def test_a_signal_at_zero_has_no_mape_but_a_dtw() -> None:
    result = compare_series(np.zeros(50), np.linspace(0, 1, 50), fps=10)
    assert np.isnan(result["mape"]) and np.isnan(result["shift_s"]) and result["dtw"] > 0


def _signals(kind: str, rng: np.random.Generator, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    if kind == "walk":  # smooth, delayed, noisy: the pruning's good case
        a = 1 + np.abs(np.cumsum(rng.normal(size=n + 200))) / 20
        return a[100:100 + n], np.resize(a[60:], m) * (1 + 0.05 * rng.normal(size=m))
    if kind == "noise":  # every shift alike: little to prune
        return np.abs(rng.normal(size=n)) + 0.1, np.abs(rng.normal(size=m)) + 0.1
    if kind == "periodic":  # exact ties every period: the smallest shift must win
        t = np.arange(max(n, m))
        return 2 + np.sin(2 * np.pi * t[:n] / 25), 2 + np.sin(2 * np.pi * t[:m] / 25)
    a, b = np.abs(rng.normal(size=n)), np.abs(rng.normal(size=m))  # "zeros": uncounted reference frames
    a[rng.random(n) < 0.3] = 0.0
    return a, b


@pytest.mark.parametrize("kind", ["walk", "noise", "periodic", "zeros"])
@pytest.mark.parametrize("lengths", [(600, 600), (560, 640), (640, 520)])
def test_pruned_search_finds_the_loops_minimum(kind: str, lengths: tuple[int, int]) -> None:
    rng = np.random.default_rng(len(kind) * 1000 + lengths[1])
    a, b = _signals(kind, rng, *lengths)
    slow = mape_shifts_loop(a, b, 200)
    value, shift = best_shift_mape(a, b, 200, blocks=(64, 8))
    assert shift == int(np.nanargmin(slow)) - 200
    assert value == pytest.approx(np.nanmin(slow), rel=1e-12)


def test_lower_bounds_never_exceed_the_sums() -> None:
    from unveil.metrics.series import _ShiftSearch

    rng = np.random.default_rng(5)
    for kind in ("walk", "noise", "zeros"):
        a, b = _signals(kind, rng, 500, 530)
        search = _ShiftSearch(a, b, 150, "reference", 1e-3, 0.5)
        exact = search.sums(np.arange(len(search.shifts)))
        bounds = search.lower_bounds(8)
        assert (bounds <= exact + 1e-9).all() and bounds.max() > 0
