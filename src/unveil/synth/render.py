"""Rasterise a synthetic face from its landmarks with OpenCV: skin, hair, eyes, brows, nose, lips, teeth,
wrinkles and folds that appear with the Action Units that cause them, a room behind, and room light.

Everything is drawn from the 68 landmarks plus a few canonical points carried by the same head pose, so the
landmark table describes exactly what the image shows. Colours are RGB. A frame is drawn unlit
(:func:`draw_face`), occluders are drawn on top, and :func:`light` applies the session's illumination and
sensor noise pointwise, so an occluded frame and its hidden clean frame agree exactly outside the occluder.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from unveil.synth.face import Identity

_SHIFT = 4  # sub-pixel precision of OpenCV drawing: coordinates are multiplied by 2**_SHIFT
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class Pose:
    """Similarity transform from canonical face units to pixels: ``p_px = scale * R(roll) @ p + (tx, ty)``."""

    scale: float
    tx: float
    ty: float
    roll: float  # radians, positive = clockwise in the image

    @functools.cached_property
    def matrix(self) -> np.ndarray:
        c, s = np.cos(self.roll) * self.scale, np.sin(self.roll) * self.scale
        return np.array([[c, -s, self.tx], [s, c, self.ty]])

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 2) canonical points to pixel coordinates."""
        m = self.matrix
        return np.asarray(points) @ m[:, :2].T + m[:, 2]


@dataclass(frozen=True)
class Look:
    """What a recording session looks like apart from the face: room, clothes, light, camera noise."""

    background: np.ndarray = field(repr=False)  # (H, W, 3) uint8, unlit
    illumination: np.ndarray = field(repr=False)  # (H, W, 3) float32 gain per pixel and channel
    clothes: tuple[float, float, float]
    noise_sigma: float  # camera noise, grey levels


def sample_look(size: int, identity_skin: Sequence[float], rng: np.random.Generator) -> Look:
    """A session's room and light: wall colour and shapes, a directional light with a colour temperature."""
    h = w = size
    wall = rng.uniform(70, 210) * np.array([1.0, 1.0, 1.0]) + rng.uniform(-25, 25, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / size
    gradient = 1.0 + rng.uniform(-0.15, 0.15) * (xx - 0.5) + rng.uniform(-0.1, 0.1) * (yy - 0.5)
    background = np.clip(wall[None, None, :] * gradient[..., None], 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 3))):  # doors, posters, shelves
        x0, y0 = rng.uniform(-0.2, 0.9, 2) * size
        x1, y1 = x0 + rng.uniform(0.1, 0.5) * size, y0 + rng.uniform(0.1, 0.6) * size
        colour = np.clip(wall + rng.uniform(-60, 60, 3), 0, 255)
        cv2.rectangle(background, (int(x0), int(y0)), (int(x1), int(y1)), colour.tolist(), -1)
    background = cv2.GaussianBlur(background, (0, 0), size / 160)  # out of focus
    angle = rng.uniform(0, 2 * np.pi)
    direction = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)).astype(np.float32)
    gain = rng.uniform(0.85, 1.12) * (1.0 + rng.uniform(0.1, 0.35) * direction)
    temperature = 1.0 + rng.uniform(-0.06, 0.06) * np.array([1.0, 0.0, -1.0], dtype=np.float32)
    illumination = (gain[..., None] * temperature[None, None, :]).astype(np.float32)
    clothes = tuple(float(c) for c in rng.uniform(20, 230, 3))
    del identity_skin  # reserved: clothes are drawn independent of the skin
    return Look(background=background, illumination=illumination, clothes=clothes,
                noise_sigma=float(rng.uniform(0.8, 2.5)))


def _px(points: np.ndarray) -> np.ndarray:
    """Fixed-point int32 coordinates for OpenCV's sub-pixel drawing."""
    return np.round(np.asarray(points) * _ONE).astype(np.int32)


def _poly(img: np.ndarray, points: np.ndarray, colour: Sequence[float]) -> None:
    cv2.fillPoly(img, [_px(points)], [float(c) for c in colour], cv2.LINE_AA, _SHIFT)


def _line(img: np.ndarray, points: np.ndarray, colour: Sequence[float], thickness: float,
          closed: bool = False) -> None:
    cv2.polylines(img, [_px(points)], closed, [float(c) for c in colour], max(1, int(round(thickness))),
                  cv2.LINE_AA, _SHIFT)


def _ellipse(img: np.ndarray, centre: np.ndarray, axes: tuple[float, float], angle_deg: float,
             colour: Sequence[float], thickness: int = -1) -> None:
    cv2.ellipse(img, tuple(_px(centre).tolist()), (int(axes[0] * _ONE), int(axes[1] * _ONE)), angle_deg,
                0, 360, [float(c) for c in colour], thickness, cv2.LINE_AA, _SHIFT)


def _blend_strokes(img: np.ndarray, strokes: list[np.ndarray], colour: Sequence[float], alpha: float,
                   thickness: float) -> None:
    """Draw polylines with opacity ``alpha`` (wrinkles, folds) by blending a stroked copy of their region."""
    if alpha <= 0.02 or not strokes:
        return
    allpts = np.concatenate(strokes)
    pad = int(thickness) + 2
    x0, y0 = np.maximum(np.floor(allpts.min(axis=0)).astype(int) - pad, 0)
    x1, y1 = np.minimum(np.ceil(allpts.max(axis=0)).astype(int) + pad, [img.shape[1], img.shape[0]])
    if x1 <= x0 or y1 <= y0:
        return
    roi = img[y0:y1, x0:x1]
    layer = roi.copy()
    for stroke in strokes:
        _line(layer, stroke - [x0, y0], colour, thickness)
    cv2.addWeighted(layer, float(min(alpha, 1.0)), roi, 1.0 - float(min(alpha, 1.0)), 0.0, dst=roi)


def _arc(centre: Sequence[float], a: float, b: float, start: float, stop: float, n: int) -> np.ndarray:
    """Points on an ellipse arc (canonical units), angles in radians, y down (negative angles go up)."""
    return _unit_arc(start, stop, n) * [a, b] + [centre[0], centre[1]]


@functools.lru_cache(maxsize=64)
def _unit_arc(start: float, stop: float, n: int) -> np.ndarray:
    t = np.linspace(start, stop, n)
    arc = np.stack([np.cos(t), np.sin(t)], axis=1)
    arc.setflags(write=False)
    return arc


def face_outline(identity: Identity, shape: np.ndarray) -> np.ndarray:
    """Canonical polygon of the face: the jaw line (landmarks 0-16) closed by a forehead arc."""
    left, right = identity.shape[0], identity.shape[16]
    centre = ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2)
    half_width = (right[0] - left[0]) / 2
    forehead = _arc(centre, half_width, identity.forehead_height + 0.05, 0.0, -np.pi, 15)[1:-1]
    return np.concatenate([shape[:17], forehead])


def draw_face(identity: Identity, look: Look, shape: np.ndarray, pose: Pose, aus: Mapping[int, float],
              gaze: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Draw one unlit RGB frame of ``identity`` with canonical landmarks ``shape`` under ``pose``.

    ``aus`` are the intensities that produced ``shape``; they only add texture cues that landmarks cannot
    carry (wrinkles, folds, cheek bulges, teeth). ``gaze`` shifts the irises in eye-width units.
    """
    img = look.background.copy()
    s = pose.scale
    lm = pose.apply(shape)
    skin = np.array(identity.skin)
    au = {k: float(v) for k, v in aus.items()}
    T = pose.apply
    roll_deg = float(np.degrees(pose.roll))

    # Torso, neck, hair behind the head, ears.
    _ellipse(img, T(np.array([0.0, 2.35])), (1.55 * s, 0.85 * s), roll_deg, look.clothes)
    _poly(img, T(np.array([[-0.36, 0.8], [0.36, 0.8], [0.42, 1.75], [-0.42, 1.75]])), skin * 0.82)
    hair = np.array(identity.hair)
    jaw_half = (identity.shape[16, 0] - identity.shape[0, 0]) / 2
    if identity.hair_style == "long":
        back = np.concatenate([_arc((0, 0.0), jaw_half * 1.22, identity.forehead_height + 0.22, 0, -np.pi, 16),
                               [[-jaw_half * 1.25, 1.45], [jaw_half * 1.25, 1.45]]])
        _poly(img, T(back), hair * 0.85)
    elif identity.hair_style == "bun":
        _ellipse(img, T(np.array([0.0, -identity.forehead_height - 0.32])), (0.3 * s, 0.26 * s), roll_deg,
                 hair * 0.9)
    for side, ear in ((-1, lm[1]), (1, lm[15])):
        outward = (lm[15] - lm[1]) / np.linalg.norm(lm[15] - lm[1])
        _ellipse(img, ear + side * outward * 0.05 * s, (0.09 * s, 0.19 * s), roll_deg, skin * 0.9)

    # Face with soft shading towards its edge.
    outline = T(face_outline(identity, shape))
    _draw_shaded_skin(img, outline, skin, s)
    if identity.mole is not None:
        _ellipse(img, T(np.array(identity.mole)), (0.018 * s, 0.018 * s), 0, skin * 0.45)

    # Cheeks: raised by AU6 / AU12, puffed by AU34.
    lift = 0.05 * (au.get(6, 0) + 0.5 * au.get(12, 0))
    for x in (-0.42, 0.42):
        centre = T(np.array([x * (1 + 0.1 * au.get(34, 0)), 0.36 - lift]))
        axes = ((0.17 + 0.06 * au.get(34, 0)) * s, (0.11 + 0.03 * au.get(34, 0)) * s)
        _blend_ellipse(img, centre, axes, roll_deg, skin * [1.05, 0.8, 0.8],
                       0.12 + 0.25 * au.get(6, 0) + 0.2 * au.get(34, 0))
    _draw_wrinkles(img, identity, shape, T, au, skin, s)
    _draw_nose(img, lm, skin, s)
    _draw_eyes(img, identity, lm, skin, s, gaze)
    brow_colour = hair * 0.7 + np.array([10.0, 8.0, 6.0])
    for brow in (lm[17:22], lm[22:27]):
        _line(img, brow, brow_colour, identity.brow_thickness * s)
        _line(img, brow[1:4], brow_colour, identity.brow_thickness * s * 1.25)
    _draw_mouth(img, identity, lm, s, au)
    _draw_hair(img, identity, T, hair, s)
    return img


def _draw_shaded_skin(img: np.ndarray, outline: np.ndarray, skin: np.ndarray, s: float) -> None:
    pad = int(0.15 * s) + 2
    x0, y0 = np.maximum(np.floor(outline.min(axis=0)).astype(int) - pad, 0)
    x1, y1 = np.minimum(np.ceil(outline.max(axis=0)).astype(int) + pad, [img.shape[1], img.shape[0]])
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [_px(outline - [x0, y0])], 255, cv2.LINE_AA, _SHIFT)
    soft = cv2.GaussianBlur(mask, (0, 0), max(0.09 * s, 0.6)).astype(np.float32) / 255.0
    alpha = mask.astype(np.float32)[..., None] / 255.0
    shade = (0.7 + 0.3 * soft)[..., None] * skin.astype(np.float32)
    roi = img[y0:y1, x0:x1]
    roi[:] = np.clip(alpha * shade + (1 - alpha) * roi, 0, 255).astype(np.uint8)


def _blend_ellipse(img: np.ndarray, centre: np.ndarray, axes: tuple[float, float], angle: float,
                   colour: Sequence[float], alpha: float) -> None:
    r = int(max(axes)) + 2
    x0, y0 = max(int(centre[0]) - r, 0), max(int(centre[1]) - r, 0)
    x1, y1 = min(int(centre[0]) + r + 1, img.shape[1]), min(int(centre[1]) + r + 1, img.shape[0])
    if x1 <= x0 or y1 <= y0 or alpha <= 0.02:
        return
    roi = img[y0:y1, x0:x1]
    layer = roi.copy()
    _ellipse(layer, centre - [x0, y0], axes, angle, colour)
    cv2.addWeighted(layer, float(min(alpha, 1)), roi, 1 - float(min(alpha, 1)), 0, dst=roi)


def _draw_wrinkles(img: np.ndarray, identity: Identity, shape: np.ndarray, T, au: dict[int, float],
                   skin: np.ndarray, s: float) -> None:
    dark, width = skin * 0.62, max(0.012 * s, 1.0)
    brow_y = float(shape[17:27, 1].min())
    forehead = [T(_arc((0, brow_y - 0.05 - k * 0.1), 0.32 - 0.03 * k, 0.04, -0.85 * np.pi, -0.15 * np.pi, 9))
                for k in range(3)]
    _blend_strokes(img, forehead, dark, 0.55 * max(au.get(1, 0), au.get(2, 0)), width)
    glabella = [T(np.array([[x, shape[21, 1] - 0.1], [x * 1.1, shape[21, 1] + 0.03]])) for x in (-0.04, 0.04)]
    _blend_strokes(img, glabella, dark, 0.7 * au.get(4, 0), width)
    nose = [T(np.array([[-0.06, y], [0.06, y]])) for y in (shape[28, 1] - 0.03, shape[28, 1] + 0.03)]
    _blend_strokes(img, nose, dark, 0.7 * au.get(9, 0), width)
    crows = []
    for corner, side in ((shape[36], -1), (shape[45], 1)):
        for dy in (-0.05, 0.0, 0.05):
            crows.append(T(np.array([corner + [side * 0.04, dy * 0.4], corner + [side * 0.12, dy]])))
    _blend_strokes(img, crows, dark, 0.6 * au.get(6, 0), width)
    folds = []
    for wing, corner, side in ((shape[31], shape[48], -1), (shape[35], shape[54], 1)):
        mid = (wing + corner) / 2 + [side * 0.07, 0.0]
        folds.append(T(np.array([wing + [side * 0.05, 0.0], mid, corner + [side * 0.05, 0.03]])))
    fold_alpha = 0.18 + 0.5 * max(au.get(12, 0), au.get(10, 0), au.get(9, 0), au.get(6, 0) * 0.6)
    _blend_strokes(img, folds, dark, fold_alpha, width)
    dimples = [T(np.array([c + [side * 0.05, -0.03], c + [side * 0.06, 0.03]]))
               for c, side in ((shape[48], -1), (shape[54], 1))]
    _blend_strokes(img, dimples, dark, 0.7 * au.get(14, 0), width)
    chin = [T(_arc((shape[57, 0], shape[57, 1] + 0.1), 0.1, 0.03, 0.15 * np.pi, 0.85 * np.pi, 7))]
    _blend_strokes(img, chin, dark, 0.6 * au.get(17, 0), width)
    del identity


def _draw_nose(img: np.ndarray, lm: np.ndarray, skin: np.ndarray, s: float) -> None:
    _blend_strokes(img, [np.array([lm[27] + [-0.06 * s, 0], lm[29] + [-0.07 * s, 0], lm[31]])],
                   skin * 0.7, 0.35, max(0.02 * s, 1.0))
    for wing in (lm[31:34], lm[33:36]):
        _line(img, wing, skin * 0.62, max(0.018 * s, 1.0))
    nostril_axes = (0.035 * s, 0.018 * s)
    for a, b in ((31, 33), (35, 33)):
        centre = lm[a] * 0.55 + lm[b] * 0.45 - [0, 0.012 * s]
        _ellipse(img, centre, nostril_axes, 0, skin * 0.35)
    _blend_ellipse(img, lm[30], (0.04 * s, 0.03 * s), 0, np.minimum(skin * 1.15, 255), 0.5)


def _draw_eyes(img: np.ndarray, identity: Identity, lm: np.ndarray, skin: np.ndarray, s: float,
               gaze: tuple[float, float]) -> None:
    lash = np.array(identity.hair) * 0.35
    for eye in (lm[36:42], lm[42:48]):
        width = float(np.linalg.norm(eye[3] - eye[0]))
        _line(img, eye[[0, 1, 2, 3]] - [0, 0.035 * s], skin * 0.75, max(0.015 * s, 1.0))  # lid crease

        def iris(layer: np.ndarray, local: np.ndarray, width: float = width) -> None:
            centre = local.mean(axis=0) + np.array(gaze) * width * [0.18, 0.12]
            _ellipse(layer, centre, (0.2 * width, 0.2 * width), 0, identity.iris)
            _ellipse(layer, centre, (0.085 * width, 0.085 * width), 0, (12, 10, 10))
            _ellipse(layer, centre + [-0.06 * width, -0.06 * width], (0.03 * width, 0.03 * width), 0,
                     (250, 250, 250))

        _fill_opening(img, eye, (236, 232, 226), iris)
        _line(img, eye[[0, 1, 2, 3]], lash, max(0.022 * s, 1.0))
        _line(img, eye[[3, 4, 5, 0]], skin * 0.6, max(0.01 * s, 1.0))


def _fill_opening(img: np.ndarray, outline: np.ndarray, background: Sequence[float],
                  draw: Callable[[np.ndarray, np.ndarray], None]) -> None:
    """Fill the polygon ``outline`` (an eye or the open mouth) with ``background`` plus what ``draw(layer,
    local_outline)`` paints (iris, teeth), clipped to the polygon with an anti-aliased edge."""
    x0, y0 = np.maximum(np.floor(outline.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(outline.max(axis=0)).astype(int) + 3, [img.shape[1], img.shape[0]])
    if x1 <= x0 or y1 <= y0:
        return
    roi = img[y0:y1, x0:x1]
    local = outline - [x0, y0]
    opening = np.zeros(roi.shape[:2], np.uint8)
    cv2.fillPoly(opening, [_px(local)], 255, cv2.LINE_AA, _SHIFT)
    layer = np.empty_like(roi)
    layer[:] = background
    draw(layer, local)
    a = opening.astype(np.float32)[..., None] / 255.0
    roi[:] = (a * layer + (1 - a) * roi).astype(np.uint8)


def _draw_mouth(img: np.ndarray, identity: Identity, lm: np.ndarray, s: float, au: dict[int, float]) -> None:
    lips = np.array(identity.lips)
    _poly(img, lm[48:60], lips)
    inner = lm[60:68]
    gap = float(np.mean(lm[[67, 66, 65], 1] - lm[[61, 62, 63], 1]))
    if gap > 0.004 * s:
        def teeth(layer: np.ndarray, local: np.ndarray) -> None:
            white = (238, 234, 222)
            upper = local[[0, 1, 2, 3, 4]]
            _poly(layer, np.concatenate([upper, upper[::-1] + [0, 0.06 * s]]), white)
            if au.get(16, 0) + au.get(26, 0) > 0.3:
                lower = local[[4, 5, 6, 7, 0]]
                _poly(layer, np.concatenate([lower, lower[::-1] - [0, 0.045 * s]]), white)

        _fill_opening(img, inner, (70, 22, 28), teeth)
    _line(img, inner[[0, 1, 2, 3, 4]], lips * 0.5, max(0.012 * s, 1.0))
    _blend_ellipse(img, (lm[57] + lm[66]) / 2, (0.06 * s, 0.015 * s), 0, np.minimum(lips * 1.3, 255), 0.35)


def _draw_hair(img: np.ndarray, identity: Identity, T, hair: np.ndarray, s: float) -> None:
    if identity.hair_style == "bald":
        return
    half = (identity.shape[16, 0] - identity.shape[0, 0]) / 2
    top = identity.forehead_height + 0.05
    outer = _arc((0, 0.05), half * 1.07, top + 0.16, 0.04 * np.pi, -1.04 * np.pi, 20)
    hairline_depth = {"fringe": 0.55, "short": 0.83, "long": 0.8, "bun": 0.86}[identity.hair_style]
    inner = _arc((0, 0.05), half * 0.98, top * hairline_depth, -0.98 * np.pi, -0.02 * np.pi, 16)
    if identity.hair_style == "fringe":
        inner[:, 1] = np.minimum(inner[:, 1], 0.05 - top * 0.45)
    _poly(img, T(np.concatenate([outer, inner])), hair)
    strands = [T(_arc((0, 0.05), half * r, top * (0.9 + 0.05 * r), -0.85 * np.pi, -0.15 * np.pi, 10))
               for r in (0.95, 0.85)]
    _blend_strokes(img, strands, hair * 0.6, 0.5, max(0.012 * s, 1.0))


def light(img: np.ndarray, illumination: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Apply a session's illumination gain and a camera-noise field to unlit pixels (pointwise, so it works
    on whole frames or on any same-shaped selection of pixels)."""
    lit = img.astype(np.float32) * illumination + noise
    return np.clip(np.rint(lit), 0, 255).astype(np.uint8)
