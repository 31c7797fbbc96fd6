"""Occluder masks found from facial landmarks (seed 003's future work: no hand-drawn masks), for restorers that
need to know which pixels are hidden, e.g. latent inversion.

``mask``: a face mask covers the nose from a third of the way down its bridge, the mouth and the chin; the
polygon of the jaw points 1-15, moved 8 % further from the nose tip (a mask stands off the skin, below and
beside the jaw), and that bridge point. On the benchmark's masked faces it overlaps the true mask with IoU 0.84;
from the true landmarks 0.94, so dlib's landmark error on masked faces (3 % of the face width) is the rest.
The landmarks come from dlib's detector and shape model, or mediapipe's mesh where dlib finds no face.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

from unveil.errors import UnveilError

AUTO_OCCLUDERS = ("mask",)


@cache
def _landmarkers() -> tuple:
    from unveil.data.landmarks import make_landmarker

    found = []
    for name in ("dlib68", "mesh"):
        try:
            found.append(make_landmarker(name, video=False))
        except UnveilError:
            continue
    if not found:
        raise UnveilError("--mask auto needs facial landmarks: install dlib-bin with face_recognition_models, or "
                          "mediapipe 0.10.21.")
    return tuple(found)


def face_landmarks(image: np.ndarray, min_side: int = 256) -> np.ndarray:
    """The 68 landmarks of the face in ``image`` (RGB uint8), found on a copy at least ``min_side`` pixels high
    (dlib's detector misses faces under about 80 pixels, e.g. training crops); one sentence when no model finds
    a face."""
    scale = max(1.0, min_side / image.shape[0])
    big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale > 1 else image
    for landmarker in _landmarkers():
        found = landmarker(big)
        if found.found:
            return np.asarray(found.points, float) / scale
    raise UnveilError("No face was found in the image, so its occluder mask cannot be found from landmarks; "
                      "give the mask as a file instead.")


def mask_polygon(points: np.ndarray, stand_off: float = 1.08) -> np.ndarray:
    """The outline a face mask covers, from 68 landmarks (pixels)."""
    jaw = points[30] + (points[1:16] - points[30]) * stand_off
    bridge = points[27] + (points[30] - points[27]) / 3
    return np.concatenate([jaw, bridge[None]])


def occluder_mask(image: np.ndarray, occluder: str = "mask", grow: float = 0.0,
                  points: np.ndarray | None = None) -> np.ndarray:
    """A float mask in {0, 1} (1 = hidden) of ``occluder`` on the face in ``image``, from its landmarks (found,
    or given as ``points``), grown by ``grow`` times the face width."""
    if occluder not in AUTO_OCCLUDERS:
        raise UnveilError(f"Masks from landmarks exist for {', '.join(AUTO_OCCLUDERS)}, not '{occluder}'.")
    points = face_landmarks(image) if points is None else points
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(mask_polygon(points)).astype(np.int32)], 1)
    pixels = int(round(grow * (points[16, 0] - points[0, 0])))
    if pixels > 0:
        mask = cv2.dilate(mask, np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8))
    return mask.astype(np.float32)


def landmark_masks(images: list[np.ndarray], occluder: str = "mask") -> list[np.ndarray]:
    """Masks of ``occluder`` from each image's landmarks; an image without a found face gets an empty mask (so a
    restorer leaves it as it is, and a score counts it as nothing found)."""
    masks = []
    for image in images:
        try:
            masks.append(occluder_mask(image, occluder))
        except UnveilError:
            masks.append(np.zeros(image.shape[:2], np.float32))
    return masks


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks (anything > 0.5 counts as hidden)."""
    a, b = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
