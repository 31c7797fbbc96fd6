"""Write the synthetic benchmark: subjects x sessions x (normal and occluded takes) x tasks, with hidden
ground truth for every occluded recording, per-frame tables and a manifest.

The layout follows seed 000: per subject two sessions, each with one normal recording and two occluded ones.
Each recording is rendered once; the occluded video, its hidden clean twin and its mask come from the same
frames, so they agree exactly outside the occluder (before video compression).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from unveil.config import Config
from unveil.data.manifest import Manifest, Recording, save_manifest
from unveil.data.video import open_writer
from unveil.errors import UnveilError
from unveil.facs import au_column, landmark_columns
from unveil.files import atomic_path, ensure_dir, write_text_atomic
from unveil.progress import progress_bar
from unveil.synth.face import SYNTH_AUS, Identity, expression_shape, sample_identity
from unveil.synth.occluders import OCCLUDERS, PATCH_LEVELS, FaceFrame, Occluder, Paint, build_occluder
from unveil.synth.protocols import PROTOCOLS, TASKS, Timeline, build_timeline
from unveil.synth.render import Look, Pose, draw_face, face_outline, light, sample_look

MANIFEST_NAME = "manifest.yaml"
X264Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]


class SynthConfig(Config):
    """Options of ``unveil synth``. Defaults give the paper's layout at 128 px, 15 fps."""

    seed: int = Field(default=0, ge=0, description="Random seed; the same seed gives identical output.")
    subjects: int = Field(default=2, ge=1, le=1000, description="Number of synthetic people.")
    sessions: int = Field(default=2, ge=1, le=20, description="Recording sessions per subject (days).")
    normal_takes: int = Field(default=1, ge=0, le=20, description="Normal recordings per session.")
    occluded_takes: int = Field(default=2, ge=0, le=20, description="Occluded recordings per session.")
    tasks: list[str] = Field(default_factory=lambda: list(PROTOCOLS), min_length=1,
                             description="Protocols to record: schaede, emotion, sentence (seed 000's), single_au "
                                         "(each AU alone, for uncorrelated tests).")
    occluders: list[str] = Field(default_factory=lambda: ["semg"], min_length=1,
                                 description="Occluders worn in occluded takes; several are worn together.")
    size: int = Field(default=128, ge=64, le=512, description="Frame width and height in pixels (even).")
    fps: float = Field(default=15.0, ge=5, le=60, description="Frames per second.")
    format: Literal["mp4", "png"] = Field(default="mp4", description="H.264 videos or folders of PNG frames.")
    crf: int = Field(default=18, ge=0, le=51, description="H.264 constant quality (lower is better).")
    preset: X264Preset = Field(default="ultrafast", description=(
        "x264 speed preset. ultrafast: encodes about 3x faster than veryfast, decodes faster and is closer to "
        "the rendered frames at the same crf, for files about 1.6x larger."))
    schaede_repetitions: int = Field(default=3, ge=1, le=10)
    emotion_repetitions: int = Field(default=2, ge=1, le=10)
    sentence_repetitions: int = Field(default=5, ge=1, le=20)
    single_au_repetitions: int = Field(default=2, ge=1, le=20)
    patch_level: int | None = Field(default=None, ge=1, le=len(PATCH_LEVELS),
                                     description="Coverage level 1-4 of the patch occluder; random if unset.")

    @field_validator("size")
    @classmethod
    def _even(cls, size: int) -> int:
        if size % 2:
            raise ValueError(f"the frame size must be even for H.264 video, not {size}")
        return size

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str]) -> list[str]:
        for task in tasks:
            if task not in TASKS:
                raise ValueError(f"'{task}' is not a task; choose from {', '.join(TASKS)}")
        return list(dict.fromkeys(tasks))

    @field_validator("occluders")
    @classmethod
    def _known_occluders(cls, occluders: list[str]) -> list[str]:
        for name in occluders:
            if name not in OCCLUDERS:
                raise ValueError(f"'{name}' is not an occluder; choose from {', '.join(OCCLUDERS)}")
        return list(dict.fromkeys(occluders))

    @model_validator(mode="after")
    def _some_takes(self) -> SynthConfig:
        if self.normal_takes + self.occluded_takes == 0:
            raise ValueError("at least one normal or occluded take per session is needed")
        return self

    def repetitions(self, task: str) -> int:
        return int(getattr(self, f"{task}_repetitions"))


@dataclass(frozen=True)
class RecordingJob:
    """Everything needed to render one recording in a worker process."""

    config: SynthConfig
    out: Path
    subject: int  # 0-based
    session: int  # 0-based
    condition: Literal["normal", "occluded"]
    take: int  # 1-based within condition and session
    task: str

    @property
    def subject_id(self) -> str:
        return f"S{self.subject + 1:02d}"

    @property
    def folder(self) -> Path:
        return Path(self.subject_id) / f"ses{self.session + 1}" / f"{self.condition}-{self.take}"

    @property
    def recording_id(self) -> str:
        return f"{self.subject_id}-ses{self.session + 1}-{self.condition}{self.take}-{self.task}"

    def media_path(self, kind: str = "") -> str:
        """Relative path of this recording's media; ``kind`` is '', 'clean' or 'mask'."""
        suffix = {"": "", "clean": ".clean", "mask": ".mask"}[kind]
        if self.config.format == "png":
            return str(self.folder / f"{self.task}{suffix}")
        extension = ".mkv" if kind == "mask" else ".mp4"
        return str(self.folder / f"{self.task}{suffix}{extension}")


def subject_identity(seed: int, subject: int) -> Identity:
    """The identity of subject ``subject`` (0-based) for ``seed``; the same in every process."""
    return sample_identity(f"S{subject + 1:02d}", np.random.default_rng([seed, subject, 0]))


def session_look(config: SynthConfig, subject: int, session: int, identity: Identity) -> tuple[Look, Pose]:
    """Room, light, clothes and the resting head pose of one session."""
    rng = np.random.default_rng([config.seed, subject, session + 1, 1])
    look = sample_look(config.size, identity.skin, rng)
    size = config.size
    pose = Pose(scale=size * 0.25 * rng.uniform(0.94, 1.06), tx=size * (0.5 + rng.uniform(-0.03, 0.03)),
                ty=size * (0.4 + rng.uniform(-0.03, 0.03)), roll=np.radians(rng.uniform(-4, 4)))
    return look, pose


def head_motion(base: Pose, n: int, fps: float, size: int, rng: np.random.Generator) -> list[Pose]:
    """Small, smooth head movement around ``base``: scale +-2 %, shift +-1.5 % of the frame, roll +-2 deg."""
    t = np.arange(n) / fps

    def wander(amplitude: float) -> np.ndarray:
        freqs = rng.uniform(0.02, 0.25, 3)
        phases = rng.uniform(0, 2 * np.pi, 3)
        return amplitude * np.mean(np.sin(2 * np.pi * freqs[:, None] * t[None] + phases[:, None]), axis=0)

    ds, dx, dy, dr = wander(0.02), wander(0.015 * size), wander(0.015 * size), wander(np.radians(2))
    return [Pose(base.scale * (1 + ds[i]), base.tx + dx[i], base.ty + dy[i], base.roll + dr[i]) for i in range(n)]


def gaze_path(n: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Fixations with occasional saccades: (n, 2) gaze offsets in eye-width units."""
    gaze = np.zeros((n, 2))
    i = 0
    while i < n:
        length = int(rng.uniform(0.5, 3.0) * fps)
        target = rng.normal(0, 0.25, 2) if rng.uniform() < 0.4 else np.zeros(2)
        gaze[i:i + length] = target
        i += length
    return cv2.GaussianBlur(gaze, (1, 5), 0) if n >= 5 else gaze


def recording_rng(job: RecordingJob) -> np.random.Generator:
    """The recording's own random stream: its time line first, then head motion, gaze, noise and occluders."""
    condition_index = 0 if job.condition == "normal" else 1
    return np.random.default_rng([job.config.seed, job.subject, job.session + 1, 2 + condition_index, job.take,
                                  TASKS.index(job.task)])


def recording_frames(job: RecordingJob) -> int:
    """How many frames the recording will have (its time line alone, drawn as :func:`render_recording` draws it)."""
    return build_timeline(job.task, job.config.fps, recording_rng(job), job.config.repetitions(job.task)).n_frames


def render_recording(job: RecordingJob) -> Recording:
    """Render, encode and tabulate one recording; returns its manifest entry. Runs in a worker process."""
    cv2.setNumThreads(1)
    cfg = job.config
    identity = subject_identity(cfg.seed, job.subject)
    look, base_pose = session_look(cfg, job.subject, job.session, identity)
    rng = recording_rng(job)
    timeline = build_timeline(job.task, cfg.fps, rng, cfg.repetitions(job.task))
    n = timeline.n_frames
    poses = head_motion(base_pose, n, cfg.fps, cfg.size, rng)
    gaze = gaze_path(n, cfg.fps, rng)
    noise_bank = rng.normal(0, look.noise_sigma, (8, cfg.size, cfg.size, 3)).astype(np.float32)
    occluders = _occluders(job, identity, rng, n) if job.condition == "occluded" else []

    landmarks = np.zeros((n, 68, 2))
    coverage = np.zeros(n)
    encoding = {"crf": cfg.crf, "preset": cfg.preset}
    media = open_writer(job.out / job.media_path(), cfg.fps, **encoding)
    clean = open_writer(job.out / job.media_path("clean"), cfg.fps, **encoding) if occluders else None
    masks = open_writer(job.out / job.media_path("mask"), cfg.fps, gray=True, lossless=True) if occluders else None
    with media, (clean or _Null()), (masks or _Null()):
        for i in range(n):
            intensities = {au: timeline.intensities[i, k] for k, au in enumerate(SYNTH_AUS)}
            shape = expression_shape(identity.shape, intensities)
            pose = poses[i]
            landmarks[i] = pose.apply(shape)
            unlit = draw_face(identity, look, shape, pose, intensities, tuple(gaze[i]))
            noise = noise_bank[i % len(noise_bank)]
            if not occluders:
                media.write(light(unlit, look.illumination, noise))
                continue
            occluded, mask = occlude(unlit, occluders, FaceFrame(identity, shape, pose, i))
            coverage[i] = face_coverage(mask, identity, shape, pose)
            clean_lit = light(unlit, look.illumination, noise)
            hidden = mask > 0  # light is pointwise: relight only the occluded pixels
            occluded_lit = clean_lit.copy()
            occluded_lit[hidden] = light(occluded[hidden], look.illumination[hidden], noise[hidden])
            media.write(occluded_lit)
            clean.write(clean_lit)  # type: ignore[union-attr]
            masks.write(mask)  # type: ignore[union-attr]

    table = frame_table(timeline, job.task, landmarks, poses, gaze, coverage)
    frames_path = job.folder / f"{job.task}.frames.parquet"
    with atomic_path(job.out / frames_path) as tmp:
        table.to_parquet(tmp, index=False)
    return Recording(
        id=job.recording_id, subject=job.subject_id, session=str(job.session + 1), take=job.take,
        condition=job.condition, occluder="+".join(cfg.occluders) if occluders else None, task=job.task,
        media=job.media_path(), ground_truth=job.media_path("clean") if occluders else None,
        mask=job.media_path("mask") if occluders else None, frames=str(frames_path), fps=cfg.fps, n_frames=n,
    )


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _occluders(job: RecordingJob, identity: Identity, rng: np.random.Generator, n: int) -> list[Occluder]:
    cfg = job.config
    return [
        build_occluder(
            name, identity,
            subject_rng=np.random.default_rng([cfg.seed, job.subject, 0, 10 + k]),
            session_rng=np.random.default_rng([cfg.seed, job.subject, job.session + 1, 10 + k]),
            recording_rng=rng, n_frames=n, fps=cfg.fps, patch_level=cfg.patch_level,
        )
        for k, name in enumerate(cfg.occluders)
    ]


def occlude(unlit: np.ndarray, occluders: list[Occluder], frame: FaceFrame) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``occluders`` over a copy of ``unlit``; returns the occluded frame and its exact 0/255 mask."""
    occluded = unlit.copy()
    mask = np.zeros(unlit.shape[:2], np.uint8)
    paint = Paint(occluded, mask)
    for occluder in occluders:
        occluder.draw(paint, frame)
    return occluded, mask


def face_coverage(mask: np.ndarray, identity: Identity, shape: np.ndarray, pose: Pose) -> float:
    """Share of the face area (jaw line plus forehead) that ``mask`` hides."""
    face = np.zeros_like(mask)
    outline = np.round(pose.apply(face_outline(identity, shape)) * 16).astype(np.int32)
    cv2.fillPoly(face, [outline], 255, cv2.LINE_8, 4)
    area = np.count_nonzero(face)
    return float(np.count_nonzero(face & mask) / area) if area else 0.0


def frame_table(timeline: Timeline, task: str, landmarks: np.ndarray, poses: list[Pose], gaze: np.ndarray,
                coverage: np.ndarray) -> pd.DataFrame:
    """The per-frame ground truth: time, task, event, AU intensities, 68 landmarks (px), head pose, gaze and
    the share of the face the occluder hides."""
    n = timeline.n_frames
    columns: dict[str, np.ndarray] = {
        "frame": np.arange(n), "time": np.arange(n) / timeline.fps,
        "task": np.full(n, task, dtype=object), "event": timeline.events,
    }
    for k, au in enumerate(SYNTH_AUS):
        columns[au_column(au)] = timeline.intensities[:, k].astype(np.float32)
    coords = np.concatenate([landmarks[:, :, 0], landmarks[:, :, 1]], axis=1).astype(np.float32)
    columns.update(dict(zip(landmark_columns(), coords.T, strict=True)))
    columns["head_scale"] = np.array([p.scale for p in poses], np.float32)
    columns["head_x"] = np.array([p.tx for p in poses], np.float32)
    columns["head_y"] = np.array([p.ty for p in poses], np.float32)
    columns["head_roll"] = np.degrees([p.roll for p in poses]).astype(np.float32)
    columns["gaze_x"], columns["gaze_y"] = gaze[:, 0].astype(np.float32), gaze[:, 1].astype(np.float32)
    columns["coverage"] = coverage.astype(np.float32)
    return pd.DataFrame(columns)


def plan_jobs(config: SynthConfig, out: Path) -> list[RecordingJob]:
    """Every recording of the layout, in manifest order."""
    jobs = []
    for subject in range(config.subjects):
        for session in range(config.sessions):
            takes = [("normal", t) for t in range(1, config.normal_takes + 1)]
            takes += [("occluded", t) for t in range(1, config.occluded_takes + 1)]
            for condition, take in takes:
                for task in config.tasks:
                    jobs.append(RecordingJob(config, out, subject, session, condition, take, task))  # type: ignore[arg-type]
    return jobs


def generate(config: SynthConfig, out: str | os.PathLike[str], *, workers: int | None = None,
             progress: bool = True) -> Manifest:
    """Write the benchmark into ``out`` and return its manifest (written last, as ``manifest.yaml``).

    ``workers`` processes render recordings in parallel (default: one per CPU core).
    """
    root = ensure_dir(check_output_folder(out)).resolve()
    remove_previous_benchmark(root)
    write_text_atomic(root / "synth.yaml", config.to_yaml())  # marks the folder as a benchmark (in progress)
    jobs = plan_jobs(config, root)
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    results: dict[int, Recording] = {}
    with progress_bar(len(jobs), f"synth: {len(jobs)} recordings", progress) as advance:
        if workers == 1:
            for k, job in enumerate(jobs):
                results[k] = render_recording(job)
                advance(1)
        else:
            # Longest recordings first, so that no worker is left alone with a long one at the end.
            order = sorted(range(len(jobs)), key=lambda k: -recording_frames(jobs[k]))
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                futures = {pool.submit(render_recording, jobs[k]): k for k in order}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    advance(1)
    manifest = Manifest(
        name=f"unveil-synth-seed{config.seed}",
        description=f"unveil synthetic benchmark: {config.subjects} subjects, {config.size} px, {config.fps:g} fps, "
                    f"occluders {'+'.join(config.occluders)}",
        recordings=[results[k] for k in range(len(jobs))],
    )
    manifest.root = root
    save_manifest(manifest, root / MANIFEST_NAME)
    return manifest


def check_output_folder(out: str | os.PathLike[str]) -> Path:
    """Refuse an output folder that exists and holds something other than an earlier benchmark."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UnveilError(f"The output path {folder} exists and is not a folder.")
    ours = {"synth.yaml", "preview.png"}
    if folder.is_dir() and not (folder / "synth.yaml").exists() and any(p.name not in ours for p in folder.iterdir()):
        raise UnveilError(f"The output folder {folder} is not empty and holds no unveil benchmark; choose another.")
    return folder


def remove_previous_benchmark(folder: Path) -> None:
    """Delete an earlier benchmark in ``folder``: its manifest first (so that an interrupted run never looks
    complete), then the subject folders it wrote."""
    import shutil

    if not (folder / "synth.yaml").exists():
        return
    (folder / MANIFEST_NAME).unlink(missing_ok=True)
    for child in folder.iterdir():
        if child.is_dir() and child.name.startswith("S") and child.name[1:].isdigit():
            shutil.rmtree(child)
