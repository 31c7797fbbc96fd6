"""Distances between signal time series of two recordings (seed 000 compares AU and emotion series this way).

Seed 000 uses dynamic time warping (the recordings have an unknown delay) and the mean absolute percentage
error minimised over every shift within +-20 s, but says neither how the series are normalised nor whether
DTW has a warping window. Both are options here; :class:`SeriesOptions` holds the defaults, and every table
prints :meth:`SeriesOptions.describe` beside its numbers.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np

from unveil.errors import UnveilError


@dataclass(frozen=True)
class SeriesOptions:
    """How two series are compared. Defaults: raw values (as the analyzer gives them), unconstrained DTW,
    classic MAPE (denominator: the reference series) over shifts of +-20 s with at least half the shorter
    series overlapping."""

    normalise: Literal["none", "zscore"] = "none"
    window: int | None = None  # DTW Sakoe-Chiba band in frames (None: unconstrained)
    max_shift_seconds: float = 20.0
    min_overlap: float = 0.5
    mape_denominator: Literal["reference", "symmetric"] = "reference"
    eps: float = 1e-3  # reference values closer to zero than this are left out of the classic MAPE

    def describe(self) -> str:
        dtw = "unconstrained DTW" if self.window is None else f"DTW within a {self.window}-frame band"
        mape = ("MAPE |a-b|/|a| (|a| > %g)" % self.eps if self.mape_denominator == "reference"
                else "symmetric MAPE 2|a-b|/(|a|+|b|)")
        series = "raw series" if self.normalise == "none" else "z-normalised series"
        return (f"{series}; {dtw} (Euclidean, dtaidistance); {mape} minimised over shifts of "
                f"+-{self.max_shift_seconds:g} s with >= {self.min_overlap:.0%} overlap; per signal, then averaged")


def prepare_series(x: np.ndarray, normalise: str = "none") -> np.ndarray:
    """Float64 copy with NaN gaps filled linearly (ends: nearest value), optionally z-normalised."""
    x = np.asarray(x, dtype=np.float64).copy()
    finite = np.isfinite(x)
    if not finite.any():
        raise UnveilError("A series has no finite values (no face was found in any frame).")
    if not finite.all():
        index = np.arange(len(x))
        x[~finite] = np.interp(index[~finite], index[finite], x[finite])
    if normalise == "zscore":
        std = x.std()
        x = (x - x.mean()) / std if std > 0 else x - x.mean()
    elif normalise != "none":
        raise UnveilError(f"Unknown normalisation '{normalise}'; choose none or zscore.")
    return x


def dtw_distance(a: np.ndarray, b: np.ndarray, window: int | None = None) -> float:
    """Dynamic time warping distance (square root of the summed squared differences along the best path),
    by dtaidistance; series may differ in length. ``window`` limits |i - j| (Sakoe-Chiba band)."""
    from dtaidistance import dtw

    a, b = np.ascontiguousarray(a, dtype=np.double), np.ascontiguousarray(b, dtype=np.double)
    if window is not None:
        window = max(window, abs(len(a) - len(b)) + 1)  # a narrower band has no path from start to end
    return float(dtw.distance(a, b, window=window, use_c=_dtaidistance_has_c()))


def _dtaidistance_has_c() -> bool:
    try:
        from dtaidistance import dtw_cc  # noqa: F401
    except ImportError:
        return False
    return True


def _percentage_errors(reference: np.ndarray, estimate: np.ndarray, denominator: str, eps: float) -> np.ndarray:
    diff = np.abs(reference - estimate)
    if denominator == "symmetric":
        scale = np.abs(reference) + np.abs(estimate)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(scale > 0, 2 * diff / np.where(scale > 0, scale, 1), 0.0)
    keep = np.abs(reference) > eps
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(keep, diff / np.where(keep, np.abs(reference), 1), np.nan)


def mape_shifts(reference: np.ndarray, estimate: np.ndarray, max_shift: int, *, denominator: str = "reference",
                eps: float = 1e-3, min_overlap: float = 0.5, chunk: int = 4, workers: int | None = None
                ) -> np.ndarray:
    """MAPE of ``estimate`` against ``reference`` for every shift ``s`` in ``-max_shift..max_shift`` frames
    (``reference[t]`` against ``estimate[t + s]`` over their overlap); NaN where the overlap is too short.

    Vectorised: the estimate is zero-padded and viewed as one sliding window per shift (no copy); ``chunk``
    shifts at a time form a matrix of absolute differences whose weighted row sums are one matrix-vector
    product. Padded positions contribute exactly 1 (or 2 for the symmetric MAPE) per counted frame, which is
    subtracted again, so no per-shift slicing is needed. ``workers`` threads (default: one per core) share the
    chunks. Inputs must be finite (see :func:`prepare_series`).
    """
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    if not (np.isfinite(ref).all() and np.isfinite(est).all()):
        raise UnveilError("MAPE needs finite series; fill missing frames first (prepare_series).")
    n, m = len(ref), len(est)
    shifts = np.arange(-max_shift, max_shift + 1)
    lo = np.clip(-shifts, 0, n)  # reference frames t in [lo, hi) have 0 <= t + s < m
    hi = np.clip(m - shifts, lo, n)
    overlap = hi - lo
    padded = np.zeros(max_shift + max(n, m) + max_shift)
    padded[max_shift:max_shift + m] = est
    windows = np.lib.stride_tricks.sliding_window_view(padded, n)[:len(shifts)]  # row k: shift k - max_shift
    magnitude = np.abs(ref)
    if denominator == "reference":
        counted = magnitude > eps
        weight = np.where(counted, 1 / np.where(counted, magnitude, 1), 0.0)
        padding_error = 1.0  # |a - 0| / |a|
    elif denominator == "symmetric":
        counted = np.ones(n, dtype=bool)
        padding_error = 2.0  # 2|a - 0| / (|a| + 0) for a != 0, and 0 for a == 0
    else:
        raise UnveilError(f"Unknown MAPE denominator '{denominator}'; choose reference or symmetric.")
    counted_before = np.concatenate([[0], np.cumsum(counted)])
    counts = counted_before[hi] - counted_before[lo]
    padding_counted = np.concatenate([[0], np.cumsum(counted & (magnitude > 0))])
    outside = padding_counted[n] - (padding_counted[hi] - padding_counted[lo])
    sums = np.empty(len(shifts))

    def run(starts: range) -> None:  # one thread's share of the chunks, with its own buffer
        buffer = np.empty((min(chunk, len(shifts)), n))
        for start in starts:
            rows = windows[start:start + chunk]
            diff = buffer[:len(rows)]
            np.subtract(rows, ref, out=diff)
            np.abs(diff, out=diff)
            if denominator == "reference":
                sums[start:start + len(rows)] = diff @ weight
            else:
                scale = np.abs(rows) + magnitude
                np.divide(2 * diff, scale, out=diff, where=scale > 0)
                diff[scale == 0] = 0.0
                sums[start:start + len(rows)] = diff.sum(axis=1)

    starts = range(0, len(shifts), chunk)
    threads = max(1, min(workers or os.cpu_count() or 1, len(starts)))
    if threads == 1:
        run(starts)
    else:  # NumPy releases the GIL inside these array operations, so threads share the work
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, [starts[i::threads] for i in range(threads)]))
    sums -= padding_error * outside
    enough = (overlap >= min_overlap * min(n, m)) & (overlap > 0) & (counts > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(enough, sums / np.maximum(counts, 1), np.nan)


def mape_shifts_loop(reference: np.ndarray, estimate: np.ndarray, max_shift: int, *, denominator: str = "reference",
                     eps: float = 1e-3, min_overlap: float = 0.5) -> np.ndarray:
    """The same as :func:`mape_shifts` by a plain Python loop over shifts: the reference for tests and the
    benchmark, not for use."""
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    n, m = len(ref), len(est)
    out = np.full(2 * max_shift + 1, np.nan)
    for k, s in enumerate(range(-max_shift, max_shift + 1)):
        lo, hi = max(0, -s), min(n, m - s)  # reference indices t with 0 <= t + s < m
        if hi - lo < min_overlap * min(n, m) or hi <= lo:
            continue
        errors = _percentage_errors(ref[lo:hi], est[lo + s:hi + s], denominator, eps)
        errors = errors[~np.isnan(errors)]
        if len(errors):
            out[k] = errors.sum() / len(errors)
    return out


def best_shift_mape(reference: np.ndarray, estimate: np.ndarray, max_shift: int, **options: object
                    ) -> tuple[float, int | None]:
    """The smallest MAPE over the shifts and the shift (frames; ``estimate`` lags by it) that gives it; NaN and
    None when no shift has a reference value to divide by (a signal that stays at zero)."""
    values = mape_shifts(reference, estimate, max_shift, **options)  # type: ignore[arg-type]
    if np.all(np.isnan(values)):
        return float("nan"), None
    k = int(np.nanargmin(values))
    return float(values[k]), k - max_shift


def compare_series(reference: np.ndarray, estimate: np.ndarray, fps: float, options: SeriesOptions = SeriesOptions()
                   ) -> dict[str, float]:
    """DTW and shift-searched MAPE of one signal of two recordings (NaN gaps filled, see :func:`prepare_series`).

    MAPE and its shift are NaN when no shift has a reference value to divide by (a signal that stays at zero)."""
    a = prepare_series(reference, options.normalise)
    b = prepare_series(estimate, options.normalise)
    mape, frames = best_shift_mape(a, b, int(round(options.max_shift_seconds * fps)),
                                   denominator=options.mape_denominator, eps=options.eps,
                                   min_overlap=options.min_overlap)
    shift = float("nan") if frames is None else frames / fps
    return {"dtw": dtw_distance(a, b, options.window), "mape": mape, "shift_s": shift}
