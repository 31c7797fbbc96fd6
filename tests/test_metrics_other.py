"""SSIM (scikit-image reference), detection scores (closed forms), identity distance (real faces)."""

from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from unveil.data.video import read_frames
from unveil.metrics.classification import accuracy, f1, fdr
from unveil.metrics.images import ssim



def test_ssim_matches_scikit_image_and_masks() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 30, size=a.shape), 0, 255).astype(np.uint8)
    expected = structural_similarity(a, b, channel_axis=2, data_range=255)
    assert ssim(a, b) == pytest.approx(expected)
    assert ssim(a, a) == pytest.approx(1.0)
    mask = np.zeros((48, 48), bool)
    mask[:, :24] = True
    c = b.copy()
    c[:, :24] = a[:, :24]  # equal inside the mask, except where the 7x7 window reaches across column 24
    assert ssim(a, c, mask=mask[:, :]) > ssim(a, c) and ssim(a, c, mask=mask) > 0.9


def test_detection_scores_closed_form() -> None:
    truth = np.array([[1, 0], [1, 1], [0, 0], [0, 1], [1, 0]])
    predicted = np.array([[1, 1], [0, 1], [0, 0], [1, 1], [1, 0]])
    # label 0: TP 2, FP 1, FN 1; label 1: TP 2, FP 1, FN 0
    np.testing.assert_allclose(f1(truth, predicted), [4 / 6, 4 / 5])
    np.testing.assert_allclose(fdr(truth, predicted), [1 / 3, 1 / 3])
    assert accuracy(truth, predicted) == pytest.approx(7 / 10)
    assert np.isnan(fdr(np.array([1, 1]), np.array([0, 0])))[0]


@pytest.mark.slow
def test_identity_distance_separates_people(shared_data: Path) -> None:
    from unveil.metrics.identity import SAME_PERSON, FaceDescriptor, identity_distance

    describe = FaceDescriptor()
    faces = {name: [describe(f.image) for f in read_frames(shared_data / "videos" / f"{name}.mp4", only={0, 40})]
             for name in ("talking_1", "talking_2", "talking_3")}
    for name, (first, later) in faces.items():
        assert identity_distance(first, later) < 0.5, name
    for a in faces:
        for b in faces:
            if a != b:
                assert identity_distance(faces[a][0], faces[b][1]) > SAME_PERSON + 0.1, (a, b)
    assert np.isnan(identity_distance(None, faces["talking_1"][0]))
