"""The landmark forest: NumPy prediction equals scikit-learn's, survives safetensors, learns synthetic AUs."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from unveil.analysis.forest import LandmarkForest, landmark_features
from unveil.errors import UnveilError
from unveil.synth.face import TEMPLATE, expression_shape, sample_identity


def _faces(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic faces of 5 identities with random AU12 / AU26 / AU01 intensities, randomly rolled and moved."""
    rng = np.random.default_rng(seed)
    identities = [TEMPLATE] + [sample_identity("T", np.random.default_rng(k)).shape for k in range(1, 5)]
    points, labels = [], []
    for i in range(n):
        aus = rng.uniform(0, 1, size=3)
        shape = expression_shape(identities[i % 5], {12: aus[0], 26: aus[1], 1: aus[2]})
        angle = rng.uniform(-0.2, 0.2)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points.append(rng.uniform(80, 120) * shape @ rotation.T + rng.uniform(50, 150, size=2))
        labels.append(aus)
    return np.array(points), np.array(labels)


def test_numpy_prediction_equals_scikit_learn() -> None:
    points, labels = _faces(120, 0)
    model = RandomForestRegressor(n_estimators=7, random_state=0).fit(landmark_features(points), labels)
    forest = LandmarkForest.from_sklearn(model, ["AU12", "AU26", "AU01"])
    test_points, _ = _faces(40, 1)
    x = landmark_features(test_points)
    np.testing.assert_allclose(forest.predict_features(x), model.predict(x), rtol=1e-12, atol=1e-12)


def test_forest_learns_intensities_and_round_trips(tmp_path: Path) -> None:
    points, labels = _faces(300, 2)
    forest = LandmarkForest.fit(points, labels, ["AU12", "AU26", "AU01"], trees=30)
    test_points, test_labels = _faces(60, 3)
    predicted = forest.predict(test_points)
    error = np.abs(predicted - test_labels).mean(axis=0)
    assert (error < 0.15).all(), error  # guessing the mean gives 0.25 (uniform intensities)
    loaded = LandmarkForest.load(forest.save(tmp_path / "forest.safetensors"))
    assert loaded.outputs == ("AU12", "AU26", "AU01") and loaded.landmarks == "dlib68"
    np.testing.assert_array_equal(loaded.predict(test_points), predicted)


def test_load_refuses_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(UnveilError, match="not a safetensors forest"):
        LandmarkForest.load(bad)
    with pytest.raises(UnveilError, match="No forest model"):
        LandmarkForest.load(tmp_path / "missing.safetensors")


def test_forest_from_a_landmark_time_series() -> None:
    from unveil.analysis.base import FrameResult, results_table
    from unveil.analysis.forest import forest_from_landmarks

    points, labels = _faces(80, 4)
    forest = LandmarkForest.fit(points, labels, ["AU12", "AU26", "AU01"], trees=5)
    results = [FrameResult(i != 3, 0.9, {}, points[i]) for i in range(10)]  # frame 3: no face
    table = forest_from_landmarks(results_table(range(10), np.arange(10) / 10, results, []), forest)
    expected = forest.predict(points[:10])
    found = np.arange(10) != 3
    np.testing.assert_array_equal(table[["AU12", "AU26", "AU01"]].to_numpy()[found], expected[found])
    assert table.loc[3, ["AU12", "AU26", "AU01"]].isna().all() and not table.loc[3, "face_found"]
