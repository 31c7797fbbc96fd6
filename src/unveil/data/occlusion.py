"""Occlusion synthesis on real faces: exact (occluded, clean, mask) triplets for paired training (seeds 001, 003).

Face masks are MaskTheFace's RGBA templates warped onto the 68 landmarks by their six anchor points; the other
occluders of the synthetic benchmark (sEMG electrodes and cables, glasses, hands, patches) are placed by the
similarity transform that maps the synthetic face's canonical frame onto the detected landmarks, so they move
with the face. Occluders are drawn with hard edges: the mask is exactly the set of changed pixels.
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from unveil.data.landmarks import Landmarker, make_landmarker
from unveil.data.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, open_writer, probe, read_media
from unveil.errors import UnveilError
from unveil.facs import landmark_columns
from unveil.files import atomic_path, ensure_dir
from unveil.progress import progress_bar
from unveil.synth.face import TEMPLATE, Identity, sample_identity
from unveil.synth.occluders import OCCLUDERS, FaceFrame, Occluder, Paint, build_occluder
from unveil.synth.render import Pose

#: Landmark (iBUG 68) under each MaskTheFace anchor: top corners by the ears, nose bridge, lower sides, chin.
MASK_ANCHORS: dict[str, int] = {"mask_a": 1, "mask_b": 28, "mask_c": 15, "mask_d": 4, "mask_e": 8, "mask_f": 12}
#: Landmarks that fix the face's position, scale and roll (all but the jaw line, which expressions move most).
_POSE_POINTS = np.arange(17, 68)
REAL_OCCLUDERS: tuple[str, ...] = ("mask",) + tuple(o for o in OCCLUDERS if o != "mask")


@dataclass(frozen=True)
class MaskTemplate:
    """One MaskTheFace overlay: RGBA pixels and the six anchor points (template pixels)."""

    name: str
    rgba: np.ndarray
    anchors: np.ndarray  # (6, 2) in MASK_ANCHORS order


def find_mask_templates(folder: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding ``masks.cfg`` and ``templates/`` (MaskTheFace's ``masks`` folder).

    Looked up in ``folder``, then ``$UNVEIL_MASK_TEMPLATES``; nothing is downloaded.
    """
    candidates = [Path(p) for p in (folder, os.environ.get("UNVEIL_MASK_TEMPLATES")) if p]
    for candidate in candidates:
        if (candidate / "masks.cfg").is_file():
            return candidate
    raise UnveilError("Face-mask templates not found: pass --templates (or set UNVEIL_MASK_TEMPLATES) to "
                      "MaskTheFace's 'masks' folder, the one with masks.cfg and templates/.")


def load_mask_templates(folder: str | os.PathLike[str] | None = None) -> dict[str, MaskTemplate]:
    """All templates named in ``masks.cfg``, keyed by section name (e.g. ``surgical_blue_left``)."""
    root = find_mask_templates(folder)
    parser = configparser.ConfigParser()
    parser.read(root / "masks.cfg")
    templates = {}
    for name in parser.sections():
        section = parser[name]
        if "template" not in section:  # MaskTheFace's placeholder sections ("empty", "inpaint")
            continue
        path = root / "templates" / Path(section["template"]).name
        rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:
            raise UnveilError(f"The mask template {path} is missing or has no alpha channel.")
        anchors = np.array([[float(v) for v in section[key].split(",")] for key in MASK_ANCHORS])
        templates[name] = MaskTemplate(name, cv2.cvtColor(rgba, cv2.COLOR_BGRA2RGBA), anchors)
    return templates


def head_turn(points: np.ndarray) -> float:
    """Where the nose tip lies between the jaw ends: 0.5 frontal, lower when the face turns to image-left."""
    left, right = points[0, 0], points[16, 0]
    return float((points[30, 0] - left) / max(right - left, 1e-6))


def choose_template(templates: dict[str, MaskTemplate], style: str, points: np.ndarray) -> MaskTemplate:
    """``style`` (e.g. ``surgical``) in its frontal, ``_left`` or ``_right`` view, by the head turn."""
    if style not in templates:
        frontal = sorted(n for n in templates if not n.endswith(("_left", "_right")))
        raise UnveilError(f"Unknown mask style '{style}'; choose from {', '.join(frontal)}.")
    turn = head_turn(points)
    view = "_left" if turn < 0.38 else "_right" if turn > 0.62 else ""
    return templates.get(style + view, templates[style])


class TemplateMask:
    """A face mask template warped onto the landmarks of each frame (least-squares homography of 6 anchors)."""

    name = "mask"

    def __init__(self, templates: dict[str, MaskTemplate], style: str = "surgical") -> None:
        self.templates, self.style = templates, style

    def draw_on(self, image: np.ndarray, mask: np.ndarray, points: np.ndarray) -> None:
        template = choose_template(self.templates, self.style, points)
        target = points[list(MASK_ANCHORS.values())].astype(np.float32)
        homography, _ = cv2.findHomography(template.anchors.astype(np.float32), target, 0)
        if homography is None:
            return
        h, w = image.shape[:2]
        warped = cv2.warpPerspective(template.rgba, homography, (w, h), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        covered = warped[..., 3] >= 128
        image[covered] = warped[..., :3][covered]
        mask[covered] = 255


def fit_pose(points: np.ndarray) -> Pose:
    """The similarity (scale, roll, shift) mapping the synthetic face's canonical frame onto ``points``
    (least squares over brows, eyes, nose and mouth; Umeyama 1991)."""
    src, dst = TEMPLATE[_POSE_POINTS], points[_POSE_POINTS]
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    u, sigma, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = float(np.trace(np.diag(sigma) @ d) / (a**2).sum() * len(src))
    t = mu_d - scale * rotation @ mu_s
    return Pose(scale=scale, tx=float(t[0]), ty=float(t[1]), roll=float(np.arctan2(rotation[1, 0], rotation[0, 0])))


def canonical_shape(points: np.ndarray, pose: Pose) -> np.ndarray:
    """``points`` mapped back into the canonical frame of ``pose``."""
    m = pose.matrix
    return (points - m[:, 2]) @ np.linalg.inv(m[:, :2]).T


def skin_colour(image: np.ndarray, points: np.ndarray) -> tuple[float, float, float]:
    """Median colour of both cheeks (between the jaw line, the nose wing and the mouth corner)."""
    region = np.zeros(image.shape[:2], np.uint8)
    for cheek in ([2, 3, 4, 48, 31, 40], [14, 13, 12, 54, 35, 47]):
        cv2.fillPoly(region, [np.round(points[cheek]).astype(np.int32)], 255)
    pixels = image[region > 0]
    if len(pixels) == 0:
        return (200.0, 160.0, 130.0)
    r, g, b = np.median(pixels, axis=0)
    return (float(r), float(g), float(b))


def identity_from_face(image: np.ndarray, points: np.ndarray, seed: int = 0) -> Identity:
    """A stand-in synthetic identity for a real face: its canonical shape and skin colour, so that the
    synthetic occluders (electrode sites, hand colour) fit this person."""
    base = sample_identity("real", np.random.default_rng(seed))
    shape = canonical_shape(points, fit_pose(points))
    return dataclasses.replace(base, shape=shape, skin=skin_colour(image, points),
                               eye_opening=float(shape[40, 1] - shape[38, 1]))


@dataclass
class OcclusionResult:
    """Per-frame landmarks, face flags and coverage of one occluded input, and the files written."""

    table: pd.DataFrame
    outputs: dict[str, Path]


class RealFaceOccluder:
    """Draws the chosen occluders onto successive frames of one real face."""

    def __init__(self, occluders: Sequence[str], templates: dict[str, MaskTemplate] | None = None,
                 mask_style: str = "surgical", seed: int = 0, n_frames: int = 1, fps: float = 25.0) -> None:
        for name in occluders:
            if name not in REAL_OCCLUDERS:
                raise UnveilError(f"Unknown occluder '{name}'; choose from {', '.join(REAL_OCCLUDERS)}.")
        if "mask" in occluders and templates is None:
            templates = load_mask_templates()
        self.names, self.seed, self.n_frames, self.fps = list(occluders), seed, n_frames, fps
        self.template_mask = TemplateMask(templates, mask_style) if "mask" in occluders and templates else None
        self._synthetic: list[Occluder] | None = None
        self._identity: Identity | None = None

    def _build(self, image: np.ndarray, points: np.ndarray) -> None:
        self._identity = identity_from_face(image, points, self.seed)
        rng = np.random.default_rng(self.seed)
        self._synthetic = [build_occluder(n, self._identity, subject_rng=rng, session_rng=rng, recording_rng=rng,
                                          n_frames=self.n_frames, fps=self.fps)
                           for n in self.names if n != "mask"]

    def __call__(self, image: np.ndarray, points: np.ndarray | None, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The occluded copy of ``image`` and its 0/255 mask; an unchanged copy when no face was found."""
        occluded, mask = image.copy(), np.zeros(image.shape[:2], np.uint8)
        if points is None:
            return occluded, mask
        if self._synthetic is None:
            self._build(image, points)
        if self.template_mask is not None:
            self.template_mask.draw_on(occluded, mask, points)
        if self._synthetic:
            pose = fit_pose(points)
            frame = FaceFrame(self._identity, canonical_shape(points, pose), pose, index)  # type: ignore[arg-type]
            paint = Paint(occluded, mask)
            for occluder in self._synthetic:
                occluder.draw(paint, frame)
        return occluded, mask


def occlude_media(source: str | os.PathLike[str], out: str | os.PathLike[str], occluders: Sequence[str], *,
                  templates: str | os.PathLike[str] | None = None, mask_style: str = "surgical",
                  landmarks: str = "dlib68", fmt: str = "auto", seed: int = 0, progress: bool = True
                  ) -> OcclusionResult:
    """Occlude the face in an image, a folder of images or a video; write occluded media, the mask and (for
    lossless output) the clean frames, plus ``<name>.landmarks.parquet`` (68 points, face flag, coverage).

    ``fmt``: ``png`` (lossless folders: exact triplets), ``mp4`` (H.264 occluded video with the source's audio
    and an FFV1 mask; the clean video is the source), or ``auto`` (png for images, mp4 for videos).
    """
    path = Path(source)
    if not path.exists():
        raise UnveilError(f"The input {path} does not exist.")
    is_video = path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES
    if path.is_file() and not is_video and path.suffix.lower() not in IMAGE_SUFFIXES:
        raise UnveilError(f"{path} is neither a video ({', '.join(VIDEO_SUFFIXES)}) nor an image.")
    fmt = ("mp4" if is_video else "png") if fmt == "auto" else fmt
    if fmt not in ("png", "mp4"):
        raise UnveilError(f"The output format must be png, mp4 or auto, not '{fmt}'.")
    folder = ensure_dir(out)
    info = probe(path) if (is_video or path.is_dir()) else None
    n_frames, fps = (info.n_frames, info.fps if info.fps == info.fps else 25.0) if info else (1, 25.0)
    templates_loaded = load_mask_templates(templates) if "mask" in occluders else None
    draw = RealFaceOccluder(occluders, templates_loaded, mask_style, seed, n_frames, fps)
    finder: Landmarker = make_landmarker(landmarks, video=is_video)
    stem = path.stem
    single_image = path.is_file() and not is_video
    outputs: dict[str, Path] = {}
    if fmt == "png":
        outputs = {k: folder / f"{stem}.{k}" for k in ("occluded", "clean", "mask")}
        if single_image:
            outputs = {k: folder / f"{stem}.{k}.png" for k in ("occluded", "clean", "mask")}
    else:
        outputs = {"occluded": folder / f"{stem}.occluded.mp4", "mask": folder / f"{stem}.mask.mkv"}
    rows = []
    writers = {} if single_image else {
        "occluded": open_writer(outputs["occluded"], fps, preset="veryfast",
                                audio_from=path if fmt == "mp4" and info is not None and info.has_audio else None),
        "mask": open_writer(outputs["mask"], fps, gray=True, lossless=True),
        **({"clean": open_writer(outputs["clean"], fps)} if fmt == "png" else {}),
    }
    with progress_bar(n_frames, f"occlude {path.name}", progress and n_frames > 1) as advance, \
            contextlib.ExitStack() as stack:
        for writer in writers.values():
            stack.enter_context(writer)
        for index, image in ((f.index, f.image) for f in read_media(path)):
            found = finder(image)
            if single_image and not found.found:
                raise UnveilError(f"No face was found in {path}; occluders are placed by the face's landmarks.")
            occluded, mask = draw(image, found.points, index)
            if single_image:
                for kind, pixels in (("occluded", occluded), ("clean", image), ("mask", mask)):
                    with atomic_path(outputs[kind]) as tmp:
                        cv2.imwrite(str(tmp), pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
            else:
                writers["occluded"].write(occluded)
                writers["mask"].write(mask)
                if "clean" in writers:
                    writers["clean"].write(image)
            points = found.points if found.found else np.full((68, 2), np.nan)
            rows.append([index, found.found, found.confidence, float(np.count_nonzero(mask)) / mask.size,
                         *points[:, 0], *points[:, 1]])
            advance(1)
    table = pd.DataFrame(rows, columns=["frame", "face_found", "confidence", "mask_share", *landmark_columns()])
    table_path = folder / f"{stem}.landmarks.parquet"
    with atomic_path(table_path) as tmp:
        table.to_parquet(tmp, index=False)
    outputs["landmarks"] = table_path
    if fmt == "png" and not single_image:
        outputs["manifest"] = _triplet_manifest(folder, stem, outputs, occluders, fps, len(table))
    return OcclusionResult(table, outputs)


def _triplet_manifest(folder: Path, stem: str, outputs: dict[str, Path], occluders: Sequence[str], fps: float,
                      n_frames: int) -> Path:
    """A manifest of the triplets: the clean frames as the normal recording, the occluded ones with their hidden
    truth and mask, so that 'unveil prepare' cuts paired crops for pix2pix and the other paired methods."""
    from unveil.data.manifest import Manifest, Recording, save_manifest

    subject = "".join(c if c.isalnum() or c in "_.+-" else "-" for c in stem).lstrip("_.+-") or "faces"
    common = dict(subject=subject, session="1", task="frames", fps=fps, n_frames=n_frames)
    recordings = [Recording(id=f"{subject}-clean", condition="normal", media=outputs["clean"].name, **common),
                  Recording(id=f"{subject}-occluded", condition="occluded", occluder="+".join(occluders),
                            media=outputs["occluded"].name, ground_truth=outputs["clean"].name,
                            mask=outputs["mask"].name, **common)]
    manifest = Manifest(name=f"{stem} occluded", description="written by unveil occlude", recordings=recordings,
                        root=folder)
    return save_manifest(manifest, folder / f"{stem}.manifest.yaml")
