"""Adapters to external facial-analysis tools, producing the same time-series table as every analyzer:
OpenFace's CSV output (imported, OpenFace itself is not run) and py-feat (an optional extra, run on a video).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from unveil.errors import UnveilError
from unveil.facs import au_columns

PYFEAT_EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")


def read_openface_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """OpenFace 2 ``FeatureExtraction`` CSV -> time-series table.

    AU intensities ``AUxx_r`` (0-5) become ``AUxx``, presences ``AUxx_c`` stay ``AUxx_c``, 2D landmarks
    ``x_i`` / ``y_i`` are kept, ``success`` becomes ``face_found``; OpenFace's 1-based frame numbers become
    0-based. Signals of frames without success are NaN.
    """
    file = Path(path)
    try:
        raw = pd.read_csv(file, skipinitialspace=True)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise UnveilError(f"Cannot read {file} as an OpenFace CSV ({error}).") from None
    raw.columns = [c.strip() for c in raw.columns]
    missing = [c for c in ("frame", "timestamp", "confidence", "success") if c not in raw.columns]
    if missing:
        raise UnveilError(f"{file} is not OpenFace FeatureExtraction output: it has no column {missing[0]!r}.")
    if "face_id" in raw.columns and raw["face_id"].nunique() > 1:
        raw = raw[raw["face_id"] == raw["face_id"].min()]  # one face: the first OpenFace tracked
    found = raw["success"].to_numpy() == 1
    table = pd.DataFrame({"frame": raw["frame"].to_numpy(dtype=np.int64) - 1,
                          "time": raw["timestamp"].to_numpy(dtype=np.float64), "face_found": found,
                          "confidence": raw["confidence"].to_numpy(dtype=np.float64)})
    for column in raw.columns:
        if column.startswith("AU") and column.endswith("_r"):
            table[column[:-2]] = np.where(found, raw[column].to_numpy(dtype=np.float64), np.nan)
        elif column.startswith("AU") and column.endswith("_c"):
            table[column] = np.where(found, raw[column].to_numpy(dtype=np.float64), np.nan)
    for axis in ("x", "y"):
        for i in range(68):
            if f"{axis}_{i}" in raw.columns:
                table[f"{axis}_{i}"] = np.where(found, raw[f"{axis}_{i}"].to_numpy(dtype=np.float64), np.nan)
    return table


def pyfeat_timeseries(video: str | os.PathLike[str], au_model: str = "xgb", emotion_model: str = "resmasknet",
                      device: str = "cpu") -> pd.DataFrame:
    """Run py-feat's detector over a video: AUs (``xgb`` or ``svm`` in py-feat 2; the paper used the random
    forest of py-feat 0.x, which later releases dropped) and ResMaskNet emotions, the paper's emotion model.

    py-feat is an optional extra (``pip install 'unveil[pyfeat]'``) and fetches its weights from the Hugging
    Face hub on first use; without the package or the weights this says so in one sentence.
    """
    try:
        from feat import Detector
    except ImportError:
        raise UnveilError("py-feat is not installed; install it with \"pip install 'unveil[pyfeat]'\" "
                          "(its weights are fetched from the Hugging Face hub on first use).") from None
    try:
        detector = Detector(au_model=au_model, emotion_model=emotion_model, device=device)
    except Exception as error:  # noqa: BLE001 - any failure to load py-feat's weights is the same user problem
        raise UnveilError(f"py-feat could not load its models ({type(error).__name__}: {error}); its weights come "
                          "from the Hugging Face hub: run once online or put them in py-feat's model folder.") from None
    if hasattr(detector, "detect_video"):  # py-feat 0.x
        fex = detector.detect_video(str(video))
    else:  # py-feat 2.x
        fex = detector.detect(str(video), data_type="video", progress_bar=False)
    from unveil.data.video import frame_times

    return fex_to_timeseries(pd.DataFrame(fex), frame_times(video))


def fex_to_timeseries(fex: pd.DataFrame, times: np.ndarray) -> pd.DataFrame:
    """py-feat's per-face table (``frame``, ``FaceScore``, ``AU01``..., emotion columns) as unveil's per-frame
    time series: the most confident face of each frame; frames without a face (no score) get NaN signals."""
    fex = fex.reset_index(drop=True)
    if "frame" not in fex:
        fex["frame"] = np.arange(len(fex))
    score = fex["FaceScore"].astype(np.float64) if "FaceScore" in fex else pd.Series(np.nan, index=fex.index)
    fex = fex.assign(_score=score.fillna(-1.0)).sort_values(["frame", "_score"], ascending=[True, False])
    fex = fex.drop_duplicates("frame").reset_index(drop=True)
    frame = fex["frame"].to_numpy(dtype=np.int64)
    score = fex["_score"].to_numpy(dtype=np.float64)
    found = score > 0
    table = pd.DataFrame({"frame": frame, "time": times[np.clip(frame, 0, len(times) - 1)], "face_found": found,
                          "confidence": np.where(found, score, 0.0)})
    aus = set(au_columns(fex.columns))
    for column in fex.columns:
        if column in aus or column in PYFEAT_EMOTIONS:
            table[column] = np.where(found, fex[column].to_numpy(dtype=np.float64), np.nan)
    return table
