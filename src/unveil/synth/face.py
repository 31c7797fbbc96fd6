"""Procedural face geometry: identities, the neutral 68-point shape, and Action Units as blend shapes.

Coordinates are canonical: origin between the eyes, y pointing down, one unit = the distance between the
outer eye corners (landmarks 36 and 45). An expression is the identity's neutral shape plus the AU
intensities (in [0, 1]) times per-AU landmark displacements; eye closure (AU43) then closes each upper lid
onto its lower lid. Pixels are produced by :mod:`unveil.synth.render` from these landmarks only, so the
landmark table is the ground truth of what the image shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from unveil.facs import N_LANDMARKS

#: AUs the synthetic faces can show, in table order.
SYNTH_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 16, 17, 18, 20, 23, 24, 25, 26, 34, 43)

# Left/right mirror of the 68-point scheme (index -> index on the other side; centre points map to themselves).
MIRROR = np.array(
    [16 - i for i in range(17)]
    + [26, 25, 24, 23, 22, 21, 20, 19, 18, 17]
    + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)


def _template() -> np.ndarray:
    """Mean neutral shape in canonical units (right half written out, left half mirrored)."""
    p = np.zeros((N_LANDMARKS, 2))
    theta = np.pi * np.arange(17) / 16.0
    p[:17, 0] = -0.78 * np.cos(theta)
    p[:17, 1] = 0.05 + 1.07 * np.sin(theta) ** 0.9
    right = {
        17: (-0.62, -0.18), 18: (-0.52, -0.25), 19: (-0.38, -0.28), 20: (-0.25, -0.27), 21: (-0.12, -0.23),
        27: (0.0, -0.03), 28: (0.0, 0.12), 29: (0.0, 0.26), 30: (0.0, 0.40),
        31: (-0.13, 0.46), 32: (-0.07, 0.48), 33: (0.0, 0.50),
        36: (-0.50, 0.0), 37: (-0.40, -0.055), 38: (-0.27, -0.055), 39: (-0.17, 0.0), 40: (-0.27, 0.045),
        41: (-0.40, 0.045),
        48: (-0.25, 0.72), 49: (-0.16, 0.665), 50: (-0.06, 0.635), 51: (0.0, 0.648),
        57: (0.0, 0.83), 58: (-0.07, 0.825), 59: (-0.16, 0.795),
        60: (-0.215, 0.72), 61: (-0.07, 0.712), 62: (0.0, 0.714), 66: (0.0, 0.72), 67: (-0.07, 0.718),
    }
    for i, (x, y) in right.items():
        p[i] = (x, y)
        p[MIRROR[i]] = (-x, y)
    return p


TEMPLATE: np.ndarray = _template()
TEMPLATE.setflags(write=False)

# Per-AU displacements at intensity 1 for the subject's right side and the midline (canonical units);
# the left side is mirrored. Sizes follow FACS descriptions (FACS.md); AU43 is handled separately.
_AU_MOVES: dict[int, dict[int, tuple[float, float]]] = {
    1: {21: (0.0, -0.09), 20: (0.0, -0.065), 19: (0.0, -0.035), 18: (0.0, -0.01)},
    2: {17: (-0.01, -0.09), 18: (0.0, -0.085), 19: (0.0, -0.05), 20: (0.0, -0.015)},
    4: {21: (0.035, 0.07), 20: (0.02, 0.06), 19: (0.01, 0.045), 18: (0.0, 0.025), 17: (0.0, 0.01)},
    5: {37: (0.0, -0.035), 38: (0.0, -0.035)},
    6: {40: (0.0, -0.025), 41: (0.0, -0.03)},
    7: {40: (0.0, -0.028), 41: (0.0, -0.028), 37: (0.0, 0.015), 38: (0.0, 0.015)},
    9: {31: (-0.015, -0.045), 32: (0.0, -0.04), 33: (0.0, -0.035), 29: (0.0, -0.02), 30: (0.0, -0.03),
        49: (0.0, -0.03), 50: (0.0, -0.035), 51: (0.0, -0.035), 61: (0.0, -0.02), 62: (0.0, -0.02)},
    10: {48: (0.0, -0.01), 49: (0.0, -0.06), 50: (0.0, -0.07), 51: (0.0, -0.07), 61: (0.0, -0.06),
         62: (0.0, -0.06), 60: (0.0, -0.01)},
    12: {48: (-0.06, -0.07), 60: (-0.05, -0.06), 49: (-0.02, -0.03), 59: (-0.02, -0.035),
         61: (-0.01, -0.015), 67: (-0.01, -0.02), 50: (0.0, -0.01), 58: (0.0, -0.015)},
    14: {48: (0.03, -0.01), 60: (0.03, -0.01), 49: (0.01, 0.0), 59: (0.01, 0.0)},
    15: {48: (0.0, 0.06), 60: (0.0, 0.05), 49: (0.0, 0.02), 59: (0.0, 0.02), 67: (0.0, 0.01)},
    16: {57: (0.0, 0.07), 58: (0.0, 0.07), 59: (0.0, 0.05), 66: (0.0, 0.07), 67: (0.0, 0.065)},
    17: {8: (0.0, -0.04), 7: (0.0, -0.03), 6: (0.0, -0.015), 57: (0.0, -0.04), 58: (0.0, -0.035),
         59: (0.0, -0.02), 66: (0.0, -0.015), 67: (0.0, -0.015)},
    18: {48: (0.075, 0.0), 60: (0.065, 0.0), 49: (0.04, -0.01), 59: (0.04, 0.01), 50: (0.01, -0.01),
         58: (0.01, 0.01), 51: (0.0, -0.012), 57: (0.0, 0.012), 61: (0.03, 0.0), 67: (0.03, 0.0)},
    20: {48: (-0.07, 0.02), 60: (-0.065, 0.02), 49: (-0.03, 0.005), 59: (-0.03, 0.01), 61: (-0.02, 0.0),
         67: (-0.02, 0.0)},
    23: {48: (0.02, 0.0), 60: (0.02, 0.0), 49: (0.0, 0.015), 50: (0.0, 0.015), 51: (0.0, 0.015),
         57: (0.0, -0.015), 58: (0.0, -0.015), 59: (0.0, -0.01)},
    24: {49: (0.0, 0.02), 50: (0.0, 0.02), 51: (0.0, 0.02), 57: (0.0, -0.02), 58: (0.0, -0.02),
         59: (0.0, -0.015), 61: (0.0, 0.004), 62: (0.0, 0.004), 66: (0.0, -0.004), 67: (0.0, -0.004)},
    25: {66: (0.0, 0.05), 67: (0.0, 0.045), 57: (0.0, 0.04), 58: (0.0, 0.04), 59: (0.0, 0.025),
         61: (0.0, -0.01), 62: (0.0, -0.01)},
    26: {8: (0.0, 0.15), 7: (0.0, 0.14), 6: (0.0, 0.12), 5: (0.0, 0.08), 4: (0.0, 0.04),
         57: (0.0, 0.13), 58: (0.0, 0.125), 59: (0.0, 0.1), 66: (0.0, 0.13), 67: (0.0, 0.12),
         48: (0.0, 0.03), 60: (0.0, 0.04)},
    34: {2: (-0.03, 0.0), 3: (-0.05, 0.0), 4: (-0.055, 0.0), 5: (-0.04, 0.0), 6: (-0.02, 0.0)},
}
_UPPER_LIDS = np.array([37, 38, 43, 44])
_LOWER_LIDS = np.array([41, 40, 46, 47])  # the lower-lid point below each upper-lid point
_INNER_UPPER_LIP = np.array([61, 62, 63])
_INNER_LOWER_LIP = np.array([67, 66, 65])


def _au_basis() -> dict[int, np.ndarray]:
    basis: dict[int, np.ndarray] = {}
    for au, moves in _AU_MOVES.items():
        d = np.zeros((N_LANDMARKS, 2))
        for i, (dx, dy) in moves.items():
            d[i] = (dx, dy)
            if MIRROR[i] != i:
                d[MIRROR[i]] = (-dx, dy)
        basis[au] = d
    return basis


AU_BASIS: dict[int, np.ndarray] = _au_basis()

SKIN_TONES = np.array(  # light to deep, RGB; interpolated for a continuous, realistic range
    [(255, 226, 200), (241, 196, 168), (226, 174, 140), (200, 140, 104), (165, 106, 72), (122, 78, 52),
     (86, 56, 38)], dtype=float)
HAIR_COLOURS = np.array(
    [(20, 16, 14), (50, 34, 24), (92, 62, 38), (150, 110, 70), (200, 170, 110), (150, 70, 35),
     (150, 150, 150)], dtype=float)
IRIS_COLOURS = np.array(
    [(60, 38, 24), (95, 60, 32), (70, 110, 150), (80, 120, 80), (120, 100, 60), (110, 120, 130)],
    dtype=float)
HAIR_STYLES: tuple[str, ...] = ("short", "long", "fringe", "bald", "bun")


@dataclass(frozen=True)
class Identity:
    """One synthetic person: face geometry and colours (RGB, 0-255). Build with :func:`sample_identity`."""

    subject_id: str
    shape: np.ndarray = field(repr=False)  # neutral 68-point shape, canonical units
    skin: tuple[float, float, float]
    lips: tuple[float, float, float]
    hair: tuple[float, float, float]
    iris: tuple[float, float, float]
    hair_style: str
    brow_thickness: float  # canonical units
    forehead_height: float  # canonical units above the eye line
    eye_opening: float  # neutral upper-to-lower lid distance, canonical units
    mole: tuple[float, float] | None  # a small identifying mark, canonical position


def sample_identity(subject_id: str, rng: np.random.Generator) -> Identity:
    """Draw a plausible, distinct face: proportions vary by a few percent, colours over realistic ranges."""
    p = TEMPLATE.copy()
    # Face outline: width, jaw length, chin.
    width, length = rng.uniform(0.92, 1.1), rng.uniform(0.92, 1.08)
    p[:17, 0] *= width
    p[:17, 1] = 0.05 + (p[:17, 1] - 0.05) * length
    chin = rng.uniform(-0.04, 0.04)  # positive: broader chin
    p[6:11, 0] *= 1 + chin * np.array([0.5, 1, 0, 1, 0.5]) / 0.04 * 0.08
    # Eyes: size and spacing.
    eye_scale, spacing = rng.uniform(0.85, 1.15), rng.uniform(-0.03, 0.03)
    for eye in (range(36, 42), range(42, 48)):
        idx = np.array(eye)
        centre = p[idx].mean(axis=0)
        p[idx] = centre + (p[idx] - centre) * [1.0, eye_scale]
    p[36:42, 0] -= spacing
    p[42:48, 0] += spacing
    # Brows: height and arch.
    brow_up, arch = rng.uniform(-0.04, 0.04), rng.uniform(-0.025, 0.025)
    p[17:27, 1] -= brow_up
    p[[19, 24], 1] -= arch
    p[[18, 20, 23, 25], 1] -= arch * 0.6
    # Nose: length and width.
    nose_len, nose_w = rng.uniform(-0.05, 0.05), rng.uniform(0.85, 1.2)
    p[28:36, 1] += nose_len * np.array([0.3, 0.6, 1, 1, 1, 1, 1, 1])
    p[31:36, 0] *= nose_w
    # Mouth: width, lip thickness, height.
    mouth_w, upper, lower = rng.uniform(0.88, 1.12), rng.uniform(0.7, 1.3), rng.uniform(0.7, 1.3)
    p[48:68, 0] *= mouth_w
    line = p[[60, 64], 1].mean()
    p[49:54, 1] = line + (p[49:54, 1] - line) * upper
    p[55:60, 1] = line + (p[55:60, 1] - line) * lower
    p[48:68, 1] += nose_len * 0.8
    skin = _lerp_palette(SKIN_TONES, rng.uniform(0, 1))
    lips = tuple(float(c) for c in np.clip(np.array(skin) * [0.82, 0.55, 0.58] + [30, 8, 10], 0, 255))
    hair_colour = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.85, 1.15)
    return Identity(
        subject_id=subject_id,
        shape=p,
        skin=skin,
        lips=lips,
        hair=tuple(float(c) for c in np.clip(hair_colour, 0, 255)),
        iris=tuple(float(c) for c in IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))]),
        hair_style=HAIR_STYLES[rng.integers(len(HAIR_STYLES))],
        brow_thickness=float(rng.uniform(0.035, 0.065)),
        forehead_height=float(rng.uniform(0.72, 0.9)),
        eye_opening=float((p[40, 1] - p[38, 1])),
        mole=(float(rng.uniform(-0.5, 0.5)), float(rng.uniform(0.3, 0.9))) if rng.uniform() < 0.5 else None,
    )


def _lerp_palette(palette: np.ndarray, t: float) -> tuple[float, float, float]:
    pos = t * (len(palette) - 1)
    i = min(int(pos), len(palette) - 2)
    c = palette[i] + (palette[i + 1] - palette[i]) * (pos - i)
    return (float(c[0]), float(c[1]), float(c[2]))


def expression_shape(neutral: np.ndarray, intensities: Mapping[int, float]) -> np.ndarray:
    """Landmarks of ``neutral`` showing the given AU intensities (AU number -> value in [0, 1]).

    Blend shapes add linearly; AU43 then closes the eyes by moving each upper-lid point towards its lower-lid
    point, and the inner lips are kept from crossing, so that any combination stays a valid face.
    """
    shape = neutral.copy()
    for au, value in intensities.items():
        if au != 43 and value:
            shape += float(value) * AU_BASIS[au]
    closure = float(intensities.get(43, 0.0))
    if closure:
        shape[_UPPER_LIDS] += closure * (shape[_LOWER_LIDS] - shape[_UPPER_LIDS])
    # Lids and lips never cross (e.g. AU5 + AU43, or AU24 with small AU25).
    shape[_UPPER_LIDS, 1] = np.minimum(shape[_UPPER_LIDS, 1], shape[_LOWER_LIDS, 1])
    shape[_INNER_LOWER_LIP, 1] = np.maximum(shape[_INNER_LOWER_LIP, 1], shape[_INNER_UPPER_LIP, 1])
    return shape


def intensity_vector(intensities: Mapping[int, float]) -> np.ndarray:
    """AU intensities as an array in :data:`SYNTH_AUS` order (missing AUs are 0)."""
    return np.array([float(intensities.get(au, 0.0)) for au in SYNTH_AUS])
