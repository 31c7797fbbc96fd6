"""Each Action Unit moves the landmarks FACS says it moves, in the right direction, and no others."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unveil.facs import LANDMARK_GROUPS, au_column, au_columns
from unveil.synth.face import SYNTH_AUS, TEMPLATE, expression_shape, sample_identity
from unveil.synth.generate import RecordingJob, render_recording
from unveil.synth.protocols import SCHAEDE_MOVEMENTS

from conftest import tiny_config

G = LANDMARK_GROUPS
BROWS = set(G["right_brow"] + G["left_brow"])
EYES = set(G["right_eye"] + G["left_eye"])
NOSE = set(G["nose_bridge"] + G["lower_nose"])
MOUTH = set(G["outer_lips"] + G["inner_lips"])
JAW = set(G["jaw"])
UPPER_LIP = {48, 49, 50, 51, 52, 53, 54, 60, 61, 62, 63, 64}
LOWER_LIP = {48, 54, 55, 56, 57, 58, 59, 60, 64, 65, 66, 67}
CHIN = {5, 6, 7, 8, 9, 10, 11}
CHEEK_CONTOUR = {1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15}

# Where each AU may move landmarks, from the "what moves" column of FACS.md.
ALLOWED = {
    1: BROWS, 2: BROWS, 4: BROWS, 5: EYES, 6: EYES, 7: EYES, 43: EYES,
    9: NOSE | UPPER_LIP, 10: UPPER_LIP, 12: MOUTH, 14: MOUTH, 15: MOUTH, 16: LOWER_LIP,
    17: CHIN | LOWER_LIP, 18: MOUTH, 20: MOUTH, 23: MOUTH, 24: MOUTH, 25: MOUTH, 26: CHIN | JAW | MOUTH,
    34: CHEEK_CONTOUR,
}


def _eye_opening(s: np.ndarray) -> float:
    return float(np.mean(s[[41, 40, 47, 46], 1] - s[[37, 38, 43, 44], 1]))


def _lip_gap(s: np.ndarray) -> float:
    return float(np.mean(s[[67, 66, 65], 1] - s[[61, 62, 63], 1]))


def _mouth_width(s: np.ndarray) -> float:
    return float(s[54, 0] - s[48, 0])


# Direction of each AU (y grows downwards; index 21 is the subject's right inner brow end, on the image left).
DIRECTION = {
    1: lambda n, e: e[21, 1] < n[21, 1] - 0.05 and e[22, 1] < n[22, 1] - 0.05,
    2: lambda n, e: e[17, 1] < n[17, 1] - 0.05 and e[26, 1] < n[26, 1] - 0.05,
    4: lambda n, e: e[21, 1] > n[21, 1] + 0.04 and e[22, 0] - e[21, 0] < n[22, 0] - n[21, 0] - 0.04,
    5: lambda n, e: _eye_opening(e) > _eye_opening(n) + 0.02,
    6: lambda n, e: e[40, 1] < n[40, 1] - 0.01 and e[46, 1] < n[46, 1] - 0.01,
    7: lambda n, e: _eye_opening(e) < _eye_opening(n) - 0.02,
    43: lambda n, e: _eye_opening(e) < 0.005,
    9: lambda n, e: e[33, 1] < n[33, 1] - 0.02 and e[51, 1] < n[51, 1] - 0.02,
    10: lambda n, e: e[51, 1] < n[51, 1] - 0.05,
    12: lambda n, e: e[48, 1] < n[48, 1] - 0.05 and _mouth_width(e) > _mouth_width(n) + 0.08,
    14: lambda n, e: _mouth_width(e) < _mouth_width(n) - 0.04,
    15: lambda n, e: e[48, 1] > n[48, 1] + 0.05 and e[54, 1] > n[54, 1] + 0.05,
    16: lambda n, e: e[57, 1] > n[57, 1] + 0.05,
    17: lambda n, e: e[8, 1] < n[8, 1] - 0.03 and e[57, 1] < n[57, 1] - 0.03,
    18: lambda n, e: _mouth_width(e) < _mouth_width(n) - 0.1,
    20: lambda n, e: _mouth_width(e) > _mouth_width(n) + 0.1,
    23: lambda n, e: (e[57, 1] - e[51, 1]) < (n[57, 1] - n[51, 1]) - 0.02,
    24: lambda n, e: (e[57, 1] - e[51, 1]) < (n[57, 1] - n[51, 1]) - 0.03,
    25: lambda n, e: _lip_gap(e) > _lip_gap(n) + 0.04,
    26: lambda n, e: e[8, 1] > n[8, 1] + 0.1 and _lip_gap(e) > _lip_gap(n) + 0.1,
    34: lambda n, e: e[13, 0] - e[3, 0] > n[13, 0] - n[3, 0] + 0.08,
}


def test_au_columns_are_intensities_only() -> None:
    """OpenFace's ``AU12_r`` / ``AU12_c`` and a score named ``AUC`` are not AU intensity columns; order is kept."""
    columns = ["frame", "AU12", "AU12_c", "AU12_r", "AUC", "AU01", "happiness", "AU"]
    assert au_columns(columns) == ["AU12", "AU01"]


def test_every_synthetic_au_is_specified() -> None:
    assert set(ALLOWED) == set(SYNTH_AUS) == set(DIRECTION)
    assert {1, 2, 4, 5, 6, 9, 12, 15, 20, 25, 26, 43} <= set(SYNTH_AUS)  # the minimum set


@pytest.mark.parametrize("au", SYNTH_AUS)
@pytest.mark.parametrize("subject", [0, 1, 2])
def test_au_moves_its_landmarks_only(au: int, subject: int) -> None:
    neutral = sample_identity("T", np.random.default_rng(subject)).shape if subject else TEMPLATE.copy()
    moved_shape = expression_shape(neutral, {au: 1.0})
    moved = set(np.flatnonzero(np.linalg.norm(moved_shape - neutral, axis=1) > 1e-3))
    assert moved, f"AU{au} moves nothing"
    assert moved <= ALLOWED[au], f"AU{au} also moves {sorted(moved - ALLOWED[au])}"
    assert DIRECTION[au](neutral, moved_shape), f"AU{au} moves the wrong way"


def test_intensity_scales_linearly() -> None:
    neutral = TEMPLATE.copy()
    half = expression_shape(neutral, {12: 0.5}) - neutral
    full = expression_shape(neutral, {12: 1.0}) - neutral
    np.testing.assert_allclose(2 * half, full, atol=1e-12)


def test_lids_and_lips_never_cross() -> None:
    neutral = TEMPLATE.copy()
    shape = expression_shape(neutral, {5: 1.0, 43: 1.0, 24: 1.0, 7: 1.0})
    assert _eye_opening(shape) >= 0 and _lip_gap(shape) >= 0


# Schaede movements -> the landmark groups FACS says they involve (cheek raise shows on the lower lid).
SCHAEDE_REGIONS = {
    "forehead_wrinkling": {"brows"},
    "gentle_eye_closure": {"eyes"},
    "forceful_eye_closure": {"brows", "eyes", "nose", "mouth"},
    "nose_wrinkling": {"brows", "nose", "mouth"},
    "closed_mouth_smile": {"eyes", "mouth"},
    "open_mouth_smile": {"eyes", "mouth", "jaw"},
    "lip_pucker": {"mouth"},
    "cheek_blowing": {"jaw", "mouth"},
    "lower_lip_depression": {"mouth"},
    "snarl": {"nose", "mouth"},
}
REGIONS = {"brows": BROWS, "eyes": EYES, "nose": NOSE, "mouth": MOUTH, "jaw": JAW}


def _canonical(table: pd.DataFrame) -> np.ndarray:
    """Landmarks of every row mapped back to face units with the row's head pose (undo scale, shift, roll)."""
    xy = np.stack([table[[f"x_{i}" for i in range(68)]].to_numpy(),
                   table[[f"y_{i}" for i in range(68)]].to_numpy()], axis=2).astype(float)
    xy -= table[["head_x", "head_y"]].to_numpy()[:, None, :]
    roll = np.radians(table["head_roll"].to_numpy())
    c, s = np.cos(-roll)[:, None], np.sin(-roll)[:, None]
    x, y = xy[..., 0], xy[..., 1]
    return np.stack([c * x - s * y, s * x + c * y], axis=2) / table["head_scale"].to_numpy()[:, None, None]


def test_schaede_movements_on_the_landmark_table(tmp_path: Path) -> None:
    """Rendered recording: at each movement's apex, only the expected regions have moved from neutral."""
    config = tiny_config(tasks=["schaede"], schaede_repetitions=1, size=128)
    job = RecordingJob(config, tmp_path, 0, 0, "normal", 1, "schaede")
    table = pd.read_parquet(tmp_path / render_recording(job).frames)
    canonical = _canonical(table)
    blink_free = table[au_column(43)].to_numpy() == 0
    rest = (table["event"].isin(["neutral", "rest"]).to_numpy()) & blink_free
    rest &= table[[au_column(a) for a in SYNTH_AUS]].to_numpy().max(axis=1) == 0
    neutral = canonical[rest].mean(axis=0)
    for movement, regions in SCHAEDE_REGIONS.items():
        at_event = table["event"].to_numpy() == movement
        aus = SCHAEDE_MOVEMENTS[movement]
        strength = table[[au_column(a) for a in aus]].to_numpy().max(axis=1)
        apex = at_event & (strength >= 0.6 * strength[at_event].max())
        if 43 not in aus:
            apex &= blink_free
        assert apex.any(), movement
        shift = np.linalg.norm(canonical[apex].mean(axis=0) - neutral, axis=1)
        for name, members in REGIONS.items():
            biggest = shift[sorted(members)].max()
            if name in regions:
                assert biggest > 0.005, f"{movement}: {name} should move (moved {biggest:.3f})"
            else:
                assert biggest < 2e-3, f"{movement}: {name} should stay (moved {biggest:.3f})"
