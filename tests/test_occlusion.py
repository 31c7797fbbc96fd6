"""Occlusion masks are exact: inside, the occluded frame differs from the hidden clean one; outside, it is
identical (checked on the written lossless PNG frames)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unveil.data.video import read_frames
from unveil.synth.generate import RecordingJob, face_coverage, render_recording, subject_identity
from unveil.synth.occluders import OCCLUDERS

from conftest import tiny_config


@pytest.mark.parametrize("occluder", OCCLUDERS)
def test_mask_covers_exactly_what_changed(tmp_path: Path, occluder: str) -> None:
    config = tiny_config(occluders=[occluder], size=96, tasks=["emotion"], emotion_repetitions=1)
    job = RecordingJob(config, tmp_path, 0, 0, "occluded", 1, "emotion")
    recording = render_recording(job)
    frames = zip(read_frames(tmp_path / recording.media), read_frames(tmp_path / recording.ground_truth),
                 read_frames(tmp_path / recording.mask, gray=True), strict=True)
    covered_frames = 0
    for occluded, clean, mask in frames:
        inside = mask.image > 0
        assert set(np.unique(mask.image)) <= {0, 255}
        assert np.array_equal(occluded.image[~inside], clean.image[~inside])
        if inside.any():
            covered_frames += 1
            changed = np.any(occluded.image[inside] != clean.image[inside], axis=-1)
            assert changed.mean() > 0.98, f"{occluder}: only {changed.mean():.1%} of masked pixels differ"
    assert covered_frames > 0
    assert covered_frames == recording.n_frames or occluder == "hand"


def test_semg_hides_about_half_the_face(tmp_path: Path) -> None:
    config = tiny_config(size=128)
    recording = render_recording(RecordingJob(config, tmp_path, 0, 0, "occluded", 1, "sentence"))
    coverage = pd.read_parquet(tmp_path / recording.frames)["coverage"]
    assert 0.35 < coverage.mean() < 0.6  # "around 50 % of the crucial facial areas" (seed 000)


def test_hand_passes_leave_most_frames_clear(tmp_path: Path) -> None:
    config = tiny_config(occluders=["hand"], tasks=["schaede"], schaede_repetitions=1)
    recording = render_recording(RecordingJob(config, tmp_path, 0, 0, "occluded", 1, "schaede"))
    coverage = pd.read_parquet(tmp_path / recording.frames)["coverage"].to_numpy()
    assert 0.05 < np.mean(coverage > 0) < 0.7 and coverage.max() > 0.1


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_patch_levels_grow(tmp_path: Path, level: int) -> None:
    config = tiny_config(occluders=["patch"], patch_level=level, size=128)
    recording = render_recording(RecordingJob(config, tmp_path, 0, 0, "occluded", 1, "sentence"))
    coverage = pd.read_parquet(tmp_path / recording.frames)["coverage"].mean()
    target = (0.1, 0.2, 0.3, 0.4)[level - 1]
    assert target * 0.5 < coverage < target * 1.2


def test_coverage_of_a_full_mask_is_one() -> None:
    from unveil.synth.render import Pose

    identity = subject_identity(0, 0)
    pose = Pose(30, 64, 50, 0.0)
    full = np.full((128, 128), 255, np.uint8)
    assert face_coverage(full, identity, identity.shape, pose) == 1.0
    assert face_coverage(np.zeros_like(full), identity, identity.shape, pose) == 0.0
