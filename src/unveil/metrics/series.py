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


class _ShiftSearch:
    """What every shift's MAPE needs, computed once: the zero-padded estimate viewed as one sliding window per
    shift (no copy), per-frame weights, counted frames and overlaps. Padded positions contribute exactly 1 (or 2
    for the symmetric MAPE) per counted frame, which :meth:`sums` subtracts again, so no per-shift slicing is
    needed."""

    def __init__(self, reference: np.ndarray, estimate: np.ndarray, max_shift: int, denominator: str, eps: float,
                 min_overlap: float) -> None:
        ref = np.asarray(reference, dtype=np.float64)
        est = np.asarray(estimate, dtype=np.float64)
        if not (np.isfinite(ref).all() and np.isfinite(est).all()):
            raise UnveilError("MAPE needs finite series; fill missing frames first (prepare_series).")
        n, m = len(ref), len(est)
        self.ref, self.est, self.n, self.m, self.max_shift = ref, est, n, m, max_shift
        self.shifts = np.arange(-max_shift, max_shift + 1)
        self.lo = np.clip(-self.shifts, 0, n)  # reference frames t in [lo, hi) have 0 <= t + s < m
        self.hi = np.clip(m - self.shifts, self.lo, n)
        overlap = self.hi - self.lo
        padded = np.zeros(max_shift + max(n, m) + max_shift)
        padded[max_shift:max_shift + m] = est
        self.windows = np.lib.stride_tricks.sliding_window_view(padded, n)[:len(self.shifts)]  # row k: shift k - max
        self.magnitude = np.abs(ref)
        self.denominator = denominator
        if denominator == "reference":
            self.counted = self.magnitude > eps
            self.weight = np.where(self.counted, 1 / np.where(self.counted, self.magnitude, 1), 0.0)
            self.padding_error = 1.0  # |a - 0| / |a|
        elif denominator == "symmetric":
            self.counted = np.ones(n, dtype=bool)
            self.weight = None
            self.padding_error = 2.0  # 2|a - 0| / (|a| + 0) for a != 0, and 0 for a == 0
        else:
            raise UnveilError(f"Unknown MAPE denominator '{denominator}'; choose reference or symmetric.")
        counted_before = np.concatenate([[0], np.cumsum(self.counted)])
        self.counts = counted_before[self.hi] - counted_before[self.lo]
        padding_counted = np.concatenate([[0], np.cumsum(self.counted & (self.magnitude > 0))])
        self.outside = padding_counted[n] - (padding_counted[self.hi] - padding_counted[self.lo])
        self.enough = (overlap >= min_overlap * min(n, m)) & (overlap > 0) & (self.counts > 0)

    def sums(self, rows: np.ndarray, chunk: int = 4, workers: int | None = None) -> np.ndarray:
        """Summed percentage errors of the shifts with row indices ``rows`` (``chunk`` shifts per matrix product,
        ``workers`` threads: NumPy releases the GIL inside these array operations)."""
        ref, n = self.ref, self.n
        out = np.empty(len(rows))

        def run(starts: range) -> None:  # one thread's share of the chunks, with its own buffer
            buffer = np.empty((min(chunk, len(rows)), n))
            for start in starts:
                picked = rows[start:start + chunk]
                first, contiguous = picked[0], picked[-1] - picked[0] == len(picked) - 1
                windows = self.windows[first:first + len(picked)] if contiguous else self.windows[picked]
                diff = buffer[:len(picked)]
                np.subtract(windows, ref, out=diff)
                np.abs(diff, out=diff)
                if self.weight is not None:
                    out[start:start + len(picked)] = diff @ self.weight
                else:
                    scale = np.abs(windows) + self.magnitude
                    np.divide(2 * diff, scale, out=diff, where=scale > 0)
                    diff[scale == 0] = 0.0
                    out[start:start + len(picked)] = diff.sum(axis=1)

        starts = range(0, len(rows), chunk)
        default = (os.cpu_count() or 1) if len(rows) * n > 4_000_000 else 1  # small jobs: threads cost more
        threads = max(1, min(workers or default, len(starts)))
        if threads == 1:
            run(starts)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(run, [starts[i::threads] for i in range(threads)]))
        return out - self.padding_error * self.outside[rows]

    def lower_bounds(self, block: int, rows: np.ndarray | None = None) -> np.ndarray:
        """A lower bound of the summed error (classic MAPE) of the shifts with row indices ``rows`` (default all):
        over blocks of ``block`` reference frames that are all counted and lie inside the overlap,
        min(weight) x |sum(a) - sum(b shifted)|, by the triangle inequality. The estimate's block sums at every
        offset come from one cumulative sum, and block j's row over the shifts is a slice of them (a strided
        view), so the bounds of all shifts cost one pass over a (blocks x shifts) matrix."""
        n_blocks = self.n // block
        centre = float(self.est.mean())  # sums of (a - c) and (b - c) have the same gap; centred sums round less
        a = (self.ref[:n_blocks * block] - centre).reshape(n_blocks, block).sum(axis=1)
        usable = self.counted[:n_blocks * block].reshape(n_blocks, block).all(axis=1)
        min_weight = np.where(usable, self.weight[:n_blocks * block].reshape(n_blocks, block).min(axis=1), 0.0)
        cumulative = np.concatenate([[0.0], np.cumsum(self.est - centre)])
        sums_at = cumulative[block:] - cumulative[:-block]  # estimate sum over [o, o + block) for every offset o
        # offset of block j at shift row k is j * block + k - max_shift; NaN outside the estimate contributes 0
        padded = np.full(self.max_shift + max(len(sums_at), n_blocks * block) + self.max_shift + 1, np.nan)
        padded[self.max_shift:self.max_shift + len(sums_at)] = sums_at
        view = np.lib.stride_tricks.as_strided(padded, (n_blocks, len(self.shifts)),
                                               (block * padded.strides[0], padded.strides[0]), writeable=False)
        view = view if rows is None else view[:, rows]
        gap = np.abs(view - a[:, None])
        np.nan_to_num(gap, copy=False, nan=0.0)
        return min_weight @ gap


def mape_shifts(reference: np.ndarray, estimate: np.ndarray, max_shift: int, *, denominator: str = "reference",
                eps: float = 1e-3, min_overlap: float = 0.5, chunk: int = 4, workers: int | None = None
                ) -> np.ndarray:
    """MAPE of ``estimate`` against ``reference`` for every shift ``s`` in ``-max_shift..max_shift`` frames
    (``reference[t]`` against ``estimate[t + s]`` over their overlap); NaN where the overlap is too short.

    Vectorised: the estimate is zero-padded and viewed as one sliding window per shift (no copy); ``chunk``
    shifts at a time form a matrix of absolute differences whose weighted row sums are one matrix-vector
    product. ``workers`` threads (default: one per core) share the chunks. Inputs must be finite (see
    :func:`prepare_series`).
    """
    search = _ShiftSearch(reference, estimate, max_shift, denominator, eps, min_overlap)
    sums = search.sums(np.arange(len(search.shifts)), chunk, workers)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(search.enough, sums / np.maximum(search.counts, 1), np.nan)


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


def best_shift_mape(reference: np.ndarray, estimate: np.ndarray, max_shift: int, *, denominator: str = "reference",
                    eps: float = 1e-3, min_overlap: float = 0.5, blocks: tuple[int, ...] = (512, 128, 32)
                    ) -> tuple[float, int | None]:
    """The smallest MAPE over the shifts and the shift (frames; ``estimate`` lags by it) that gives it; NaN and
    None when no shift has a reference value to divide by (a signal that stays at zero).

    Exactly the minimum of :func:`mape_shifts` (ties: the smallest shift), found with far less arithmetic, in the
    manner of the UCR suite's lower bounds: the shifts are ranked by a cheap lower bound
    (:meth:`_ShiftSearch.lower_bounds`, coarse ``blocks`` first), the best-ranked few are computed exactly, and
    every shift whose bound exceeds the best exact value is dropped before the next, tighter bound and the final
    exact pass. The symmetric MAPE has no such bound here and computes every shift.
    """
    search = _ShiftSearch(reference, estimate, max_shift, denominator, eps, min_overlap)
    candidates = np.flatnonzero(search.enough)
    if not len(candidates):
        return float("nan"), None
    if denominator == "reference":
        best, exact = np.inf, np.zeros(0, dtype=np.int64)
        for block in blocks:
            bounds = search.lower_bounds(block, candidates) / search.counts[candidates]
            if not np.isfinite(best):
                exact = candidates[np.argsort(bounds, kind="stable")[:4]]  # the likeliest shifts, computed exactly
                best = float(np.min(search.sums(exact) / search.counts[exact]))
            # a shift whose bound exceeds the best value cannot win; the slack covers rounding (near-ties stay)
            candidates = np.union1d(candidates[bounds <= best * (1 + 1e-9) + 1e-9], exact)
    values = search.sums(candidates) / search.counts[candidates]
    k = int(np.argmin(values))  # candidates are in shift order: the first minimum is the smallest shift
    return float(values[k]), int(search.shifts[candidates[k]])


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
