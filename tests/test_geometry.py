"""Landmark AU measures: each one grows with its AU on synthetic faces, ignores head roll, position and size."""

import numpy as np
import pytest

from unveil.analysis.geometry import GEOMETRY_AUS, align, au_measures
from unveil.errors import UnveilError
from unveil.synth.face import TEMPLATE, expression_shape, sample_identity

# The AU whose blend shape each measure must follow; mirrored measures fall as their partner AU rises.
RISES_WITH = {c: int(c[2:]) for c in GEOMETRY_AUS}
FALLS_WITH = {"AU15": 12, "AU43": 5}


def _neutral(subject: int) -> np.ndarray:
    return sample_identity("T", np.random.default_rng(subject)).shape if subject else TEMPLATE.copy()


@pytest.mark.parametrize("subject", [0, 1, 2])
@pytest.mark.parametrize("column", GEOMETRY_AUS)
def test_measure_follows_its_au(column: str, subject: int) -> None:
    neutral = _neutral(subject)
    au = FALLS_WITH.get(column, RISES_WITH[column])
    sign = -1 if column in FALLS_WITH else 1
    before = au_measures(neutral)[column]
    after = au_measures(expression_shape(neutral, {au: 1.0}))[column]
    assert sign * (after - before) > 0.01, f"{column} moved {after - before:+.4f} with AU{au}"


def test_measures_ignore_roll_shift_and_scale() -> None:
    face = expression_shape(_neutral(1), {12: 0.7, 1: 0.4, 26: 0.5}) * 100
    angle = np.deg2rad(17)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 1.7 * face @ rotation.T + np.array([40.0, -12.0])
    a, b = au_measures(face), au_measures(moved)
    for column in GEOMETRY_AUS:
        assert a[column] == pytest.approx(b[column], abs=1e-9)


def test_closed_form_alignment() -> None:
    points = np.zeros((68, 2))
    points[36], points[45] = (10, 50), (30, 50)  # eye line 20 px long, horizontal
    points[8] = (20, 90)  # chin 40 px below the eye line: 2 inter-ocular distances down
    aligned = align(points)
    assert aligned[45] == pytest.approx([0.5, 0.0])
    assert aligned[8] == pytest.approx([0.0, -2.0])
    assert au_measures(points)["AU26"] == pytest.approx(2.0)


def test_batches_and_bad_shapes() -> None:
    faces = np.stack([_neutral(0), expression_shape(_neutral(0), {25: 1.0})])
    batch = au_measures(faces)
    assert batch["AU25"].shape == (2,) and batch["AU25"][1] > batch["AU25"][0]
    with pytest.raises(UnveilError, match="68 landmarks"):
        au_measures(np.zeros((5, 2)))
