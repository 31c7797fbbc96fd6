"""Identity kept? dlib's 128-d face descriptor (ResNet, face_recognition_models) and the distance between two
faces' descriptors: below 0.6 dlib calls them the same person (99.38 % on LFW)."""

from __future__ import annotations

import numpy as np

from unveil.data.landmarks import DlibLandmarker, face_recognition_models_dir
from unveil.errors import UnveilError

SAME_PERSON = 0.6


class FaceDescriptor:
    """Descriptor of the most confident face of an RGB frame (None without a face)."""

    def __init__(self) -> None:
        import dlib

        model = face_recognition_models_dir() / "dlib_face_recognition_resnet_model_v1.dat"
        if not model.is_file():
            raise UnveilError(f"The dlib face descriptor model is missing at {model}.")
        self._net = dlib.face_recognition_model_v1(str(model))
        self._landmarks = DlibLandmarker(upsample=1)

    def __call__(self, image: np.ndarray, box: tuple[float, float, float, float] | None = None) -> np.ndarray | None:
        image = np.ascontiguousarray(image)
        if box is None:
            found = self._landmarks.detect(image)
            if found is None:
                return None
            box = found[0]
        shape = self._landmarks.shape(image, box)
        return np.array(self._net.compute_face_descriptor(image, shape))


def identity_distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Euclidean distance of two descriptors (NaN when either face is missing); < 0.6: same person."""
    if a is None or b is None:
        return float("nan")
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))
