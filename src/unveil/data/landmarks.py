"""68-point facial landmarks from the offline models packages ship: dlib's shape predictor (dlib-bin +
face_recognition_models) and mediapipe's 478-point face mesh (mediapipe 0.10.21) mapped onto the 68 points.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from unveil.data.faces import call_quietly, quiet_native_logs
from unveil.errors import UnveilError

#: Mesh vertex closest on average to each iBUG-68 point. Derived here, not copied: dlib's 68 points and the
#: mesh were computed on every fifth frame of the six talking-face clips of the project's shared test data
#: (196 frames with one face), and each dlib point took the mesh vertex with the smallest mean distance on
#: half of the frames. On the other half the mean error is 3.9 % of the inter-ocular distance (eyes 1.8 %,
#: nose and mouth 3.2 %, brows 4.3 %, jaw 6.5 %: the two models disagree most on the jaw line).
MESH_TO_68 = np.array(
    [127, 227, 177, 215, 172, 136, 149, 148, 152, 377, 378, 365, 397, 435, 401, 454, 356,
     70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
     168, 197, 195, 4, 75, 97, 2, 326, 305,
     33, 160, 158, 155, 153, 144, 382, 385, 387, 263, 373, 380,
     61, 39, 37, 0, 267, 269, 306, 405, 314, 17, 84, 91, 78, 82, 13, 312, 308, 317, 14, 87]
)


@dataclass(frozen=True)
class Landmarks:
    """The 68 points of one face (pixels) and how sure the model is (0 when no face was found)."""

    points: np.ndarray | None  # (68, 2) or None
    confidence: float
    mesh: np.ndarray | None = None  # (478, 3) for the mesh model, x and y in pixels

    @property
    def found(self) -> bool:
        return self.points is not None


class Landmarker(Protocol):
    """Finds one face's 68 landmarks in an RGB frame."""

    def __call__(self, image: np.ndarray) -> Landmarks: ...


def face_recognition_models_dir() -> Path:
    """The folder of dlib model files that the ``face_recognition_models`` package ships.

    The package is located without importing it (its ``__init__`` needs pkg_resources, which current
    setuptools no longer has).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UnveilError("The dlib landmark models are missing; install them with "
                          "'pip install dlib-bin face_recognition_models'.")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibLandmarker:
    """dlib's HOG face detector + 68-point shape predictor (iBUG 300-W order, the order FACS.md uses).

    The detector runs on a copy at most ``detect_width`` pixels wide (HOG cost grows with the area; faces in
    talking-head video stay large enough); the landmarks are fitted at full resolution.
    """

    def __init__(self, upsample: int = 0, detect_width: int = 480) -> None:
        try:
            import dlib
        except ImportError:
            raise UnveilError("dlib is not installed; install it with 'pip install dlib-bin'.") from None
        model = face_recognition_models_dir() / "shape_predictor_68_face_landmarks.dat"
        if not model.is_file():
            raise UnveilError(f"The dlib 68-point model is missing at {model}.")
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(model))
        self._dlib = dlib
        self.upsample, self.detect_width = upsample, detect_width

    def fit(self, image: np.ndarray, box: tuple[float, float, float, float]) -> Landmarks:
        """The 68 points inside a known face box ``(x, y, w, h)``, without detecting (e.g. a fixed session box).

        The confidence is NaN: the shape predictor gives no score of its own.
        """
        shape = self.shape(image, box)
        return Landmarks(np.array([[p.x, p.y] for p in shape.parts()], dtype=float), float("nan"))

    def shape(self, image: np.ndarray, box: tuple[float, float, float, float]):  # noqa: ANN201 - dlib's type
        """dlib's own shape object for a face box (what dlib's face descriptor needs)."""
        x, y, w, h = box
        rect = self._dlib.rectangle(int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h)))
        return self._predictor(np.ascontiguousarray(image), rect)

    def detect(self, image: np.ndarray) -> tuple[tuple[float, float, float, float], float] | None:
        """The most confident HOG face box ``(x, y, w, h)`` in full-resolution pixels and its score, or None."""
        image = np.ascontiguousarray(image)
        scale = min(1.0, self.detect_width / image.shape[1])
        small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        # HOG finds faces of 80 px and more; frames under 320 px wide (e.g. the 128 px benchmark) are searched at
        # twice their size at least.
        upsample = self.upsample if small.shape[1] >= 320 else max(self.upsample, 1)
        boxes, scores, _ = self._detector.run(small, upsample, 0.0)
        if not boxes:
            return None
        best = int(np.argmax(scores))
        b = boxes[best]
        return ((b.left() / scale, b.top() / scale, (b.right() - b.left()) / scale, (b.bottom() - b.top()) / scale),
                float(scores[best]))

    def __call__(self, image: np.ndarray) -> Landmarks:
        found = self.detect(image)
        if found is None:
            return Landmarks(None, 0.0)
        box, score = found
        # HOG scores are unbounded margins; squash to (0, 1) so every backend reports a comparable confidence.
        return Landmarks(self.fit(image, box).points, float(1 / (1 + np.exp(-2 * score))))


class MeshLandmarker:
    """mediapipe's face mesh (478 points with irises), with its 68-point subset by :data:`MESH_TO_68`.

    ``video=True`` tracks across consecutive frames (faster, steadier); use False for unrelated images. The
    legacy mesh API reports no per-face score and keeps tracking through partial cover, so the confidence is
    that of mediapipe's face detector on the same frame (0 when it finds no face above ``min_confidence``):
    it drops when a hand or an obstruction hides the face while the mesh still places its points.
    """

    def __init__(self, video: bool = True, min_confidence: float = 0.5) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        import mediapipe as mp

        from unveil.data.faces import MediapipeFaceDetector

        with quiet_native_logs():
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=not video, max_num_faces=1, refine_landmarks=True,
                min_detection_confidence=min_confidence, min_tracking_confidence=min_confidence)
        self._detector = MediapipeFaceDetector("full", min_confidence=0.05)

    def __call__(self, image: np.ndarray) -> Landmarks:
        h, w = image.shape[:2]
        image = np.ascontiguousarray(image)
        result = call_quietly(self._mesh.process, image)
        if not result.multi_face_landmarks:
            return Landmarks(None, 0.0)
        mesh = np.array([[p.x * w, p.y * h, p.z * w] for p in result.multi_face_landmarks[0].landmark])
        detections = self._detector.detect(image)
        return Landmarks(mesh[MESH_TO_68, :2].copy(), detections[0].score if detections else 0.0, mesh)

    def close(self) -> None:
        self._mesh.close()
        self._detector.close()


def make_landmarker(name: Literal["dlib68", "mesh"] | str = "dlib68", video: bool = True) -> Landmarker:
    """A 68-point landmarker by name: ``dlib68`` or ``mesh``."""
    if name == "dlib68":
        return DlibLandmarker()
    if name == "mesh":
        return MeshLandmarker(video=video)
    raise UnveilError(f"Unknown landmark model '{name}'; choose dlib68 or mesh.")
