"""The ``cnn`` analyzer: AU intensities and emotion probabilities per frame from an image model unveil trained
(``unveil train classifier --features pixels``), on face crops cut as ``unveil prepare`` cut its training crops.

Signals: one column per AU the model regresses (``AU12``...) and one per emotion class (``happiness``...,
softmax probabilities summing to 1). The face box is fixed when given (a fixed camera; the evaluation passes
each recording's prepare box), else mediapipe's detection per frame, squared and widened by the margin the
training crops had; with no face, the frame's signals are NaN.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from unveil.analysis.base import FrameResult
from unveil.analysis.landmark import Box4
from unveil.data.faces import Box, CropTransform, FaceTracker, make_detector
from unveil.methods.classifier import ImageModel
from unveil.methods.registry import load_analysis_model


class CNNAnalyzer:
    """Frames -> AU intensities and emotion probabilities of :class:`ImageModel` (see the module docstring)."""

    name = "cnn"

    def __init__(self, model: str | os.PathLike[str] | ImageModel, box: Box4 | None = None,
                 device: str = "cpu") -> None:
        self.model = model if isinstance(model, ImageModel) else load_analysis_model(model, device)
        self.signals = (*self.model.aus, *self.model.emotions)
        self.box = Box(*box) if box is not None else None
        self.tracker = None
        if self.box is None:
            crop = self.model.crop
            self.tracker = FaceTracker(make_detector(crop.get("detector", "mediapipe"), crop.get("min_confidence", 0.7)),
                                       margin=crop.get("margin", 0.6), no_face="mark")

    def __call__(self, frames: Sequence[np.ndarray]) -> list[FrameResult]:
        crops, results = [], []
        for frame in frames:
            if self.tracker is None:
                box, found, confidence = self.box, True, 1.0
            else:
                tracked = self.tracker(frame)
                box, found, confidence = tracked.box, tracked.face_found, tracked.confidence
            results.append(FrameResult(found, confidence))
            if found and box is not None:
                crops.append((len(results) - 1, CropTransform(box, self.model.load_size).crop(frame)))
        if crops:
            values = self.model([c for _, c in crops])
            for (i, _), row in zip(crops, values, strict=True):
                results[i].values = dict(zip(self.signals, row.tolist(), strict=True))
        return results

    def close(self) -> None:
        detector = getattr(self.tracker, "detector", None)
        if detector is not None and hasattr(detector, "close"):
            detector.close()

