"""Occluder masks from landmarks (seed 003's automatic masks) against the benchmark's true masks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config

from unveil.data.automask import iou, occluder_mask
from unveil.errors import UnveilError


@pytest.fixture(scope="module")
def masked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from unveil.synth import generate

    root = tmp_path_factory.mktemp("automask")
    generate(tiny_config(size=128, occluders=["mask"], normal_takes=0), root / "bench", workers=1, progress=False)
    return next((root / "bench").rglob("occluded-1"))


def _frames(take: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    table = pd.read_parquet(next(take.glob("*.frames.parquet")))
    media = next(p for p in take.iterdir() if p.is_dir() and "." not in p.name)
    out = []
    for k in range(0, len(table), max(1, len(table) // 6)):
        image = cv2.cvtColor(cv2.imread(str(media / f"{k:06d}.png")), cv2.COLOR_BGR2RGB)
        true = cv2.imread(str(media.with_name(media.name + ".mask") / f"{k:06d}.png"), cv2.IMREAD_GRAYSCALE) > 127
        points = np.stack([table.loc[k, [f"x_{i}" for i in range(68)]].to_numpy(float),
                           table.loc[k, [f"y_{i}" for i in range(68)]].to_numpy(float)], axis=1)
        out.append((image, true, points))
    return out


def test_mask_from_landmarks_overlaps_the_drawn_mask(masked: Path) -> None:
    frames = _frames(masked)
    from_truth = [iou(occluder_mask(image, points=points), true) for image, true, points in frames]
    assert np.mean(from_truth) > 0.85  # measured 0.94 here and on the 2-subject benchmark (no ear loops)
    found = [iou(occluder_mask(image), true) for image, true, _ in frames]
    assert np.mean(found) > 0.75  # measured 0.84 with dlib's landmarks on the masked faces


def test_no_face_and_unknown_occluders_are_one_sentence() -> None:
    grey = np.full((96, 96, 3), 128, np.uint8)
    with pytest.raises(UnveilError, match="No face was found"):
        occluder_mask(grey)
    with pytest.raises(UnveilError, match="exist for mask, not 'semg'"):
        occluder_mask(grey, "semg")
