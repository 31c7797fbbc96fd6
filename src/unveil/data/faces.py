"""Face boxes: detection (mediapipe 0.10.21, offline), fixed and tracked crop boxes, and crop transforms that
map a crop back into its frame so restored crops can be pasted back later.

Seed 000 uses one fixed box per recording (the head hardly moves); ``track`` follows a moving head with a
smoothed box so that crops do not jitter.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

import cv2
import numpy as np

from unveil.errors import UnveilError

NoFacePolicy = Literal["hold", "mark"]


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: top-left corner, width and height (floats; may leave the frame)."""

    x: float
    y: float
    w: float
    h: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)

    def square(self, margin: float = 0.0, shift_y: float = 0.0) -> Box:
        """A square box around this one, ``margin`` times larger, its centre moved by ``shift_y`` x size."""
        side = max(self.w, self.h) * (1 + margin)
        cx, cy = self.centre
        cy += shift_y * side
        return Box(cx - side / 2, cy - side / 2, side, side)

    def as_array(self) -> np.ndarray:
        return np.array([self.x, self.y, self.w, self.h], dtype=float)

    @staticmethod
    def from_array(a: np.ndarray) -> Box:
        return Box(float(a[0]), float(a[1]), float(a[2]), float(a[3]))


def centred_square(width: int, height: int) -> Box:
    """The largest square in the middle of a ``width`` x ``height`` frame."""
    side = min(width, height)
    return Box((width - side) / 2, (height - side) / 2, side, side)


@dataclass(frozen=True)
class Detection:
    """One face found in a frame: its box, a confidence in [0, 1] and optional keypoints (pixels)."""

    box: Box
    score: float
    keypoints: np.ndarray | None = None


class FaceDetector(Protocol):
    """Finds faces in an RGB frame, best first."""

    def detect(self, image: np.ndarray) -> list[Detection]: ...


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Silence the C++ start-up chatter of mediapipe/TFLite (written straight to fd 2)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def call_quietly(function, *args):  # noqa: ANN001, ANN201 - thin wrapper
    """Call ``function`` with native stderr silenced: mediapipe/TFLite print set-up notices from C++ at
    unpredictable calls (two dup2 calls, a few microseconds). Failures still raise."""
    with quiet_native_logs():
        return function(*args)


class MediapipeFaceDetector:
    """mediapipe's BlazeFace detector (shipped inside mediapipe 0.10.21, so it works offline).

    ``model``: ``"full"`` (faces up to about 5 m, the default) or ``"short"`` (within 2 m, faster).
    """

    def __init__(self, model: Literal["short", "full"] = "full", min_confidence: float = 0.5) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        import mediapipe as mp

        with quiet_native_logs():
            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=1 if model == "full" else 0, min_detection_confidence=min_confidence)

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        result = call_quietly(self._detector.process, np.ascontiguousarray(image))
        found = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            keypoints = np.array([[k.x * w, k.y * h] for k in det.location_data.relative_keypoints])
            found.append(Detection(Box(rel.xmin * w, rel.ymin * h, rel.width * w, rel.height * h),
                                   float(det.score[0]), keypoints))
        return sorted(found, key=lambda d: -d.score)

    def close(self) -> None:
        self._detector.close()


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade (ships with opencv 4.x): a dependency-light fallback."""

    def __init__(self) -> None:
        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise UnveilError(f"OpenCV's face cascade is missing ({path}); reinstall opencv-contrib-python<5.")

    def detect(self, image: np.ndarray) -> list[Detection]:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        faces = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                               minSize=(max(24, gray.shape[0] // 10),) * 2)
        found = [Detection(Box(float(x), float(y), float(w), float(h)), 1.0) for x, y, w, h in faces]
        return sorted(found, key=lambda d: -d.box.w * d.box.h)


def make_detector(name: str = "mediapipe", min_confidence: float = 0.7) -> FaceDetector:
    """A face detector by name: ``mediapipe`` (default) or ``haar``.

    ``min_confidence`` 0.7 (mediapipe's own default is 0.5): on the shared test clips real faces score at
    least 0.89, while blurred title text in face_noface.mov scores 0.63-0.69.
    """
    if name == "mediapipe":
        return MediapipeFaceDetector(min_confidence=min_confidence)
    if name == "haar":
        return HaarFaceDetector()
    raise UnveilError(f"Unknown face detector '{name}'; choose mediapipe or haar.")


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """A square ``image`` at ``size`` x ``size``: area filter when shrinking, bicubic when growing, nearest for a
    one-channel mask (its values stay its own)."""
    if image.shape[0] == size:
        return image
    shrink = image.shape[0] > size
    return cv2.resize(image, (size, size), interpolation=(cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
                      if image.ndim == 3 else cv2.INTER_NEAREST)


@dataclass(frozen=True)
class CropTransform:
    """How a square crop of ``size`` pixels was cut from a frame: ``box`` in frame pixels.

    ``matrix`` maps frame pixels to crop pixels; :meth:`paste` puts a (restored) crop back into the frame.
    """

    box: Box
    size: int

    @property
    def matrix(self) -> np.ndarray:
        s = self.size / self.box.w
        return np.array([[s, 0.0, -self.box.x * s], [0.0, s, -self.box.y * s]])

    def crop(self, frame: np.ndarray, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
        """Cut and resize the box from ``frame``; parts outside the frame are filled by edge replication."""
        shrinking = self.box.w > self.size
        flags = (interpolation if shrinking else cv2.INTER_LINEAR)
        if shrinking and interpolation == cv2.INTER_AREA:
            # warpAffine has no area filter: cut the box at full resolution, then resize with INTER_AREA.
            side = int(np.ceil(self.box.w))
            cut = cv2.warpAffine(frame, np.array([[1.0, 0, -self.box.x], [0, 1.0, -self.box.y]]), (side, side),
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            return cv2.resize(cut, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return cv2.warpAffine(frame, self.matrix, (self.size, self.size), flags=flags,
                              borderMode=cv2.BORDER_REPLICATE)

    def paste_weight(self, height: int, width: int, feather: float = 0.06) -> np.ndarray:
        """The weight :meth:`paste` gives the crop at each pixel of a ``height`` x ``width`` frame: 1 inside the
        box, 0 outside, blended over ``feather`` x box size at the seam (float32, read-only)."""
        return _paste_weight(self, height, width, feather)[0]

    def footprint(self, height: int, width: int, feather: float = 0.06) -> tuple[slice, slice]:
        """Rows and columns of a ``height`` x ``width`` frame that :meth:`paste` can change (its weight is 0
        everywhere else)."""
        return _paste_weight(self, height, width, feather)[1]

    def paste(self, frame: np.ndarray, crop: np.ndarray, feather: float = 0.06) -> np.ndarray:
        """``frame`` with ``crop`` resized back into the box; the seam is blended over ``feather`` x box size.
        Only the box's footprint is blended; every other pixel is the frame's."""
        h, w = frame.shape[:2]
        alpha, region = _paste_weight(self, h, w, feather)
        inverse = cv2.invertAffineTransform(self.matrix)
        back = cv2.warpAffine(crop, inverse, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        a = alpha[region][..., None] if frame.ndim == 3 else alpha[region]
        blended = frame[region].astype(np.float32) * (1 - a) + back[region].astype(np.float32) * a
        out = frame.copy()
        out[region] = np.clip(np.rint(blended), 0, 255).astype(frame.dtype)
        return out


@functools.lru_cache(maxsize=2)  # whole-frame float arrays: keep few (a fixed box needs one)
def _paste_weight(transform: CropTransform, height: int, width: int, feather: float
                  ) -> tuple[np.ndarray, tuple[slice, slice]]:
    """The paste weight over the frame and the rows / columns where it is not zero (cached: a fixed box pastes
    every frame of a video with the same weight)."""
    size = transform.size
    weight = np.zeros((size, size), np.float32)
    edge = max(1, int(round(feather * size)))
    weight[edge:-edge, edge:-edge] = 1.0
    if edge > 1:
        weight = cv2.GaussianBlur(weight, (0, 0), edge / 2)
    inverse = cv2.invertAffineTransform(transform.matrix)
    alpha = cv2.warpAffine(weight, inverse, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha.flags.writeable = False
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if not len(rows):
        return alpha, (slice(0, 0), slice(0, 0))
    return alpha, (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))


class BoxSmoother:
    """Causal smoothing of a face box over time (exponential moving average of centre and size).

    ``smoothing`` in [0, 1): weight of the past; 0 follows every detection, 0.8 gives steady crops for a head
    that moves slowly. Jumps larger than ``reset`` x box size (a new face, a cut) restart the average.
    """

    def __init__(self, smoothing: float = 0.8, reset: float = 0.5) -> None:
        if not 0 <= smoothing < 1:
            raise UnveilError(f"The box smoothing must be in [0, 1), not {smoothing}.")
        self.smoothing, self.reset = smoothing, reset
        self._state: np.ndarray | None = None  # cx, cy, side

    def update(self, box: Box) -> Box:
        cx, cy = box.centre
        current = np.array([cx, cy, box.w])
        if self._state is None or np.hypot(*(current[:2] - self._state[:2])) > self.reset * self._state[2]:
            self._state = current
        else:
            self._state = self.smoothing * self._state + (1 - self.smoothing) * current
        cx, cy, side = self._state
        return Box(cx - side / 2, cy - side / 2, side, side)


@dataclass(frozen=True)
class TrackedFrame:
    """A frame's crop box (None when no face and the policy is ``mark`` before any face was seen), whether a
    face was found in this very frame, and the detector's confidence (0 when none)."""

    box: Box | None
    face_found: bool
    confidence: float


class FaceTracker:
    """Per-frame face boxes: detect, make square with a margin, smooth over time, apply the no-face policy.

    ``margin``: extra size around the detector's box (0.6 keeps forehead and chin, as in seed 000's crops);
    ``no_face``: ``hold`` keeps the last box, ``mark`` gives no box for frames without a face.
    """

    def __init__(self, detector: FaceDetector, margin: float = 0.6, smoothing: float = 0.8,
                 no_face: NoFacePolicy = "hold", shift_y: float = -0.05) -> None:
        self.detector, self.margin, self.no_face, self.shift_y = detector, margin, no_face, shift_y
        self.smoother = BoxSmoother(smoothing)
        self._last: Box | None = None

    def __call__(self, image: np.ndarray) -> TrackedFrame:
        found = self.detector.detect(image)
        if not found:
            box = self._last if self.no_face == "hold" else None
            return TrackedFrame(box, False, 0.0)
        best = found[0]
        self._last = self.smoother.update(best.box.square(self.margin, self.shift_y))
        return TrackedFrame(self._last, True, best.score)


def estimate_fixed_box(frames: Iterator[np.ndarray], detector: FaceDetector, margin: float = 0.6,
                       shift_y: float = -0.05, max_frames: int = 30) -> Box:
    """One box for a whole recording: the median of the detections in its first ``max_frames`` frames."""
    boxes = []
    for k, image in enumerate(frames):
        if k >= max_frames:
            break
        found = detector.detect(image)
        if found:
            boxes.append(found[0].box.square(margin, shift_y).as_array())
    if not boxes:
        raise UnveilError(f"No face was found in the first {max_frames} frames; give the box explicitly.")
    return Box.from_array(np.median(np.array(boxes), axis=0))
