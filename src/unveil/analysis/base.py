"""The Analyzer protocol and the one function that runs any analyzer over a video, folder or image.

An analyzer turns frames into per-frame signals (AUs, emotions, ...) plus a face-found flag and a confidence;
:func:`analyze_media` streams a medium through it in batches and returns the time-series table every later
stage reads (``timeseries.parquet``): ``frame``, ``time``, ``face_found``, ``confidence``, one column per
signal and, for landmark-based analyzers, the 68 points as ``x_0..x_67`` / ``y_0..y_67`` in frame pixels.
Signals of frames without a face are NaN, never zero.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from unveil.files import atomic_path
from unveil.progress import progress_bar

LANDMARK_COLUMNS: tuple[str, ...] = tuple(f"x_{i}" for i in range(68)) + tuple(f"y_{i}" for i in range(68))


@dataclass
class FrameResult:
    """What an analyzer found in one frame."""

    found: bool
    confidence: float
    values: dict[str, float] = field(default_factory=dict)
    landmarks: np.ndarray | None = None  # (68, 2) frame pixels


@runtime_checkable
class Analyzer(Protocol):
    """Frames in (RGB uint8), one :class:`FrameResult` per frame out, in order; stateful across calls (video)."""

    name: str
    signals: tuple[str, ...]

    def __call__(self, frames: Sequence[np.ndarray]) -> list[FrameResult]: ...

    def close(self) -> None: ...


def results_table(indices: Sequence[int], times: Sequence[float], results: Sequence[FrameResult],
                  signals: Sequence[str]) -> pd.DataFrame:
    """The time-series table of already analysed frames (see the module docstring for its columns)."""
    n = len(results)
    columns: dict[str, np.ndarray] = {
        "frame": np.asarray(indices, dtype=np.int64), "time": np.asarray(times, dtype=np.float64),
        "face_found": np.array([r.found for r in results], dtype=bool),
        "confidence": np.array([r.confidence for r in results], dtype=np.float64),
    }
    for name in signals:
        columns[name] = np.array([r.values.get(name, np.nan) if r.found else np.nan for r in results])
    if any(r.landmarks is not None for r in results):
        points = np.full((n, 68, 2), np.nan)
        for i, r in enumerate(results):
            if r.found and r.landmarks is not None:
                points[i] = r.landmarks
        columns.update({c: points[:, i % 68, i // 68] for i, c in enumerate(LANDMARK_COLUMNS)})
    return pd.DataFrame(columns)


def analyze_frames(frames: Iterable[tuple[int, float, np.ndarray]], analyzer: Analyzer, batch_size: int = 32,
                   advance=lambda n: None) -> pd.DataFrame:  # noqa: ANN001 - a progress callback
    """Run ``analyzer`` over ``(index, time, rgb)`` triples in batches; the time-series table."""
    indices: list[int] = []
    times: list[float] = []
    results: list[FrameResult] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            results.extend(analyzer(batch))
            advance(len(batch))
            batch.clear()

    for index, time, image in frames:
        indices.append(index)
        times.append(time)
        batch.append(image)
        if len(batch) >= batch_size:
            flush()
    flush()
    return results_table(indices, times, results, analyzer.signals)


def analyze_media(source: str | os.PathLike[str], analyzer: Analyzer, *, batch_size: int = 32,
                  progress: bool = True, fps: float | None = None, every: int = 1) -> pd.DataFrame:
    """The time-series table of a video, a folder of frames (``fps`` gives its times) or one image;
    ``every`` > 1 analyses every n-th frame only (the table keeps the true frame numbers and times)."""
    from unveil.data.video import IMAGE_SUFFIXES, probe, read_frames, read_media

    path = Path(source)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        frames = ((f.index, f.time, f.image) for f in read_media(path))
        total = 1
    else:
        count = probe(path, fps=fps).n_frames
        only = range(0, count, every) if every > 1 else None
        total = len(range(0, count, every))
        frames = ((f.index, f.time, f.image) for f in read_frames(path, fps=fps, only=only))
    with progress_bar(total, f"{analyzer.name}: {path.name}", progress) as advance:
        return analyze_frames(frames, analyzer, batch_size, advance)


def write_timeseries(table: pd.DataFrame, out: str | os.PathLike[str]) -> Path:
    """Write a time-series table as parquet (or CSV by suffix), atomically."""
    target = Path(out)
    with atomic_path(target) as tmp:
        if target.suffix.lower() == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
    return target
