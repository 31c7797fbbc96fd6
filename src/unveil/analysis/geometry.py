"""Action-Unit measures from 68 landmarks (iBUG order, FACS.md): the geometry a landmark AU model sees.

Every measure is a distance in units of the inter-ocular distance (outer eye corners 36 and 45), taken after
rotating the face so that the eye line is horizontal (head roll does not change it) with "up" pointing to the
forehead. They are raw geometry, not intensities: a neutral face has non-zero values that differ between
people, and a larger value means more of the AU. Point numbers below are 0-based.

| column | AU | measure (per face side, then averaged) |
|---|---|---|
| AU01 | inner brow raiser | height of the inner brow ends 21 / 22 above the inner eye corners 39 / 42 |
| AU02 | outer brow raiser | height of the outer brow ends 17 / 26 above the outer eye corners 36 / 45 |
| AU04 | brow lowerer | minus the gap between the inner brow ends 21 and 22, minus their mean height (AU01's measure) |
| AU05 | upper lid raiser | eye opening: mean distance of upper lid 37 / 38 to lower lid 41 / 40 (43 / 44 to 47 / 46) |
| AU09 | nose wrinkler | minus the drop from the eye-corner line to the nose tip 33 |
| AU10 | upper lip raiser | minus the gap between the nose base 33 and the top of the upper lip 51 |
| AU12 | lip corner puller | height of the mouth corners 48 / 54 above the lips' centre (62 + 66) / 2 |
| AU15 | lip corner depressor | minus AU12's measure (the corners below the lips' centre) |
| AU17 | chin raiser | minus the gap between the nose base 33 and the lower lip 57 (the chin pushes the lip up) |
| AU20 | lip stretcher | mouth width, corner 48 to corner 54 |
| AU23 | lip tightener | minus the lips' red height: 51 to 62 plus 66 to 57 |
| AU25 | lips part | inner lip gap 62 to 66 |
| AU26 | jaw drop | drop from the eye-corner line to the chin 8 |
| AU43 | eyes closed | minus AU05's measure |

AU15 and AU43 mirror AU12 and AU05 on purpose (the same geometry read the other way, as detectors report both).
"""

from __future__ import annotations

import numpy as np

from unveil.errors import UnveilError

#: The columns :func:`au_measures` returns, in order.
GEOMETRY_AUS: tuple[str, ...] = ("AU01", "AU02", "AU04", "AU05", "AU09", "AU10", "AU12", "AU15", "AU17", "AU20",
                                 "AU23", "AU25", "AU26", "AU43")


def align(points: np.ndarray) -> np.ndarray:
    """Landmarks ``(..., 68, 2)`` in image pixels -> roll-free face coordinates in inter-ocular units.

    The origin is the midpoint of the outer eye corners, x runs from 36 to 45, and y points up (to the brows).
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-2:] != (68, 2):
        raise UnveilError(f"Expected 68 landmarks with x and y, got an array of shape {p.shape}.")
    left, right = p[..., 36, :], p[..., 45, :]
    axis = right - left
    iod = np.linalg.norm(axis, axis=-1, keepdims=True)
    iod = np.where(iod > 0, iod, np.nan)
    ex = axis / iod  # unit vector along the eye line
    ey = np.stack([ex[..., 1], -ex[..., 0]], axis=-1)  # perpendicular, pointing up in a y-down image
    centred = p - ((left + right) / 2)[..., None, :]
    return np.stack([(centred * ex[..., None, :]).sum(-1), (centred * ey[..., None, :]).sum(-1)], axis=-1) / iod[..., None]


def au_measures(points: np.ndarray) -> dict[str, np.ndarray]:
    """The measures of the module table for landmarks ``(n, 68, 2)`` (or one face ``(68, 2)``)."""
    a = align(points)
    x, y = a[..., 0], a[..., 1]

    def dist(i: int, j: int) -> np.ndarray:
        return np.hypot(x[..., i] - x[..., j], y[..., i] - y[..., j])

    inner_brow = ((y[..., 21] - y[..., 39]) + (y[..., 22] - y[..., 42])) / 2
    outer_brow = ((y[..., 17] - y[..., 36]) + (y[..., 26] - y[..., 45])) / 2
    eye_open = (dist(37, 41) + dist(38, 40) + dist(43, 47) + dist(44, 46)) / 4
    lips_centre = (y[..., 62] + y[..., 66]) / 2
    corner_lift = ((y[..., 48] - lips_centre) + (y[..., 54] - lips_centre)) / 2
    return {
        "AU01": inner_brow,
        "AU02": outer_brow,
        "AU04": -dist(21, 22) - inner_brow,
        "AU05": eye_open,
        "AU09": y[..., 33],  # the eye line is y = 0, so this is minus the drop to the nose tip
        "AU10": -dist(33, 51),
        "AU12": corner_lift,
        "AU15": -corner_lift,
        "AU17": -dist(33, 57),
        "AU20": dist(48, 54),
        "AU23": -(dist(51, 62) + dist(66, 57)),
        "AU25": dist(62, 66),
        "AU26": -y[..., 8],
        "AU43": -eye_open,
    }
