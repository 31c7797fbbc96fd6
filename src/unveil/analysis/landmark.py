"""Landmark analyzers: dlib's 68 points or mediapipe's mesh, read out as the AU geometry of
:mod:`unveil.analysis.geometry` (the measures a landmark AU model such as the paper's forest sees)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from unveil.analysis.base import FrameResult
from unveil.analysis.geometry import GEOMETRY_AUS, au_measures
from unveil.data.landmarks import DlibLandmarker, Landmarker, make_landmarker
from unveil.errors import UnveilError

Box4 = tuple[float, float, float, float]


class LandmarkAnalyzer:
    """68 landmarks per frame and the AU measures they imply.

    ``box`` (x, y, w, h: the tight face box) makes ``dlib68`` fit its points there without detecting, which
    is how a fixed camera set-up with occluded faces is analysed (the HOG detector misses many of them); the
    face then always counts as found and the confidence is NaN.
    """

    def __init__(self, landmarks: str = "mesh", box: Box4 | None = None) -> None:
        if box is not None and landmarks != "dlib68":
            raise UnveilError("A fixed face box works with the dlib68 landmarks only (mediapipe always detects).")
        self.name = landmarks
        self.signals: tuple[str, ...] = GEOMETRY_AUS
        self.box = box
        self._landmarker: Landmarker = make_landmarker(landmarks, video=True)

    def landmarks(self, frames: Sequence[np.ndarray]) -> list[tuple[np.ndarray | None, float]]:
        """Per frame: the 68 points (or None) and the confidence."""
        out = []
        for image in frames:
            if self.box is not None:
                assert isinstance(self._landmarker, DlibLandmarker)
                found = self._landmarker.fit(image, self.box)
            else:
                found = self._landmarker(image)
            out.append((found.points, found.confidence))
        return out

    def __call__(self, frames: Sequence[np.ndarray]) -> list[FrameResult]:
        results = []
        for points, confidence in self.landmarks(frames):
            if points is None:
                results.append(FrameResult(False, confidence))
                continue
            values = {k: float(v) for k, v in au_measures(points).items()}
            results.append(FrameResult(True, confidence, values, points))
        return results

    def close(self) -> None:
        close = getattr(self._landmarker, "close", None)
        if close is not None:
            close()
