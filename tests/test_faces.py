"""Face boxes, crops and landmarks, checked against what is known independently: the synthetic benchmark's
landmark table, what the clips show (judged by eye: a face leaves / enters), and a second landmark model."""

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from unveil.data.faces import Box, BoxSmoother, CropTransform, FaceTracker, make_detector
from unveil.data.landmarks import DlibLandmarker, MeshLandmarker
from unveil.data.video import read_frames
from unveil.synth.generate import RecordingJob, render_recording

from conftest import tiny_config


def test_paste_equals_blending_the_whole_frame() -> None:
    """paste blends only the box's footprint (cached weight); the result is the whole-frame blend's, bit for bit,
    also for boxes partly outside the frame and gray frames."""
    rng = np.random.default_rng(0)
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(20, 200, 2))
        gray = trial % 4 == 0
        frame = rng.integers(0, 256, (h, w) if gray else (h, w, 3), dtype=np.uint8)
        side = float(rng.uniform(5, 1.5 * max(h, w)))
        transform = CropTransform(Box(float(rng.uniform(-side / 2, w)), float(rng.uniform(-side / 2, h)), side, side),
                                  int(rng.integers(8, 100)))
        crop = rng.integers(0, 256, (transform.size,) * 2 + (() if gray else (3,)), dtype=np.uint8)
        feather = float(rng.choice([0.0, 0.06, 0.2]))
        inverse = cv2.invertAffineTransform(transform.matrix)
        back = cv2.warpAffine(crop, inverse, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        seam = np.zeros((transform.size,) * 2, np.float32)
        edge = max(1, int(round(feather * transform.size)))
        seam[edge:-edge, edge:-edge] = 1.0
        seam = cv2.GaussianBlur(seam, (0, 0), edge / 2) if edge > 1 else seam
        alpha = cv2.warpAffine(seam, inverse, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        alpha = alpha if gray else alpha[..., None]
        expected = np.clip(np.rint(frame * (1 - alpha) + back.astype(np.float32) * alpha), 0, 255).astype(np.uint8)
        assert np.array_equal(transform.paste(frame, crop, feather), expected), trial


def test_crop_and_paste_back_round_trip() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    transform = CropTransform(Box(40.0, 20.0, 64.0, 64.0), 64)  # scale 1: the crop is exactly the pixels
    crop = transform.crop(frame)
    assert np.array_equal(crop, frame[20:84, 40:104])
    pasted = transform.paste(frame, 255 - crop, feather=0.1)
    assert np.array_equal(pasted[:, :30], frame[:, :30])  # outside the box untouched
    assert np.array_equal(pasted[40:64, 60:84], 255 - frame[40:64, 60:84])  # inside the feathered border: crop
    point = np.array([70.0, 50.0, 1.0])
    np.testing.assert_allclose(transform.matrix @ point, [30.0, 30.0])


def test_crop_outside_the_frame_replicates_edges() -> None:
    frame = np.full((50, 50, 3), 7, np.uint8)
    crop = CropTransform(Box(-20, -20, 100, 100), 50).crop(frame)
    assert crop.shape == (50, 50, 3) and np.all(crop == 7)


def test_smoother_steadies_jitter_and_follows_jumps() -> None:
    rng = np.random.default_rng(1)
    smoother = BoxSmoother(0.8)
    raw = [Box(100 + rng.normal(0, 3), 80 + rng.normal(0, 3), 60, 60) for _ in range(200)]
    smooth = np.array([smoother.update(b).centre for b in raw])
    assert np.std(smooth[50:, 0]) < 0.4 * np.std([b.centre[0] for b in raw[50:]])
    jumped = smoother.update(Box(400, 80, 60, 60))
    assert jumped.centre[0] == pytest.approx(430)  # a new face restarts the average


def test_detector_box_holds_the_synthetic_face(tmp_path: Path) -> None:
    job = RecordingJob(tiny_config(size=128, format="png"), tmp_path, 0, 0, "normal", 1, "sentence")
    rec = render_recording(job)
    table = pd.read_parquet(tmp_path / rec.frames)
    tracker = FaceTracker(make_detector(), margin=0.0, smoothing=0.0)
    for frame in read_frames(tmp_path / rec.media):
        if frame.index % 5:
            continue
        tracked = tracker(frame.image)
        assert tracked.face_found
        row = table.iloc[frame.index]
        eyes_nose_mouth = [30, 36, 45, 48, 54]
        xs = row[[f"x_{i}" for i in eyes_nose_mouth]].to_numpy()
        ys = row[[f"y_{i}" for i in eyes_nose_mouth]].to_numpy()
        b = tracked.box
        assert np.all((xs > b.x) & (xs < b.x + b.w) & (ys > b.y) & (ys < b.y + b.h))


@pytest.mark.parametrize(("name", "present", "absent"), [
    ("face_noface.mov", range(0, 65), range(80, 150)),
    ("noface_face.mov", range(100, 166), range(0, 80)),
])
def test_no_face_flags_where_the_face_is_gone(shared_data: Path, name: str, present: range, absent: range) -> None:
    tracker = FaceTracker(make_detector(), no_face="mark")
    flags = np.array([tracker(f.image).face_found for f in read_frames(shared_data / "videos" / name)])
    assert flags[list(present)].all()
    assert not flags[list(absent)].any()


def test_hand_over_the_face_lowers_confidence(shared_data: Path) -> None:
    tracker = FaceTracker(make_detector(), no_face="mark")
    results = [tracker(f.image) for f in read_frames(shared_data / "videos" / "WolfgangLanger_Pexels.mp4")]
    confidence = np.array([r.confidence for r in results])
    before, hand = confidence[:150], confidence[155:200]  # the hand passes over the face here (seen by eye)
    assert (before > 0).mean() > 0.95 and np.median(before) > 0.8
    assert (hand == 0).sum() >= 10 and np.median(hand) < 0.5


def test_mesh_68_agrees_with_dlib_68(shared_data: Path) -> None:
    """Two independent models: mediapipe's mesh mapped to 68 points lands near dlib's 68 points."""
    dlib68, mesh = DlibLandmarker(), MeshLandmarker(video=False)
    errors = []
    for frame in read_frames(shared_data / "videos" / "talking_3.mp4"):
        if frame.index % 4:
            continue
        a, b = dlib68(frame.image), mesh(frame.image)
        assert a.found and b.found
        iod = np.linalg.norm(a.points[36] - a.points[45])
        errors.append(np.linalg.norm(a.points - b.points, axis=1) / iod)
    errors = np.array(errors)
    assert errors.mean() < 0.06 and np.median(errors[:, 36:48]) < 0.04
