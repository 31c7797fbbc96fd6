"""Which frames of a recording to train on, and the train/validation split (seed 000: 2 % of the frames at
random, then 90 % / 10 %). Random selection caught blinks better than equidistant frames in the paper. Also the
evenly spread picks that tests, grids and banks take from a longer list."""

from __future__ import annotations

from typing import Literal

import numpy as np

from unveil.errors import UnveilError

Strategy = Literal["random", "equidistant"]


def sample_frames(n_frames: int, fraction: float, strategy: Strategy = "random", seed: int = 0,
                  minimum: int = 1) -> np.ndarray:
    """Sorted indices of ``round(fraction * n_frames)`` frames (at least ``minimum``, at most all).

    ``random`` draws without replacement with ``seed``; ``equidistant`` takes evenly spaced frames, the first
    one half a step in, so that both ends of the recording are treated alike.
    """
    if not 0 < fraction <= 1:
        raise UnveilError(f"The sampled fraction of frames must be in (0, 1], not {fraction}.")
    if n_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    count = int(min(n_frames, max(minimum, round(fraction * n_frames))))
    if strategy == "random":
        return np.sort(np.random.default_rng(seed).choice(n_frames, size=count, replace=False))
    if strategy == "equidistant":
        step = n_frames / count
        return np.minimum((np.arange(count) * step + step / 2).astype(np.int64), n_frames - 1)
    raise UnveilError(f"Unknown sampling strategy '{strategy}'; choose random or equidistant.")


def spread(n: int, count: int) -> np.ndarray:
    """Sorted indices of up to ``count`` of ``n`` items, evenly spread with the first and the last included."""
    return np.unique(np.linspace(0, n - 1, min(count, n)).round().astype(int))


def split_train_val(n: int, val_fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """``"train"`` / ``"val"`` labels for ``n`` samples; ``round(val_fraction * n)`` of them, at random, are val."""
    if not 0 <= val_fraction < 1:
        raise UnveilError(f"The validation fraction must be in [0, 1), not {val_fraction}.")
    labels = np.full(n, "train", dtype=object)
    n_val = int(round(val_fraction * n))
    labels[np.random.default_rng(seed).permutation(n)[:n_val]] = "val"
    return labels
