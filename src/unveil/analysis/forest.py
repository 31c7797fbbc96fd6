"""The paper's landmark AU model: a random decision forest (Breiman 2001) from 68 landmarks to AU intensities.

Features are the 136 coordinates after :func:`~unveil.analysis.geometry.align` (roll, position and size
removed). The forest is fitted by scikit-learn and stored as plain arrays in safetensors (no pickle: a
model file never runs code); prediction walks those arrays with NumPy, identical to scikit-learn's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from unveil.analysis.base import FrameResult
from unveil.analysis.geometry import align
from unveil.analysis.landmark import Box4, LandmarkAnalyzer
from unveil.errors import UnveilError
from unveil.facs import au_columns
from unveil.files import atomic_path


def landmark_features(points: np.ndarray) -> np.ndarray:
    """``(n, 68, 2)`` landmarks -> ``(n, 136)`` roll-, shift- and scale-free features."""
    return align(points).reshape(len(points), -1)


@dataclass
class LandmarkForest:
    """A fitted regression forest as flat arrays: node ``i`` of any tree has children ``left[i]`` / ``right[i]``
    (global indices, -1 at leaves), tests ``feature[i] <= threshold[i]`` and predicts ``value[i]`` at a leaf."""

    outputs: tuple[str, ...]
    roots: np.ndarray
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray  # (n_nodes, n_outputs)
    landmarks: str = "dlib68"  # which landmark model produced the training features

    @staticmethod
    def fit(points: np.ndarray, labels: np.ndarray, outputs: Sequence[str], *, trees: int = 100,
            min_samples_leaf: int = 2, seed: int = 0, landmarks: str = "dlib68", n_jobs: int | None = None
            ) -> LandmarkForest:
        """Fit on landmarks ``(n, 68, 2)`` and labels ``(n, len(outputs))``."""
        from sklearn.ensemble import RandomForestRegressor

        if len(points) != len(labels) or len(points) < 2:
            raise UnveilError(f"A forest needs at least 2 labelled faces; got {len(points)} faces, {len(labels)} labels.")
        model = RandomForestRegressor(n_estimators=trees, min_samples_leaf=min_samples_leaf, random_state=seed,
                                      n_jobs=n_jobs)
        model.fit(landmark_features(points), np.asarray(labels, dtype=np.float64).reshape(len(points), -1))
        return LandmarkForest.from_sklearn(model, outputs, landmarks)

    @staticmethod
    def from_sklearn(model, outputs: Sequence[str], landmarks: str = "dlib68") -> LandmarkForest:  # noqa: ANN001
        """Flatten a fitted ``RandomForestRegressor`` (or one decision tree regressor)."""
        estimators = getattr(model, "estimators_", [model])
        roots, lefts, rights, features, thresholds, values = [], [], [], [], [], []
        offset = 0
        for estimator in estimators:
            t = estimator.tree_
            roots.append(offset)
            leaf = t.children_left < 0
            lefts.append(np.where(leaf, -1, t.children_left + offset))
            rights.append(np.where(leaf, -1, t.children_right + offset))
            features.append(np.where(leaf, 0, t.feature))
            thresholds.append(t.threshold)
            values.append(t.value.reshape(t.node_count, -1))
            offset += t.node_count
        return LandmarkForest(tuple(outputs), np.array(roots, dtype=np.int64), np.concatenate(lefts).astype(np.int64),
                              np.concatenate(rights).astype(np.int64), np.concatenate(features).astype(np.int64),
                              np.concatenate(thresholds).astype(np.float64),
                              np.concatenate(values).astype(np.float64), landmarks)

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        """Mean leaf value over the trees for feature rows ``x`` -> ``(n, n_outputs)``."""
        x = np.asarray(x, dtype=np.float64)
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        rows = np.arange(len(x))[:, None]
        while True:
            inner = self.left[node] >= 0
            if not inner.any():
                break
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        return self.value[node].mean(axis=1)

    def predict(self, points: np.ndarray) -> np.ndarray:
        """AU intensities for landmarks ``(n, 68, 2)``."""
        return self.predict_features(landmark_features(points))

    def save(self, path: str | os.PathLike[str]) -> Path:
        from safetensors.numpy import save_file

        arrays = {"roots": self.roots, "left": self.left, "right": self.right, "feature": self.feature,
                  "threshold": self.threshold, "value": self.value}
        meta = {"format": "unveil-landmark-forest", "outputs": json.dumps(list(self.outputs)),
                "landmarks": self.landmarks}
        with atomic_path(path) as tmp:
            save_file(arrays, str(tmp), metadata=meta)
        return Path(path)

    @staticmethod
    def load(path: str | os.PathLike[str]) -> LandmarkForest:
        from safetensors import SafetensorError, safe_open

        file = Path(path)
        if not file.is_file():
            raise UnveilError(f"No forest model at {file}; train one with 'unveil train classifier --features landmarks'.")
        try:
            with safe_open(str(file), framework="numpy") as f:
                meta = f.metadata() or {}
                arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
        except (SafetensorError, OSError, ValueError) as error:
            raise UnveilError(f"{file} is not a safetensors forest model ({error}).") from None
        if meta.get("format") != "unveil-landmark-forest":
            raise UnveilError(f"{file} is not a landmark forest (made by 'unveil train classifier --features landmarks').")
        return LandmarkForest(tuple(json.loads(meta["outputs"])), arrays["roots"], arrays["left"], arrays["right"],
                              arrays["feature"], arrays["threshold"], arrays["value"], meta.get("landmarks", "dlib68"))


class ForestAnalyzer:
    """Landmarks by the model the forest was trained on, then the forest's AU intensities."""

    def __init__(self, model: str | os.PathLike[str] | LandmarkForest, box: Box4 | None = None) -> None:
        self.forest = model if isinstance(model, LandmarkForest) else LandmarkForest.load(model)
        self.name = "forest"
        self.signals: tuple[str, ...] = self.forest.outputs
        self._landmarks = LandmarkAnalyzer(self.forest.landmarks, box=box)

    def __call__(self, frames: Sequence[np.ndarray]) -> list[FrameResult]:
        found = self._landmarks.landmarks(frames)
        ok = [i for i, (p, _) in enumerate(found) if p is not None]
        predicted = self.forest.predict(np.stack([found[i][0] for i in ok])) if ok else np.zeros((0, 0))
        results = [FrameResult(False, c) for _, c in found]
        for row, i in enumerate(ok):
            points, confidence = found[i]
            results[i] = FrameResult(True, confidence, dict(zip(self.signals, map(float, predicted[row]))), points)
        return results

    def close(self) -> None:
        self._landmarks.close()


@dataclass
class ForestTraining:
    """A trained forest and how well it predicts the held-out split (per AU: mean absolute error, Pearson r)."""

    path: Path
    forest: LandmarkForest
    train_faces: int
    val_faces: int
    scores: dict[str, dict[str, float]]


def train_forest(samples: str | os.PathLike[str], out: str | os.PathLike[str], *, landmarks: str = "dlib68",
                 condition: str = "normal", trees: int = 100, min_samples_leaf: int = 2, seed: int = 0,
                 progress: bool = True) -> ForestTraining:
    """Fit the landmark forest on prepared face crops with AU labels (``unveil prepare`` on a data set whose
    frames tables hold AUs, e.g. the synthetic benchmark): landmarks by ``landmarks`` on each crop of the
    ``condition`` recordings, train split to fit, val split to score. Writes ``out`` (safetensors)."""
    from unveil.data.datasets import load_image, load_samples, select
    from unveil.data.landmarks import DlibLandmarker, make_landmarker
    from unveil.progress import progress_bar

    table, root = load_samples(samples)
    outputs = au_columns(table.columns)
    if not outputs:
        raise UnveilError(f"{samples} holds no AU labels (columns AU01, ...); the forest needs labelled frames.")
    rows = select(table, {"condition": condition})
    labelled = rows.dropna(subset=outputs)
    if labelled.empty:
        raise UnveilError(f"No {condition} frames with AU labels in {samples}.")
    model = DlibLandmarker(upsample=1) if landmarks == "dlib68" else make_landmarker(landmarks, video=False)
    points, keep = [], []
    with progress_bar(len(labelled), f"landmarks ({landmarks})", progress) as advance:
        for i, image_path in enumerate(labelled["image"]):
            image = load_image(root / image_path)
            found = model(image)
            if found.points is not None:
                points.append(found.points)
                keep.append(i)
            advance(1)
    if hasattr(model, "close"):
        model.close()
    used = labelled.iloc[keep].reset_index(drop=True)
    points_array = np.array(points).reshape(-1, 68, 2)
    train_rows = (used["split"] == "train").to_numpy()
    if train_rows.sum() < 2:
        raise UnveilError(f"Landmarks were found on only {int(train_rows.sum())} training frames; cannot fit a forest.")
    labels = used[outputs].to_numpy(dtype=np.float64)
    forest = LandmarkForest.fit(points_array[train_rows], labels[train_rows], outputs, trees=trees,
                                min_samples_leaf=min_samples_leaf, seed=seed, landmarks=landmarks)
    scores: dict[str, dict[str, float]] = {}
    if (~train_rows).any():
        predicted = forest.predict(points_array[~train_rows])
        truth = labels[~train_rows]
        for k, name in enumerate(outputs):
            spread = truth[:, k].std() * predicted[:, k].std()
            r = float(np.mean((truth[:, k] - truth[:, k].mean()) * (predicted[:, k] - predicted[:, k].mean())) / spread
                      ) if spread > 0 else float("nan")
            scores[name] = {"mae": float(np.abs(predicted[:, k] - truth[:, k]).mean()), "r": r}
    path = forest.save(out)
    return ForestTraining(path, forest, int(train_rows.sum()), int((~train_rows).sum()), scores)


def forest_from_landmarks(table: pd.DataFrame, forest: LandmarkForest) -> pd.DataFrame:
    """The forest's AU time series from an existing landmark time series (same landmark model): no second pass
    over the video. Frames without a face stay NaN."""
    from unveil.analysis.base import LANDMARK_COLUMNS

    if not set(LANDMARK_COLUMNS) <= set(table.columns):
        raise UnveilError("This time series holds no landmarks (x_0..x_67, y_0..y_67) to run the forest on.")
    found = table["face_found"].to_numpy()
    points = np.stack([table[[f"x_{i}" for i in range(68)]].to_numpy(), table[[f"y_{i}" for i in range(68)]].to_numpy()],
                      axis=-1)
    values = np.full((len(table), len(forest.outputs)), np.nan)
    if found.any():
        values[found] = forest.predict(points[found])
    predicted = pd.DataFrame(values, columns=list(forest.outputs), index=table.index)
    return pd.concat([table[["frame", "time", "face_found", "confidence"]], predicted, table[list(LANDMARK_COLUMNS)]],
                     axis=1)
