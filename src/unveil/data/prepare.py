"""``unveil prepare``: manifest -> face crops of sampled frames and ``samples.parquet`` (the training set).

Every recording is decoded once, streaming: memory stays flat however long the video. Per recording it
writes ``crops/<id>/<frame>.png`` (plus ``<id>.clean`` and ``<id>.mask`` crops where the manifest gives hidden
ground truth and masks), and ``tracks/<id>.parquet`` with the crop box and face flag of every frame.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from unveil.config import Config
from unveil.data.faces import Box, CropTransform, FaceTracker, centred_square, estimate_fixed_box, make_detector
from unveil.data.manifest import Manifest, Recording
from unveil.data.sampling import sample_frames, split_train_val
from unveil.data.video import probe, read_frames
from unveil.errors import UnveilError
from unveil.files import atomic_path, ensure_dir, write_text_atomic
from unveil.progress import progress_bar

SAMPLES_NAME = "samples.parquet"


class PrepareConfig(Config):
    """Options of ``unveil prepare``; the defaults are seed 000's (fixed box, 286 px, 2 % random, 90/10)."""

    crop: Literal["fixed", "track", "none"] = Field(
        default="fixed", description="fixed: one box per recording (the head hardly moves); track: a smoothed "
                                     "box per frame; none: the centred square of the whole frame.")
    box: tuple[float, float, float, float] | None = Field(
        default=None, description="x, y, width, height of the fixed box in pixels; estimated when unset.")
    detector: Literal["mediapipe", "haar"] = "mediapipe"
    min_confidence: float = Field(default=0.7, gt=0, lt=1, description="Face detector confidence threshold.")
    margin: float = Field(default=0.6, ge=0, le=3, description="Extra size around the detected face box.")
    smoothing: float = Field(default=0.8, ge=0, lt=1, description="Box smoothing over time for crop=track.")
    no_face: Literal["hold", "mark"] = Field(
        default="hold", description="Frames without a face: hold the last box, or mark them and skip them.")
    detect_frames: int = Field(default=30, ge=1, description="Frames used to estimate a fixed box.")
    load_size: int = Field(default=286, ge=16, le=2048, description="Side of the saved square crops.")
    fraction: float = Field(default=0.02, gt=0, le=1, description="Share of each recording's frames sampled.")
    sampling: Literal["random", "equidistant"] = "random"
    val_fraction: float = Field(default=0.1, ge=0, lt=1)
    seed: int = Field(default=0, ge=0)
    image_format: Literal["png", "jpg"] = "png"
    subjects: list[str] | None = Field(default=None, description="Only these subjects (default: all).")
    conditions: list[str] | None = Field(default=None, description="Only recordings of these conditions, e.g. "
                                         "normal for an AU model's training crops (default: all).")

    @field_validator("box")
    @classmethod
    def _positive_box(cls, box: tuple[float, float, float, float] | None) -> tuple[float, float, float, float] | None:
        if box is not None and (box[2] <= 0 or box[3] <= 0):
            raise ValueError("the box needs a positive width and height")
        return box


@dataclass
class PrepareResult:
    """What ``prepare`` produced: the samples table, where it is, and the recordings that failed (with why)."""

    samples: pd.DataFrame
    path: Path
    failures: dict[str, str] = field(default_factory=dict)
    frames_decoded: int = 0


def recording_seed(seed: int, recording_id: str) -> int:
    """A per-recording seed that does not depend on the order or number of recordings."""
    return (seed * 1_000_003 + zlib.crc32(recording_id.encode())) % (2**32)


def session_boxes(recordings: list[Recording], root: Path, config: PrepareConfig) -> dict[str, Box]:
    """Fixed boxes per recording: given, or estimated once per subject and session from its normal recordings
    (same camera set-up; a face hidden by sensors may not be detectable at all), else from the recording."""
    if config.box is not None:
        return {rec.id: Box(*config.box) for rec in recordings}
    detector = make_detector(config.detector, config.min_confidence)
    boxes: dict[str, Box] = {}
    groups: dict[tuple[str, str], list[Recording]] = {}
    for rec in recordings:
        groups.setdefault((rec.subject, rec.session), []).append(rec)
    for group in groups.values():
        candidates = sorted(group, key=lambda r: r.condition != "normal")
        session_box = None
        for rec in candidates:
            try:
                frames = (f.image for f in read_frames(_resolve(root, rec.media), fps=rec.fps))
                session_box = estimate_fixed_box(frames, detector, config.margin, max_frames=config.detect_frames)
                break
            except UnveilError:
                continue
        if session_box is not None:
            boxes.update({rec.id: session_box for rec in group})
    return boxes


def recording_boxes(manifest: Manifest, recordings: list[Recording], samples: str | os.PathLike[str] | None = None
                    ) -> dict[str, Box]:
    """The face box of each recording as ``unveil prepare`` cut it: read from ``samples`` (a prepared folder or
    its samples.parquet) where the recording was prepared, else its session's box estimated from the session's
    normal recordings (:func:`session_boxes` with the default options)."""
    boxes: dict[str, Box] = {}
    if samples is not None:
        from unveil.data.datasets import load_samples

        first = load_samples(samples)[0].drop_duplicates("recording").set_index("recording")
        boxes = {rid: Box(r.box_x, r.box_y, r.box_size, r.box_size) for rid, r in first.iterrows()}
    missing = {(r.subject, r.session) for r in recordings if r.id not in boxes}
    if missing:
        estimated = session_boxes([r for r in manifest.recordings if (r.subject, r.session) in missing],
                                  manifest.root, PrepareConfig())
        boxes.update({k: v for k, v in estimated.items() if k not in boxes})
    return {r.id: boxes[r.id] for r in recordings if r.id in boxes}


def _resolve(root: Path, path: str) -> Path:
    return Path(path) if os.path.isabs(path) else root / path


def prepare_recording(rec: Recording, root: Path, out: Path, config: PrepareConfig, box: Box | None = None
                      ) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Crop the sampled frames of one recording; returns its sample rows, its per-frame track and frame count.

    ``box`` is the fixed box for ``crop="fixed"`` (see :func:`session_boxes`)."""
    cv2.setNumThreads(1)
    media = _resolve(root, rec.media)
    info = probe(media, fps=rec.fps)
    seed = recording_seed(config.seed, rec.id)
    chosen = sample_frames(info.n_frames, config.fraction, config.sampling, seed)
    split = dict(zip(chosen.tolist(), split_train_val(len(chosen), config.val_fraction, seed), strict=True))
    extra = {kind: _resolve(root, p) for kind, p in (("clean", rec.ground_truth), ("mask", rec.mask)) if p}

    tracker = None
    fixed: Box | None = None
    if config.crop == "none":
        fixed = centred_square(info.width, info.height)
    elif config.crop == "fixed":
        if box is None:
            raise UnveilError(f"No face was found in the first {config.detect_frames} frames of {media} nor of "
                              "its session's other recordings; give the box with --box.")
        fixed = box
    else:
        detector = make_detector(config.detector, config.min_confidence)
        tracker = FaceTracker(detector, config.margin, config.smoothing, config.no_face)

    labels = _label_table(rec, root)
    folders = {kind: Path(tempfile.mkdtemp(prefix=f".tmp-{rec.id}-", dir=ensure_dir(out / "crops")))
               for kind in ("image", *extra)}
    rows, track = [], []
    only = None if tracker is not None else split  # a tracker must see every frame
    streams = [read_frames(media, fps=rec.fps, only=only)] + [read_frames(p, fps=rec.fps, gray=k == "mask", only=split)
                                                              for k, p in extra.items()]
    extra_streams, seen = streams[1:], 0
    try:
        for frame in streams[0]:
            seen += 1
            frames = [frame] + ([next(s) for s in extra_streams] if frame.index in split else [])
            if tracker is not None:
                tracked = tracker(frame.image)
                box, found, confidence = tracked.box, tracked.face_found, tracked.confidence
                track.append((frame.index, frame.time, found, confidence, *(box.as_array() if box else [np.nan] * 4)))
            else:
                box, found, confidence = fixed, True, 1.0
            if frame.index not in split or box is None:
                continue
            transform = CropTransform(box, config.load_size)
            name = f"{frame.index:06d}.{config.image_format}"
            row = {"recording": rec.id, "subject": rec.subject, "session": rec.session, "take": rec.take,
                   "condition": rec.condition, "occluder": rec.occluder, "task": rec.task,
                   "frame": frame.index, "time": frame.time, "split": split[frame.index],
                   "face_found": found, "confidence": confidence,
                   "box_x": box.x, "box_y": box.y, "box_size": box.w}
            for (kind, folder), image in zip(folders.items(), frames, strict=True):
                crop = transform.crop(image.image, cv2.INTER_NEAREST if kind == "mask" else cv2.INTER_AREA)
                _write_image(folder / name, crop)
                suffix = "" if kind == "image" else f".{kind}"
                row[kind] = f"crops/{rec.id}{suffix}/{name}"
            rows.append(row)
        expected = info.n_frames if only is None else len(split)
        if seen != expected:
            raise UnveilError(f"{media} yielded {seen} of the {expected} frames expected; is it truncated?")
        for kind, folder in folders.items():
            suffix = "" if kind == "image" else f".{kind}"
            _replace_dir(folder, out / "crops" / f"{rec.id}{suffix}")
    except BaseException:
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)
        raise
    samples = pd.DataFrame(rows)
    if labels is not None and len(samples):
        samples = samples.merge(labels, on="frame", how="left")
    track_table = pd.DataFrame(track, columns=["frame", "time", "face_found", "confidence",
                                               "box_x", "box_y", "box_w", "box_h"])
    return samples, track_table, info.n_frames


def _label_table(rec: Recording, root: Path) -> pd.DataFrame | None:
    """AU intensities and event names from the recording's per-frame table, when it has one."""
    if not rec.frames:
        return None
    path = _resolve(root, rec.frames)
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise UnveilError(f"Cannot read the frame table {path}: {exc}.") from None
    keep = ["frame"] + [c for c in table.columns if c.startswith("AU") or c in ("event", "coverage")]
    return table[keep]


def _write_image(path: Path, image: np.ndarray) -> None:
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), bgr):
        raise UnveilError(f"Cannot write {path}.")


def _replace_dir(tmp: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)


def silence_native_stderr() -> None:
    """Point file descriptor 2 of this (worker) process at /dev/null."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)


def _job(args: tuple[Recording, Path, Path, PrepareConfig, Box | None]
         ) -> tuple[str, pd.DataFrame | None, pd.DataFrame | None, int, str | None]:
    rec, root, out, config, box = args
    try:
        samples, track, decoded = prepare_recording(rec, root, out, config, box)
    except UnveilError as exc:
        return rec.id, None, None, 0, str(exc)
    return rec.id, samples, track, decoded, None


def prepare(manifest: Manifest, out: str | os.PathLike[str], config: PrepareConfig | None = None, *,
            workers: int | None = None, progress: bool = True) -> PrepareResult:
    """Prepare every recording of ``manifest`` (or of ``config.subjects``) into ``out``.

    A recording that cannot be read is reported in ``failures`` and the others go on. ``samples.parquet`` is
    written last, so a folder without it is unfinished.
    """
    config = config or PrepareConfig()
    folder = ensure_dir(out).resolve()
    recordings = [r for r in manifest.recordings if (config.subjects is None or r.subject in config.subjects)
                  and (config.conditions is None or r.condition in config.conditions)]
    if not recordings:
        raise UnveilError("No recording matches; check the manifest, --subject and --condition.")
    unknown = set(config.subjects or []) - {r.subject for r in manifest.recordings}
    if unknown:
        raise UnveilError(f"The manifest has no subject {', '.join(sorted(unknown))}.")
    write_text_atomic(folder / "prepare.yaml", config.to_yaml())
    (folder / SAMPLES_NAME).unlink(missing_ok=True)
    boxes = {}
    if config.crop == "fixed":
        with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=silence_native_stderr) as pool:
            boxes = pool.submit(session_boxes, recordings, manifest.root, config).result()
    jobs = [(rec, manifest.root, folder, config, boxes.get(rec.id)) for rec in recordings]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    results = {}
    # Always in worker processes: mediapipe's native threads print set-up warnings at unpredictable moments,
    # so workers start with their C-level stderr closed; errors still come back through the futures.
    with progress_bar(len(jobs), f"prepare: {len(jobs)} recordings", progress) as advance:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=silence_native_stderr) as pool:
            futures = [pool.submit(_job, job) for job in jobs]
            for future in as_completed(futures):
                rec_id, *rest = future.result()
                results[rec_id] = rest
                advance(1)
    tables, failures, decoded = [], {}, 0
    ensure_dir(folder / "tracks")
    for rec in recordings:
        samples, track, frames, error = results[rec.id]
        if error is not None:
            failures[rec.id] = error
            continue
        decoded += frames
        tables.append(samples)
        if track is not None and len(track):
            with atomic_path(folder / "tracks" / f"{rec.id}.parquet") as tmp:
                track.to_parquet(tmp, index=False)
    samples = pd.concat([t for t in tables if len(t)], ignore_index=True) if tables else pd.DataFrame()
    path = folder / SAMPLES_NAME
    if len(samples):
        with atomic_path(path) as tmp:
            samples.to_parquet(tmp, index=False)
    return PrepareResult(samples, path, failures, decoded)
